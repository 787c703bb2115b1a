//! Public requests reach the peer of their name, in path and host
//! routing, with the target unaltered and the headers docs/relay.md, "Routing public requests", asks for.

use crate::support::{Reply, connected, get, peer, relay, send, within};
use http::{Request, StatusCode};
use http_body_util::Full;
use ptth_relay::{Routing, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn path_routing_forwards_the_target_unaltered_with_forwarded_headers() {
    for initiator in [
        ptth::initiator::Builder::new(),
        ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]),
        ptth::initiator::Builder::new().dialect(ptth::Dialect::Legacy),
    ] {
        let running = relay(Settings::default()).await;
        let handle = peer(running.addr, "lamp", "t1", initiator);
        let status = connected(&handle, 1).await;
        assert_eq!(
            status.public_url.unwrap(),
            format!("http://{}/lamp/", running.addr).as_str()
        );
        let request = Request::get(format!("http://{}/lamp/a/b?c=1", running.addr))
            .header("connection", "x-private")
            .header("x-private", "secret")
            .header("keep-alive", "timeout=5")
            .body(Full::default())
            .unwrap();
        let Reply {
            status,
            headers,
            body,
        } = send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("GET /lamp/a/b?c=1\n"), "{body}");
        assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
        assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
        assert!(
            body.contains(&format!("x-forwarded-host: {}\n", running.addr)),
            "{body}"
        );
        assert!(
            !body.contains("x-private") && !body.contains("keep-alive"),
            "{body}"
        );
        assert_eq!(headers["x-from"], "peer");
        assert!(!headers.contains_key("x-hop"), "{headers:?}");
        handle.shutdown();
    }
}

#[tokio::test]
async fn the_prefix_can_be_stripped() {
    let running = relay(Settings {
        strip_prefix: true,
        ..Settings::default()
    })
    .await;
    let handle = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    for (path, seen) in [
        ("/lamp/a?x=1", "GET /a?x=1\n"),
        ("/lamp", "GET /\n"),
        ("/lamp?x=1", "GET /?x=1\n"),
    ] {
        let Reply { body, .. } = get(&format!("http://{}{path}", running.addr)).await;
        assert!(body.starts_with(seen), "{path}: {body}");
    }
}

#[tokio::test]
async fn host_routing_finds_the_name_in_the_host() {
    let running = relay(Settings {
        routing: Routing::Host {
            domain: "relay.test".into(),
        },
        ..Settings::default()
    })
    .await;
    let handle = peer(running.addr, "lamp", "t1", ptth::initiator::Builder::new());
    let status = connected(&handle, 1).await;
    assert_eq!(
        status.public_url.unwrap(),
        format!("http://lamp.relay.test:{}/", running.addr.port()).as_str()
    );
    let request = Request::get(format!("http://{}/x", running.addr))
        .header("host", "Lamp.relay.test:80")
        .body(Full::default())
        .unwrap();
    let Reply { status, body, .. } = send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("GET /x\n"), "{body}");
    let request = Request::get(format!("http://{}/x", running.addr))
        .header("host", "other.example")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(request).await.status, StatusCode::NOT_FOUND);
    // HTTP/1.0 allows a request without Host; host routing cannot.
    let mut raw = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    raw.write_all(b"GET /x HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    within(raw.read_to_string(&mut answer)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
}
