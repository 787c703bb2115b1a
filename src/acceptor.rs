//! The acceptor: the side that accepted the connection, reads the upgrade
//! request, answers `101`, and then **sends** HTTP requests on the
//! transposed connection.
//!
//! ```no_run
//! use http_body_util::{BodyExt, Empty};
//! use hyper::body::Bytes;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let acceptor = ptth::acceptor::Builder::new();
//! let (tcp, peer) = listener.accept().await?;
//! let offer = acceptor.read_request_from(tcp, peer).await?;
//! // Authenticate and route on `offer.request()` here, or `offer.reject(..)`.
//! let (mut sender, connection) = offer.accept::<Empty<Bytes>>().await?;
//! tokio::spawn(connection);
//! let response = sender
//!     .send_request(hyper::Request::get("/status").body(Empty::new())?)
//!     .await?;
//! let body = response.into_body().collect().await?.to_bytes();
//! println!("{body:?}");
//! # Ok(())
//! # }
//! ```

mod answer;
mod coalesce;
mod offer;
mod sender;
mod validate;

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{EXPECT, HOST};
use http::uri::Authority;
use hyper::body::Body;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, field};

use self::answer::refuse;
pub(crate) use self::answer::{accepting_status, refusal, switching_headers};
pub use self::offer::Offer;
use self::sender::Authorities;
pub use self::sender::{Connection, ConnectionId, SendRequest};
pub(crate) use self::validate::Validated;
use crate::head::{self, Framing, Limits};
use crate::reader::{Excess, Reader};
use crate::{Dialect, Error, Protocol};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_HEAD_SIZE: usize = 16 * 1024;
const DEFAULT_MAX_HEADERS: usize = 64;
const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;

/// Configures the acceptor's side of the handshake and the HTTP client that
/// runs on the transposed connection.
///
/// One builder serves many connections; it is cheap to clone (the settings
/// are shared until a setter changes them).
#[derive(Debug, Clone)]
pub struct Builder {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    legacy: bool,
    current: bool,
    protocols: Vec<Protocol>,
    timeout: Duration,
    limits: Limits,
    max_body_size: usize,
    authority: Option<Authority>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder that accepts both dialects and prefers HTTP/2.
    pub fn new() -> Self {
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let config = Config {
            legacy: true,
            current: true,
            protocols: vec![Protocol::Http2, Protocol::Http1],
            timeout: DEFAULT_TIMEOUT,
            limits: Limits {
                max_head: DEFAULT_MAX_HEAD_SIZE,
                max_headers: DEFAULT_MAX_HEADERS,
            },
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            authority: None,
            http1: http1::Builder::new(),
            http2,
        };
        Builder {
            config: Arc::new(config),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The dialects to accept; a request in another is answered `426`.
    /// An empty list is ignored.
    ///
    /// Default is both, [`Dialect::Current`] and [`Dialect::Legacy`].
    pub fn dialects(mut self, dialects: impl IntoIterator<Item = Dialect>) -> Self {
        let (mut current, mut legacy) = (false, false);
        for dialect in dialects {
            match dialect {
                Dialect::Current => current = true,
                Dialect::Legacy => legacy = true,
            }
        }
        if current || legacy {
            let config = self.config_mut();
            config.current = current;
            config.legacy = legacy;
        }
        self
    }

    /// The protocols this side will run on a current-dialect connection,
    /// most preferred first: the first of these that the initiator offers
    /// is chosen. An empty list is ignored.
    ///
    /// Default is HTTP/2 then HTTP/1.1.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = Protocol>) -> Self {
        let mut preference: Vec<Protocol> = Vec::new();
        for protocol in protocols {
            if !preference.contains(&protocol) {
                preference.push(protocol);
            }
        }
        if !preference.is_empty() {
            self.config_mut().protocols = preference;
        }
        self
    }

    /// The time allowed to read the upgrade request, and again to answer it
    /// and start HTTP on the transposed connection. Requires a tokio runtime
    /// with the time driver enabled.
    ///
    /// Default is 30 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().timeout = timeout;
        self
    }

    /// The largest upgrade request head accepted, in bytes.
    ///
    /// Default is 16 KiB.
    pub fn max_head_size(mut self, bytes: usize) -> Self {
        self.config_mut().limits.max_head = bytes;
        self
    }

    /// The most header fields accepted in the upgrade request.
    ///
    /// Default is 64.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.config_mut().limits.max_headers = count;
        self
    }

    /// The largest upgrade request body accepted, in bytes.
    ///
    /// Default is 64 KiB.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config_mut().max_body_size = bytes;
        self
    }

    /// The authority of requests sent without one: on HTTP/2 it becomes
    /// `:authority`, on HTTP/1.1 `Host` (see [`SendRequest`]'s
    /// *Authority* section). A `Host` or absolute URI on a request wins.
    ///
    /// Default is none: on HTTP/2 the `Host` of the upgrade request is
    /// used, on HTTP/1.1 an empty `Host`.
    pub fn authority(mut self, authority: Authority) -> Self {
        self.config_mut().authority = Some(authority);
        self
    }

    /// Tunes hyper's HTTP/1.1 client builder, used when the transposed
    /// connection speaks HTTP/1.1:
    /// `.http1(|h1| { h1.max_buf_size(64 * 1024); })`.
    ///
    /// Default is hyper's defaults.
    pub fn http1(mut self, configure: impl FnOnce(&mut http1::Builder)) -> Self {
        configure(&mut self.config_mut().http1);
        self
    }

    /// Tunes hyper's HTTP/2 client builder, used when the transposed
    /// connection speaks HTTP/2; turn on its keep-alive PING here to notice
    /// an initiator that went silent:
    /// `.http2(|h2| { h2.keep_alive_interval(Duration::from_secs(20)); })`.
    ///
    /// Default is hyper's defaults with tokio's executor and timer.
    pub fn http2(mut self, configure: impl FnOnce(&mut http2::Builder<TokioExecutor>)) -> Self {
        configure(&mut self.config_mut().http2);
        self
    }

    /// Reads and validates an upgrade request from `io`.
    ///
    /// A request that cannot be upgraded is answered here (`400`, `413`,
    /// `426` or `431`, with `Connection: close`) and returned as an error;
    /// an acceptable one is handed back as an [`Offer`] for the application
    /// to accept or reject.
    pub async fn read_request<T>(&self, io: T) -> Result<Offer<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        self.read(io, None).await
    }

    /// Like [`read_request`](Builder::read_request), recording the peer's
    /// address in the offer and the handshake's tracing span.
    pub async fn read_request_from<T>(&self, io: T, peer: SocketAddr) -> Result<Offer<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        self.read(io, Some(peer)).await
    }

    async fn read<T>(&self, io: T, peer: Option<SocketAddr>) -> Result<Offer<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let span = tracing::debug_span!(
            "ptth_handshake",
            role = "acceptor",
            peer = field::Empty,
            dialect = field::Empty,
            protocol = field::Empty,
        );
        if let Some(peer) = peer {
            span.record("peer", field::display(peer));
        }
        let mut reader = Reader::new(io);
        let exchange = async {
            let result = self.read_upgrade(&mut reader).await;
            if let Err(error) = &result {
                refuse(&mut reader.io, error).await;
            }
            result
        };
        let result = match tokio::time::timeout(self.config.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut(self.config.timeout)),
        };
        let (request, validated) = match result {
            Ok(ok) => ok,
            Err(error) => {
                span.in_scope(|| {
                    debug!(
                        error = &error as &dyn std::error::Error,
                        "upgrade request refused"
                    )
                });
                return Err(error);
            }
        };
        span.record("dialect", field::display(validated.dialect));
        Ok(Offer {
            request,
            validated,
            headers: http::HeaderMap::new(),
            peer,
            io: reader.io,
            builder: self.clone(),
            span,
        })
    }

    async fn read_upgrade<T>(
        &self,
        reader: &mut Reader<T>,
    ) -> Result<(Request<Bytes>, Validated), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let head = reader.request_head(self.config.limits).await?;
        let validated = self.validate(&head.method, head.version, &head.headers)?;
        let framing = head::request_framing(&head.headers)?;
        if framing != Framing::Empty && head::has_token(&head.headers, &EXPECT, "100-continue") {
            reader
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
            reader.io.flush().await?;
        }
        let body = reader
            .body(framing, self.config.max_body_size, Excess::Refuse)
            .await?;
        if !reader.buf.is_empty() {
            return Err(Error::EarlyData);
        }
        let mut request = Request::new(body);
        *request.method_mut() = head.method;
        *request.uri_mut() = head.uri;
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers;
        Ok((request, validated))
    }

    pub(crate) async fn start_client<I, B>(
        &self,
        io: I,
        protocol: Protocol,
        upgrade_host: Option<Authority>,
    ) -> Result<(SendRequest<B>, Connection), Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let authority = Authorities {
            configured: self.config.authority.clone(),
            upgrade_host,
        };
        let config = &self.config;
        sender::handshake(io, protocol, authority, &config.http1, &config.http2).await
    }
}

/// The authority the initiator named in its upgrade request, if any.
pub(crate) fn upgrade_host<B>(request: &Request<B>) -> Option<Authority> {
    match request.headers().get(HOST) {
        Some(host) => Authority::try_from(host.as_bytes()).ok(),
        None => request.uri().authority().cloned(),
    }
}
