//! Handshake cost per dialect, both sides in one process, over an in-memory
//! pipe and over loopback TCP, beside a WebSocket handshake on the same
//! transport as the anchor; and one side's handshake alone against canned
//! bytes with no peer (reading and checking the head, the span, the time
//! bound and the answer written to a sink), which is not parsing alone.
//!
//! `cargo bench --bench handshake`

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Empty;
use hyper::body::Bytes;
use ptth::{Dialect, Protocol};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, duplex};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const KINDS: [(&str, Dialect, Protocol); 3] = [
    ("legacy-h1", Dialect::Legacy, Protocol::Http1),
    ("current-h1", Dialect::Current, Protocol::Http1),
    ("current-h2", Dialect::Current, Protocol::Http2),
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn initiator(dialect: Dialect, protocol: Protocol) -> ptth::initiator::Builder {
    ptth::initiator::Builder::new()
        .uri("http://relay.example/reverse")
        .dialect(dialect)
        .protocols([protocol])
}

/// One whole PTTH handshake: both sides until each is ready for HTTP.
async fn ptth_handshake<T>(
    initiator: &ptth::initiator::Builder,
    acceptor: &ptth::acceptor::Builder,
    opened: T,
    accepted: T,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let initiating = initiator.handshake(opened);
    let accepting = async {
        let offer = acceptor.read_request(accepted).await.unwrap();
        offer.accept::<Empty<Bytes>>().await.unwrap()
    };
    let (transposed, (sender, connection)) = tokio::join!(initiating, accepting);
    // The connection future is only built, not run: the handshake is done.
    drop(black_box(connection));
    black_box((transposed.unwrap(), sender));
}

/// One whole WebSocket handshake on the same transport.
async fn websocket_handshake<T>(opened: T, accepted: T)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let client = tokio_tungstenite::client_async("ws://relay.example/reverse", opened);
    let server = tokio_tungstenite::accept_async(accepted);
    let (client, server) = tokio::join!(client, server);
    black_box((client.unwrap(), server.unwrap()));
}

async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (opened, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let opened = opened.unwrap();
    opened.set_nodelay(true).unwrap();
    let (accepted, _) = accepted.unwrap();
    accepted.set_nodelay(true).unwrap();
    (opened, accepted)
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let acceptor = ptth::acceptor::Builder::new();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();

    let mut group = c.benchmark_group("handshake/duplex");
    for (name, dialect, protocol) in KINDS {
        let initiator = initiator(dialect, protocol);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let (opened, accepted) = duplex(16 * 1024);
                ptth_handshake(&initiator, &acceptor, opened, accepted).await;
            })
        });
    }
    group.bench_function("websocket", |b| {
        b.to_async(&rt).iter(|| async {
            let (opened, accepted) = duplex(16 * 1024);
            websocket_handshake(opened, accepted).await;
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handshake/tcp");
    for (name, dialect, protocol) in KINDS {
        let initiator = initiator(dialect, protocol);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let (opened, accepted) = tcp_pair(&listener).await;
                ptth_handshake(&initiator, &acceptor, opened, accepted).await;
            })
        });
    }
    group.bench_function("websocket", |b| {
        b.to_async(&rt).iter(|| async {
            let (opened, accepted) = tcp_pair(&listener).await;
            websocket_handshake(opened, accepted).await;
        })
    });
    group.bench_function("tcp-connect-only", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tcp_pair(&listener).await) })
    });
    group.finish();
}

/// Yields canned bytes, all in one read, and swallows writes: the peer's
/// side of a handshake with no peer, so only this side's work is measured.
struct Canned(&'static [u8]);

impl AsyncRead for Canned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.0.len().min(buf.remaining());
        buf.put_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Canned {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Realistic heads: what AirPlay senders, the IETF draft and relays send.
const AIRPLAY_REQUEST: &[u8] = b"POST /reverse HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nX-Apple-Purpose: event\r\nContent-Length: 0\r\nUser-Agent: MediaControl/1.0\r\nX-Apple-Session-ID: 1bd6ceeb-fffd-456c-a09c-996053a7a08c\r\n\r\n";
const CURRENT_REQUEST: &[u8] = b"GET /reverse-endpoint HTTP/1.1\r\nHost: example.com\r\nConnection: upgrade\r\nUpgrade: ptth\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nALPN: h2, http%2F1.1\r\n\r\n";
const LEGACY_ANSWER: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\nGET /status HTTP/1.1\r\nHost:\r\n\r\n";
const RELAY_ANSWER: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nDate: Sun, 22 Nov 2026 12:00:00 GMT\r\nServer: relay/1.0\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn one_side(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("one-side");
    let acceptor = ptth::acceptor::Builder::new();
    for (name, request) in [
        ("request/airplay", AIRPLAY_REQUEST),
        ("request/current", CURRENT_REQUEST),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(acceptor.read_request(Canned(request)).await.unwrap()) })
        });
    }
    for (name, answer, dialect) in [
        ("answer/legacy", LEGACY_ANSWER, Dialect::Legacy),
        ("answer/relay-h2", RELAY_ANSWER, Dialect::Current),
    ] {
        let initiator = initiator(dialect, Protocol::Http2);
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(initiator.handshake(Canned(answer)).await.unwrap()) })
        });
    }
    group.finish();
}

criterion_group!(benches, handshakes, one_side);
criterion_main!(benches);
