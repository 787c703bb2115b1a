//! The Prometheus endpoint counts names, connections, requests by status,
//! latency and bytes each way.

use crate::support::{Reply, connected, get, peer, relay, send, within};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use ptth_relay::Settings;

#[tokio::test]
async fn the_endpoint_counts_what_crossed_the_relay() {
    let running = relay(Settings::default()).await;
    let handle = peer(running.addr, "lamp", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    // A second name, served over HTTP/1.1, so each count is its own.
    let desk = ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]);
    // The tunnel keeps four HTTP/1.1 connections.
    let desk = peer(running.addr, "desk", "t", desk);
    connected(&desk, 4).await;
    let pool = running.relay.names().lookup("desk").unwrap();
    within(pool.wait_until(|(h1, _)| h1 == 4)).await;
    let lamp = running.relay.names().lookup("lamp").unwrap();
    within(lamp.wait_until(|(_, h2)| h2 == 1)).await;
    assert_eq!(
        get(&format!("http://{}/lamp/a", running.addr)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("http://{}/nobody/", running.addr))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let post = Request::post(format!("http://{}/lamp/echo", running.addr))
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let Reply {
        status,
        body: answer,
        ..
    } = send(post).await;
    assert_eq!(status, StatusCode::OK);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let head_timeout = std::time::Duration::from_secs(1);
    let relay = running.relay.clone();
    let text = move || relay.metrics_text();
    tokio::spawn(ptth_relay::metrics::serve(listener, text, head_timeout));
    let Reply {
        status,
        headers,
        body: text,
    } = get(&format!("http://{addr}/metrics")).await;
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
        "ptth_relay_names 2",
        "ptth_relay_connections{protocol=\"h2\"} 1",
        "ptth_relay_connections{protocol=\"http/1.1\"} 4",
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

#[tokio::test]
async fn the_metrics_port_answers_get_metrics_only_and_bounds_its_connections() {
    let running = relay(Settings::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let head_timeout = std::time::Duration::from_secs(1);
    let relay = running.relay.clone();
    let text = move || relay.metrics_text();
    tokio::spawn(ptth_relay::metrics::serve(listener, text, head_timeout));
    for (method, path) in [("GET", "/"), ("GET", "/metrics/x"), ("POST", "/metrics")] {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Full::default())
            .unwrap();
        let Reply {
            status, headers, ..
        } = send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    // A silent connection is closed at the head timeout; past eight from
    // one address, a connection is closed at once.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut ninth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut read = Vec::new();
    within(tokio::io::AsyncReadExt::read_to_end(&mut ninth, &mut read))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    within(tokio::io::AsyncReadExt::read_to_end(
        &mut silent[0],
        &mut read,
    ))
    .await
    .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(read.is_empty() || read.starts_with(b"HTTP/1.1 408"));
}
