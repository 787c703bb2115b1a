//! Claiming names: tokens, pins, leases and invalid names, as docs/relay.md, "Claiming a name", has them.

use crate::support;
use std::time::Duration;

use crate::support::{Reply, connected, get, peer, relay, within};
use http::StatusCode;
use hyper::service::service_fn;
use ptth_relay::Policy;
use ptth_relay::Settings;

/// A tunnel that claims `name` with `token` and returns how it ended.
async fn claim_fails(addr: std::net::SocketAddr, path: &str) -> ptth::Error {
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}{path}"))
        .serve(service_fn(support::describe));
    within(tunnel).await.unwrap_err()
}

fn declined(error: &ptth::Error) -> StatusCode {
    error.declined().expect("a declined upgrade").status
}

#[tokio::test]
async fn the_same_token_joins_the_pool_and_another_is_refused() {
    let running = relay(Settings::default()).await;
    let first = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    let second = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    connected(&first, 1).await;
    connected(&second, 1).await;
    let pool = running.relay.names().lookup("lamp").unwrap();
    assert_eq!(pool.connections(), (0, 2));
    let refused = claim_fails(running.addr, "/reversehttp/lamp?token=t2").await;
    assert_eq!(declined(&refused), StatusCode::FORBIDDEN);
    // The name still serves.
    let Reply { status, .. } = get(&format!("http://{}/lamp/", running.addr)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_come_in_a_query_too_and_invalid_names_are_400() {
    let running = relay(Settings::default()).await;
    let tunnel = ptth::tunnel::Builder::new(format!(
        "http://{}/reversehttp/lamp?token=a%20b",
        running.addr
    ))
    .serve(service_fn(support::describe));
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    connected(&handle, 1).await;
    let refused = claim_fails(running.addr, "/reversehttp/lamp?token=a").await;
    assert_eq!(declined(&refused), StatusCode::FORBIDDEN);
    let joined = peer(running.addr, "lamp", "a b", ptth::initiator::Builder::new());
    connected(&joined, 1).await;
    for bad in ["/reversehttp/Lamp", "/reversehttp/-x", "/reversehttp/a_b"] {
        let refused = claim_fails(running.addr, bad).await;
        assert_eq!(declined(&refused), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn pinned_names_and_a_closed_relay() {
    let mut policy = Policy::default();
    policy
        .pinned
        .insert("lamp".into(), ptth_relay::token::Digest::of("s3cret"));
    policy.closed = true;
    let running = relay(Settings {
        policy,
        ..Settings::default()
    })
    .await;
    let refused = claim_fails(running.addr, "/reversehttp/lamp?token=guess").await;
    assert_eq!(declined(&refused), StatusCode::FORBIDDEN);
    let refused = claim_fails(running.addr, "/reversehttp/other?token=any").await;
    assert_eq!(declined(&refused), StatusCode::FORBIDDEN);
    let pinned = peer(
        running.addr,
        "lamp",
        "s3cret",
        ptth::initiator::Builder::new(),
    );
    connected(&pinned, 1).await;
}

#[tokio::test]
async fn a_left_name_is_kept_for_its_lease_and_answers_503() {
    let running = relay(Settings::default()).await;
    let handle = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    handle.shutdown();
    within(handle.stopped()).await;
    let pool = running.relay.names().lookup("lamp").unwrap();
    // The pool drops the connection when it sees it close.
    within(pool.wait_until(|counts| counts == (0, 0))).await;
    let started = tokio::time::Instant::now();
    let Reply {
        status, headers, ..
    } = get(&format!("http://{}/lamp/", running.addr)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "no wait for a peer"
    );
    let refused = claim_fails(running.addr, "/reversehttp/lamp?token=t2").await;
    assert_eq!(declined(&refused), StatusCode::FORBIDDEN);
    let back = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    connected(&back, 1).await;
    let Reply { status, .. } = get(&format!("http://{}/nobody/", running.addr)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_strip_prefix_that_is_not_one_boolean_is_400_and_holds_no_name() {
    let running = relay(Settings::default()).await;
    for value in ["yes", "?1, ?0"] {
        let initiator = ptth::initiator::Builder::new().header(
            http::HeaderName::from_static("ptth-strip-prefix"),
            http::HeaderValue::from_str(value).unwrap(),
        );
        let tunnel =
            ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp?token=t", running.addr))
                .initiator(initiator)
                .serve(service_fn(support::describe));
        let refused = within(tunnel).await.unwrap_err();
        assert_eq!(declined(&refused), StatusCode::BAD_REQUEST, "{value}");
    }
    assert!(running.relay.names().lookup("lamp").is_none());
}
