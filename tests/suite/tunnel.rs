//! The tunnel against a relay played by this crate's acceptor on real
//! sockets: restarts, a frozen path, the relays' answers, the pool, drain
//! and the axum listener.

use crate::support;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::fake_relay::{FakeRelay, accept_all};
use crate::support::pipe::Pipe;
use crate::support::{echo, exchange, request, within};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::service::service_fn;
use ptth::tunnel::{self, Handle, Phase, Status};
use ptth::{Error, Protocol};
use tokio::time::Instant;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/reversehttp/lamp")
}

/// A builder that retries within a fraction of a second, so a test does
/// not wait on production backoff.
fn quick(addr: SocketAddr) -> tunnel::Builder {
    tunnel::Builder::new(url(addr)).backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn h1_only() -> ptth::initiator::Builder {
    ptth::initiator::Builder::new().protocols([Protocol::Http1])
}

async fn until(handle: &Handle, what: impl FnMut(&Status) -> bool) -> Status {
    within(handle.wait_for(what)).await
}

async fn echoes(relay: &mut FakeRelay) {
    let mut sender = relay.next_sender().await;
    let (status, body) = exchange(&mut sender, request("GET", "/hi", "")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"GET /hi\n"[..]));
}

fn refusing(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> support::fake_relay::Answer {
    Arc::new(move |_| {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        Some(response.body(Bytes::new()).unwrap())
    })
}

/// Refuses the upgrade requests whose number (from 0) `which` picks, as
/// [`refusing`] does, and accepts the others.
fn refusing_some(
    which: impl Fn(usize) -> bool + Send + Sync + 'static,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> support::fake_relay::Answer {
    let count = AtomicUsize::new(0);
    let refuse = refusing(status, headers);
    Arc::new(move |request| {
        if which(count.fetch_add(1, Ordering::SeqCst)) {
            refuse(request)
        } else {
            None
        }
    })
}

#[tokio::test]
async fn serves_through_the_relay_and_learns_its_public_url() {
    let mut relay = FakeRelay::start_with(any_port(), accept_all(), |offer| {
        offer.header(
            http::header::LINK,
            HeaderValue::from_static("<http://lamp.relay.example/>; rel=\"related\""),
        )
    })
    .await;
    let tunnel = tunnel::serve(url(relay.addr), service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    echoes(&mut relay).await;
    let status = until(&handle, |s| s.connected == 1).await;
    assert_eq!(status.protocol, Some(Protocol::Http2));
    assert_eq!(status.public_url.unwrap(), "http://lamp.relay.example/");
    handle.shutdown();
    within(running).await.unwrap().unwrap();
    assert_eq!(handle.status().phase, Phase::Stopped);
}

#[tokio::test]
async fn a_relay_restart_is_redialled_without_help() {
    for initiator in [ptth::initiator::Builder::new(), h1_only()] {
        let mut relay = FakeRelay::start(any_port(), accept_all()).await;
        let tunnel = quick(relay.addr)
            .initiator(initiator)
            .connections(1)
            .serve(service_fn(echo));
        let handle = tunnel.handle();
        let running = tokio::spawn(tunnel);
        echoes(&mut relay).await;
        let addr = relay.stop().await;
        until(&handle, |s| s.connected == 0).await;
        let mut relay = FakeRelay::start(addr, accept_all()).await;
        let back = Instant::now();
        echoes(&mut relay).await;
        // The cap is 200 ms; the margin covers a loaded machine.
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "{:?}",
            back.elapsed()
        );
        handle.shutdown();
        within(running).await.unwrap().unwrap();
    }
}

/// Frozen path: the pipe keeps the sockets but moves nothing. Returns how
/// long the tunnel took to report a timeout with no connection, and the
/// state then.
async fn notices_a_frozen_relay(initiator: ptth::initiator::Builder) -> (Duration, Status) {
    let mut relay = FakeRelay::start(any_port(), accept_all()).await;
    let pipe = Pipe::to(relay.addr).await;
    let tunnel = quick(pipe.addr)
        .initiator(initiator.timeout(Duration::from_secs(1)))
        .connections(1)
        .keep_alive(Duration::from_secs(1), Duration::from_secs(1))
        .idle_timeout(Duration::from_secs(1))
        .serve(service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    echoes(&mut relay).await;
    until(&handle, |s| s.connected == 1).await;
    pipe.freeze();
    let frozen = Instant::now();
    let status = until(&handle, |s| {
        s.connected == 0 && s.last_error.as_ref().is_some_and(|e| e.is_timeout())
    })
    .await;
    let noticed = frozen.elapsed();
    pipe.restore();
    echoes(&mut relay).await;
    handle.shutdown();
    within(running).await.unwrap().unwrap();
    (noticed, status)
}

#[tokio::test]
async fn a_frozen_relay_is_noticed_by_ping_on_http2() {
    let (noticed, status) = notices_a_frozen_relay(ptth::initiator::Builder::new()).await;
    // A PING after 1 s of quiet and 1 s for its answer: 2 s by design,
    // with room for a loaded machine.
    assert!(noticed < Duration::from_secs(8), "{noticed:?}");
    let error = status.last_error.clone().unwrap();
    assert!(matches!(error, Error::Http(_)), "not the PING: {error}");
}

#[tokio::test]
async fn a_frozen_relay_is_noticed_by_the_idle_limit_on_http1() {
    let (noticed, status) = notices_a_frozen_relay(h1_only()).await;
    // 1 s idle, then a 1 s dial that times out: 2 s by design.
    assert!(noticed < Duration::from_secs(8), "{noticed:?}");
    let error = status.last_error.clone().unwrap();
    assert!(
        matches!(error, Error::TimedOut(_)),
        "not the redial: {error}"
    );
    assert!(status.attempts >= 2, "{status:?}");
}

#[tokio::test]
async fn refused_credentials_end_the_tunnel_after_one_attempt() {
    for status in [401, 403] {
        let mut relay = FakeRelay::start(any_port(), refusing(status, &[])).await;
        let tunnel = quick(relay.addr).serve(service_fn(echo));
        let handle = tunnel.handle();
        let error = within(tunnel).await.unwrap_err();
        let declined = error.declined().expect("a declined upgrade");
        assert_eq!(declined.status, status);
        let seen = handle.status();
        assert_eq!(seen.attempts, 1);
        assert_eq!(seen.phase, Phase::Failed);
        let recorded = seen.last_error.unwrap();
        assert_eq!(recorded.declined().unwrap().status, status);
        relay.next().await;
        assert!(relay.upgrades.try_recv().is_err(), "a second attempt");
    }
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let answer = refusing_some(|n| n == 0, 429, &[("retry-after", "1")]);
    let mut relay = FakeRelay::start(any_port(), answer).await;
    let tunnel = quick(relay.addr).serve(service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    let refused = relay.next().await;
    assert!(refused.sender.is_none());
    let accepted = relay.next().await;
    let waited = accepted.at - refused.at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    handle.shutdown();
    within(running).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_temporary_redirect_is_followed_and_a_loop_ends() {
    let mut target = FakeRelay::start(any_port(), accept_all()).await;
    let location: &'static str = format!("http://{}/elsewhere", target.addr).leak();
    let headers: &'static [(&str, &str)] = vec![("location", location)].leak();
    let mut moved = FakeRelay::start(any_port(), refusing(307, headers)).await;
    let tunnel = quick(moved.addr).serve(service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    assert_eq!(moved.next().await.request.uri(), "/reversehttp/lamp");
    let upgrade = target.next().await;
    assert_eq!(upgrade.request.uri(), "/elsewhere");
    handle.shutdown();
    within(running).await.unwrap().unwrap();

    let looping = FakeRelay::start(any_port(), refusing(308, &[("location", "/again")])).await;
    let tunnel = quick(looping.addr).max_redirects(3).serve(service_fn(echo));
    let handle = tunnel.handle();
    match within(tunnel).await {
        Err(Error::TooManyRedirects { limit: 3, last }) => assert!(last.ends_with("/again")),
        other => panic!("{other:?}"),
    }
    assert_eq!(handle.status().attempts, 4);
}

#[tokio::test]
async fn a_no_content_answer_sends_the_upgrade_again() {
    let answer = refusing_some(|n| n < 2, 204, &[]);
    let mut relay = FakeRelay::start(any_port(), answer).await;
    let tunnel = quick(relay.addr).serve(service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    relay.next().await;
    relay.next().await;
    echoes(&mut relay).await;
    // Both 204s and the 101 came on the connection of the one dial.
    assert_eq!(handle.status().attempts, 1);
    handle.shutdown();
    within(running).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_pool_keeps_serving_while_a_lost_connection_is_replaced() {
    // The first replacement is told to wait a second, which holds the
    // pool at three connections long enough to use them.
    let answer = refusing_some(|n| n == 4, 503, &[("retry-after", "1")]);
    let mut relay = FakeRelay::start(any_port(), answer).await;
    let tunnel = quick(relay.addr)
        .initiator(h1_only())
        .connections(4)
        .serve(service_fn(echo));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    let mut pool = Vec::new();
    for _ in 0..4 {
        pool.push(relay.next().await);
    }
    until(&handle, |s| s.connected == 4).await;
    let lost = pool.pop().unwrap();
    lost.kill.unwrap().send(()).unwrap();
    until(&handle, |s| s.connected == 3).await;
    assert!(
        relay.next().await.sender.is_none(),
        "the replacement was not held"
    );
    for upgrade in &mut pool {
        let sender = upgrade.sender.as_mut().unwrap();
        let (status, _) = exchange(sender, request("GET", "/still", "")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(handle.status().connected, 3);
    echoes(&mut relay).await;
    until(&handle, |s| s.connected == 4).await;
    handle.shutdown();
    within(running).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_dials_no_more() {
    for (initiator, connections) in [(ptth::initiator::Builder::new(), 1), (h1_only(), 2)] {
        let (entered, mut inside) = tokio::sync::mpsc::unbounded_channel();
        let release = tokio::sync::watch::Sender::new(false);
        let released = release.subscribe();
        let slow = service_fn(move |_request: http::Request<hyper::body::Incoming>| {
            let entered = entered.clone();
            let mut released = released.clone();
            async move {
                entered.send(()).unwrap();
                released.wait_for(|r| *r).await.unwrap();
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                    Bytes::from_static(b"done"),
                )))
            }
        });
        let mut relay = FakeRelay::start(any_port(), accept_all()).await;
        let tunnel = quick(relay.addr)
            .initiator(initiator)
            .connections(connections)
            .serve(slow);
        let handle = tunnel.handle();
        let running = tokio::spawn(tunnel);
        let mut senders = Vec::new();
        for _ in 0..connections {
            senders.push(relay.next_sender().await);
        }
        let mut calls = Vec::new();
        for i in 0..2 {
            let mut sender = senders[i % connections].clone();
            calls.push(tokio::spawn(async move {
                exchange(&mut sender, request("GET", "/slow", "")).await
            }));
        }
        for _ in 0..2 {
            within(inside.recv()).await.unwrap();
        }
        handle.shutdown();
        until(&handle, |s| s.phase == Phase::Stopping).await;
        release.send_replace(true);
        for call in calls {
            let (status, body) = within(call).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"done"[..]));
        }
        within(running).await.unwrap().unwrap();
        assert_eq!(handle.status().connected, 0);
        assert!(relay.upgrades.try_recv().is_err(), "dialed after shutdown");
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_axum_listener_serves_a_router_through_a_relay_restart() {
    let router = axum::Router::new().route("/hi", axum::routing::get(|| async { "hello" }));
    let mut relay = FakeRelay::start(any_port(), accept_all()).await;
    let listener = quick(relay.addr).connections(1).listen();
    let handle = listener.handle();
    let stopping = handle.clone();
    let serving = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopping.stopping().await })
            .await
    });
    for round in 0..2 {
        let mut sender = relay.next_sender().await;
        let (status, body) = exchange(&mut sender, request("GET", "/hi", "")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"hello"[..]),
            "round {round}"
        );
        if round == 0 {
            let addr = relay.stop().await;
            relay = FakeRelay::start(addr, accept_all()).await;
        }
    }
    handle.shutdown();
    within(serving).await.unwrap().unwrap();
    within(handle.stopped()).await;
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn ptth_axum_serve_returns_the_relay_s_refusal_and_ok_after_a_shutdown() {
    let router = || axum::Router::new().route("/hi", axum::routing::get(|| async { "hello" }));
    for status in [401, 403, 404] {
        let relay = FakeRelay::start(any_port(), refusing(status, &[])).await;
        let listener = quick(relay.addr).connections(1).listen();
        let error = within(ptth::axum::serve(listener, router()))
            .await
            .unwrap_err();
        assert_eq!(error.declined().map(|d| d.status.as_u16()), Some(status));
        assert!(error.to_string().contains(&status.to_string()), "{error}");
    }
    let mut relay = FakeRelay::start(any_port(), accept_all()).await;
    let listener = quick(relay.addr).connections(1).listen();
    let handle = listener.handle();
    let serving = tokio::spawn(ptth::axum::serve(listener, router()));
    let mut sender = relay.next_sender().await;
    let (status, _) = exchange(&mut sender, request("GET", "/hi", "")).await;
    assert_eq!(status, StatusCode::OK);
    handle.shutdown();
    within(serving).await.unwrap().unwrap();
}
