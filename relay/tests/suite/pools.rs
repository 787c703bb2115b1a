//! A name's pool: h2 and h1 connections mixed, the least loaded picked,
//! and a dead connection's requests failing fast.

use std::convert::Infallible;
use std::sync::Arc;

use crate::support::{Reply, connected, get, relay, within};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use ptth_relay::Settings;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A peer named `me` whose `/lamp/hold` signals `entered` and waits for
/// `release`; every answer is `me`.
fn peer(
    addr: std::net::SocketAddr,
    me: &'static str,
    protocol: ptth::Protocol,
    entered: Arc<Notify>,
    release: Arc<Notify>,
) -> (ptth::tunnel::Handle, JoinHandle<Result<(), ptth::Error>>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (entered, release) = (entered.clone(), release.clone());
        async move {
            if request.uri().path() == "/lamp/hold" {
                entered.notify_one();
                release.notified().await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(me.as_bytes()))))
        }
    });
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/lamp?token=t"))
        .initiator(ptth::initiator::Builder::new().protocols([protocol]))
        .connections(1)
        .serve(service);
    let handle = tunnel.handle();
    (handle, tokio::spawn(tunnel))
}

#[tokio::test]
async fn requests_go_to_the_least_loaded_connection_of_a_mixed_pool() {
    let running = relay(Settings::default()).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (h1, _h1_task) = peer(
        running.addr,
        "h1",
        ptth::Protocol::Http1,
        entered.clone(),
        release.clone(),
    );
    connected(&h1, 1).await;
    let (h2, _h2_task) = peer(
        running.addr,
        "h2",
        ptth::Protocol::Http2,
        entered.clone(),
        release.clone(),
    );
    connected(&h2, 1).await;
    let pool = running.relay.names().lookup("lamp").unwrap();
    assert_eq!(pool.connections(), (1, 1));
    let url = format!("http://{}/lamp/hold", running.addr);
    let held = tokio::spawn(async move { get(&url).await });
    within(entered.notified()).await;
    // Whichever took the held request, the next goes to the other.
    let Reply { body: first, .. } = get(&format!("http://{}/lamp/who", running.addr)).await;
    release.notify_one();
    let Reply {
        status,
        body: holder,
        ..
    } = within(held).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_ne!(first, holder, "the loaded connection was picked");
}

#[tokio::test]
async fn a_dead_connection_fails_its_requests_fast_with_502() {
    let running = relay(Settings::default()).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    for protocol in [ptth::Protocol::Http2, ptth::Protocol::Http1] {
        let (handle, task) = peer(
            running.addr,
            "p",
            protocol,
            entered.clone(),
            release.clone(),
        );
        connected(&handle, 1).await;
        let url = format!("http://{}/lamp/hold", running.addr);
        let held = tokio::spawn(async move { get(&url).await });
        within(entered.notified()).await;
        // The device dies: its tunnel and connections are dropped at once.
        task.abort();
        let Reply { status, body, .. } = within(held).await.unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        let pool = running.relay.names().lookup("lamp").unwrap();
        within(pool.wait_until(|counts| counts == (0, 0))).await;
    }
}
