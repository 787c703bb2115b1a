//! Drives the crate's public handshakes with fuzzer-made bytes.
//!
//! The peer's bytes come from an in-memory IO that hands them out in chunks
//! whose sizes the input also chooses, so the fuzzer explores every split
//! of a head as well as its content. The IO never blocks: the bytes run out
//! with an end of file, so a handshake ends with a result or an error and
//! any hang is a bug.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Empty;
use ptth::{Dialect, Error, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;

const MAX_HEAD: usize = 2048;
const MAX_BODY: usize = 512;

/// Serves `data` in chunks of 1 to 16 bytes, sized by `seed`; swallows
/// writes.
struct Script {
    data: Bytes,
    seed: u8,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.seed = self.seed.rotate_left(3) ^ 0x5a;
        let chunk = 1 + usize::from(self.seed % 16);
        let n = chunk.min(self.data.len()).min(buf.remaining());
        let chunk = self.data.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
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

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

/// The initiator reads `data` as the acceptor's answer.
pub fn answer(data: &[u8]) {
    let Some((&seed, answer)) = data.split_first() else {
        return;
    };
    let mut builder = ptth::initiator::Builder::new()
        .max_head_size(MAX_HEAD)
        .max_declined_body(MAX_BODY);
    if seed & 0x80 != 0 {
        builder = builder.dialect(Dialect::Legacy);
    } else if seed & 0x40 != 0 {
        builder = builder.alpn([Protocol::Http1]);
    }
    let io = Script {
        data: Bytes::copy_from_slice(answer),
        seed,
    };
    runtime().block_on(async {
        match builder.handshake(io).await {
            Ok(transposed) => {
                // Everything after the 101, read ahead or not, reaches the
                // server unchanged: the input's whole tail.
                let mut rest = Vec::new();
                let mut io = transposed.into_io();
                io.read_to_end(&mut rest).await.expect("in-memory reads");
                assert!(answer.ends_with(&rest));
                assert!(rest.len() < answer.len());
            }
            Err(Error::Declined(declined)) => assert!(declined.body.len() <= MAX_BODY),
            Err(_) => {}
        }
    });
}

/// The acceptor reads `data` as the initiator's upgrade request, then
/// answers it.
pub fn request(data: &[u8]) {
    let Some((&seed, request)) = data.split_first() else {
        return;
    };
    let mut builder = ptth::acceptor::Builder::new()
        .max_head_size(MAX_HEAD)
        .max_body_size(MAX_BODY);
    if seed & 0x80 != 0 {
        builder = builder.legacy(false);
    }
    if seed & 0x40 != 0 {
        builder = builder.protocols([Protocol::Http1]);
    }
    let io = Script {
        data: Bytes::copy_from_slice(request),
        seed,
    };
    runtime().block_on(async {
        let Ok(offer) = builder.read_request(io).await else {
            return;
        };
        assert!(offer.request().body().len() <= MAX_BODY);
        if seed & 0x20 != 0 {
            let _ = offer.reject(ptth_response()).await;
        } else {
            let _ = offer.accept::<Empty<Bytes>>().await;
        }
    });
}

fn ptth_response() -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from_static(b"no"));
    *response.status_mut() = http::StatusCode::FORBIDDEN;
    response
}
