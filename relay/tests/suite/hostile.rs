//! Bad input from the public or from would-be peers gets a clear status
//! and costs bounded time.

use std::time::Duration;

use crate::support::{relay, within};
use ptth_relay::server::Server;
use ptth_relay::{Relay, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `bytes` and reads the answer until the relay closes.
async fn answer(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = within(tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn garbage_and_oversized_heads_get_4xx() {
    let running = relay(Settings::default()).await;
    let garbage = answer(running.addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let mut huge = b"GET /lamp/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        huge.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let oversized = answer(running.addr, &huge).await;
    assert!(oversized.starts_with("HTTP/1.1 431"), "{oversized}");
}

#[tokio::test]
async fn a_claim_that_is_no_ptth_upgrade_is_refused_and_claims_nothing() {
    let running = relay(Settings::default()).await;
    let websocket = answer(
        running.addr,
        b"GET /reversehttp/lamp HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(websocket.starts_with("HTTP/1.1 4"), "{websocket}");
    let plain = answer(
        running.addr,
        b"GET /reversehttp/lamp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    let no_alpn = answer(
        running.addr,
        b"GET /reversehttp/lamp HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: ptth\r\n\r\n",
    )
    .await;
    assert!(no_alpn.starts_with("HTTP/1.1 400"), "{no_alpn}");
    assert!(
        running.relay.names().is_empty(),
        "a refused upgrade claimed the name"
    );
}

#[tokio::test]
async fn a_slow_head_is_cut_at_the_head_timeout() {
    let relay = Relay::new(Settings::default());
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), relay)
        .await
        .unwrap()
        .head_timeout(Duration::from_secs(1));
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    let started = tokio::time::Instant::now();
    let cut = answer(addr, b"GET /lamp/ HTTP/1.1\r\nHost: x\r\nX-Slow:").await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "cut after {took:?}");
    assert!(cut.is_empty() || cut.starts_with("HTTP/1.1 408"), "{cut}");
}
