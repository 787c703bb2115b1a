//! Faults and flow on a transposed connection over loopback TCP: a side
//! vanishing mid-exchange, a silent dead peer caught by HTTP/2 keep-alive,
//! large bodies streamed in bounded memory, a paced stream delivered chunk
//! by chunk, and an HTTP/1.1 upgrade carried inside the transposed
//! connection. Every outcome is asserted together with a time bound.

use crate::support;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use crate::support::pipe::Pipe;
use crate::support::{collect, listener, request, within};
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ptth::acceptor::{self, SendRequest};
use ptth::initiator::{Server, Transposed};
use ptth::{Dialect, Error, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const COMBINATIONS: [(Dialect, Protocol); 3] = [
    (Dialect::Legacy, Protocol::Http1),
    (Dialect::Current, Protocol::Http1),
    (Dialect::Current, Protocol::Http2),
];

/// How long a side may take to notice that its peer is gone. On loopback a
/// close or reset is seen in well under a millisecond; this leaves room for
/// a loaded machine while still catching a hang.
const PROMPTLY: Duration = Duration::from_secs(2);

/// How long a request on an already-closed connection may take to fail:
/// it should fail on its first poll.
const AT_ONCE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------

/// A connected pair of loopback sockets: the one that connected, the one
/// that was accepted.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listener().await;
    let (opened, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (opened.unwrap(), accepted.unwrap().0)
}

/// Runs both handshakes at once: the initiator on `opened`, the acceptor
/// (configured by `acceptor`) on `accepted`. Returns the initiator's
/// transposed connection, not yet served, and the acceptor's sender and
/// connection, not yet spawned.
async fn transpose<B>(
    opened: TcpStream,
    accepted: TcpStream,
    dialect: Dialect,
    protocol: Protocol,
    acceptor: &acceptor::Builder,
) -> (Transposed<TcpStream>, SendRequest<B>, acceptor::Connection)
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let initiator = ptth::initiator::Builder::new()
        .dialect(dialect)
        .protocols([protocol]);
    let (transposed, accepted) = tokio::join!(initiator.handshake(opened), async {
        acceptor.read_request(accepted).await?.accept::<B>().await
    });
    let transposed = transposed.unwrap();
    let (sender, connection) = accepted.unwrap();
    assert_eq!(transposed.protocol(), protocol);
    assert_eq!(sender.protocol(), protocol);
    (transposed, sender, connection)
}

/// [`transpose`] over a fresh loopback connection, with a default acceptor.
async fn transpose_on_loopback<B>(
    dialect: Dialect,
    protocol: Protocol,
) -> (Transposed<TcpStream>, SendRequest<B>, acceptor::Connection)
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (opened, accepted) = tcp_pair().await;
    transpose(
        opened,
        accepted,
        dialect,
        protocol,
        &acceptor::Builder::new(),
    )
    .await
}

/// Awaits `fut` for at most `bound`, and says how long it took.
async fn timed<F: Future>(bound: Duration, what: &str, fut: F) -> (F::Output, Duration) {
    let start = Instant::now();
    let output = timeout(bound, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {bound:?}"));
    (output, start.elapsed())
}

/// Awaits a spawned task for at most `bound`.
async fn joined<T>(bound: Duration, what: &str, task: &mut JoinHandle<T>) -> (T, Duration) {
    let (output, took) = timed(bound, what, task).await;
    (output.expect("task panicked"), took)
}

// ---------------------------------------------------------------------------
// 1. The initiator (serving side) vanishes mid-request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn initiator_vanishing_mid_request_fails_pending_and_later_requests_fast() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let case = format!("{dialect} {protocol}");
            let (transposed, mut sender, connection) =
                transpose_on_loopback::<Full<Bytes>>(dialect, protocol).await;
            let mut client = tokio::spawn(connection);
            // The service reports the request's arrival and never answers.
            let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
            let service = service_fn(move |_: Request<Incoming>| {
                let arrived = arrived_tx.clone();
                async move {
                    arrived.send(()).unwrap();
                    std::future::pending::<Result<Response<Empty<Bytes>>, Infallible>>().await
                }
            });
            let server = tokio::spawn(transposed.serve(service));

            sender.ready().await.unwrap();
            let mut in_flight = tokio::spawn(sender.send_request(request("GET", "/held", "")));
            arrived.recv().await.unwrap();
            // Dropping the serving future drops the initiator's socket.
            server.abort();
            assert!(server.await.unwrap_err().is_cancelled());

            let (failed, took) =
                joined(PROMPTLY, "the pending request's failure", &mut in_flight).await;
            let error = failed.expect_err(&case);
            assert!(error.is_closed(), "{case}: {error:?} after {took:?}");

            // hyper ends an HTTP/1.1 client cleanly (the error went to the
            // request), an HTTP/2 one with the broken connection.
            let (ended, _) = joined(PROMPTLY, "the acceptor's connection end", &mut client).await;
            assert!(
                ended.as_ref().map_or_else(Error::is_closed, |()| true),
                "{case}: {ended:?}"
            );
            assert!(sender.is_closed(), "{case}");
            assert!(!sender.is_ready(), "{case}");

            let (late, _) = timed(
                AT_ONCE,
                "a later request's failure",
                sender.send_request(request("GET", "/late", "")),
            )
            .await;
            let late = late.expect_err(&case);
            assert!(late.is_closed(), "{case}: {late:?}");
            let (ready, _) = timed(AT_ONCE, "ready()'s failure", sender.ready()).await;
            let ready = ready.expect_err(&case);
            assert!(ready.is_closed(), "{case}: {ready:?}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 2. The acceptor (sending side) vanishes mid-response
// ---------------------------------------------------------------------------

/// A response body that never ends, 16 KiB chunks as fast as they are
/// taken, and reports its own drop.
struct Endless {
    chunk: Bytes,
    dropped: mpsc::UnboundedSender<()>,
}

impl Endless {
    fn new(dropped: mpsc::UnboundedSender<()>) -> Self {
        Endless {
            chunk: Bytes::from(vec![b'x'; 16 * 1024]),
            dropped,
        }
    }
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        let _ = self.dropped.send(());
    }
}

fn endless_service(
    dropped: mpsc::UnboundedSender<()>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Endless>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Endless>, Infallible>> + Send,
> + Clone {
    service_fn(move |_: Request<Incoming>| {
        let dropped = dropped.clone();
        async move { Ok(Response::new(Endless::new(dropped))) }
    })
}

/// The path to the acceptor is reset mid-response: the initiator's serving
/// future ends with an error, the response body in flight is dropped, and
/// the acceptor's half-read body ends with an error rather than looking
/// complete.
#[tokio::test]
async fn acceptor_vanishing_mid_response_errors_the_server_and_drops_the_body() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let case = format!("{dialect} {protocol}");
            let (pipe, opened, accepted) = Pipe::between().await;
            let (transposed, mut sender, connection) = transpose::<Full<Bytes>>(
                opened,
                accepted,
                dialect,
                protocol,
                &acceptor::Builder::new(),
            )
            .await;
            let mut client = tokio::spawn(connection);
            let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
            let mut server = tokio::spawn(transposed.serve(endless_service(dropped_tx)));

            sender.ready().await.unwrap();
            let response = sender
                .send_request(request("GET", "/endless", ""))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let first = body.frame().await.unwrap().unwrap();
            assert!(!first.into_data().unwrap().is_empty());

            pipe.cut().await;

            let (served, took) = joined(PROMPTLY, "the server's end", &mut server).await;
            let error = served.expect_err(&case);
            assert!(error.is_closed(), "{case}: {error:?} after {took:?}");
            let (guard, _) = timed(PROMPTLY, "the response body's drop", dropped.recv()).await;
            guard.expect("body dropped");

            // What was in flight may still be read; then the body fails.
            let rest = timed(PROMPTLY, "the cut body's end", async {
                loop {
                    match body.frame().await {
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return Err(error),
                        None => return Ok(()),
                    }
                }
            })
            .await
            .0;
            assert!(rest.is_err(), "{case}: a cut body must not end cleanly");
            let (ended, _) = joined(PROMPTLY, "the acceptor's connection end", &mut client).await;
            assert!(
                ended.as_ref().map_or_else(Error::is_closed, |()| true),
                "{case}: {ended:?}"
            );
            assert!(sender.is_closed(), "{case}");
        }
    })
    .await;
}

/// The acceptor's application drops everything mid-response (its response
/// body, its sender, its connection task): the initiator's serving future
/// completes and the response body in flight is dropped.
#[tokio::test]
async fn acceptor_dropping_everything_mid_response_ends_the_server_and_drops_the_body() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let case = format!("{dialect} {protocol}");
            let (transposed, mut sender, connection) =
                transpose_on_loopback::<Full<Bytes>>(dialect, protocol).await;
            let client = tokio::spawn(connection);
            let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
            let mut server = tokio::spawn(transposed.serve(endless_service(dropped_tx)));

            sender.ready().await.unwrap();
            let response = sender
                .send_request(request("GET", "/endless", ""))
                .await
                .unwrap();
            let mut body = response.into_body();
            body.frame().await.unwrap().unwrap();

            client.abort();
            drop(body);
            drop(sender);
            assert!(client.await.unwrap_err().is_cancelled());

            // On h1 the aborted task owned the socket, closed with unread
            // bytes in it: a reset, and the server fails. On h2 the socket
            // lives in a task of hyper's that closes it gracefully once every
            // handle is gone: the server ends with Ok. Either way it ends.
            let (served, took) = joined(PROMPTLY, "the server's end", &mut server).await;
            match protocol {
                Protocol::Http1 => {
                    let error = served.expect_err(&case);
                    assert!(error.is_closed(), "{case}: {error:?} after {took:?}");
                }
                _ => served.unwrap_or_else(|error| panic!("{case}: {error:?}")),
            }
            let (guard, _) = timed(PROMPTLY, "the response body's drop", dropped.recv()).await;
            guard.expect("body dropped");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 3. A silent dead peer on h2 is caught by keep-alive PING
// ---------------------------------------------------------------------------

#[tokio::test]
async fn h2_keep_alive_detects_a_frozen_peer_on_both_sides() {
    const INTERVAL: Duration = Duration::from_millis(500);
    const TIMEOUT: Duration = Duration::from_millis(500);
    // interval + timeout, plus a margin for timers and scheduling on a
    // loaded machine.
    const DETECTED_WITHIN: Duration = Duration::from_millis(500 + 500 + 2000);
    within(async {
        let (pipe, opened, accepted) = Pipe::between().await;
        let acceptor = acceptor::Builder::new().http2(|h2| {
            h2.keep_alive_interval(INTERVAL)
                .keep_alive_timeout(TIMEOUT)
                .keep_alive_while_idle(true);
        });
        let (transposed, mut sender, connection) = transpose::<Full<Bytes>>(
            opened,
            accepted,
            Dialect::Current,
            Protocol::Http2,
            &acceptor,
        )
        .await;
        let server = Server::new().http2(|h2| {
            h2.keep_alive_interval(INTERVAL).keep_alive_timeout(TIMEOUT);
        });
        let mut serving =
            tokio::spawn(server.serve_connection(transposed, service_fn(support::echo)));
        let mut client = tokio::spawn(connection);

        // Idle but alive for three intervals: every PING is answered and
        // neither side gives up.
        assert!(
            timeout(3 * INTERVAL, &mut serving).await.is_err(),
            "the server ended on a live, idle connection"
        );
        assert!(
            !client.is_finished(),
            "the client ended on a live, idle connection"
        );
        let (status, body) = support::exchange(&mut sender, request("GET", "/alive", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "GET /alive\n");

        pipe.freeze();
        let ((served, server_took), (sent, client_took)) = tokio::join!(
            joined(
                DETECTED_WITHIN,
                "the server's keep-alive timeout",
                &mut serving
            ),
            joined(
                DETECTED_WITHIN,
                "the client's keep-alive timeout",
                &mut client
            ),
        );
        for (side, result, took) in [
            ("server", served, server_took),
            ("client", sent, client_took),
        ] {
            let error = result.expect_err(side);
            assert!(error.is_timeout(), "{side}: {error:?}");
            // A PING unanswered for `TIMEOUT` is the only way to fail here,
            // and only one sent right at the freeze could lose its pong.
            assert!(
                took >= TIMEOUT / 2,
                "{side} failed before the freeze: {took:?}"
            );
        }
        assert!(sender.is_closed());
        drop(pipe);
    })
    .await;
}

// ---------------------------------------------------------------------------
// 4. 64 MiB each way, streamed in bounded memory
// ---------------------------------------------------------------------------

const LARGE: u64 = 64 * 1024 * 1024;
const CHUNK: u64 = 64 * 1024;
/// How far a producer may run ahead of its consumer: all the buffers on the
/// way (hyper's, h2's flow-control windows, the kernel's socket buffers)
/// fit in this many times over, and a whole 64 MiB body does not.
const MAX_AHEAD: u64 = 16 * 1024 * 1024;
/// The time allowed for one 64 MiB transfer. A debug build on loopback
/// takes well under a second; a hang or a crawl fails.
const TRANSFER: Duration = Duration::from_secs(10);

/// Bytes produced and consumed of one body, and the largest gap seen.
#[derive(Debug, Default)]
struct Meter {
    produced: AtomicU64,
    consumed: AtomicU64,
    max_ahead: AtomicU64,
}

/// The byte at `position` of a large body: the same for a whole 64 KiB
/// chunk, different from its neighbours.
fn pattern(position: u64) -> u8 {
    ((position / CHUNK) % 251) as u8
}

/// A large body generated chunk by chunk as it is polled.
struct Source {
    position: u64,
    len: u64,
    announce_len: bool,
    meter: Arc<Meter>,
}

impl Source {
    fn new(len: u64, announce_len: bool, meter: Arc<Meter>) -> Self {
        Source {
            position: 0,
            len,
            announce_len,
            meter,
        }
    }
}

impl Body for Source {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let n = CHUNK.min(self.len - self.position);
        if n == 0 {
            return Poll::Ready(None);
        }
        let chunk = Bytes::from(vec![pattern(self.position); n as usize]);
        self.position += n;
        let produced = self.meter.produced.fetch_add(n, Ordering::SeqCst) + n;
        let consumed = self.meter.consumed.load(Ordering::SeqCst);
        self.meter
            .max_ahead
            .fetch_max(produced - consumed, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.position == self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_len {
            SizeHint::with_exact(self.len - self.position)
        } else {
            SizeHint::default()
        }
    }
}

/// Reads a large body frame by frame, checking the pattern at each frame's
/// ends and counting what was read.
async fn drain(mut body: Incoming, meter: &Meter) -> Result<u64, hyper::Error> {
    let mut position = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let last = position + data.len() as u64 - 1;
        assert_eq!(data[0], pattern(position), "byte {position}");
        assert_eq!(data[data.len() - 1], pattern(last), "byte {last}");
        position += data.len() as u64;
        meter
            .consumed
            .fetch_add(data.len() as u64, Ordering::SeqCst);
    }
    Ok(position)
}

#[tokio::test]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    within(async {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let (transposed, mut sender, connection) =
                transpose_on_loopback::<Either<Empty<Bytes>, Source>>(Dialect::Current, protocol)
                    .await;
            let mut client = tokio::spawn(connection);
            let upload = Arc::new(Meter::default());
            let download = Arc::new(Meter::default());
            let (up, down) = (upload.clone(), download.clone());
            let service = service_fn(move |request: Request<Incoming>| {
                let (upload, download) = (up.clone(), down.clone());
                async move {
                    Ok::<_, hyper::Error>(match request.uri().path() {
                        "/upload" => {
                            let received = drain(request.into_body(), &upload).await?;
                            Response::new(Either::Left(Full::new(Bytes::from(
                                received.to_string(),
                            ))))
                        }
                        _ => Response::new(Either::Right(Source::new(LARGE, true, download))),
                    })
                }
            });
            let mut server = tokio::spawn(transposed.serve(service));

            // Upload with no announced length (chunked on HTTP/1.1).
            let (received, upload_took) = timed(TRANSFER, "the 64 MiB upload", async {
                sender.ready().await.unwrap();
                let request = Request::post("/upload")
                    .body(Either::Right(Source::new(LARGE, false, upload.clone())))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                collect(response).await
            })
            .await;
            assert_eq!(received, (StatusCode::OK, Bytes::from(LARGE.to_string())));

            // Download with a Content-Length.
            let (received, download_took) = timed(TRANSFER, "the 64 MiB download", async {
                sender.ready().await.unwrap();
                let request = Request::get("/download")
                    .body(Either::Left(Empty::new()))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                drain(response.into_body(), &download).await.unwrap()
            })
            .await;
            assert_eq!(received, LARGE);

            for (way, meter, took) in [
                ("upload", &upload, upload_took),
                ("download", &download, download_took),
            ] {
                let ahead = meter.max_ahead.load(Ordering::SeqCst);
                println!(
                    "{protocol} {way}: 64 MiB in {took:?}, producer at most {:.1} MiB ahead",
                    ahead as f64 / (1024.0 * 1024.0)
                );
                assert_eq!(meter.produced.load(Ordering::SeqCst), LARGE);
                assert_eq!(meter.consumed.load(Ordering::SeqCst), LARGE);
                assert!(ahead <= MAX_AHEAD, "{protocol} {way}: {ahead} bytes ahead");
            }

            drop(sender);
            let (ended, _) = joined(PROMPTLY, "the client's end", &mut client).await;
            ended.unwrap();
            let (ended, _) = joined(PROMPTLY, "the server's end", &mut server).await;
            ended.unwrap();
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 5. A paced stream arrives chunk by chunk
// ---------------------------------------------------------------------------

const EVENTS: usize = 5;
const EVERY: Duration = Duration::from_millis(100);

/// A server-sent-events body: `data: i` every [`EVERY`], [`EVENTS`] times,
/// counting what it has produced.
struct Ticker {
    interval: tokio::time::Interval,
    produced: Arc<AtomicUsize>,
}

impl Body for Ticker {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let i = self.produced.load(Ordering::SeqCst);
        if i == EVENTS {
            return Poll::Ready(None);
        }
        ready!(self.interval.poll_tick(cx));
        self.produced.store(i + 1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!("data: {i}\n\n"))))))
    }
}

#[tokio::test]
async fn paced_stream_arrives_chunk_by_chunk() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let case = format!("{dialect} {protocol}");
            let (transposed, mut sender, connection) =
                transpose_on_loopback::<Full<Bytes>>(dialect, protocol).await;
            let mut client = tokio::spawn(connection);
            let produced = Arc::new(AtomicUsize::new(0));
            let counter = produced.clone();
            let service = service_fn(move |_: Request<Incoming>| {
                let produced = counter.clone();
                async move {
                    let mut interval = tokio::time::interval(EVERY);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut response = Response::new(Ticker { interval, produced });
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, "text/event-stream".parse().unwrap());
                    Ok::<_, Infallible>(response)
                }
            });
            let mut server = tokio::spawn(transposed.serve(service));

            // Paced by the producer: the last event cannot come sooner.
            let paced = EVERY * (EVENTS as u32 - 1);
            let started = Instant::now();
            let ((arrivals, body), took) = timed(paced + PROMPTLY, "the paced stream", async {
                sender.ready().await.unwrap();
                let response = sender
                    .send_request(request("GET", "/events", ""))
                    .await
                    .unwrap();
                assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
                let mut body = response.into_body();
                let mut pending = Vec::new();
                let mut arrivals = Vec::new();
                while let Some(frame) = body.frame().await {
                    let Ok(data) = frame.unwrap().into_data() else {
                        continue;
                    };
                    pending.extend_from_slice(&data);
                    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                        let event: Vec<u8> = pending.drain(..end + 2).collect();
                        let i = arrivals.len();
                        assert_eq!(event, format!("data: {i}\n\n").as_bytes(), "{case}");
                        // Here before the next one was even produced.
                        assert_eq!(produced.load(Ordering::SeqCst), i + 1, "{case}");
                        arrivals.push(started.elapsed());
                    }
                }
                assert!(pending.is_empty(), "{case}");
                (arrivals, body)
            })
            .await;
            println!("{case}: events arrived at {arrivals:?}");
            assert_eq!(arrivals.len(), EVENTS, "{case}");
            assert!(took >= paced, "{case}: {took:?}");

            // An h2 body, even ended, holds its stream and so the connection.
            drop(body);
            drop(sender);
            let (ended, _) = joined(PROMPTLY, "the client's end", &mut client).await;
            ended.unwrap();
            let (ended, _) = joined(PROMPTLY, "the server's end", &mut server).await;
            ended.unwrap();
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 6. An HTTP/1.1 upgrade inside the transposed connection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn upgrade_inside_the_transposed_connection_carries_raw_bytes() {
    within(async {
        for dialect in [Dialect::Legacy, Dialect::Current] {
            let (transposed, mut sender, connection) =
                transpose_on_loopback::<Empty<Bytes>>(dialect, Protocol::Http1).await;
            let mut client = tokio::spawn(connection);
            // Each echo session reports how many bytes it echoed.
            let (echoed_tx, mut echoed) = mpsc::unbounded_channel();
            let service = service_fn(move |mut request: Request<Incoming>| {
                let echoed = echoed_tx.clone();
                async move {
                    assert_eq!(request.uri().path(), "/echo");
                    assert_eq!(request.headers()[UPGRADE], "echo");
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let io = TokioIo::new(upgrade.await.unwrap());
                        let (mut read, mut write) = tokio::io::split(io);
                        let n = tokio::io::copy(&mut read, &mut write).await.unwrap();
                        write.shutdown().await.unwrap();
                        echoed.send(n).unwrap();
                    });
                    let response = Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header(CONNECTION, "upgrade")
                        .header(UPGRADE, "echo")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            let mut server = tokio::spawn(transposed.serve(service));

            let (sent, took) = timed(PROMPTLY, "the upgrade and its echoes", async {
                sender.ready().await.unwrap();
                let request = Request::get("/echo")
                    .header(CONNECTION, "upgrade")
                    .header(UPGRADE, "echo")
                    .body(Empty::new())
                    .unwrap();
                let mut response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
                assert_eq!(response.headers()[UPGRADE], "echo");
                let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
                let mut io = TokioIo::new(upgraded);
                let mut sent = 0;
                for i in 0..5 {
                    let message = format!("hello {i}");
                    io.write_all(message.as_bytes()).await.unwrap();
                    let mut back = vec![0u8; message.len()];
                    io.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, message.as_bytes(), "{dialect}");
                    sent += message.len() as u64;
                }
                // Closing our half ends the echo, which then closes its own.
                io.shutdown().await.unwrap();
                let mut rest = Vec::new();
                io.read_to_end(&mut rest).await.unwrap();
                assert!(rest.is_empty(), "{dialect}");
                sent
            })
            .await;
            println!("{dialect}: upgrade and 5 echoes in {took:?}");
            let (echoed, _) = timed(PROMPTLY, "the echo's end", echoed.recv()).await;
            assert_eq!(echoed, Some(sent), "{dialect}");

            // Both HTTP connections handed their socket to the upgrade and
            // ended cleanly; no further request can be sent.
            let (ended, _) = joined(PROMPTLY, "the client's end", &mut client).await;
            ended.unwrap();
            let (ended, _) = joined(PROMPTLY, "the server's end", &mut server).await;
            ended.unwrap();
            assert!(sender.is_closed(), "{dialect}");
        }
    })
    .await;
}
