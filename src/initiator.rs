//! The initiator: the side that opened the connection, sends the upgrade
//! request, and then **serves** HTTP on the transposed connection.
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//!
//! # async fn run() -> Result<(), ptth::Error> {
//! let transposed = ptth::initiator::connect("http://relay.example/reverse").await?;
//! transposed
//!     .serve(service_fn(|req: Request<Incoming>| async move {
//!         let body = format!("you asked for {}\n", req.uri());
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
//!     }))
//!     .await
//! # }
//! ```
//!
//! With options, or over an IO of your own (TLS done by hand, a Unix
//! socket, an in-memory pipe):
//!
//! ```no_run
//! # async fn run() -> Result<(), ptth::Error> {
//! use std::time::Duration;
//!
//! let builder = ptth::initiator::Builder::new()
//!     .uri("http://relay.example/reverse")
//!     .timeout(Duration::from_secs(10));
//! let io = tokio::net::UnixStream::connect("/run/relay.sock").await?;
//! let transposed = builder.handshake(io).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Over HTTP/2, [`Builder::connect_http2`] (or
//! [`Builder::handshake_http2`] over an IO of your own) gives [`Channels`]:
//! each [`Channels::open`] sends an extended CONNECT with `:protocol: ptth`
//! and returns a [`Transposed`] channel, served like any other.

mod connect;
mod handshake;
mod http2;
mod serve;
mod settings;
#[cfg(feature = "tls")]
mod tls;
mod transposed;

use std::future::Future;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
#[cfg(feature = "tls")]
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{Instrument, debug, field};

use self::connect::Dial;
pub use self::connect::{IntoUri, Stream};
use self::handshake::Round;
pub use self::http2::{Channels, Http2Connection};
pub use self::serve::{Connection, Server};
pub use self::transposed::{Parts, Transposed};
pub use crate::channel::Channel;
use crate::head::Limits;
use crate::{Dialect, Error, Protocol};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_HEAD_SIZE: usize = 16 * 1024;
const DEFAULT_MAX_HEADERS: usize = 64;
const DEFAULT_MAX_DECLINED_BODY: usize = 4 * 1024;

/// Dials `url` and upgrades on it with the default [`Builder`]: the one
/// call for the common case. See [`Builder::connect`].
pub async fn connect(url: impl IntoUri) -> Result<Transposed<Stream>, Error> {
    Builder::new().connect(url).await
}

/// Configures and performs the initiator's side of the handshake.
///
/// One builder can be used for many connections; each call to
/// [`handshake`](Builder::handshake) writes the same upgrade request.
#[derive(Debug, Clone)]
pub struct Builder {
    /// The URI, or the text given and why it does not parse.
    uri: Result<Uri, (String, String)>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    method: Option<Method>,
    dialect: Dialect,
    alpn: Vec<Protocol>,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    limits: Limits,
    max_declined_body: usize,
    resend_on_no_content: bool,
    http2_keep_alive: Option<(Duration, Duration)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder for the current dialect, offering `h2, http%2F1.1` on `/`.
    pub fn new() -> Self {
        Builder {
            uri: Ok(Uri::from_static("/")),
            #[cfg(feature = "tls")]
            tls: None,
            method: None,
            dialect: Dialect::Current,
            alpn: vec![Protocol::Http2, Protocol::Http1],
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: DEFAULT_TIMEOUT,
            limits: Limits {
                max_head: DEFAULT_MAX_HEAD_SIZE,
                max_headers: DEFAULT_MAX_HEADERS,
            },
            max_declined_body: DEFAULT_MAX_DECLINED_BODY,
            resend_on_no_content: false,
            http2_keep_alive: None,
        }
    }

    /// The URI to upgrade on, for [`handshake`](Builder::handshake): its
    /// path and query become the request target; its authority, when
    /// present, becomes the `Host` header. Its scheme is not looked at,
    /// because `handshake` speaks over the IO it is given: for `https`,
    /// wrap the IO in TLS first, or let [`connect`](Builder::connect) dial.
    /// Text that does not parse fails the handshake with
    /// [`Error::InvalidUrl`].
    ///
    /// Default is `/`, with an empty `Host` (as RFC 9112 asks when the
    /// target has no authority).
    pub fn uri(mut self, uri: impl IntoUri) -> Self {
        self.uri = uri.into_uri().map_err(|error| match error {
            Error::InvalidUrl { url, reason } => (url, reason),
            other => (String::new(), other.to_string()),
        });
        self
    }

    /// The TLS settings for `https` URLs given to
    /// [`connect`](Builder::connect). Leave its `alpn_protocols` empty or
    /// set it to `http/1.1`: the upgrade request is HTTP/1.1 whatever the
    /// transposed connection will speak (its `ALPN` header decides that),
    /// so a TLS server must not switch to `h2` under it.
    /// [`connect_http2`](Builder::connect_http2) offers `h2` alone instead.
    ///
    /// Default is Mozilla's root certificates (the `webpki-roots` crate),
    /// rustls' ring provider and `http/1.1` as the TLS ALPN protocol.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Trusts `roots` for `https` URLs beside Mozilla's root certificates:
    /// a relay whose certificate comes from a company CA or a private ACME
    /// server. The rest of the TLS settings are the default's; this
    /// replaces an earlier [`tls_config`](Builder::tls_config), and a
    /// later one replaces it. Certificates rustls cannot parse as trust
    /// anchors are left out.
    ///
    /// Default is Mozilla's root certificates alone.
    #[cfg(feature = "tls")]
    pub fn trust(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.tls = Some(tls::config_trusting(roots, true));
        self
    }

    /// Trusts `roots` alone for `https` URLs, instead of Mozilla's root
    /// certificates, as [`trust`](Builder::trust) does beside them.
    ///
    /// Default is Mozilla's root certificates alone.
    #[cfg(feature = "tls")]
    pub fn trust_only(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.tls = Some(tls::config_trusting(roots, false));
        self
    }

    /// The method of the upgrade request.
    ///
    /// Default is `GET` for the current dialect and `POST` for the legacy
    /// one, as their drafts write.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// The wire dialect.
    ///
    /// Default is [`Dialect::Current`]. The legacy dialect always transposes
    /// to HTTP/1.1 and sends no `ALPN` header.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The protocols this side will run, offered in the `ALPN` header most
    /// preferred first (the acceptor chooses). An empty list is ignored.
    ///
    /// Default is HTTP/2 then HTTP/1.1 (`ALPN: h2, http%2F1.1`).
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = Protocol>) -> Self {
        let mut offer: Vec<Protocol> = Vec::new();
        for protocol in protocols {
            if !offer.contains(&protocol) {
                offer.push(protocol);
            }
        }
        if !offer.is_empty() {
            self.alpn = offer;
        }
        self
    }

    /// Appends a header to the upgrade request, such as `Authorization`, a
    /// cookie or `X-Apple-Session-ID`. A `Host` header given here replaces
    /// the one taken from the URI. `Upgrade`, `Connection`, `ALPN`,
    /// `Content-Length` and `Transfer-Encoding` belong to the handshake and
    /// are ignored here.
    ///
    /// Default is no extra headers.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The body of the upgrade request, sent with its `Content-Length`.
    ///
    /// Default is empty, sent as `Content-Length: 0`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The time allowed for the whole handshake, from the first byte written
    /// to the end of the answer. Requires a tokio runtime with the time
    /// driver enabled.
    ///
    /// Default is 30 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a `204 No Content` answer to the upgrade request means "send
    /// it again on this connection", as some relays use it to hold a device
    /// until there is work. Each round has the whole
    /// [`timeout`](Builder::timeout) to itself.
    ///
    /// Default is `false`: a `204` is [`Error::Declined`].
    pub fn resend_on_no_content(mut self, resend: bool) -> Self {
        self.resend_on_no_content = resend;
        self
    }

    /// The keep-alive of the HTTP/2 connection channels are set up on (see
    /// [`connect_http2`](Builder::connect_http2)): a PING after `interval`
    /// without traffic, even with no channel open, and the connection
    /// closed when its answer takes longer than `timeout`, so a frozen
    /// acceptor is noticed and the connection dialled again.
    ///
    /// Default is none, as on hyper's builders.
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.http2_keep_alive = Some((interval, timeout));
        self
    }

    /// The largest answer head accepted, in bytes.
    ///
    /// Default is 16 KiB.
    pub fn max_head_size(mut self, bytes: usize) -> Self {
        self.limits.max_head = bytes;
        self
    }

    /// The most header fields accepted in the answer head.
    ///
    /// Default is 64.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.limits.max_headers = count;
        self
    }

    /// How much of a declined answer's body is kept in
    /// [`Declined::body`](crate::Declined::body); the rest is not read.
    ///
    /// Default is 4 KiB.
    pub fn max_declined_body(mut self, bytes: usize) -> Self {
        self.max_declined_body = bytes;
        self
    }

    /// Sends the upgrade request on `io` and reads the answer.
    ///
    /// On `101 Switching Protocols` this returns the transposed connection,
    /// ready to [`serve`](Transposed::serve). Any other final answer is
    /// [`Error::Declined`]; informational answers such as `100 Continue`
    /// are skipped.
    pub async fn handshake<T>(&self, io: T) -> Result<Transposed<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let uri = match &self.uri {
            Ok(uri) => uri,
            Err((url, reason)) => {
                return Err(Error::InvalidUrl {
                    url: url.clone(),
                    reason: reason.clone(),
                });
            }
        };
        self.bounded(uri, self.exchange(io, uri)).await
    }

    /// Dials `url` and upgrades on it: TCP to its host and port, TLS first
    /// for `https` (with the `tls` feature; without it an `https` URL is
    /// [`Error::TlsNotEnabled`]), then the handshake with the URL's path
    /// and query as the target and its authority as `Host`. The time bound
    /// covers all of it. Nagle's algorithm is turned off on the socket.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ptth::Error> {
    /// let transposed = ptth::initiator::Builder::new()
    ///     .connect("http://127.0.0.1:8080/reverse")
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(&self, url: impl IntoUri) -> Result<Transposed<Stream>, Error> {
        let url = url.into_uri()?;
        let dial = Dial::from_url(&url)?;
        let exchange = async {
            let tcp = dial.tcp().await?;
            let io = self.secure(tcp, &dial).await;
            let io = io.map_err(|error| dial.wrong_scheme(error))?;
            let exchanged = self.exchange(io, &url).await;
            exchanged.map_err(|error| dial.wrong_scheme(error))
        };
        self.bounded(&url, exchange).await
    }

    #[cfg(feature = "tls")]
    async fn secure(&self, tcp: tokio::net::TcpStream, dial: &Dial) -> Result<Stream, Error> {
        if !dial.tls {
            return Ok(Stream::tcp(tcp));
        }
        let config = self.tls.clone().unwrap_or_else(tls::default_config);
        Ok(Stream::tls(tls::connect(tcp, &dial.host, config).await?))
    }

    #[cfg(not(feature = "tls"))]
    async fn secure(&self, tcp: tokio::net::TcpStream, _: &Dial) -> Result<Stream, Error> {
        Ok(Stream::tcp(tcp))
    }

    /// Runs a handshake within the time bound, in a span that names it.
    /// Each round sent again after a `204` has a time bound of its own.
    async fn bounded<T>(
        &self,
        uri: &Uri,
        exchange: impl Future<Output = Result<Round<T>, Error>>,
    ) -> Result<Transposed<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let span = tracing::debug_span!(
            "ptth_handshake",
            role = "initiator",
            uri = %uri,
            dialect = %self.dialect,
            protocol = field::Empty,
        );
        let span_handle = span.clone();
        async move {
            let result = async {
                let mut round = self.timed(exchange).await?;
                loop {
                    match round {
                        Round::Switched(transposed) => return Ok(transposed),
                        Round::Again(io) => {
                            debug!("answered 204: sending the upgrade again");
                            round = self.timed(self.exchange(io, uri)).await?;
                        }
                    }
                }
            }
            .await;
            match &result {
                Ok(transposed) => {
                    span_handle.record("protocol", field::display(transposed.protocol));
                    debug!("upgraded");
                }
                Err(Error::Declined(declined)) => {
                    debug!(status = %declined.status, "upgrade declined");
                }
                Err(error) => debug!(error = error as &dyn std::error::Error, "handshake failed"),
            }
            result
        }
        .instrument(span)
        .await
    }
}

impl Builder {
    async fn timed<R>(&self, round: impl Future<Output = Result<R, Error>>) -> Result<R, Error> {
        tokio::time::timeout(self.timeout, round)
            .await
            .unwrap_or(Err(Error::TimedOut(self.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_chain_from_new_into_a_binding() {
        let builder = Builder::new().uri("/r").timeout(Duration::from_secs(5));
        assert_eq!(builder.timeout, Duration::from_secs(5));
        let invalid = Builder::new().uri("http://exa mple/");
        assert!(matches!(invalid.uri, Err((ref url, _)) if url == "http://exa mple/"));
    }
}
