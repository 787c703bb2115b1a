//! Each handshake leaves a span naming its role, dialect, protocol and peer,
//! and an event for each refusal, decline and error.

use crate::support;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::{exchange, listener, pair, request, within};
use ptth::{Dialect, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::subscriber::DefaultGuard;

/// Collects formatted tracing output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Routes this thread's tracing output here; tokio's test runtime runs
    /// every task of the test on this thread.
    fn install(&self) -> DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn upgrades_are_traced_with_role_dialect_protocol_and_peer() {
    let captured = Captured::default();
    let _guard = captured.install();
    within(async {
        let mut pair = pair(Dialect::Current, Protocol::Http2).await;
        let (status, _) = exchange(&mut pair.sender, request("GET", "/", "")).await;
        assert_eq!(status, 200);
        drop(pair.sender);
        pair.client.await.unwrap().unwrap();
        pair.server.await.unwrap().unwrap();
    })
    .await;
    let text = captured.text();
    assert!(text.contains("role=\"acceptor\""), "{text}");
    assert!(text.contains("role=\"initiator\""), "{text}");
    assert!(text.contains("peer=127.0.0.1:"), "{text}");
    assert!(text.contains("protocol=h2"), "{text}");
    assert!(text.contains("dialect=ptth"), "{text}");
    assert!(text.contains("upgraded"), "{text}");
}

#[tokio::test]
async fn refusals_are_traced_with_their_reason() {
    let captured = Captured::default();
    let _guard = captured.install();
    within(async {
        let (listener, addr) = listener().await;
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let refused = ptth::acceptor::Builder::new()
            .read_request_from(tcp, peer)
            .await;
        assert!(refused.is_err());
    })
    .await;
    let text = captured.text();
    assert!(text.contains("upgrade request refused"), "{text}");
    assert!(text.contains("websocket"), "{text}");
}

#[tokio::test]
async fn a_tunnel_traces_connects_losses_retries_and_shutdown() {
    use crate::support::fake_relay::{FakeRelay, accept_all};

    let captured = Captured::default();
    let _guard = captured.install();
    within(async {
        let relay = FakeRelay::start("127.0.0.1:0".parse().unwrap(), accept_all()).await;
        let tunnel = ptth::tunnel::Builder::new(format!("http://{}/r", relay.addr))
            .backoff(
                std::time::Duration::from_millis(10),
                std::time::Duration::from_millis(50),
            )
            .serve(hyper::service::service_fn(support::echo));
        let handle = tunnel.handle();
        let running = tokio::spawn(tunnel);
        handle.wait_for(|s| s.connected == 1).await;
        relay.stop().await;
        handle.wait_for(|s| s.attempts >= 3).await;
        handle.shutdown();
        running.await.unwrap().unwrap();
    })
    .await;
    let text = captured.text();
    for expected in [
        "tunnel connected relay=127.0.0.1:",
        "tunnel connection closed by the relay; replacing it",
        "tunnel could not connect; retrying",
        "delay=",
        "tunnel shutting down",
        "tunnel stopped",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}
