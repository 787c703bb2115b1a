//! TCP over PTTH: CONNECT sent by this crate's acceptor on real transposed
//! connections, answered by `connect::Dial` on the initiator, over HTTP/1.1
//! and HTTP/2, with real targets on loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use crate::support::fake_relay::{FakeRelay, accept_all};
use crate::support::{self, echo, within};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::service::service_fn;
use ptth::Protocol;
use ptth::acceptor::SendRequest;
use ptth::connect::{self, Dial};
use ptth::initiator::Transposed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

const PROTOCOLS: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

/// What `open` is given: far more than loopback needs.
pub const OPEN: Duration = Duration::from_secs(5);

type Served = Pin<Box<dyn Future<Output = Result<(), ptth::Error>> + Send>>;

/// A device on a runtime of its own, serving one transposed connection,
/// and the relay's sender on it. Shutting the runtime down is the device
/// vanishing: its tasks and sockets go at once.
pub struct Device {
    pub sender: SendRequest<Empty<Bytes>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Device {
    fn vanish(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another's task.
        self.vanish();
    }
}

/// Starts a device speaking `protocol` that serves what `serve` binds to
/// its transposed connection.
pub async fn device(
    protocol: Protocol,
    serve: impl FnOnce(Transposed<TcpStream>) -> Served + Send + 'static,
) -> Device {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (listener, addr) = support::listener().await;
    runtime.spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let transposed = ptth::initiator::Builder::new()
            .uri(format!("http://{addr}/reverse"))
            .protocols([protocol])
            .handshake(tcp)
            .await?;
        serve(transposed).await
    });
    let (tcp, peer) = listener.accept().await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let offer = ptth::acceptor::Builder::new()
        .read_request_from(tcp, peer)
        .await
        .unwrap();
    let (sender, connection) = offer.accept().await.unwrap();
    assert_eq!(sender.protocol(), protocol);
    tokio::spawn(connection);
    Device {
        sender,
        runtime: Some(runtime),
    }
}

/// A device whose every CONNECT reaches `target`.
async fn dialling(protocol: Protocol, target: SocketAddr) -> Device {
    device(protocol, move |transposed| {
        Box::pin(transposed.serve(Dial::new(target)))
    })
    .await
}

/// A target that echoes each connection until its end of file, then
/// ends its own half.
pub async fn echo_target() -> SocketAddr {
    serve_target(|tcp| async move {
        let (mut from, mut to) = tcp.into_split();
        tokio::io::copy(&mut from, &mut to).await?;
        to.shutdown().await
    })
    .await
}

/// A target that runs `each` on every connection it takes.
async fn serve_target<F, T>(each: F) -> SocketAddr
where
    F: Fn(TcpStream) -> T + Send + 'static,
    T: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (listener, addr) = support::listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(each(tcp));
        }
    });
    addr
}

async fn open(device: &mut Device) -> connect::Stream {
    let authority = "lamp.relay.example:22".parse().unwrap();
    connect::open(&mut device.sender, authority, OPEN)
        .await
        .unwrap()
}

/// Reads until end of file or an error; says which.
pub async fn read_to_end_or_error(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    match stream.read_to_end(&mut got).await {
        Ok(_) => Ok(got),
        Err(error) => Err(format!("{error} after {} bytes", got.len())),
    }
}

#[tokio::test]
async fn the_target_answers_after_the_client_ended_its_half() {
    within(async {
        let target = echo_target().await;
        for protocol in PROTOCOLS {
            let mut device = dialling(protocol, target).await;
            let mut stream = open(&mut device).await;
            let sent: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            stream.write_all(&sent).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut echoed = Vec::new();
            stream.read_to_end(&mut echoed).await.unwrap();
            assert!(echoed == sent, "{protocol:?}: {} bytes back", echoed.len());
        }
    })
    .await;
}

/// Bytes that cannot be shuffled, cut or repeated unnoticed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// FNV-1a.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[tokio::test]
async fn megabytes_each_way_arrive_whole_and_in_order() {
    const UP: usize = 4 << 20;
    const DOWN: usize = 3 << 20;
    within(async {
        for protocol in PROTOCOLS {
            // The target reports what it read, and sends its own bytes
            // meanwhile.
            let (report, mut reports) = mpsc::unbounded_channel();
            let target = serve_target(move |tcp| {
                let report = report.clone();
                async move {
                    let (mut from, mut to) = tcp.into_split();
                    let send = async {
                        to.write_all(&pattern(2, DOWN)).await?;
                        to.shutdown().await
                    };
                    let mut read = Vec::new();
                    let (sent, received) = tokio::join!(send, from.read_to_end(&mut read));
                    let _ = report.send((read.len(), checksum(&read)));
                    sent.and(received.map(drop))
                }
            })
            .await;
            let mut device = dialling(protocol, target).await;
            let stream = open(&mut device).await;
            let (mut from, mut to) = tokio::io::split(stream);
            let send = async {
                to.write_all(&pattern(1, UP)).await.unwrap();
                to.shutdown().await.unwrap();
            };
            let mut read = Vec::new();
            let ((), received) = tokio::join!(send, from.read_to_end(&mut read));
            received.unwrap();
            assert_eq!(read.len(), DOWN, "{protocol:?}");
            assert_eq!(checksum(&read), checksum(&pattern(2, DOWN)), "{protocol:?}");
            let up = pattern(1, UP);
            assert_eq!(
                reports.recv().await,
                Some((UP, checksum(&up))),
                "{protocol:?}"
            );
        }
    })
    .await;
}

/// An address nothing listens on.
async fn refusing_address() -> SocketAddr {
    let (listener, addr) = support::listener().await;
    drop(listener);
    addr
}

#[tokio::test]
async fn an_unreachable_target_is_a_502_refusal_and_no_stream() {
    within(async {
        let target = refusing_address().await;
        for protocol in PROTOCOLS {
            let mut device = dialling(protocol, target).await;
            let authority = "lamp.relay.example:22".parse().unwrap();
            let opened = connect::open(&mut device.sender, authority, OPEN).await;
            let error = opened.expect_err("a stream to nowhere");
            assert_eq!(
                error.status(),
                Some(StatusCode::BAD_GATEWAY),
                "{protocol:?}"
            );
            assert!(error.is_refused() && !error.is_closed() && !error.is_timeout());
            let reason = error.reason().unwrap_or_default();
            assert!(reason.contains("connection refused"), "{error}");
            assert!(
                error.to_string().starts_with("CONNECT refused with 502"),
                "{error}"
            );
            // The connection itself is still there for other requests.
            let (status, _) = send(&mut device.sender, Method::GET, "/").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{protocol:?}");
        }
    })
    .await;
}

async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    method: Method,
    uri: &str,
) -> (StatusCode, http::Response<Bytes>) {
    let request = Request::builder().method(method).uri(uri);
    let response = sender
        .send_request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (head.status, http::Response::from_parts(head, body))
}

#[tokio::test]
async fn other_requests_are_405_or_the_fallback_s() {
    within(async {
        let target = echo_target().await;
        for protocol in PROTOCOLS {
            let mut plain = dialling(protocol, target).await;
            let (status, response) = send(&mut plain.sender, Method::POST, "/x").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{protocol:?}");
            assert_eq!(response.headers()["allow"], "CONNECT");

            let mut with_fallback = device(protocol, move |transposed| {
                let dial = Dial::new(target).fallback(service_fn(echo));
                Box::pin(transposed.serve(dial))
            })
            .await;
            let (status, response) = send(&mut with_fallback.sender, Method::GET, "/hi").await;
            assert_eq!(status, StatusCode::OK, "{protocol:?}");
            assert_eq!(response.body(), "GET /hi\n");
            // CONNECT still reaches the target.
            let mut stream = open(&mut with_fallback).await;
            stream.write_all(b"still here").await.unwrap();
            stream.shutdown().await.unwrap();
            assert_eq!(
                read_to_end_or_error(&mut stream).await.unwrap(),
                b"still here"
            );
        }
    })
    .await;
}

/// With the `tower` feature the fallback may be a tower service: one
/// device serves its web pages and its port under one name.
#[cfg(feature = "axum")]
#[tokio::test]
async fn an_axum_router_answers_what_is_no_connect() {
    within(async {
        let target = echo_target().await;
        for protocol in PROTOCOLS {
            let mut device = device(protocol, move |transposed| {
                let app = axum::Router::new().route("/hi", axum::routing::get(|| async { "hi\n" }));
                Box::pin(transposed.serve(Dial::new(target).fallback(app)))
            })
            .await;
            let (status, response) = send(&mut device.sender, Method::GET, "/hi").await;
            assert_eq!(status, StatusCode::OK, "{protocol:?}");
            assert_eq!(response.body(), "hi\n");
            let mut stream = open(&mut device).await;
            stream.write_all(b"ssh").await.unwrap();
            stream.shutdown().await.unwrap();
            assert_eq!(read_to_end_or_error(&mut stream).await.unwrap(), b"ssh");
        }
    })
    .await;
}

#[tokio::test]
async fn the_relay_s_liveness_check_is_answered_204_on_http1() {
    within(async {
        let target = echo_target().await;
        let mut device = dialling(Protocol::Http1, target).await;
        let (status, _) = send(&mut device.sender, Method::OPTIONS, "*").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // The connection is still free for a CONNECT.
        let mut stream = open(&mut device).await;
        stream.write_all(b"x").await.unwrap();
        stream.read_exact(&mut [0; 1]).await.unwrap();
    })
    .await;
}

/// A target that sends without end.
async fn endless_target() -> SocketAddr {
    serve_target(|mut tcp| async move {
        let chunk = vec![b'z'; 16 * 1024];
        loop {
            tcp.write_all(&chunk).await?;
        }
    })
    .await
}

/// Reads a while, then runs `vanish`; the rest of the read must end
/// (with end of file or an error) without waiting for any timer.
async fn ends_promptly(stream: &mut connect::Stream, vanish: impl FnOnce()) {
    let mut some = vec![0; 256 * 1024];
    stream.read_exact(&mut some).await.unwrap();
    vanish();
    let start = Instant::now();
    let mut sink = vec![0; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its device");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_device_that_vanishes_mid_transfer_ends_the_stream() {
    within(async {
        let target = endless_target().await;
        for protocol in PROTOCOLS {
            let mut device = dialling(protocol, target).await;
            let mut stream = open(&mut device).await;
            ends_promptly(&mut stream, || device.vanish()).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_target_reset_mid_transfer_ends_the_stream() {
    within(async {
        for protocol in PROTOCOLS {
            let (listener, target) = support::listener().await;
            let mut device = dialling(protocol, target).await;
            let mut stream = open(&mut device).await;
            let (mut tcp, _) = listener.accept().await.unwrap();
            // Linger 0: the close is a reset, as a crashed target's.
            tcp.set_zero_linger().unwrap();
            let sending = tokio::spawn(async move {
                let chunk = vec![b'z'; 16 * 1024];
                while tcp.write_all(&chunk).await.is_ok() {}
            });
            ends_promptly(&mut stream, move || sending.abort()).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_quiet_stream_is_closed_both_ways_at_the_idle_limit() {
    const IDLE: Duration = Duration::from_millis(200);
    within(async {
        for protocol in PROTOCOLS {
            let (listener, target) = support::listener().await;
            let mut device = device(protocol, move |transposed| {
                Box::pin(transposed.serve(Dial::new(target).idle_timeout(IDLE)))
            })
            .await;
            let start = Instant::now();
            let mut stream = open(&mut device).await;
            let (mut tcp, _) = listener.accept().await.unwrap();
            // Neither side sends: both legs end, with no byte on either.
            let (client, far) = tokio::join!(
                read_to_end_or_error(&mut stream),
                read_to_end_or_error(&mut tcp)
            );
            assert!(client.is_err() || client == Ok(Vec::new()), "{client:?}");
            assert_eq!(far, Ok(Vec::new()), "{protocol:?}");
            assert!(start.elapsed() >= IDLE, "{:?}", start.elapsed());
        }
    })
    .await;
}

#[tokio::test]
async fn a_hundred_connects_share_one_http2_connection() {
    within(async {
        let target = echo_target().await;
        let device = dialling(Protocol::Http2, target).await;
        let mut streams = tokio::task::JoinSet::new();
        for i in 0..100u64 {
            let mut sender = device.sender.clone();
            streams.spawn(async move {
                let authority = format!("visitor-{i}.example:22").parse().unwrap();
                let mut stream = connect::open(&mut sender, authority, OPEN).await.unwrap();
                let sent = pattern(i, 8 * 1024);
                stream.write_all(&sent).await.unwrap();
                stream.shutdown().await.unwrap();
                let echoed = read_to_end_or_error(&mut stream).await.unwrap();
                assert!(echoed == sent, "stream {i}: {} bytes back", echoed.len());
            });
        }
        while let Some(done) = streams.join_next().await {
            done.unwrap();
        }
        assert!(!device.sender.is_closed());
    })
    .await;
}

#[tokio::test]
async fn a_quiet_session_outlives_the_tunnel_s_http1_idle_limit() {
    const IDLE: Duration = Duration::from_millis(300);
    within(async {
        let target = echo_target().await;
        let mut relay = FakeRelay::start("127.0.0.1:0".parse().unwrap(), accept_all()).await;
        let url = format!("http://{}/reversehttp/lamp", relay.addr);
        let tunnel = ptth::tunnel::Builder::new(url)
            .initiator(ptth::initiator::Builder::new().protocols([Protocol::Http1]))
            .connections(1)
            .idle_timeout(IDLE)
            .serve(Dial::new(target));
        tokio::spawn(tunnel);
        let mut sender = relay.next_sender().await;
        let authority = "lamp.relay.example:22".parse().unwrap();
        let mut stream = connect::open(&mut sender, authority, OPEN).await.unwrap();
        stream.write_all(b"before").await.unwrap();
        stream.read_exact(&mut [0; 6]).await.unwrap();
        // The quiet under test: longer than the idle limit of the
        // connection the CONNECT took over.
        tokio::time::sleep(IDLE * 3).await;
        stream.write_all(b"after").await.unwrap();
        let mut after = [0; 5];
        stream.read_exact(&mut after).await.unwrap();
        assert_eq!(&after, b"after");
    })
    .await;
}
