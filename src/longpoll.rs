//! Long-polling (feature `longpoll`): HTTP requests handed to clients that
//! cannot be dialled and cannot upgrade either, such as a browser tab.
//!
//! The server holds each client's poll open until a request arrives, then
//! answers the poll with that request; the client posts the response back.
//! Two encodings are spoken: ReverseHttp's `message/http` (the request and
//! the response as HTTP/1.1 writes them, in [`message`]) and Second Life's
//! JSON objects (in [`json`]). [`Hub`] is the server side as a hyper
//! service, for an application that holds its own clients; its
//! [`Sender`] calls them like a PTTH peer's sender does.
//!
//! ```
//! use ptth::longpoll::Hub;
//! use ptth::http_body_util::Empty;
//! use hyper::body::Bytes;
//!
//! # async fn run() -> Result<(), ptth::longpoll::Error> {
//! let hub = Hub::new();
//! // Serve `hub.clone()` under /poll/ in hyper or axum, then:
//! let mut viewers = hub.sender();
//! let request = hyper::Request::get("/status").body(Empty::<Bytes>::new()).unwrap();
//! let response = viewers.send_request(request).await?;
//! println!("a viewer answered {}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! A server that keeps many groups of clients apart, and routes their
//! polls itself, uses the part underneath [`Hub`]: one [`Exchange`] per
//! group (requests meet polls there, replies find their requests, every
//! queue and wait bounded by [`Limits`]) and the encodings in [`message`]
//! and [`json`]; `ptth-relay` keeps one per name this way.
//!
//! A long-poll round trip costs one more HTTP exchange per request than a
//! PTTH connection, and bodies cross whole (bounded by
//! [`hub::Builder::max_body`]), never streamed: prefer PTTH where the client
//! can open a connection and upgrade it.

use std::time::Duration;

mod exchange;
pub mod hub;
pub mod json;
pub mod message;

pub use exchange::{Exchange, Limits};
pub use hub::{Hub, Sender};

/// What went wrong in a long-poll exchange.
///
/// The message names the cause; the predicates sort it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] Kind);

#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("malformed {what}: {source}")]
    MalformedBecause {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("missing \"{0}\"")]
    Missing(&'static str),
    #[error("a body over the limit of {0} bytes")]
    TooLarge(usize),
    #[error("too many {0}")]
    Busy(&'static str),
    #[error("a request already waits for the reply to this poll")]
    Conflict,
    #[error("no reply within {0:?}")]
    TimedOut(Duration),
    #[error("the exchange is closed")]
    Closed,
}

impl Error {
    pub(crate) fn malformed(what: &'static str) -> Self {
        Error(Kind::Malformed(what))
    }

    pub(crate) fn malformed_because(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error(Kind::MalformedBecause {
            what,
            source: source.into(),
        })
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Error(Kind::Missing(field))
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Error(Kind::TooLarge(limit))
    }

    pub(crate) fn busy(what: &'static str) -> Self {
        Error(Kind::Busy(what))
    }

    pub(crate) fn conflict() -> Self {
        Error(Kind::Conflict)
    }

    pub(crate) fn timed_out(after: Duration) -> Self {
        Error(Kind::TimedOut(after))
    }

    pub(crate) fn closed() -> Self {
        Error(Kind::Closed)
    }

    /// Whether a message could not be read: bad `message/http`, bad JSON,
    /// or a missing field.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self.0,
            Kind::Malformed(_) | Kind::MalformedBecause { .. } | Kind::Missing(_)
        )
    }

    /// Whether a body was over its limit.
    pub fn is_too_large(&self) -> bool {
        matches!(self.0, Kind::TooLarge(_))
    }

    /// Whether a queue was full: requests waiting, or polls parked.
    pub fn is_busy(&self) -> bool {
        matches!(self.0, Kind::Busy(_))
    }

    /// Whether a poll came under a key whose request is not answered yet.
    pub fn is_conflict(&self) -> bool {
        matches!(self.0, Kind::Conflict)
    }

    /// Whether no reply came in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0, Kind::TimedOut(_))
    }

    /// Whether the exchange was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.0, Kind::Closed)
    }
}

/// 128 random bits in hex: unguessable, for keys that are capabilities.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
