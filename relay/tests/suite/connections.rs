//! Connections cost their client, not the relay: silent ones and stalled
//! bodies are cut within their bounds, and one address holds a bounded
//! number while others are still served.

use crate::support;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::within;
use ptth_relay::Bounds;
use ptth_relay::server::Server;
use ptth_relay::{Relay, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

async fn serve(settings: Settings, head_timeout: Duration, limits: Bounds) -> SocketAddr {
    let settings = Settings {
        connections: limits,
        ..settings
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), Relay::new(settings))
        .await
        .unwrap()
        .head_timeout(head_timeout);
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// Reads until the relay closes; what it sent.
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A connection from another loopback address than the test's others.
async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

const ROOMY: Bounds = Bounds {
    per_client: 256,
    total: 4096,
};

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_preface_is_closed_at_the_head_timeout() {
    let addr = serve(Settings::default(), Duration::from_secs(1), ROOMY).await;
    for first in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let started = Instant::now();
        let answer = within(until_closed(&mut tcp)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
        assert!(answer.is_empty(), "{answer}");
    }
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections_and_others_are_served() {
    let limits = Bounds {
        per_client: 8,
        total: 4096,
    };
    let addr = serve(Settings::default(), Duration::from_secs(60), limits).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(connect_from("127.0.0.3", addr).await);
    }
    // The ninth is closed at once, long before the head timeout.
    let mut ninth = connect_from("127.0.0.3", addr).await;
    let refused = within(until_closed(&mut ninth)).await;
    assert!(refused.is_empty(), "{refused}");
    // Another address is served meanwhile.
    let mut bystander = connect_from("127.0.0.4", addr).await;
    bystander
        .write_all(b"GET /nobody/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = within(until_closed(&mut bystander)).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    // A place freed is a place taken again.
    drop(idle.pop());
    let mut again = loop {
        let mut tcp = connect_from("127.0.0.3", addr).await;
        tcp.write_all(b"GET /nobody/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1];
        // The relay may not have seen the freed connection close yet.
        if tcp.peek(&mut first).await.unwrap_or(0) > 0 {
            break tcp;
        }
    };
    let answer = within(until_closed(&mut again)).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// A peer for `lamp` that reads the whole body before it answers, as an
/// upload handler does; it says on `entered` when each request came.
fn reading_peer(
    addr: SocketAddr,
) -> (
    ptth::tunnel::Handle,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let (enters, entered) = tokio::sync::mpsc::unbounded_channel();
    let service =
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let _ = enters.send(());
            async move {
                let read = http_body_util::BodyExt::collect(request.into_body()).await;
                let text = match read {
                    Ok(body) => format!("got {} bytes", body.to_bytes().len()),
                    Err(error) => format!("the body failed: {error}"),
                };
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from(text),
                )))
            }
        });
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/lamp?token=t"))
        .serve(service);
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    (handle, entered)
}

#[tokio::test]
async fn a_stalled_body_is_cut_at_the_body_timeout() {
    let settings = Settings {
        body_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(120),
        ..Settings::default()
    };
    let running = support::relay(settings).await;
    let (handle, _entered) = reading_peer(running.addr);
    support::connected(&handle, 1).await;
    for target in ["/lamp/upload", "/reversehttp"] {
        let mut tcp = TcpStream::connect(running.addr).await.unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=stall"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let answer = within(until_closed(&mut tcp)).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{target}: cut after {took:?}"
        );
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 502"),
            "{target}: {answer}"
        );
    }
}

#[tokio::test]
async fn one_address_s_stalled_uploads_take_a_bounded_share_of_a_name() {
    let settings = Settings {
        in_flight_per_client: 4,
        ..Settings::default()
    };
    let running = support::relay(settings).await;
    let (handle, mut entered) = reading_peer(running.addr);
    support::connected(&handle, 1).await;
    let upload = b"POST /lamp/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nstart";
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut tcp = connect_from("127.0.0.8", running.addr).await;
        tcp.write_all(upload).await.unwrap();
        stalled.push(tcp);
    }
    for _ in 0..4 {
        within(entered.recv()).await.unwrap();
    }
    // The fifth is refused at once, however long the others stall.
    let mut fifth = connect_from("127.0.0.8", running.addr).await;
    fifth.write_all(upload).await.unwrap();
    let mut head = [0u8; 12];
    within(fifth.read_exact(&mut head)).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 429");
    let mut bystander = connect_from("127.0.0.9", running.addr).await;
    bystander
        .write_all(b"GET /lamp/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = within(until_closed(&mut bystander)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
