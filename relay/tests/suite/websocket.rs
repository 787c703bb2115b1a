//! A public WebSocket client talks to a WebSocket echo server behind
//! `expose`: through an HTTP/1.1 peer the upgrade is carried hop by hop,
//! through an HTTP/2 peer as an extended CONNECT (RFC 8441), and the
//! switched streams are bridged.

use crate::support::{connected, relay, send, within};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::service::service_fn;
use ptth::Protocol;
use ptth_relay::Settings;
use ptth_relay::cli::ExposeArgs;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server that sends every message back.
async fn echo_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_close() || socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_crosses_h1_and_h2_peers_behind_expose() {
    for (h1, http2_setup) in [(true, false), (false, false), (true, true), (false, true)] {
        websocket_through(h1, http2_setup).await;
    }
}

/// A WebSocket through the relay to a peer speaking HTTP/1.1 or HTTP/2,
/// set up by upgrade or inside a channel.
async fn websocket_through(h1: bool, http2_setup: bool) {
    let running = relay(Settings::default()).await;
    let origin = echo_origin().await;
    let (announce, announced) = tokio::sync::oneshot::channel();
    let args = ExposeArgs {
        relay: vec![format!("http://{}", running.addr)],
        name: Some("lamp".into()),
        token: Some("t".into()),
        to: Some(format!("http://{origin}")),
        connections: Some(2),
        h1,
        legacy: false,
        http2_setup,
        ..ExposeArgs::default()
    };
    tokio::spawn(ptth_relay::expose::run(args, move |url| {
        let _ = announce.send(url);
    }));
    within(announced).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let url = format!("ws://{}/lamp/ws", running.addr);
    let (mut socket, response) = within(tokio_tungstenite::client_async(url, tcp))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the tunnel"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = within(socket.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    socket.close(None).await.unwrap();
}

/// A device with no WebSocket: every request, upgrades too, is a 404.
async fn no_socket(
    _: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let mut answer = http::Response::new(Full::new(Bytes::from("no socket here")));
    *answer.status_mut() = http::StatusCode::NOT_FOUND;
    Ok(answer)
}

// A peer that refuses an upgrade answers in its own words, on either
// protocol (HTTP/1.1 without `101`, HTTP/2 without a 2xx to the extended
// CONNECT); the public gets that answer, not a `101` to nothing.
#[tokio::test]
async fn a_refused_upgrade_reaches_the_public_as_the_peer_answered() {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let running = relay(Settings::default()).await;
        let tunnel =
            ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp", running.addr))
                .initiator(
                    ptth::initiator::Builder::new()
                        .protocols([protocol])
                        .header(http::header::AUTHORIZATION, "Bearer t".parse().unwrap()),
                )
                .serve(service_fn(no_socket));
        let handle = tunnel.handle();
        tokio::spawn(tunnel);
        connected(&handle, 1).await;
        let request = http::Request::get(format!("http://{}/lamp/ws", running.addr))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .body(Full::default())
            .unwrap();
        let reply = send(request).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (http::StatusCode::NOT_FOUND, "no socket here"),
            "through an {protocol} peer"
        );
    }
}
