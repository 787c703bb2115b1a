//! Hostile and broken peers during the handshake: each one gets a typed
//! error within the configured bound (and, on the acceptor, an answer where
//! one can still be written), and none of them holds up anyone else.

use crate::support;
use std::time::{Duration, Instant};

use crate::support::{listener, read_to_close, within};
use ptth::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The handshake time bound in the slowloris tests: long enough that a
/// loaded machine meets it, far below the 30 s default it must replace.
const BOUND: Duration = Duration::from_secs(1);
/// The slowloris peers' pace: their head would take several bounds.
const TRICKLE: Duration = Duration::from_millis(50);

/// Writes `bytes` one at a time, `gap` apart, ignoring a peer that has
/// stopped listening.
async fn trickle(mut stream: TcpStream, bytes: &'static [u8], gap: Duration) -> TcpStream {
    let mut ticks = tokio::time::interval(gap);
    for byte in bytes {
        ticks.tick().await;
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
    }
    stream
}

/// Writes `line` forever (until the peer closes), as an endless header.
async fn flood(mut stream: TcpStream, prefix: &'static [u8], line: &'static [u8]) {
    if stream.write_all(prefix).await.is_err() {
        return;
    }
    while stream.write_all(line).await.is_ok() {}
}

async fn accept_one(listener: &TcpListener, builder: &ptth::acceptor::Builder) -> Error {
    let (tcp, _) = listener.accept().await.unwrap();
    builder.read_request(tcp).await.unwrap_err()
}

#[tokio::test]
async fn slowloris_request_times_out_within_the_bound() {
    within(async {
        let (listener, addr) = listener().await;
        let raw = TcpStream::connect(addr).await.unwrap();
        let slow = tokio::spawn(trickle(
            raw,
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n",
            TRICKLE,
        ));
        let builder = ptth::acceptor::Builder::new().timeout(BOUND);
        let started = Instant::now();
        let error = accept_one(&listener, &builder).await;
        let took = started.elapsed();
        assert!(
            matches!(error, Error::TimedOut(d) if d == BOUND),
            "{error:?}"
        );
        assert!(took >= BOUND && took < BOUND * 3, "took {took:?}");
        slow.abort();
    })
    .await;
}

#[tokio::test]
async fn slowloris_answer_times_out_the_initiator_within_the_bound() {
    within(async {
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let result = ptth::initiator::Builder::new()
                .timeout(BOUND)
                .handshake(tcp)
                .await;
            (result.map(|_| ()), started.elapsed())
        });
        let (mut raw, _) = listener.accept().await.unwrap();
        support::read_head(&mut raw).await;
        let slow = tokio::spawn(trickle(
            raw,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth\r\nConnection: upgrade\r\nALPN: h2\r\n\r\n",
            TRICKLE,
        ));
        let (result, took) = initiator.await.unwrap();
        assert!(matches!(result, Err(Error::TimedOut(_))), "{result:?}");
        assert!(took >= BOUND && took < BOUND * 3, "took {took:?}");
        slow.abort();
    })
    .await;
}

#[tokio::test]
async fn endless_header_and_megabyte_line_get_431() {
    within(async {
        for (prefix, line) in [
            (
                &b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\n"[..],
                &b"X-Again: and again and again\r\n"[..],
            ),
            (b"POST /r HTTP/1.1\r\nX-Long: ", &[b'a'; 1 << 20][..]),
        ] {
            let (listener, addr) = listener().await;
            let raw = TcpStream::connect(addr).await.unwrap();
            let (mut reader, mut writer) = raw.into_split();
            let flooding = tokio::spawn(async move {
                let _ = writer.write_all(prefix).await;
                while writer.write_all(line).await.is_ok() {}
            });
            let error = accept_one(&listener, &ptth::acceptor::Builder::new()).await;
            assert!(
                matches!(
                    error,
                    Error::HeadTooLarge { limit: 16384 } | Error::TooManyHeaders { .. }
                ),
                "{error:?}"
            );
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
            flooding.await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn malformed_heads_and_framing_get_400() {
    within(async {
        let cases: [&[u8]; 7] = [
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nX-\x00: nul\r\n\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nX-\xc3\xa9t\xc3\xa9: non-ascii\r\n\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: -5\r\n\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        ];
        for request in cases {
            let (listener, addr) = listener().await;
            let mut raw = TcpStream::connect(addr).await.unwrap();
            raw.write_all(request).await.unwrap();
            let error = accept_one(&listener, &ptth::acceptor::Builder::new()).await;
            let shown = String::from_utf8_lossy(request);
            assert!(matches!(error, Error::Malformed(_)), "{shown}: {error:?}");
            let answer = read_to_close(&mut raw).await;
            assert!(answer.starts_with("HTTP/1.1 400 "), "{shown}: {answer}");
        }
    })
    .await;
}

#[tokio::test]
async fn too_many_headers_get_431() {
    within(async {
        let builder = ptth::acceptor::Builder::new().max_headers(8);
        let mut request =
            b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n".to_vec();
        for i in 0..8 {
            request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        let (listener, addr) = listener().await;
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&request).await.unwrap();
        let error = accept_one(&listener, &builder).await;
        assert!(
            matches!(error, Error::TooManyHeaders { limit: 8 }),
            "{error:?}"
        );
        let answer = read_to_close(&mut raw).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    })
    .await;
}

#[tokio::test]
async fn endless_chunked_upgrade_body_gets_413() {
    within(async {
        let (listener, addr) = listener().await;
        let raw = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = raw.into_split();
        let flooding = tokio::spawn(async move {
            let _ = writer
                .write_all(b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            while writer.write_all(b"400\r\n").await.is_ok()
                && writer.write_all(&[b'x'; 0x400]).await.is_ok()
                && writer.write_all(b"\r\n").await.is_ok()
            {}
        });
        // The documented default limit, 64 KiB.
        let builder = ptth::acceptor::Builder::new();
        let error = accept_one(&listener, &builder).await;
        assert!(matches!(error, Error::BodyTooLarge { limit: 65536 }), "{error:?}");
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        assert!(answer.starts_with(b"HTTP/1.1 413 "), "{}", String::from_utf8_lossy(&answer));
        flooding.await.unwrap();
    })
    .await;
}

/// A server built the way the acceptor example is: one task per connection.
/// Hostile peers hold their own task and nothing else.
#[tokio::test]
async fn a_failed_or_stalled_handshake_does_not_affect_other_connections() {
    within(async {
        let (listener, addr) = listener().await;
        let (upgraded_tx, mut upgraded) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let acceptor = std::sync::Arc::new(ptth::acceptor::Builder::new());
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let upgraded_tx = upgraded_tx.clone();
                tokio::spawn(async move {
                    if let Ok(offer) = acceptor.read_request(tcp).await {
                        let path = offer.request().uri().path().to_owned();
                        upgraded_tx.send(path).unwrap();
                    }
                });
            }
        });

        // A silent peer, a slow one and a garbage one come first ...
        let _silent = TcpStream::connect(addr).await.unwrap();
        let slow = tokio::spawn(trickle(
            TcpStream::connect(addr).await.unwrap(),
            b"POST /slow HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n",
            Duration::from_millis(50),
        ));
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        garbage.write_all(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap();
        let flooder = tokio::spawn(flood(
            TcpStream::connect(addr).await.unwrap(),
            b"POST /flood HTTP/1.1\r\n",
            b"X-Flood: yes\r\n",
        ));

        // ... and a good one still upgrades at once.
        let mut good = TcpStream::connect(addr).await.unwrap();
        good.write_all(b"POST /good HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(upgraded.recv().await.unwrap(), "/good");
        let answer = read_to_close(&mut garbage).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        flooder.await.unwrap();
        slow.abort();
        server.abort();
    })
    .await;
}
