//! Access keys (docs/relay.md, "Running a relay for others"): a key claims
//! the names its patterns cover and no other, another key cannot join a
//! name a key holds, a key's bounds hold, and without a key nothing is
//! claimed unless registration is left open.

use std::time::Duration;

use crate::support::raw::{self, Answer, exchange};
use crate::support::{Reply, connected, get, peer, relay, within};
use http::StatusCode;
use ptth_relay::keys::{Key, Keys};
use ptth_relay::token::Digest;
use ptth_relay::{LongPoll, Settings};

const ALICE: &str = "alice-key-5d1e";
const OPS: &str = "ops-key-0b7a";

fn key(label: &str, secret: &str, names: &[&str]) -> Key {
    Key {
        label: label.into(),
        digest: Digest::of(secret),
        names: names.iter().map(|name| name.parse().unwrap()).collect(),
        max_names: None,
        max_connections: None,
    }
}

fn settings(keys: Vec<Key>, open: bool) -> Settings {
    let mut settings = Settings {
        longpoll: LongPoll {
            hold: Duration::from_millis(100),
            ..LongPoll::default()
        },
        ..Settings::default()
    };
    settings.policy.keys = Keys::new(keys);
    settings.policy.open = open;
    settings
}

/// A long-poll registration of `name`, with `token` if any.
async fn register(addr: std::net::SocketAddr, name: &str, token: Option<&str>) -> Answer {
    let form = match token {
        Some(token) => format!("name={name}&token={token}"),
        None => format!("name={name}"),
    };
    let head = "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded";
    exchange(addr, head, form.as_bytes()).await
}

#[tokio::test]
async fn a_key_claims_the_names_it_covers_and_no_other() {
    let mut alice = key("alice", ALICE, &["alice-*"]);
    alice.max_names = Some(3);
    let running = relay(settings(vec![alice, key("ops", OPS, &["*"])], false)).await;
    let addr = running.addr;
    let lamp = peer(addr, "alice-lamp", ALICE, ptth::initiator::Builder::new());
    connected(&lamp, 1).await;
    let Reply { status, .. } = get(&format!("http://{addr}/alice-lamp/")).await;
    assert_eq!(status, StatusCode::OK);

    for (way, name, token, status, reason) in [
        ("no key", "free", None, 403, "needs an access key"),
        (
            "not a key",
            "alice-x",
            Some("guess"),
            403,
            "needs an access key",
        ),
        (
            "outside the key's names",
            "bob",
            Some(ALICE),
            403,
            "may not claim",
        ),
        // Another key that covers the name cannot join it while it lives.
        ("another key", "alice-lamp", Some(OPS), 403, "taken"),
        ("the key's own name", "alice-lamp", Some(ALICE), 204, ""),
        ("a second name", "alice-desk", Some(ALICE), 201, ""),
        ("a third name", "alice-fan", Some(ALICE), 201, ""),
        (
            "past max-names",
            "alice-bell",
            Some(ALICE),
            403,
            "as many names",
        ),
    ] {
        let answer = register(addr, name, token).await;
        assert_eq!(answer.status, status, "{way}: {answer:?}");
        assert!(answer.text().contains(reason), "{way}: {}", answer.text());
        let everything = format!("{:?} {}", answer.headers, answer.text());
        assert!(
            !everything.contains(ALICE) || token == Some(ALICE),
            "{way} leaked a key: {everything}"
        );
    }
    // A PTTH claim without a key is refused the same way: the tunnel ends.
    let keyless = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/alice-x"))
        .serve(hyper::service::service_fn(crate::support::describe));
    let error = within(keyless).await.expect_err("a keyless claim joined");
    assert_eq!(error.declined().unwrap().status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn open_registration_beside_keys_takes_claims_without_one() {
    let running = relay(settings(vec![key("alice", ALICE, &["alice-*"])], true)).await;
    let answer = register(running.addr, "free", None).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    // A key still reaches only its names.
    let answer = register(running.addr, "other", Some(ALICE)).await;
    assert_eq!(answer.status, 403, "{answer:?}");
}

#[tokio::test]
async fn a_key_s_names_hold_at_most_its_connections_and_the_rest_wait() {
    let mut alice = key("alice", ALICE, &["alice-*"]);
    alice.max_connections = Some(2);
    let running = relay(settings(vec![alice], false)).await;
    let addr = running.addr;
    let lamp = peer(
        addr,
        "alice-lamp",
        ALICE,
        ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]),
    );
    // Four HTTP/1.1 connections asked for, two allowed: the others are
    // told to retry later (429), and the tunnel keeps its two serving.
    let refused = within(lamp.wait_for(|status| {
        let declined = status
            .last_error
            .as_ref()
            .and_then(|error| error.declined());
        declined.is_some_and(|declined| declined.status == StatusCode::TOO_MANY_REQUESTS)
    }))
    .await;
    assert_eq!(refused.phase, ptth::tunnel::Phase::Running);
    let status = connected(&lamp, 2).await;
    assert_eq!(status.connected, 2);
    let pool = running.relay.names().lookup("alice-lamp").unwrap();
    assert_eq!(pool.connections(), (2, 0));
    let Reply { status, .. } = get(&format!("http://{addr}/alice-lamp/")).await;
    assert_eq!(status, StatusCode::OK);
}

/// The public URL a tunnel claiming no name with `token` is given, or
/// the status it was refused with.
async fn nameless(addr: std::net::SocketAddr, token: &str) -> Result<String, u16> {
    let url = format!("http://{addr}/reversehttp/?token={token}");
    let tunnel = ptth::tunnel::Builder::new(url)
        .connections(1)
        .serve(hyper::service::service_fn(crate::support::describe));
    let handle = tunnel.handle();
    let running = tokio::spawn(tunnel);
    let status = within(handle.wait_for(|s| s.connected > 0 || s.last_error.is_some())).await;
    running.abort();
    match (status.public_url, status.last_error) {
        (Some(url), _) => Ok(url.to_string()),
        (None, Some(error)) => Err(error.declined().map_or(0, |d| d.status.as_u16())),
        (None, None) => panic!("neither connected nor refused"),
    }
}

#[tokio::test]
async fn a_key_s_holder_without_a_name_gets_one_its_key_may_claim() {
    let keys = vec![
        key("alice", ALICE, &["alice-*"]),
        key("lamp", "lamp-key", &["lamp"]),
    ];
    let running = relay(settings(keys, false)).await;
    let addr = running.addr;
    let url = nameless(addr, ALICE).await.unwrap();
    let name = url
        .strip_prefix(&format!("http://{addr}/alice-"))
        .unwrap_or_else(|| panic!("not under alice-: {url}"));
    assert_eq!(name.split('-').count(), 3, "{url}");
    let lamp = nameless(addr, "lamp-key").await.unwrap();
    assert_eq!(lamp, format!("http://{addr}/lamp/"));
    // Without a key, on a relay that is not open, the refusal says why.
    assert_eq!(nameless(addr, "no-key").await, Err(403));
}

#[tokio::test]
async fn a_key_s_connections_joining_at_once_pass_its_bound_no_more() {
    let mut alice = key("alice", ALICE, &["alice-*"]);
    alice.max_connections = Some(1);
    let running = relay(settings(vec![alice], false)).await;
    // Four raw upgrades with the key at once: each is answered before its
    // connection joins the pool.
    let bearer = format!("Authorization: Bearer {ALICE}");
    let names = (0..4).map(|_| "alice-lamp".to_owned());
    let authority = running.addr.to_string();
    let answers = within(raw::claims_at_once(&authority, names, &[&bearer])).await;
    let (switched, heads) = raw::switched(&answers);
    assert_eq!(switched, 1, "{heads:?}");
}
