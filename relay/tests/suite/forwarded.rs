//! What reaches the device about who asked is the relay's word: a public
//! client's forwarding fields are replaced unless it is a trusted proxy,
//! and the host a request was routed by follows RFC 9112 and RFC 9113.

use crate::support;
use crate::support::{Reply, connected, peer, relay, send};
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use ptth_relay::{Routing, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request carrying every field a client might forge.
fn spoofing(url: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(url)
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "bank.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("requesting-client", "6.6.6.6:1")
        .header("ptth-relay-hop", "1.00.a")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn a_client_s_forwarding_fields_are_replaced_and_a_trusted_proxy_s_kept() {
    for (trusted, chain, proto, host, real_ip) in [
        (Vec::new(), "127.0.0.1", "http", None, "127.0.0.1"),
        (
            vec!["127.0.0.0/8".parse().unwrap()],
            "6.6.6.6, 127.0.0.1",
            "https",
            Some("bank.example"),
            "6.6.6.6",
        ),
    ] {
        let running = relay(Settings {
            trusted_proxies: trusted,
            ..Settings::default()
        })
        .await;
        let handle = peer(running.addr, "lamp", "t", ptth::initiator::Builder::new());
        connected(&handle, 1).await;
        let Reply { status, body, .. } =
            send(spoofing(&format!("http://{}/lamp/", running.addr))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let host = host.map_or(running.addr.to_string(), str::to_owned);
        for line in [
            format!("x-forwarded-for: {chain}\n"),
            format!("x-forwarded-proto: {proto}\n"),
            format!("x-forwarded-host: {host}\n"),
            format!("x-real-ip: {real_ip}\n"),
        ] {
            assert!(body.contains(&line), "no {line:?} in {body}");
        }
        assert!(body.contains("forwarded: "), "{body}");
        for gone in ["requesting-client", "ptth-relay-hop"] {
            assert!(
                !body.contains(&format!("{gone}:")),
                "{gone} reached the device: {body}"
            );
        }
    }
}

fn host_routing() -> Settings {
    Settings {
        routing: Routing::Host {
            domain: "relay.example".into(),
        },
        ..Settings::default()
    }
}

#[tokio::test]
async fn an_absolute_form_target_s_authority_decides_the_name() {
    let running = relay(host_routing()).await;
    let handle = peer(running.addr, "fan", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(
        b"GET http://fan.relay.example/x HTTP/1.1\r\nHost: lamp.relay.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    support::within(tcp.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("x-forwarded-host: fan.relay.example"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_http2_request_whose_host_is_not_its_authority_is_400() {
    let running = relay(host_routing()).await;
    let handle = peer(running.addr, "fan", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for (host, wanted) in [
        (None, StatusCode::OK),
        (Some("lamp.relay.example"), StatusCode::BAD_REQUEST),
    ] {
        let mut request = Request::get("http://fan.relay.example/x").version(Version::HTTP_2);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let request = request.body(Full::<bytes::Bytes>::default()).unwrap();
        let response = support::within(sender.send_request(request)).await.unwrap();
        assert_eq!(response.status(), wanted, "host {host:?}");
        if wanted == StatusCode::BAD_REQUEST {
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }
}
