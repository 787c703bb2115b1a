//! A shutdown stops accepting and lets requests in flight finish.

use crate::support;
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

#[tokio::test]
async fn a_shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    // On HTTP/1.1 closing a connection fails its request, so the drain
    // must spare the busy one; on both, the last request's end closes it.
    for initiator in [
        ptth::initiator::Builder::new(),
        ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]),
    ] {
        finishes_in_flight_then_closes(initiator).await;
    }
}

async fn finishes_in_flight_then_closes(initiator: ptth::initiator::Builder) {
    let mut running = relay(Settings::default()).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (inside, let_go) = (entered.clone(), release.clone());
    let service = service_fn(move |_: Request<Incoming>| {
        let (inside, let_go) = (inside.clone(), let_go.clone());
        async move {
            inside.notify_one();
            let_go.notified().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"finished"))))
        }
    });
    let tunnel =
        ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp?token=t", running.addr))
            .initiator(initiator)
            .serve(service);
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    connected(&handle, 1).await;
    let url = format!("http://{}/lamp/slow", running.addr);
    let in_flight = tokio::spawn(async move { get(&url).await });
    within(entered.notified()).await;

    running.stop.take().unwrap().send(()).unwrap();
    // Stopped accepting: new connections are refused (one that raced
    // into the backlog is reset).
    within(async {
        loop {
            match tokio::net::TcpStream::connect(running.addr).await {
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(
        !running.served.is_finished(),
        "stopped with a request in flight"
    );
    release.notify_one();
    let Reply { status, body, .. } = within(in_flight).await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));
    within(&mut running.served).await.unwrap();
    // The device sees its last connection closed once the request ended.
    within(handle.wait_for(|status| status.connected == 0)).await;
}

#[tokio::test]
async fn a_shutdown_waits_for_no_idle_channel_and_no_parked_poll() {
    let mut running = relay(Settings::default()).await;
    let tunnel =
        ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp?token=t", running.addr))
            .setup(ptth::Setup::Http2)
            .serve(service_fn(support::describe));
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    connected(&handle, 1).await;
    let addr = running.addr;
    let parked = tokio::spawn(async move {
        support::raw::exchange(addr, "GET /reversehttp/fan/t/1 HTTP/1.1", b"").await
    });
    while running.relay.parked_polls() < 1 {
        tokio::task::yield_now().await;
    }
    running.stop.take().unwrap().send(()).unwrap();
    // Well within the 30 s grace: nothing was in flight.
    within(&mut running.served).await.unwrap();
    let answer = within(parked).await.unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
}
