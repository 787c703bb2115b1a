//! Each public request is traced in a span naming its name and the
//! connection that carried it.

use crate::support::{Captured, Reply, connected, get, peer, relay};
use http::StatusCode;
use ptth_relay::Settings;

#[tokio::test]
async fn public_requests_are_traced_with_name_and_connection() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // tokio's test runtime runs every task of this test on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let running = relay(Settings::default()).await;
    let handle = peer(running.addr, "lamp", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    let Reply { status, .. } = get(&format!("http://{}/lamp/", running.addr)).await;
    assert_eq!(status, StatusCode::OK);
    let Reply { status, .. } = get(&format!("http://{}/nobody/", running.addr)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let text = captured.text();
    assert!(text.contains("peer joined name=lamp protocol=h2"), "{text}");
    assert!(
        text.contains("public_request{name=lamp method=GET connection=ConnectionId("),
        "{text}"
    );
    assert!(text.contains("the peer answered status=200 OK"), "{text}");
    assert!(
        text.contains(
            "public_request{name=nobody method=GET}: ptth_relay::routes::public: no such name"
        ),
        "{text}"
    );
}
