//! What authority reversed requests carry. A strict HTTP/2 server resets a
//! request with neither `:authority` nor `Host` (RFC 9113, section 8.3.1),
//! and HTTP/1.1 requires a `Host` field (RFC 9112, section 3.2), so the
//! initiator here is served by servers that show what they received: the
//! `h2` crate's, which exposes the pseudo-headers, and hyper's HTTP/1.1.

use crate::support;
use std::convert::Infallible;

use crate::support::{listener, within};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::HOST;
use hyper::http::uri::Authority;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ptth::Protocol;
use ptth::acceptor::SendRequest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What a server saw of one request: the target as it arrived (with
/// `:scheme` and `:authority` on HTTP/2) and its `Host` field.
#[derive(Debug, PartialEq)]
struct Seen {
    uri: String,
    host: Option<String>,
}

/// Serves the transposed connection with the `h2` crate's server, which
/// rejects a request whose pseudo-headers it cannot accept, and reports
/// every request it took.
async fn h2_initiator(addr: std::net::SocketAddr, seen: mpsc::UnboundedSender<Seen>) {
    let transposed = ptth::initiator::Builder::new()
        .protocols([Protocol::Http2])
        .connect(format!("http://{addr}/reverse"))
        .await
        .expect("upgraded");
    let mut connection = h2::server::handshake(transposed.into_io())
        .await
        .expect("h2 handshake");
    while let Some(accepted) = connection.accept().await {
        let Ok((request, mut respond)) = accepted else {
            break;
        };
        let _ = seen.send(Seen {
            uri: request.uri().to_string(),
            host: host(request.headers()),
        });
        let response = hyper::Response::new(());
        let _ = respond.send_response(response, true);
    }
}

fn host(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get(HOST)
        .map(|host| host.to_str().unwrap().to_owned())
}

async fn accept_h2(
    listener: &TcpListener,
    acceptor: ptth::acceptor::Builder,
) -> SendRequest<Empty<Bytes>> {
    let (tcp, _) = listener.accept().await.unwrap();
    let offer = acceptor.read_request(tcp).await.unwrap();
    let (sender, connection) = offer.accept().await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn status(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> StatusCode {
    sender
        .send_request(request)
        .await
        .expect("the strict server accepts the request")
        .status()
}

fn get(target: &str) -> Request<Empty<Bytes>> {
    Request::get(target).body(Empty::new()).unwrap()
}

#[tokio::test]
async fn h2_relative_requests_get_the_upgrade_host_as_authority() {
    within(async {
        let (listener, addr) = listener().await;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(h2_initiator(addr, seen_tx));
        let mut sender = accept_h2(&listener, ptth::acceptor::Builder::new()).await;

        assert_eq!(status(&mut sender, get("/hello?x=1")).await, StatusCode::OK);
        let expected = Seen {
            uri: format!("http://{addr}/hello?x=1"),
            host: None,
        };
        assert_eq!(seen.recv().await.unwrap(), expected);

        // A Host given by the caller wins, and travels as :authority.
        let given = Request::get("/g")
            .header(HOST, "given.example")
            .body(Empty::new())
            .unwrap();
        assert_eq!(status(&mut sender, given).await, StatusCode::OK);
        let expected = Seen {
            uri: "http://given.example/g".into(),
            host: None,
        };
        assert_eq!(seen.recv().await.unwrap(), expected);

        // So does an absolute URI.
        let absolute = get("https://absolute.example/a");
        assert_eq!(status(&mut sender, absolute).await, StatusCode::OK);
        let expected = Seen {
            uri: "https://absolute.example/a".into(),
            host: None,
        };
        assert_eq!(seen.recv().await.unwrap(), expected);
    })
    .await;
}

#[tokio::test]
async fn h2_authority_can_be_set_on_the_acceptor() {
    within(async {
        let (listener, addr) = listener().await;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(h2_initiator(addr, seen_tx));
        let acceptor =
            ptth::acceptor::Builder::new().authority(Authority::from_static("device.local"));
        let mut sender = accept_h2(&listener, acceptor).await;
        assert_eq!(status(&mut sender, get("/")).await, StatusCode::OK);
        let expected = Seen {
            uri: "http://device.local/".into(),
            host: None,
        };
        assert_eq!(seen.recv().await.unwrap(), expected);
    })
    .await;
}

/// The same rule inside a hyper server, through `upgrade::accept`.
#[tokio::test]
async fn h2_authority_inside_a_hyper_server() {
    within(async {
        let (listener, addr) = listener().await;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(h2_initiator(addr, seen_tx));
        let (tcp, _) = listener.accept().await.unwrap();
        let (reports, mut switched) = mpsc::unbounded_channel();
        let service = support::switching_service(reports);
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades(),
        );
        let (mut sender, connection) = switched.recv().await.unwrap().unwrap();
        tokio::spawn(connection);
        assert_eq!(status(&mut sender, get("/inside")).await, StatusCode::OK);
        let expected = Seen {
            uri: format!("http://{addr}/inside"),
            host: None,
        };
        assert_eq!(seen.recv().await.unwrap(), expected);
    })
    .await;
}

/// HTTP/1.1 requests always carry `Host`: empty by default, as the legacy
/// draft writes reversed requests, or the authority set on the acceptor.
#[tokio::test]
async fn h1_requests_carry_host() {
    within(async {
        for (authority, expected) in [(None, ""), (Some("device.local"), "device.local")] {
            let (listener, addr) = listener().await;
            let (seen_tx, mut seen) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let transposed = ptth::initiator::Builder::new()
                    .protocols([Protocol::Http1])
                    .handshake(tcp)
                    .await
                    .unwrap();
                let service = service_fn(move |request: Request<Incoming>| {
                    let _ = seen_tx.send(host(request.headers()));
                    async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
                });
                transposed.serve(service).await
            });
            let mut acceptor = ptth::acceptor::Builder::new();
            if let Some(authority) = authority {
                acceptor = acceptor.authority(Authority::from_static(authority));
            }
            let (tcp, _) = listener.accept().await.unwrap();
            let offer = acceptor.read_request(tcp).await.unwrap();
            let (mut sender, connection) = offer.accept::<Empty<Bytes>>().await.unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(get("/")).await.unwrap();
            response.into_body().collect().await.unwrap();
            assert_eq!(seen.recv().await.unwrap().as_deref(), Some(expected));
        }
    })
    .await;
}

/// hyper's own HTTP/2 server behind the initiator sees the same authority,
/// so `Request::uri().authority()` works in a device's handlers.
#[tokio::test]
async fn hyper_h2_server_sees_the_authority() {
    within(async {
        let (listener, addr) = listener().await;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let transposed = ptth::initiator::connect(format!("http://{addr}/r"))
                .await
                .unwrap();
            let service = service_fn(move |request: Request<Incoming>| {
                let _ = seen_tx.send(request.uri().to_string());
                async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
            });
            let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            server
                .serve_connection(TokioIo::new(transposed.into_io()), service)
                .await
        });
        let mut sender = accept_h2(&listener, ptth::acceptor::Builder::new()).await;
        assert_eq!(status(&mut sender, get("/x")).await, StatusCode::OK);
        assert_eq!(seen.recv().await.unwrap(), format!("http://{addr}/x"));
    })
    .await;
}
