//! Drives the crate's public handshakes with fuzzer-made bytes.
//!
//! The peer's bytes come from an in-memory IO that hands them out in chunks
//! whose sizes the input also chooses, so the fuzzer explores every split
//! of a head as well as its content. When the bytes run out the IO either
//! ends the file or goes silent; time is paused, so a silent peer meets the
//! handshake's time bound at once, and any hang is a bug.
//!
//! Each target checks its result against [`model`], which decides from the
//! protocol's rules alone what must come of the bytes.
//!
//! The long-poll targets, for the formats clients that cannot upgrade
//! speak to the relay, are in [`longpoll`]; they parse whole messages, so
//! they need no IO.
//!
//! The relay's routing of public requests, a pure function of the request
//! head, is driven by [`routing`].

pub mod longpoll;
pub mod model;
pub mod routing;

pub use longpoll::{longpoll_form, message_http, sl_json};
pub use routing::route;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Empty;
use ptth::{Dialect, Error, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;

const MAX_HEAD: usize = 2048;
const MAX_BODY: usize = 512;

/// What the IO does once the script's bytes are out.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// End of file: the peer closed.
    Eof,
    /// Nothing, for ever: the peer waits for an answer.
    Silence,
}

/// Serves `data` in chunks of 1 to 16 bytes, sized by `seed`, then `then`;
/// keeps what is written to it.
struct Script {
    data: Bytes,
    seed: u8,
    then: Then,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Script {
    fn new(data: &[u8], seed: u8, then: Then) -> Self {
        Script {
            data: Bytes::copy_from_slice(data),
            seed,
            then,
            written: Arc::default(),
        }
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.data.is_empty() && self.then == Then::Silence {
            return Poll::Pending;
        }
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
        self.written.lock().unwrap().extend_from_slice(buf);
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
            .start_paused(true)
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
        builder = builder.protocols([Protocol::Http1]);
    }
    let io = Script::new(answer, seed, Then::Eof);
    runtime().block_on(async {
        match builder.handshake(io).await {
            Ok(transposed) => {
                // Exactly the bytes after the 101's head reach the server,
                // whether the handshake read them ahead or not.
                let start = model::after_101(answer).expect("a 101 the model finds too");
                let mut rest = Vec::new();
                let mut io = transposed.into_io();
                io.read_to_end(&mut rest).await.expect("in-memory reads");
                assert_eq!(rest, &answer[start..]);
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
        builder = builder.dialects([Dialect::Current]);
    }
    if seed & 0x40 != 0 {
        builder = builder.protocols([Protocol::Http1]);
    }
    let settings = model::Settings {
        legacy: seed & 0x80 == 0,
        h2: seed & 0x40 == 0,
        max_head: MAX_HEAD,
        max_headers: 64,
        max_body: MAX_BODY,
    };
    let expected = model::acceptor(request, settings);
    let io = Script::new(request, seed, Then::Silence);
    let written = Arc::clone(&io.written);
    let reject = seed & 0x20 != 0;
    let switched = runtime().block_on(async {
        let offer = builder.read_request(io).await.ok()?;
        assert!(offer.request().body().len() <= MAX_BODY);
        if reject {
            offer
                .reject(ptth_response())
                .await
                .expect("a refusal is written");
            return None;
        }
        Some(offer.accept::<Empty<Bytes>>().await.is_ok())
    });
    let written = written.lock().unwrap();
    let first = match expected {
        model::Expected::Unknown => return,
        model::Expected::Nothing => {
            assert!(
                written.is_empty(),
                "{:?}",
                String::from_utf8_lossy(&written)
            );
            return;
        }
        model::Expected::Switch if reject => "HTTP/1.1 403 ".to_owned(),
        model::Expected::Switch => {
            assert_eq!(switched, Some(true), "a valid request is switched");
            "HTTP/1.1 101 ".to_owned()
        }
        model::Expected::Status(status) => format!("HTTP/1.1 {status} "),
        model::Expected::EarlyData if reject && written.starts_with(b"HTTP/1.1 403 ") => return,
        model::Expected::EarlyData => "HTTP/1.1 400 ".to_owned(),
    };
    assert!(
        written.starts_with(first.as_bytes()),
        "expected {first:?}, wrote {:?}",
        String::from_utf8_lossy(&written)
    );
}

fn ptth_response() -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from_static(b"no"));
    *response.status_mut() = http::StatusCode::FORBIDDEN;
    response
}

#[cfg(test)]
mod seeds {
    use std::path::Path;

    /// Every committed seed passes its target, models and all, so a fuzz
    /// run starts from a corpus the oracles agree with.
    #[test]
    fn every_seed_meets_the_models() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for (target, run) in [
            ("answer", super::answer as fn(&[u8])),
            ("request", super::request),
            ("longpoll_form", super::longpoll_form),
            ("message_http", super::message_http),
            ("sl_json", super::sl_json),
            ("route", super::route),
        ] {
            let mut count = 0;
            for entry in std::fs::read_dir(seeds.join(target)).unwrap() {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                run(&data);
                count += 1;
            }
            assert!(count > 0, "no seeds for {target}");
        }
    }
}
