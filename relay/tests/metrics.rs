//! The Prometheus endpoint counts names, connections, requests by status,
//! latency and bytes each way.

mod common;

use bytes::Bytes;
use common::{connected, get, peer, relay, send};
use http::{Request, StatusCode};
use http_body_util::Full;
use ptth_relay::Settings;

#[tokio::test]
async fn the_endpoint_counts_what_crossed_the_relay() {
    let running = relay(Settings::default()).await;
    let handle = peer(running.addr, "lamp", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    assert_eq!(
        get(&format!("http://{}/lamp/a", running.addr)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("http://{}/nobody/", running.addr)).await.0,
        StatusCode::NOT_FOUND
    );
    let post = Request::post(format!("http://{}/lamp/echo", running.addr))
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let (status, _, answer) = send(post).await;
    assert_eq!(status, StatusCode::OK);

    let listener = ptth_relay::metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ptth_relay::metrics::serve(listener, running.relay.clone()));
    let (status, headers, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for line in [
        "ptth_relay_requests_total{status=\"200\"} 2",
        "ptth_relay_requests_total{status=\"404\"} 1",
        "ptth_relay_response_head_seconds_count 3",
        "ptth_relay_names 1",
        "ptth_relay_connections{protocol=\"h2\"} 1",
        "ptth_relay_connections{protocol=\"http/1.1\"} 0",
        "ptth_relay_bytes_to_peers_total 10",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let from_peers = text
        .lines()
        .find_map(|l| l.strip_prefix("ptth_relay_bytes_from_peers_total "))
        .unwrap();
    let bodies = answer.len() as u64;
    assert!(from_peers.parse::<u64>().unwrap() > bodies, "{from_peers}");
}
