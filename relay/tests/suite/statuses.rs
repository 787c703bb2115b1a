//! Every status of the table in docs/relay.md, "Statuses", each from a real situation.

use crate::support;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Reply, connected, get, relay, within};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use ptth_relay::Settings;
use ptth_relay::Waits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

fn quick() -> Settings {
    Settings {
        waits: Waits {
            peer: Duration::from_millis(300),
            queue: Duration::from_millis(300),
        },
        response_timeout: Duration::from_millis(500),
        ..Settings::default()
    }
}

/// A peer whose `/hold` signals `entered` and waits for `release`, and
/// whose `/silent` never answers.
fn holding_peer(
    addr: std::net::SocketAddr,
    entered: Arc<Notify>,
    release: Arc<Notify>,
) -> ptth::tunnel::Handle {
    let service = service_fn(move |request: Request<Incoming>| {
        let (entered, release) = (entered.clone(), release.clone());
        async move {
            match request.uri().path() {
                "/lamp/hold" => {
                    entered.notify_one();
                    release.notified().await;
                }
                "/lamp/silent" => std::future::pending().await,
                _ => {}
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    });
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/lamp?token=t"))
        .initiator(ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]))
        .connections(1)
        .serve(service);
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    handle
}

#[tokio::test]
async fn a_busy_http1_pool_queues_then_answers_503() {
    let running = relay(quick()).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let handle = holding_peer(running.addr, entered.clone(), release.clone());
    connected(&handle, 1).await;
    let url = format!("http://{}/lamp/hold", running.addr);
    let held = tokio::spawn(async move { get(&url).await });
    // The held request occupies the only connection.
    within(entered.notified()).await;
    let pool = running.relay.names().lookup("lamp").unwrap();
    let Reply {
        status, headers, ..
    } = get(&format!("http://{}/lamp/other", running.addr)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    release.notify_one();
    let Reply { status, body, .. } = within(held).await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    // Freed, the connection takes the next request.
    let Reply { status, .. } = get(&format!("http://{}/lamp/other", running.addr)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pool.connections(), (1, 0));
}

#[tokio::test]
async fn a_silent_peer_is_504() {
    let running = relay(quick()).await;
    let handle = holding_peer(
        running.addr,
        Arc::new(Notify::new()),
        Arc::new(Notify::new()),
    );
    connected(&handle, 1).await;
    let Reply { status, body, .. } = get(&format!("http://{}/lamp/silent", running.addr)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
}

/// A raw HTTP/1.1 peer: upgrades, reads one request, then does `then`;
/// the request's head as it came.
async fn raw_peer(addr: std::net::SocketAddr, then: &'static [u8]) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let transposed = ptth::initiator::Builder::new()
        .uri(format!("http://{addr}/reversehttp/lamp?token=t"))
        .protocols([ptth::Protocol::Http1])
        .handshake(tcp)
        .await
        .unwrap();
    let ptth::initiator::Parts {
        io: mut tcp,
        read_buf,
        ..
    } = transposed.into_parts();
    let mut seen = read_buf.to_vec();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the relay closed");
        seen.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(then).await.unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits until `lamp` has one HTTP/1.1 connection; the name's pool does
/// not exist before the raw peer's claim, so there is nothing to wait on
/// until then.
async fn one_h1_connection(running: &support::Running) {
    let pool = within(async {
        loop {
            match running.relay.names().lookup("lamp") {
                Some(pool) => return pool,
                None => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    within(pool.wait_until(|counts| counts == (1, 0))).await;
}

#[tokio::test]
async fn a_peer_that_closes_or_answers_garbage_before_the_head_is_502() {
    for then in [&b""[..], b"garbage\r\n\r\n"] {
        let running = relay(quick()).await;
        let peer = tokio::spawn(raw_peer(running.addr, then));
        one_h1_connection(&running).await;
        let Reply { status, body, .. } = get(&format!("http://{}/lamp/x", running.addr)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        peer.await.unwrap();
    }
}

#[tokio::test]
async fn a_peer_that_fails_after_the_head_aborts_the_stream() {
    let running = relay(quick()).await;
    let peer = tokio::spawn(raw_peer(
        running.addr,
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
    ));
    one_h1_connection(&running).await;
    let request = Request::get(format!("http://{}/lamp/x", running.addr))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = within(support::client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    peer.await.unwrap();
    let body = within(response.into_body().collect()).await;
    assert!(body.is_err(), "a cut body arrived whole");
}

/// An HTTP/1.1 peer may close a quiet connection just as a request comes
/// on it; a request that can be replayed then goes to another connection.
#[tokio::test]
async fn a_replayable_request_is_sent_again_when_its_connection_closes() {
    let running = relay(quick()).await;
    let closing = tokio::spawn(raw_peer(running.addr, b""));
    one_h1_connection(&running).await;
    let handle = holding_peer(
        running.addr,
        Arc::new(Notify::new()),
        Arc::new(Notify::new()),
    );
    connected(&handle, 1).await;
    let pool = running.relay.names().lookup("lamp").unwrap();
    assert_eq!(pool.connections(), (2, 0));
    // The closing peer joined first, so it is picked first.
    let Reply { status, body, .. } = get(&format!("http://{}/lamp/x", running.addr)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    closing.await.unwrap();
}

/// An HTTP/1.0 client's request crosses as HTTP/1.1, so an HTTP/1.1 peer
/// keeps its connection for the requests after it.
#[tokio::test]
async fn an_http10_request_reaches_an_http11_peer_as_http11() {
    let running = relay(quick()).await;
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let peer = tokio::spawn(raw_peer(running.addr, answer));
    one_h1_connection(&running).await;
    let mut client = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    client
        .write_all(b"GET /lamp/x HTTP/1.0\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let head = within(peer).await.unwrap();
    assert!(head.starts_with("GET /lamp/x HTTP/1.1\r\n"), "{head}");
    let mut answered = Vec::new();
    within(client.read_to_end(&mut answered)).await.unwrap();
    assert!(answered.ends_with(b"\r\n\r\nok"), "{answered:?}");
}
