//! The axum extractor and tower integration (feature `axum`): a handler
//! accepts PTTH peers, refuses what is no PTTH upgrade, and tower services
//! run on both ends.

use std::net::SocketAddr;

use crate::support::{listener, read_head, within};
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::{any, get};
use http_body_util::BodyExt;
use hyper::Request;
use ptth::acceptor::SendRequest;
use ptth::axum::PtthUpgrade;
use ptth::{Dialect, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// What the handler saw of an upgrade, and the sender it got.
struct Accepted {
    path: String,
    peer: Option<SocketAddr>,
    dialect: Dialect,
    sender: SendRequest<Body>,
}

/// An axum app whose `/connect/{name}` hands each peer to the test, served
/// with connect info so the extractor can name the peer.
async fn relay(
    acceptor: ptth::acceptor::Builder,
) -> (SocketAddr, mpsc::UnboundedReceiver<Accepted>) {
    let (accepted_tx, accepted) = mpsc::unbounded_channel();
    let handler = move |upgrade: PtthUpgrade| {
        let accepted_tx = accepted_tx.clone();
        let acceptor = acceptor.clone();
        async move {
            let path = upgrade.uri().path().to_owned();
            let peer = upgrade.peer_addr();
            let dialect = upgrade.dialect();
            upgrade
                .acceptor(acceptor)
                .on_upgrade(move |sender| async move {
                    let _ = accepted_tx.send(Accepted {
                        path,
                        peer,
                        dialect,
                        sender,
                    });
                })
        }
    };
    let app = Router::new().route("/connect/{name}", any(handler));
    let (listener, addr) = listener().await;
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    (addr, accepted)
}

/// A device serving an axum `Router` over PTTH, as a tower service.
fn device() -> Router {
    Router::new().route("/hello", get(|| async { "hello from the device" }))
}

async fn hello(sender: SendRequest<Body>) -> String {
    let request = Request::get("/hello").body(Body::empty()).unwrap();
    // The sender is a tower service too.
    let response = sender.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn handler_accepts_peers_of_every_dialect_and_protocol() {
    within(async {
        let (addr, mut accepted) = relay(ptth::acceptor::Builder::new()).await;
        for (dialect, protocol) in [
            (Dialect::Current, Protocol::Http2),
            (Dialect::Current, Protocol::Http1),
            (Dialect::Legacy, Protocol::Http1),
        ] {
            let initiator = ptth::initiator::Builder::new()
                .dialect(dialect)
                .protocols([protocol]);
            let transposed = initiator
                .connect(format!("http://{addr}/connect/lamp"))
                .await
                .unwrap();
            let local = transposed.io().tcp_stream().local_addr().unwrap();
            tokio::spawn(transposed.serve(device()));
            let peer = accepted.recv().await.unwrap();
            assert_eq!(peer.path, "/connect/lamp");
            assert_eq!(peer.peer, Some(local));
            assert_eq!(peer.dialect, dialect);
            assert_eq!(peer.sender.protocol(), protocol);
            assert_eq!(hello(peer.sender).await, "hello from the device");
        }
    })
    .await;
}

#[tokio::test]
async fn handler_accepts_channels_set_up_over_http2() {
    within(async {
        let (addr, mut accepted) = relay(ptth::acceptor::Builder::new()).await;
        // axum::serve enables extended CONNECT on its HTTP/2 connections.
        let channels = ptth::initiator::Builder::new()
            .connect_http2(format!("http://{addr}/connect/lamp"))
            .await
            .unwrap();
        // Two channels on the one connection.
        for _ in 0..2 {
            let transposed = channels.open().await.unwrap();
            assert_eq!(transposed.protocol(), Protocol::Http2);
            tokio::spawn(transposed.serve(device()));
            let peer = accepted.recv().await.unwrap();
            assert_eq!(peer.path, "/connect/lamp");
            assert_eq!(peer.dialect, Dialect::Current);
            assert_eq!(hello(peer.sender).await, "hello from the device");
        }
    })
    .await;
}

#[tokio::test]
async fn a_request_that_is_no_upgrade_gets_426_from_the_extractor() {
    within(async {
        let (addr, _accepted) = relay(ptth::acceptor::Builder::new()).await;
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET /connect/lamp HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("upgrade: ptth, ptth/1.0"),
            "{head}"
        );
    })
    .await;
}

#[tokio::test]
async fn settings_given_to_the_extractor_refuse_with_their_status() {
    within(async {
        let (addr, _accepted) =
            relay(ptth::acceptor::Builder::new().dialects([Dialect::Current])).await;
        let legacy = ptth::initiator::Builder::new().dialect(Dialect::Legacy);
        let error = legacy
            .connect(format!("http://{addr}/connect/lamp"))
            .await
            .unwrap_err();
        let declined = error.declined().expect("declined");
        assert_eq!(declined.status, 426, "{error}");
    })
    .await;
}

/// A handler that refuses (bad credentials) answers with its own response;
/// the initiator reads it as declined.
#[tokio::test]
async fn handler_may_refuse_with_any_response() {
    within(async {
        let handler = |upgrade: PtthUpgrade| async move {
            let authorised = upgrade.headers().get("authorization").is_some();
            if authorised {
                upgrade.on_upgrade(|_| async {})
            } else {
                Response::builder()
                    .status(401)
                    .body(Body::from("who are you?"))
                    .unwrap()
            }
        };
        let app = Router::new().route("/connect", any(handler));
        let (listener, addr) = listener().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        let error = ptth::initiator::connect(format!("http://{addr}/connect"))
            .await
            .unwrap_err();
        assert_eq!(error.declined().unwrap().status, 401);
        assert_eq!(error.declined().unwrap().body, "who are you?");
    })
    .await;
}
