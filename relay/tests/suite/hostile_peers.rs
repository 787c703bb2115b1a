//! Peers that break HTTP on purpose cost the relay bounded memory and
//! time, and the public a clear 502, never a hang or a 101.

use crate::support;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Reply, get, relay, within};
use http::StatusCode;
use ptth_relay::Liveness;
use ptth_relay::Settings;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// An HTTP/1.1 PTTH peer whose transposed connection the test writes by
/// hand: after the upgrade, the relay's requests arrive on it as bytes.
async fn raw_peer(addr: SocketAddr) -> impl AsyncRead + AsyncWrite + Unpin {
    let transposed = ptth::initiator::Builder::new()
        .protocols([ptth::Protocol::Http1])
        .connect(format!("http://{addr}/reversehttp/lamp?token=t"))
        .await
        .unwrap();
    transposed.into_io()
}

/// Reads one request head off the peer's connection.
async fn read_head(io: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = io.read_u8().await.unwrap();
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

async fn joined(running: &support::Running) {
    loop {
        if let Some(pool) = running.relay.names().lookup("lamp") {
            within(pool.wait_until(|(h1, _)| h1 == 1)).await;
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Writes `chunk` until the relay closes the connection; the number of
/// bytes it took.
async fn stream_until_cut(io: &mut (impl AsyncWrite + Unpin), chunk: &[u8]) -> usize {
    let mut written = 0;
    while io.write_all(chunk).await.is_ok() {
        written += chunk.len();
    }
    written
}

/// A relay with `settings`, a raw HTTP/1.1 peer holding `lamp`, and a
/// public GET of `/lamp/` whose head the peer has read: the peer's answer
/// is the test's to write.
async fn asked(
    settings: Settings,
) -> (
    support::Running,
    impl AsyncRead + AsyncWrite + Unpin,
    JoinHandle<Reply>,
) {
    let running = relay(settings).await;
    let mut io = raw_peer(running.addr).await;
    joined(&running).await;
    let url = format!("http://{}/lamp/", running.addr);
    let public = tokio::spawn(async move { get(&url).await });
    let head = within(read_head(&mut io)).await;
    assert!(head.starts_with("GET /lamp/ HTTP/1.1\r\n"), "{head}");
    (running, io, public)
}

#[tokio::test]
async fn a_liveness_answer_with_an_endless_body_is_cut_at_once() {
    let running = relay(Settings {
        // A long timeout: the cut must come from the size, not the clock.
        liveness: Liveness {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(120),
        },
        ..Settings::default()
    })
    .await;
    let mut io = raw_peer(running.addr).await;
    joined(&running).await;
    let head = within(read_head(&mut io)).await;
    assert!(head.starts_with("OPTIONS * HTTP/1.1\r\n"), "{head}");
    io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        .await
        .unwrap();
    let written = within(stream_until_cut(&mut io, &[b'x'; 64 * 1024])).await;
    // The socket buffers hold a few MiB; the relay read 4 KiB of it.
    assert!(written < 64 * 1024 * 1024, "{written} bytes taken");
    let pool = running.relay.names().lookup("lamp").unwrap();
    within(pool.wait_until(|counts| counts == (0, 0))).await;
}

#[tokio::test]
async fn endless_informational_responses_are_a_502_and_close_the_connection() {
    let (_running, mut io, public) = asked(Settings {
        response_timeout: Duration::from_secs(120),
        ..Settings::default()
    })
    .await;
    let flood = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
    within(stream_until_cut(&mut io, &flood)).await;
    let Reply { status, body, .. } = within(public).await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

/// A peer may send a few interim answers (`100 Continue`, `103 Early
/// Hints`) before its answer: up to the relay's bound of 4 the answer
/// reaches the public; one more is a flood, and a 502.
#[tokio::test]
async fn interim_answers_up_to_the_bound_pass_and_one_more_is_a_502() {
    for (interims, expected) in [(4, StatusCode::OK), (5, StatusCode::BAD_GATEWAY)] {
        let (_running, mut io, public) = asked(Settings::default()).await;
        let mut answer = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(interims);
        answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        // The relay may close the connection before reading it all.
        let _ = io.write_all(&answer).await;
        let Reply { status, body, .. } = within(public).await.unwrap();
        assert_eq!(status, expected, "{interims} interim answers: {body}");
    }
}

#[tokio::test]
async fn a_101_to_a_plain_request_is_a_502_never_a_switch() {
    let (running, mut io, public) = asked(Settings::default()).await;
    io.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
        .await
        .unwrap();
    let Reply { status, body, .. } = within(public).await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let pool = running.relay.names().lookup("lamp").unwrap();
    within(pool.wait_until(|counts| counts == (0, 0))).await;
}

#[tokio::test]
async fn liveness_answers_within_the_bound_keep_the_connection() {
    let running = relay(Settings {
        liveness: Liveness {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(120),
        },
        ..Settings::default()
    })
    .await;
    let mut io = raw_peer(running.addr).await;
    joined(&running).await;
    // Half the bound: a body an origin may well send to OPTIONS.
    let answer = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n"[..],
        &[b'x'; 2048],
    ]
    .concat();
    for _ in 0..2 {
        let head = within(read_head(&mut io)).await;
        assert!(head.starts_with("OPTIONS * HTTP/1.1\r\n"), "{head}");
        io.write_all(&answer).await.unwrap();
    }
    // A third check comes on the same connection: both answers passed.
    let head = within(read_head(&mut io)).await;
    assert!(head.starts_with("OPTIONS * HTTP/1.1\r\n"), "{head}");
    let pool = running.relay.names().lookup("lamp").unwrap();
    assert_eq!(pool.connections(), (1, 0));
}
