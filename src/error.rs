use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{LOCATION, RETRY_AFTER, UPGRADE};
use http::{HeaderMap, HeaderName, StatusCode};

/// Everything that can go wrong while upgrading a connection to PTTH or
/// driving the transposed connection afterwards.
///
/// Each variant names one precise failure, so callers can react to it (retry
/// after a 429, ask for credentials after a 401, log a hostile peer) without
/// parsing messages.
///
/// An error is cheap to clone (its sources are shared), so a tunnel's
/// status can keep the one that stopped it. Its `Display` names this level
/// only, as hyper's does; the cause is its `source()`, which `{:#}` with
/// anyhow, or a tracing field given as `&dyn Error`, prints after it.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// The upgrade request was redirected more times than allowed, which
    /// usually means a redirect loop.
    #[error("more than {limit} redirects while upgrading, the last to {last}")]
    TooManyRedirects {
        /// The configured redirect limit.
        limit: usize,
        /// The last URL redirected to.
        last: String,
    },

    /// The acceptor cannot take the setup over HTTP/2: its SETTINGS do not
    /// enable extended CONNECT (RFC 8441), or TLS did not negotiate `h2`.
    /// The setup over HTTP/1.1 may still work.
    #[error("the acceptor cannot take the PTTH setup over HTTP/2: {0}")]
    NoHttp2Setup(&'static str),

    /// The server speaks TLS where the URL says `http://`, or plain HTTP
    /// where it says `https://`: the URL's scheme is wrong, which retrying
    /// does not change.
    #[error("{authority} {}", if *.url_tls { "does not speak TLS: its URL is http://, not https://" } else { "speaks TLS: its URL is https://, not http://" })]
    WrongScheme {
        /// The host and port dialled.
        authority: String,
        /// Whether the URL was `https://`.
        url_tls: bool,
    },

    /// The initiator sent bytes after its upgrade request before it could
    /// have seen the `101`.
    #[error("bytes received after the upgrade request and before the 101")]
    EarlyData,

    /// The acceptor answered the upgrade request with something other than
    /// `101 Switching Protocols`. The message says what the status means
    /// for PTTH: a `2xx` other than `204` means the endpoint does not speak
    /// PTTH at all.
    #[error("{0}")]
    Declined(Box<Declined>),

    /// The URL given to [`initiator::Builder::connect`] or
    /// [`initiator::Builder::uri`] cannot be used.
    ///
    /// [`initiator::Builder::connect`]: crate::initiator::Builder::connect
    /// [`initiator::Builder::uri`]: crate::initiator::Builder::uri
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An `https://` URL was given, but this build of `ptth` has no TLS:
    /// enable its `tls` cargo feature, or do TLS yourself and call
    /// [`initiator::Builder::handshake`] on the TLS stream.
    ///
    /// [`initiator::Builder::handshake`]: crate::initiator::Builder::handshake
    #[error("{url} needs TLS: enable the `tls` feature of the ptth crate")]
    TlsNotEnabled {
        /// The URL as given.
        url: String,
    },

    /// The TCP connection to the URL's host could not be opened.
    #[error("cannot connect to {authority}")]
    Connect {
        /// The host and port dialled.
        authority: String,
        /// Why the connection failed.
        source: Arc<std::io::Error>,
    },

    /// hyper finished a request's response before it handed over the
    /// connection, so there is nothing to switch: the server that read the
    /// upgrade request must serve the connection with upgrades enabled
    /// (`serve_connection(..).with_upgrades()` on hyper's `http1` builder,
    /// or `serve_connection_with_upgrades` on hyper-util's `auto` builder,
    /// which `axum::serve` uses).
    #[error("the HTTP server did not hand over the connection; serve it with upgrades enabled")]
    NotHandedOver(#[source] Arc<hyper::Error>),

    /// An I/O error on the underlying connection.
    #[error("I/O error")]
    Io(#[source] Arc<std::io::Error>),

    /// hyper reported an error on the transposed connection, such as a
    /// reset by the peer (its source says which).
    #[error("HTTP error on the transposed connection")]
    Http(#[source] Arc<hyper::Error>),
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}

impl From<hyper::Error> for Error {
    fn from(error: hyper::Error) -> Self {
        Error::Http(Arc::new(error))
    }
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

impl Declined {
    /// The peer's own words, when its body is one short line of text
    /// (a relay's "the name is taken"): at most 200 characters
    /// with no control characters, since the body comes from the peer and
    /// ends up in logs.
    pub fn reason(&self) -> Option<&str> {
        short_reason(&self.body)
    }

    fn header(&self, name: HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status;
        match status.as_u16() {
            204 => write!(f, "the peer asks to send the upgrade again ({status})"),
            200..=299 => write!(
                f,
                "this endpoint does not speak PTTH: it answered the upgrade request with {status}"
            ),
            301..=303 | 307 | 308 => write!(
                f,
                "the PTTH endpoint has moved to {:?} ({status})",
                self.header(LOCATION)
            ),
            401 | 403 => write!(f, "the peer refused the credentials ({status})"),
            404 => write!(f, "no PTTH endpoint at this URL ({status})"),
            426 => write!(
                f,
                "the peer wants another upgrade ({status}, it offers {:?})",
                self.header(UPGRADE)
            ),
            429 | 503 if self.headers.contains_key(RETRY_AFTER) => write!(
                f,
                "the peer asks to retry after {} s ({status})",
                self.header(RETRY_AFTER)
            ),
            _ => write!(f, "upgrade declined with {status}"),
        }?;
        match (
            status.is_client_error() || status.is_server_error(),
            self.reason(),
        ) {
            (true, Some(reason)) => write!(f, ": {reason}"),
            _ => Ok(()),
        }
    }
}

/// The longest peer's reason [`Declined`] repeats.
const REASON_MAX: usize = 200;

/// A peer's body, when it is one short line of text: at most
/// [`REASON_MAX`] characters with no control characters, since it comes
/// from the peer and ends up in logs.
pub(crate) fn short_reason(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let fits = !text.is_empty()
        && text.chars().count() <= REASON_MAX
        && !text.chars().any(char::is_control);
    fits.then_some(text)
}

impl Error {
    /// The declined answer, when this error is [`Error::Declined`].
    pub fn declined(&self) -> Option<&Declined> {
        match self {
            Error::Declined(declined) => Some(declined),
            _ => None,
        }
    }

    /// Whether a time bound ran out: a handshake's, hyper's (an HTTP/2
    /// keep-alive PING that went unanswered), or an I/O one (a tunnel
    /// connection quiet for too long).
    pub fn is_timeout(&self) -> bool {
        let timed_out = |error: &std::io::Error| error.kind() == std::io::ErrorKind::TimedOut;
        match self {
            Error::TimedOut(_) => true,
            Error::Io(error) => timed_out(error),
            Error::Http(error) => error.is_timeout() || io_cause(error).is_some_and(timed_out),
            _ => false,
        }
    }

    /// Whether the peer went away: it closed or reset the connection during
    /// the handshake, or before a response on the transposed connection
    /// was complete.
    pub fn is_closed(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(error) => went_away(error),
            Error::Http(error) => {
                error.is_closed()
                    || error.is_incomplete_message()
                    || error.is_canceled()
                    || io_cause(error).is_some_and(went_away)
            }
            _ => false,
        }
    }
}

/// The I/O error somewhere under `error`, if any.
fn io_cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cause = error.source();
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = error.source();
    }
    None
}

fn went_away(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declined(status: u16, headers: &[(HeaderName, &'static str)]) -> String {
        with_body(status, headers, "")
    }

    fn with_body(status: u16, headers: &[(HeaderName, &'static str)], body: &str) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name.clone(), http::HeaderValue::from_static(value));
        }
        Error::Declined(Box::new(Declined {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }))
        .to_string()
    }

    #[test]
    fn declined_repeats_a_short_line_of_the_peer_s_text_and_nothing_else() {
        let taken = "the name \"lamp\" is taken or closed to this token\n";
        let long = "x".repeat(201);
        for (status, body, said) in [
            (
                403,
                taken,
                "the peer refused the credentials (403 Forbidden): the name \"lamp\" is taken or closed to this token",
            ),
            (
                500,
                "boom",
                "upgrade declined with 500 Internal Server Error: boom",
            ),
            (
                403,
                "two\nlines",
                "the peer refused the credentials (403 Forbidden)",
            ),
            (
                403,
                "\u{1b}[31mred",
                "the peer refused the credentials (403 Forbidden)",
            ),
            (
                403,
                &long,
                "the peer refused the credentials (403 Forbidden)",
            ),
            (
                200,
                "hello",
                "this endpoint does not speak PTTH: it answered the upgrade request with 200 OK",
            ),
        ] {
            assert_eq!(with_body(status, &[], body), said, "{body:?}");
        }
    }

    #[test]
    fn declined_says_what_the_status_means() {
        assert_eq!(
            declined(200, &[]),
            "this endpoint does not speak PTTH: it answered the upgrade request with 200 OK"
        );
        assert_eq!(
            declined(404, &[]),
            "no PTTH endpoint at this URL (404 Not Found)"
        );
        assert_eq!(
            declined(401, &[]),
            "the peer refused the credentials (401 Unauthorized)"
        );
        assert_eq!(
            declined(308, &[(LOCATION, "http://b.example/r")]),
            "the PTTH endpoint has moved to \"http://b.example/r\" (308 Permanent Redirect)"
        );
        assert_eq!(
            declined(429, &[(RETRY_AFTER, "3")]),
            "the peer asks to retry after 3 s (429 Too Many Requests)"
        );
        assert_eq!(
            declined(500, &[]),
            "upgrade declined with 500 Internal Server Error"
        );
    }

    #[test]
    fn a_clone_keeps_the_message_the_source_and_the_predicates() {
        let refused = Error::Connect {
            authority: "relay.example:80".into(),
            source: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
        };
        let quiet = Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no byte moved",
        ));
        for error in [refused, quiet, Error::Closed, Error::MissingAlpn] {
            let copy = error.clone();
            assert_eq!(copy.to_string(), error.to_string());
            let cause = |e: &Error| e.source().map(ToString::to_string);
            assert_eq!(cause(&copy), cause(&error), "{error}");
            assert_eq!(copy.is_timeout(), error.is_timeout(), "{error}");
            assert_eq!(copy.is_closed(), error.is_closed(), "{error}");
        }
    }

    #[test]
    fn predicates_name_the_kind() {
        let timed_out = Error::TimedOut(std::time::Duration::from_secs(1));
        assert!(timed_out.is_timeout() && !timed_out.is_closed());
        assert!(Error::Closed.is_closed() && !Error::Closed.is_timeout());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(Error::from(reset).is_closed());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!Error::from(denied).is_closed());
        assert!(Error::EarlyData.declined().is_none());
    }

    #[test]
    fn display_names_this_level_and_the_source_the_cause() {
        let refused = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.to_string(), "I/O error");
        assert_eq!(refused.source().unwrap().to_string(), "connection refused");
        let connect = Error::Connect {
            authority: "relay.example:80".into(),
            source: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
        };
        assert_eq!(connect.to_string(), "cannot connect to relay.example:80");
        assert_eq!(connect.source().unwrap().to_string(), "connection refused");
    }
}
