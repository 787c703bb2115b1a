//! A name someone holds cannot be taken, joined or read without its token,
//! by any way in, and no answer hands out a token the caller did not
//! present (docs/relay.md, "Claiming a name").

use crate::support;
use std::time::Duration;

use crate::support::raw::{exchange, path};
use crate::support::{Reply, connected, get, peer, relay, within};
use http::StatusCode;
use hyper::service::service_fn;
use ptth_relay::LongPoll;
use ptth_relay::Settings;

const SECRET: &str = "owner-s3cret-7f2c";

fn settings() -> Settings {
    Settings {
        longpoll: LongPoll {
            hold: Duration::from_millis(100),
            ..LongPoll::default()
        },
        ..Settings::default()
    }
}

/// How a claim with `initiator` on `lamp` ended, by upgrade or by the
/// HTTP/2 setup.
async fn claim_status(
    addr: std::net::SocketAddr,
    initiator: ptth::initiator::Builder,
    setup: ptth::Setup,
) -> StatusCode {
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/lamp"))
        .initiator(initiator)
        .setup(setup)
        .serve(service_fn(support::describe));
    let error = within(tunnel)
        .await
        .expect_err("a claim without a token joined");
    error.declined().expect("a declined claim").status
}

#[tokio::test]
async fn a_claim_without_a_token_on_a_held_name_is_403_by_every_way_in() {
    let running = relay(settings()).await;
    let addr = running.addr;
    let owner = peer(addr, "lamp", SECRET, ptth::initiator::Builder::new());
    connected(&owner, 1).await;

    let plain = ptth::initiator::Builder::new();
    let legacy = ptth::initiator::Builder::new().dialect(ptth::Dialect::Legacy);
    for (way, initiator, setup) in [
        ("upgrade", plain.clone(), ptth::Setup::Http1),
        ("legacy upgrade", legacy, ptth::Setup::Http1),
        ("extended CONNECT", plain, ptth::Setup::Http2),
    ] {
        let status = claim_status(addr, initiator, setup).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{way}");
    }

    let registration = exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        b"name=lamp",
    )
    .await;
    let json = exchange(
        addr,
        "POST /reversehttp/lamp HTTP/1.1\r\nContent-Type: application/json",
        b"{}",
    )
    .await;
    let poll = exchange(
        addr,
        "GET /reversehttp/lamp/-/0123456789abcdef HTTP/1.1\r\nAccept: message/http",
        b"",
    )
    .await;
    for (way, answer) in [
        ("registration", &registration),
        ("JSON post", &json),
        ("poll", &poll),
    ] {
        assert_eq!(answer.status, 403, "{way}: {answer:?}");
        let everything = format!("{:?} {}", answer.headers, answer.text());
        assert!(
            !everything.contains(SECRET),
            "{way} leaked the token: {everything}"
        );
    }

    // Every public request still reaches the owner alone.
    for _ in 0..8 {
        let Reply { status, body, .. } = get(&format!("http://{addr}/lamp/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let pool = running.relay.names().lookup("lamp").unwrap();
    assert_eq!(
        pool.connections(),
        (0, 1),
        "someone joined the owner's pool"
    );
}

#[tokio::test]
async fn a_claim_without_a_token_on_a_free_name_gets_a_fresh_one_that_then_holds_it() {
    let running = relay(settings()).await;
    let addr = running.addr;
    let created = exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        b"name=fan",
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let private = created.header("location").unwrap().to_owned();
    let token = path(&private).rsplit('/').next().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    // A second claim without a token is refused; the fresh token joins.
    let again = exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        b"name=fan",
    )
    .await;
    assert_eq!(again.status, 403, "{again:?}");
    assert!(!again.text().contains(&token) && !format!("{:?}", again.headers).contains(&token));
    let joined = exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        format!("name=fan&token={token}").as_bytes(),
    )
    .await;
    assert_eq!(joined.status, 204, "{joined:?}");
}

/// What `count` requests from one address that would each create a name
/// were answered, in order.
async fn flood(
    addr: std::net::SocketAddr,
    head: impl Fn(usize) -> String,
    body: &[u8],
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for n in 0..40 {
        statuses.push(exchange(addr, &head(n), body).await.status);
    }
    statuses
}

#[tokio::test]
async fn polls_and_json_posts_that_create_names_pass_the_claim_limit() {
    // A slow refill, so the polls' holds do not refill the bucket.
    let running = relay(Settings {
        claim_rate: ptth_relay::ClaimRate {
            burst: 20,
            per_second: 1,
        },
        ..settings()
    })
    .await;
    let addr = running.addr;
    let polls = flood(
        addr,
        |n| format!("GET /reversehttp/poll-{n}/t/0123456789abcdef HTTP/1.1"),
        b"",
    )
    .await;
    let json = flood(
        addr,
        |n| {
            format!("POST /reversehttp/json-{n}?token=t HTTP/1.1\r\nContent-Type: application/json")
        },
        b"{}",
    )
    .await;
    // A burst of 20 for the address, for both ways together.
    let limited = |statuses: &[u16]| statuses.iter().filter(|s| **s == 429).count();
    assert!(limited(&polls) >= 15, "{polls:?}");
    assert!(limited(&json) >= 35, "{json:?}");
    let names = running.relay.names().len();
    assert!(names <= 30, "{names} names from one address");
    // A client polling its own name is not charged for it.
    for _ in 0..30 {
        let again = exchange(
            addr,
            "GET /reversehttp/poll-0/t/0123456789abcdef HTTP/1.1",
            b"",
        )
        .await;
        assert_eq!(again.status, 204, "{again:?}");
    }
}

#[tokio::test]
async fn no_log_line_holds_a_token_at_any_level() {
    let captured = support::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // tokio's test runtime runs every task of this test on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let running = relay(settings()).await;
    let addr = running.addr;
    let owner = peer(addr, "lamp", SECRET, ptth::initiator::Builder::new());
    connected(&owner, 1).await;
    let thief = claim_status(addr, ptth::initiator::Builder::new(), ptth::Setup::Http1).await;
    assert_eq!(thief, StatusCode::FORBIDDEN);
    let registered = exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        format!("name=lamp&token={SECRET}").as_bytes(),
    )
    .await;
    assert_eq!(registered.status, 204, "{registered:?}");
    let poll = exchange(
        addr,
        &format!("GET /reversehttp/lamp/{SECRET}/0123456789abcdef HTTP/1.1"),
        b"",
    )
    .await;
    assert_eq!(poll.status, 204, "{poll:?}");
    let Reply { status, .. } = get(&format!("http://{addr}/lamp/")).await;
    assert_eq!(status, StatusCode::OK);
    let text = captured.text();
    assert!(text.contains("peer joined"), "nothing was captured: {text}");
    assert!(!text.contains(SECRET), "a token was logged: {text}");
}
