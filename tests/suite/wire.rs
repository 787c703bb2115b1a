//! Each side of this crate against raw bytes written the way real peers
//! write them: AirPlay senders, media-center receivers, relays that add
//! headers or answer `100 Continue` first.

use crate::support;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::support::{listener, read_head, read_to_close, within};
use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use ptth::acceptor::Offer;
use ptth::{Dialect, Error, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

type Handshake = Result<(Protocol, HeaderMap), Error>;

/// Tells whether an error is the one a case expects.
type Expect = fn(&Error) -> bool;

/// Hands the first read at most `limit` bytes, so the handshake sees the
/// answer split at that offset however TCP delivers it.
struct FirstReadLimit<T> {
    inner: T,
    limit: Option<usize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstReadLimit<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(limit) = self.limit else {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        };
        let mut small = vec![0u8; limit.min(buf.remaining())];
        let mut small_buf = ReadBuf::new(&mut small);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut small_buf);
        if let Poll::Ready(Ok(())) = polled {
            buf.put_slice(small_buf.filled());
            self.limit = None;
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstReadLimit<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers `/event` the way an AirPlay sender must (`200`, empty body) and
/// everything else with the echo service.
async fn receiver_service(
    req: Request<Incoming>,
) -> Result<Response<Either<support::echo::EchoBody, Empty<Bytes>>>, std::convert::Infallible> {
    if req.uri().path() == "/event" {
        let mut response = Response::new(Either::Right(Empty::new()));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, "0".parse().unwrap());
        return Ok(response);
    }
    Ok(support::echo(req).await?.map(Either::Left))
}

/// Our initiator, with a raw acceptor on the other end that reads the
/// upgrade request and answers with `answer` in one write. After a
/// successful handshake the initiator serves [`receiver_service`].
async fn initiator_against(
    builder: ptth::initiator::Builder,
    answer: &'static [u8],
    first_read: Option<usize>,
) -> (Handshake, String, TcpStream) {
    let (listener, addr) = listener().await;
    let (done, handshake) = oneshot::channel::<Handshake>();
    tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let io = FirstReadLimit {
            inner: tcp,
            limit: first_read,
        };
        match builder.handshake(io).await {
            Ok(transposed) => {
                let _ = done.send(Ok((transposed.protocol(), transposed.headers().clone())));
                transposed.serve(service_fn(receiver_service)).await
            }
            Err(error) => {
                let _ = done.send(Err(error));
                Ok(())
            }
        }
    });
    let (mut raw, _) = listener.accept().await.unwrap();
    let request = read_head(&mut raw).await;
    raw.write_all(answer).await.unwrap();
    (handshake.await.unwrap(), request, raw)
}

fn legacy() -> ptth::initiator::Builder {
    ptth::initiator::Builder::new().dialect(Dialect::Legacy)
}

const LEGACY_101_AND_REQUEST: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\nGET /first HTTP/1.1\r\nHost:\r\n\r\n";

#[tokio::test]
async fn first_request_in_the_same_write_as_the_101_is_served() {
    within(async {
        let (handshake, request, mut raw) =
            initiator_against(legacy(), LEGACY_101_AND_REQUEST, None).await;
        assert_eq!(handshake.unwrap().0, Protocol::Http1);
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    })
    .await;
}

#[tokio::test]
async fn answer_split_at_every_byte_offset_loses_nothing() {
    within(async {
        for split in 1..LEGACY_101_AND_REQUEST.len() {
            let (handshake, _, mut raw) =
                initiator_against(legacy(), LEGACY_101_AND_REQUEST, Some(split)).await;
            assert!(handshake.is_ok(), "split at {split}: {handshake:?}");
            raw.write_all(b"GET /second HTTP/1.1\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let answers = read_to_close(&mut raw).await;
            assert!(
                answers.contains("GET /first\n"),
                "split at {split}: {answers}"
            );
            assert!(
                answers.contains("GET /second\n"),
                "split at {split}: {answers}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn h2_preface_in_the_same_write_as_the_101_is_served() {
    within(async {
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let transposed = ptth::initiator::Builder::new().handshake(tcp).await?;
            assert_eq!(transposed.protocol(), Protocol::Http2);
            transposed.serve(service_fn(support::echo)).await
        });
        let (mut raw, _) = listener.accept().await.unwrap();
        let request = read_head(&mut raw).await;
        assert!(request.contains("ALPN: h2, http%2F1.1\r\n"), "{request}");
        // The 101 waits in the buffer; hyper's preface and first frames join
        // it, and everything leaves in one write.
        let mut io = tokio::io::BufWriter::new(raw);
        io.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n")
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(io),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let response = sender
            .send_request(support::request("PUT", "/h2", "body"))
            .await
            .unwrap();
        let (status, body) = support::collect(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "PUT /h2\nbody");
        drop(sender);
        initiator.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test]
async fn media_center_receiver_bare_lf_101_then_hostless_event() {
    within(async {
        let answer = b"HTTP/1.1 101 Switching Protocols\nUpgrade: PTTH/1.0\nConnection: Upgrade\nContent-Length: 0\n\nPOST /event HTTP/1.1\r\ncontent-type: text/x-apple-plist+xml\r\ncontent-length: 8\r\nx-apple-session-id: 1\r\n\r\n<plist/>";
        let builder = legacy()
            .uri("/reverse")
            .header("x-apple-purpose".parse().unwrap(), "event".parse().unwrap());
        let (handshake, request, mut raw) = initiator_against(builder, answer, None).await;
        let (protocol, headers) = handshake.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(headers[CONTENT_LENGTH], "0");
        assert!(request.starts_with("POST /reverse HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("x-apple-purpose: event\r\n"), "{request}");
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-length: 0\r\n"), "{head}");
    })
    .await;
}

#[tokio::test]
async fn receiver_with_connection_first_then_hls_events() {
    within(async {
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: PTTH/1.0\r\n\r\nPOST /event HTTP/1.1\r\nContent-Type: text/x-apple-plist+xml\r\nContent-Length: 8\r\n\r\n<plist/>POST /event HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        let (handshake, _, mut raw) = initiator_against(legacy(), answer, None).await;
        assert!(handshake.is_ok(), "{handshake:?}");
        for _ in 0..2 {
            let head = read_head(&mut raw).await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        }
    })
    .await;
}

#[tokio::test]
async fn informational_answers_before_the_101_are_skipped() {
    within(async {
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: http%2F1.1\r\n\r\nGET /after-continue HTTP/1.1\r\nHost:\r\n\r\n";
        let (handshake, _, mut raw) =
            initiator_against(ptth::initiator::Builder::new(), answer, None).await;
        assert_eq!(handshake.unwrap().0, Protocol::Http1);
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    })
    .await;
}

#[tokio::test]
async fn a_101_with_extra_headers_is_accepted_and_its_length_ignored() {
    within(async {
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nDate: Sun, 22 Nov 2026 12:00:00 GMT\r\nServer: relay/1.0\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nconnection: Keep-Alive, UPGRADE\r\nupgrade: PTTH\r\nalpn: http%2F1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
        let (handshake, _, mut raw) =
            initiator_against(ptth::initiator::Builder::new(), answer, None).await;
        let (protocol, headers) = handshake.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(headers[CONTENT_TYPE], "text/plain");
        assert_eq!(headers["server"], "relay/1.0");
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    })
    .await;
}

async fn declined(answer: &'static [u8]) -> ptth::Declined {
    let (handshake, _, _raw) =
        initiator_against(ptth::initiator::Builder::new(), answer, None).await;
    match handshake {
        Err(Error::Declined(declined)) => *declined,
        other => panic!("expected Declined, got {other:?}"),
    }
}

#[tokio::test]
async fn non_101_answers_are_declined_with_status_headers_and_body() {
    within(async {
        let d = declined(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 6\r\n\r\ndenied").await;
        assert_eq!(d.status, StatusCode::UNAUTHORIZED);
        assert_eq!(d.headers["www-authenticate"], "Basic");
        assert_eq!(d.body, "denied");

        let d = declined(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n").await;
        assert_eq!(d.status, StatusCode::FORBIDDEN);
        assert_eq!(d.body, "no!");

        let d = declined(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://other.example/r\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(d.headers["location"], "http://other.example/r");

        let d = declined(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(d.status, StatusCode::NO_CONTENT);
        assert!(d.body.is_empty());
    })
    .await;
}

#[tokio::test]
async fn declined_body_without_framing_is_read_to_close_and_bounded() {
    within(async {
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            ptth::initiator::Builder::new()
                .max_declined_body(10)
                .handshake(tcp)
                .await
        });
        let (mut raw, _) = listener.accept().await.unwrap();
        read_head(&mut raw).await;
        raw.write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n\r\nslow down, you are sending too much")
            .await
            .unwrap();
        let error = initiator.await.unwrap().unwrap_err();
        let d = error.declined().unwrap();
        assert_eq!(d.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(d.headers["retry-after"], "5");
        assert_eq!(d.body, "slow down,");
    })
    .await;
}

#[tokio::test]
async fn bad_101s_are_typed_errors() {
    within(async {
        let cases: [(&'static [u8], Expect); 5] = [
            (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\n\r\n",
                |e| matches!(e, Error::MissingAlpn),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h3\r\n\r\n",
                |e| matches!(e, Error::NoCommonProtocol { offered } if offered == &["h3"]),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                |e| matches!(e, Error::UnsupportedProtocol { offered } if offered == "websocket"),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: PTTH/1.0\r\n\r\n",
                |e| matches!(e, Error::UnsupportedProtocol { .. }),
            ),
            (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", |e| matches!(e, Error::Malformed(_))),
        ];
        for (answer, expected) in cases {
            let (handshake, _, raw) =
                initiator_against(ptth::initiator::Builder::new(), answer, None).await;
            drop(raw);
            let error = handshake.unwrap_err();
            assert!(expected(&error), "{:?}: {error:?}", String::from_utf8_lossy(answer));
        }
    })
    .await;
}

#[tokio::test]
async fn acceptor_closing_inside_the_101_is_reported_as_closed() {
    within(async {
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            legacy().handshake(tcp).await
        });
        let (mut raw, _) = listener.accept().await.unwrap();
        read_head(&mut raw).await;
        raw.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\n")
            .await
            .unwrap();
        drop(raw);
        let error = initiator.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Closed), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn an_h2_choice_the_initiator_did_not_offer_is_refused() {
    within(async {
        let builder = ptth::initiator::Builder::new().protocols([Protocol::Http1]);
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n";
        let (handshake, request, _raw) = initiator_against(builder, answer, None).await;
        assert!(request.contains("ALPN: http%2F1.1\r\n"), "{request}");
        assert!(matches!(handshake, Err(Error::NoCommonProtocol { .. })), "{handshake:?}");
    })
    .await;
}

#[tokio::test]
async fn oversized_answer_head_is_refused_within_the_bound() {
    within(async {
        let builder = ptth::initiator::Builder::new().max_head_size(256);
        let mut answer = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ".to_vec();
        answer.resize(64 * 1024, b'a');
        let (handshake, _, _raw) = initiator_against(builder, answer.leak(), None).await;
        assert!(
            matches!(handshake, Err(Error::HeadTooLarge { limit: 256 })),
            "{handshake:?}"
        );
    })
    .await;
}

// ---- the acceptor against raw initiators ----

async fn acceptor_against(
    builder: &ptth::acceptor::Builder,
    request: &[u8],
) -> (Result<Offer<TcpStream>, Error>, TcpStream) {
    let (listener, addr) = listener().await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(request).await.unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    (builder.read_request_from(tcp, peer).await, raw)
}

const AIRPLAY: &[u8] = b"POST /reverse HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nX-Apple-Purpose: event\r\nContent-Length: 0\r\nUser-Agent: MediaControl/1.0\r\nX-Apple-Session-ID: 1bd6ceeb-fffd-456c-a09c-996053a7a08c\r\n\r\n";

#[tokio::test]
async fn airplay_sender_without_host_is_accepted_and_called_back() {
    within(async {
        let (offer, mut raw) = acceptor_against(&ptth::acceptor::Builder::new(), AIRPLAY).await;
        let offer = offer.unwrap();
        assert_eq!(offer.dialect(), Dialect::Legacy);
        assert_eq!(offer.protocol(), Protocol::Http1);
        assert_eq!(offer.request().method(), Method::POST);
        assert_eq!(offer.request().uri(), "/reverse");
        assert_eq!(offer.request().headers()["x-apple-purpose"], "event");
        assert!(offer.peer_addr().is_some());
        let (mut sender, connection) = offer.accept::<Full<Bytes>>().await.unwrap();
        tokio::spawn(connection);

        let switching = read_head(&mut raw).await;
        assert_eq!(
            switching,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n"
        );
        let mut event = support::request("POST", "/event", "<plist/>");
        event
            .headers_mut()
            .insert(CONTENT_TYPE, "text/x-apple-plist+xml".parse().unwrap());
        let answer = tokio::spawn(async move { sender.send_request(event).await });
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("POST /event HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("\r\nhost: \r\n"),
            "empty Host: {head}"
        );
        let mut body = [0u8; 8];
        raw.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"<plist/>");
        // A Ruby-style peer: bare LF and reason always "OK".
        raw.write_all(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n")
            .await
            .unwrap();
        let response = answer.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn current_dialect_request_gets_the_canonical_101_with_h2() {
    within(async {
        let request = b"GET /reverse-endpoint HTTP/1.1\r\nHost: example.com\r\nConnection: upgrade\r\nUpgrade: ptth\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nALPN: h2, http%2F1.1\r\n\r\n";
        let (offer, mut raw) = acceptor_against(&ptth::acceptor::Builder::new(), request).await;
        let offer = offer.unwrap();
        assert_eq!(offer.dialect(), Dialect::Current);
        assert_eq!(offer.protocol(), Protocol::Http2);
        assert_eq!(offer.offered_protocols(), ["h2", "http/1.1"]);
        assert_eq!(
            offer.request().headers()["authorization"],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let (_sender, connection) = offer.accept::<Full<Bytes>>().await.unwrap();
        tokio::spawn(connection);
        let switching = read_head(&mut raw).await;
        assert_eq!(
            switching,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n"
        );
        let mut preface = [0u8; 24];
        raw.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    })
    .await;
}

#[tokio::test]
async fn header_names_and_tokens_compare_case_insensitively() {
    within(async {
        let request = b"POST /sl HTTP/1.1\nhOsT: sim.example\nuPgRaDe: ptth/1.0\nCONNECTION: keep-alive, Upgrade\ncontent-length: 0\n\n";
        let (offer, _raw) = acceptor_against(&ptth::acceptor::Builder::new(), request).await;
        assert_eq!(offer.unwrap().dialect(), Dialect::Legacy);
    })
    .await;
}

#[tokio::test]
async fn expect_continue_is_honoured_and_the_body_read_whole() {
    within(async {
        let (listener, addr) = listener().await;
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"POST /mq HTTP/1.1\r\nHost: r\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let reading =
            tokio::spawn(async move { ptth::acceptor::Builder::new().read_request(tcp).await });
        assert_eq!(read_head(&mut raw).await, "HTTP/1.1 100 Continue\r\n\r\n");
        raw.write_all(b"credentials").await.unwrap();
        let offer = reading.await.unwrap().unwrap();
        assert_eq!(offer.request().body(), "credentials");
    })
    .await;
}

#[tokio::test]
async fn chunked_upgrade_body_is_decoded() {
    within(async {
        let request = b"POST /mq HTTP/1.1\r\nHost: r\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (offer, _raw) = acceptor_against(&ptth::acceptor::Builder::new(), request).await;
        assert_eq!(offer.unwrap().request().body(), "hello world");
    })
    .await;
}

#[tokio::test]
async fn requests_that_cannot_be_upgraded_are_refused_with_a_status() {
    within(async {
        let cases: [(&[u8], &str, Expect); 9] = [
            (
                b"POST /r HTTP/1.0\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n",
                "426",
                |e| matches!(e, Error::NotUpgrade(_)),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "426",
                |e| matches!(e, Error::NotUpgrade(_)),
            ),
            (
                b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                "426",
                |e| matches!(e, Error::UnsupportedProtocol { offered } if offered == "websocket"),
            ),
            (
                b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: keep-alive\r\n\r\n",
                "426",
                |e| matches!(e, Error::MissingConnectionUpgrade),
            ),
            (
                b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: ptth\r\nConnection: upgrade\r\n\r\n",
                "400",
                |e| matches!(e, Error::MissingAlpn),
            ),
            (
                b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: ptth\r\nConnection: upgrade\r\nALPN: h3, spdy%2F3\r\n\r\n",
                "426",
                |e| matches!(e, Error::NoCommonProtocol { offered } if offered == &["h3", "spdy/3"]),
            ),
            (
                b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "400",
                |e| matches!(e, Error::Malformed(_)),
            ),
            (
                b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 100000\r\n\r\n",
                "413",
                |e| matches!(e, Error::BodyTooLarge { .. }),
            ),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400", |e| {
                matches!(e, Error::Malformed(_))
            }),
        ];
        for (request, status, expected) in cases {
            let (offer, mut raw) =
                acceptor_against(&ptth::acceptor::Builder::new(), request).await;
            let error = offer.unwrap_err();
            let shown = String::from_utf8_lossy(request);
            assert!(expected(&error), "{shown}: {error:?}");
            let answer = read_to_close(&mut raw).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{shown}: {answer}"
            );
            assert!(answer.contains("connection: close\r\n"), "{answer}");
        }
    })
    .await;
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    within(async {
        let builder = ptth::acceptor::Builder::new().max_head_size(1024);
        let mut request = b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nX-Long: ".to_vec();
        request.resize(4096, b'a');
        let (offer, mut raw) = acceptor_against(&builder, &request).await;
        assert!(
            matches!(offer, Err(Error::HeadTooLarge { limit: 1024 })),
            "{offer:?}"
        );
        let answer = read_to_close(&mut raw).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    })
    .await;
}

#[tokio::test]
async fn disabled_dialect_and_preferred_protocol_are_honoured() {
    within(async {
        let builder = ptth::acceptor::Builder::new().dialects([Dialect::Current]).protocols([Protocol::Http1]);
        let (offer, _raw) = acceptor_against(&builder, AIRPLAY).await;
        assert!(matches!(offer, Err(Error::UnsupportedProtocol { .. })), "{offer:?}");
        let request = b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: ptth\r\nConnection: upgrade\r\nALPN: h2, http%2F1.1\r\n\r\n";
        let (offer, _raw) = acceptor_against(&builder, request).await;
        assert_eq!(offer.unwrap().protocol(), Protocol::Http1);
    })
    .await;
}
