//! Both sides from this crate over loopback TCP: every dialect and protocol,
//! concurrency, rejection, graceful shutdown and time bounds.

use crate::support;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{collect, exchange, listener, pair, request, within};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use ptth::{Dialect, Error, Protocol};
use tokio::io::{AsyncWriteExt, duplex};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

const COMBINATIONS: [(Dialect, Protocol); 3] = [
    (Dialect::Legacy, Protocol::Http1),
    (Dialect::Current, Protocol::Http1),
    (Dialect::Current, Protocol::Http2),
];

#[tokio::test]
async fn every_dialect_and_protocol_carries_several_requests() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let mut pair = pair(dialect, protocol).await;
            for i in 0..5 {
                let (status, body) = exchange(
                    &mut pair.sender,
                    request("GET", &format!("/hello?i={i}"), ""),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body, format!("GET /hello?i={i}\n"));
                let (status, body) =
                    exchange(&mut pair.sender, request("POST", "/echo", "ping")).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body, "POST /echo\nping", "{dialect} {protocol}");
            }
            // Dropping the sender closes the connection; both sides end cleanly.
            drop(pair.sender);
            pair.client.await.unwrap().unwrap();
            pair.server.await.unwrap().unwrap();
        }
    })
    .await;
}

/// 100 requests at once from clones of one sender, without `ready()`:
/// concurrent streams on h2, queued in turn on the one h1 connection.
#[tokio::test]
async fn cloned_senders_carry_100_concurrent_requests_each_matched_to_its_response() {
    within(async {
        for protocol in [Protocol::Http2, Protocol::Http1] {
            let pair = pair(Dialect::Current, protocol).await;
            let mut tasks = Vec::new();
            for i in 0..100 {
                let mut sender = pair.sender.clone();
                assert_eq!(sender.id(), pair.sender.id());
                tasks.push(tokio::spawn(async move {
                    let request = request("POST", &format!("/n/{i}"), &i.to_string());
                    let (status, body) = exchange(&mut sender, request).await;
                    assert_eq!(status, StatusCode::OK);
                    assert_eq!(body, format!("POST /n/{i}\n{i}"), "{protocol}");
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    })
    .await;
}

/// Two requests sent back to back on HTTP/1.1 without `ready()`: the second
/// waits for the first instead of failing with "connection was not ready".
#[tokio::test]
async fn h1_requests_sent_back_to_back_wait_their_turn() {
    within(async {
        let mut pair = pair(Dialect::Current, Protocol::Http1).await;
        let first = pair.sender.send_request(request("GET", "/first", ""));
        let second = pair.sender.send_request(request("GET", "/second", ""));
        // The next request goes out once the response before it has been
        // read to its end, so each body is read as its response arrives.
        let (first, second) = tokio::join!(async { collect(first.await.unwrap()).await }, async {
            collect(second.await.unwrap()).await
        },);
        assert_eq!(first.1, "GET /first\n");
        assert_eq!(second.1, "GET /second\n");
    })
    .await;
}

/// `closed()` resolves when the connection ends, and each connection has
/// its own id, so a registry can tell an old entry from its replacement.
#[tokio::test]
async fn closed_resolves_when_the_initiator_goes_away() {
    within(async {
        for protocol in [Protocol::Http2, Protocol::Http1] {
            let first = pair(Dialect::Current, protocol).await;
            let second = pair(Dialect::Current, protocol).await;
            assert_ne!(first.sender.id(), second.sender.id());
            let closed = first.sender.closed();
            assert!(!first.sender.is_closed());
            first.server.abort();
            closed.await;
            assert!(first.sender.is_closed(), "{protocol}");
            assert!(!second.sender.is_closed(), "{protocol}");
        }
    })
    .await;
}

#[tokio::test]
async fn rejection_reaches_the_initiator_as_declined() {
    within(async {
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            ptth::initiator::Builder::new().handshake(tcp).await
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let offer = ptth::acceptor::Builder::new()
            .read_request(tcp)
            .await
            .unwrap();
        let mut response = Response::new(Bytes::from_static(b"who are you?"));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ptth\""),
        );
        let _io = offer.reject(response).await.unwrap();
        let error = initiator.await.unwrap().unwrap_err();
        let declined = error.declined().expect("a declined error");
        assert_eq!(declined.status, StatusCode::UNAUTHORIZED);
        assert_eq!(declined.body, "who are you?");
        assert_eq!(declined.headers[WWW_AUTHENTICATE], "Basic realm=\"ptth\"");
        assert_eq!(
            error.to_string(),
            "the peer refused the credentials (401 Unauthorized): who are you?"
        );
    })
    .await;
}

#[tokio::test]
async fn rejected_connection_still_carries_an_ordinary_request() {
    within(async {
        let (listener, addr) = listener().await;
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(
            b"GET /reverse HTTP/1.1\r\nHost: relay\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n",
        )
        .await
        .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let offer = ptth::acceptor::Builder::new().read_request(tcp).await.unwrap();
        let mut response = Response::new(Bytes::from_static(b"no such endpoint"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let io = offer.reject(response).await.unwrap();
        let served = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(io), service_fn(support::echo)),
        );

        let head = support::read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("Content-Length: 16\r\n"), "{head}");
        let mut body = [0u8; 16];
        tokio::io::AsyncReadExt::read_exact(&mut raw, &mut body).await.unwrap();
        assert_eq!(&body, b"no such endpoint");

        raw.write_all(b"GET /plain HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = support::read_to_close(&mut raw).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("GET /plain\n"), "{answer}");
        served.await.unwrap().unwrap();
    })
    .await;
}

/// A service that reports each request's arrival, then holds the response
/// until released.
fn held_service(
    arrived: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: Request<Incoming>| {
        let arrived = arrived.clone();
        let release = release.clone();
        async move {
            arrived.send(()).unwrap();
            release.notified().await;
            Ok(Response::new(Full::new(Bytes::from(
                req.uri().path().to_owned(),
            ))))
        }
    })
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    within(async {
        for (dialect, protocol) in COMBINATIONS {
            let (listener, addr) = listener().await;
            let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
            let release = Arc::new(Notify::new());
            let (shutdown_tx, shutdown) = tokio::sync::oneshot::channel::<()>();
            let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
            let service = held_service(arrived_tx, release.clone());
            let server = tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await?;
                let transposed = ptth::initiator::Builder::new()
                    .dialect(dialect)
                    .protocols([protocol])
                    .handshake(tcp)
                    .await?;
                let mut connection = transposed.serve(service);
                tokio::select! {
                    result = &mut connection => return result,
                    _ = shutdown => connection.graceful_shutdown(),
                }
                started_tx.send(()).unwrap();
                connection.await
            });
            let (tcp, _) = listener.accept().await.unwrap();
            let offer = ptth::acceptor::Builder::new()
                .read_request(tcp)
                .await
                .unwrap();
            let (mut sender, connection) = offer.accept::<Full<Bytes>>().await.unwrap();
            let client = tokio::spawn(connection);

            sender.ready().await.unwrap();
            let in_flight = sender.send_request(request("GET", "/slow", ""));
            let in_flight = tokio::spawn(in_flight);
            arrived.recv().await.unwrap();
            shutdown_tx.send(()).unwrap();
            // The response is released only once the shutdown has begun.
            started.await.unwrap();
            release.notify_one();

            let response = in_flight.await.unwrap().unwrap();
            let (status, body) = support::collect(response).await;
            assert_eq!(status, StatusCode::OK, "{dialect} {protocol}");
            assert_eq!(body, "/slow");
            server.await.unwrap().unwrap();
            // The server side is gone: new requests fail rather than hang.
            let ended = client.await.unwrap();
            assert!(
                ended
                    .as_ref()
                    .map_or_else(ptth::Error::is_closed, |()| true),
                "{dialect} {protocol}: {ended:?}"
            );
            let refused = sender.send_request(request("GET", "/late", "")).await;
            let refused = refused.expect_err("the connection is gone");
            assert!(refused.is_closed(), "{dialect} {protocol}: {refused:?}");
            assert!(sender.is_closed());
        }
    })
    .await;
}

#[tokio::test]
async fn silent_acceptor_times_out_the_initiator() {
    within(async {
        let (listener, addr) = listener().await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (_held, _) = listener.accept().await.unwrap();
        let error = ptth::initiator::Builder::new()
            .timeout(Duration::from_millis(100))
            .handshake(tcp)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::TimedOut(d) if d == Duration::from_millis(100)));
    })
    .await;
}

#[tokio::test]
async fn silent_initiator_times_out_the_acceptor() {
    within(async {
        let (listener, addr) = listener().await;
        let _held = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let error = ptth::acceptor::Builder::new()
            .timeout(Duration::from_millis(100))
            .read_request(tcp)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::TimedOut(_)), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn closed_before_the_answer_is_reported_as_closed() {
    within(async {
        let (listener, addr) = listener().await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        drop(listener.accept().await.unwrap());
        let error = ptth::initiator::Builder::new()
            .handshake(tcp)
            .await
            .unwrap_err();
        // A close gives `Closed`; a reset (the write raced the close) an
        // I/O error of a peer gone away.
        assert!(error.is_closed(), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn bytes_sent_before_the_101_are_refused() {
    within(async {
        // Sent together with the request: seen while reading it.
        let (mut near, far) = duplex(4096);
        near.write_all(
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
        let error = ptth::acceptor::Builder::new().read_request(far).await.unwrap_err();
        assert!(matches!(error, Error::EarlyData), "{error:?}");
        let answer = support::read_to_close(&mut near).await;
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");

        // Sent while the application was deciding: seen before the 101.
        let (mut near, far) = duplex(4096);
        near.write_all(
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        let offer = ptth::acceptor::Builder::new().read_request(far).await.unwrap();
        near.write_all(b"x").await.unwrap();
        let error = offer.accept::<Full<Bytes>>().await.unwrap_err();
        assert!(matches!(error, Error::EarlyData), "{error:?}");
        let answer = support::read_to_close(&mut near).await;
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert!(!answer.contains("101 Switching"), "{answer}");
    })
    .await;
}
