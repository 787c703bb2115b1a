use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// Everything that can go wrong while upgrading a connection to PTTH or
/// driving the transposed connection afterwards.
///
/// Each variant names one precise failure, so callers can react to it (retry
/// after a 429, ask for credentials after a 401, log a hostile peer) without
/// parsing messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake did not complete within the configured time bound.
    #[error("PTTH handshake timed out after {0:?}")]
    TimedOut(Duration),

    /// The peer closed the connection before the handshake completed.
    #[error("connection closed during the PTTH handshake")]
    Closed,

    /// The message head grew past the configured size bound before its end
    /// was seen.
    #[error("message head exceeds the limit of {limit} bytes")]
    HeadTooLarge {
        /// The configured head size limit in bytes.
        limit: usize,
    },

    /// The message head holds more header fields than allowed.
    #[error("message head has more than {limit} header fields")]
    TooManyHeaders {
        /// The configured header count limit.
        limit: usize,
    },

    /// The upgrade request's body is larger than allowed.
    #[error("upgrade request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured body size limit in bytes.
        limit: usize,
    },

    /// The bytes received are not a well-formed HTTP/1.x message head or
    /// body framing.
    #[error("malformed message: {0}")]
    Malformed(&'static str),

    /// The request is well formed but is not an upgrade request this crate
    /// can accept (for example an HTTP/1.0 request or one without `Upgrade`).
    #[error("not a PTTH upgrade: {0}")]
    NotUpgrade(&'static str),

    /// The `Upgrade` header names no PTTH dialect that this side accepts.
    #[error("unsupported upgrade protocol {offered:?}")]
    UnsupportedProtocol {
        /// The `Upgrade` header's value as the peer sent it (empty when it
        /// was absent).
        offered: String,
    },

    /// The request asks for an upgrade but its `Connection` header does not
    /// hold the `upgrade` token.
    #[error("missing `Connection: upgrade`")]
    MissingConnectionUpgrade,

    /// The current (`ptth`) dialect requires an `ALPN` header, and the
    /// message has none.
    #[error("missing `ALPN` header")]
    MissingAlpn,

    /// No protocol in the `ALPN` offer is one this side accepts.
    #[error("no common ALPN protocol in {offered:?}")]
    NoCommonProtocol {
        /// The protocol ids offered (or chosen, when the acceptor's choice
        /// was never offered), percent-decoded.
        offered: Vec<String>,
    },

    /// The initiator sent bytes after its upgrade request before it could
    /// have seen the `101`.
    #[error("bytes received after the upgrade request and before the 101")]
    EarlyData,

    /// The acceptor answered the upgrade request with something other than
    /// `101 Switching Protocols`.
    #[error("upgrade declined with status {}", .0.status)]
    Declined(Box<Declined>),

    /// An I/O error on the underlying connection.
    #[error("I/O error during the PTTH handshake")]
    Io(#[from] std::io::Error),

    /// hyper reported an error on the transposed connection.
    #[error("HTTP error on the transposed connection")]
    Http(#[from] hyper::Error),
}

/// The answer to an upgrade request that was not `101 Switching Protocols`.
///
/// Relays give these meaning: 401/403 ask for credentials, 404 means no such
/// endpoint, 429 carries `Retry-After`, 307/308 carry `Location`.
#[derive(Debug, Clone)]
pub struct Declined {
    /// The status code of the answer.
    pub status: StatusCode,
    /// The answer's header fields.
    pub headers: HeaderMap,
    /// The start of the answer's body, cut at the configured bound.
    pub body: Bytes,
}

impl Error {
    /// The declined answer, when this error is [`Error::Declined`].
    pub fn declined(&self) -> Option<&Declined> {
        match self {
            Error::Declined(declined) => Some(declined),
            _ => None,
        }
    }
}
