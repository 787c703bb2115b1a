//! The tunnel: keeps a device's service reachable through a relay for as
//! long as it runs, across relay restarts, lost networks and idle-killing
//! middleboxes.
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//!
//! # async fn run() -> Result<(), ptth::Error> {
//! let service = service_fn(|req: Request<Incoming>| async move {
//!     let body = format!("you asked for {}\n", req.uri());
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
//! });
//! ptth::tunnel::serve("https://relay.example/reversehttp/lamp", service).await
//! # }
//! ```
//!
//! # What it does
//!
//! - **Connections.** It keeps [`connections`](Builder::connections) PTTH
//!   connections open, each serving the service. It dials one at a time:
//!   the first alone, the rest once it is up, and a lost connection is
//!   replaced while the others keep serving.
//! - **Reconnects.** A failed dial is retried after a delay drawn uniformly
//!   from zero to `base × 2^failures`, capped (full jitter; by default the
//!   first retry comes within 0.5 s and no wait exceeds 30 s). The failure
//!   count goes back to zero only once a connection proves healthy: it
//!   stayed up for [`healthy_after`](Builder::healthy_after) or served a
//!   request. Network errors are retried forever unless
//!   [`max_failures`](Builder::max_failures) says otherwise.
//! - **Answers to the upgrade** (relays' conventions): 401 and 403 end the
//!   tunnel at once with [`Error::Declined`]; so does 404 unless
//!   [`retry_not_found`](Builder::retry_not_found); 429 and 503 wait at
//!   least their `Retry-After` (delta-seconds, at most an hour); 307 and 308
//!   are followed up to [`max_redirects`](Builder::max_redirects) times (a
//!   308 also for later dials); 204 sends the upgrade again on the same
//!   connection; other 5xx and 408 are retried; anything else ends the
//!   tunnel.
//! - **Liveness.** On HTTP/2 a PING goes out after 20 s without traffic and
//!   a connection whose PING is not answered within 10 s is replaced: a
//!   frozen relay is noticed within 30 s. On HTTP/1.1 nothing can prove
//!   the relay alive but a request, so a connection on which no byte has
//!   moved for 30 s, with no request in flight, is replaced by a fresh
//!   handshake, which then fails within its 10 s timeout if the relay is
//!   frozen: noticed within 40 s. Both stay under the minute after which
//!   middleboxes drop quiet flows. TCP keep-alive would not help here: the
//!   kernel under a frozen relay process still answers it.
//! - **Shutdown.** [`Handle::shutdown`] stops dialing and drains: HTTP/2
//!   connections send `GOAWAY`, HTTP/1.1 ones close after the response in
//!   flight, and whatever is still open after the
//!   [`grace_period`](Builder::grace_period) is closed.
//! - **Observing it.** tracing events for connect, disconnect (with the
//!   reason), retry (with the delay) and shutdown; [`Handle::status`] for
//!   the connected count, the last error and the public URL the relay
//!   announced with `Link: <URL>; rel="related"`.

mod answer;
mod backoff;
mod counted;
mod handle;
mod link;
#[cfg(feature = "axum")]
mod listener;
mod pool;
mod status;
mod watched;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper::service::Service;

use self::counted::Counted;
pub use self::handle::Handle;
use self::handle::Shared;
#[cfg(feature = "axum")]
pub use self::listener::{Listener, TunnelIo};
use self::pool::{Dialed, Runner};
pub use self::status::{Phase, Status};
use crate::initiator::{self, IntoUri, Server};
use crate::service::IntoHttpService;
use crate::{Error, Setup};

const DEFAULT_HTTP1_CONNECTIONS: usize = 4;

/// Keeps `service` reachable at `url` with the default [`Builder`], until
/// an error retrying cannot fix.
pub fn serve<K, I, S, B>(url: impl IntoUri, service: I) -> Tunnel
where
    I: IntoHttpService<K, Service = S>,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    Builder::new(url).serve(service)
}

/// Settings shared by the supervisor and its connections.
struct Config {
    /// The relay's URLs: one, or one per node of a relay cluster.
    urls: Vec<Uri>,
    initiator: initiator::Builder,
    server: Server,
    connections: Option<usize>,
    backoff_base: Duration,
    backoff_cap: Duration,
    healthy_after: Duration,
    max_failures: Option<u32>,
    retry_not_found: bool,
    max_redirects: usize,
    idle_timeout: Duration,
    /// Whether the idle limit applies on HTTP/2 too, where the server that
    /// would send PINGs is not ours.
    listener_idle: bool,
    grace_period: Duration,
    setup: Setup,
    sessions: link::Sessions,
}

/// Configures a tunnel.
#[derive(Debug)]
pub struct Builder {
    url: Result<Uri, Error>,
    more: Vec<Result<Uri, Error>>,
    initiator: initiator::Builder,
    server: Server,
    connections: Option<usize>,
    backoff: (Duration, Duration),
    healthy_after: Duration,
    max_failures: Option<u32>,
    retry_not_found: bool,
    max_redirects: usize,
    idle_timeout: Duration,
    keep_alive: (Duration, Duration),
    grace_period: Duration,
    setup: Setup,
}

impl Builder {
    /// A tunnel to the relay at `url` (`http://` or `https://` with the
    /// `tls` feature), with the defaults described on each setter.
    pub fn new(url: impl IntoUri) -> Self {
        Builder {
            url: url.into_uri(),
            more: Vec::new(),
            initiator: initiator::Builder::new().timeout(Duration::from_secs(10)),
            server: Server::new(),
            connections: None,
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            healthy_after: Duration::from_secs(10),
            max_failures: None,
            retry_not_found: false,
            max_redirects: 5,
            idle_timeout: Duration::from_secs(30),
            keep_alive: (Duration::from_secs(20), Duration::from_secs(10)),
            grace_period: Duration::from_secs(10),
            setup: Setup::Http1,
        }
    }

    /// Another node of the same relay cluster to dial. Connections are
    /// spread over the URLs in turn (the first to `new`'s URL, the next to
    /// this one, and so on), and a dial that fails leaves the next attempt
    /// to the next URL, so when a node dies its connections come back on
    /// the others. With several URLs the default connection count is at
    /// least one per URL.
    ///
    /// Default is none: only the URL given to [`Builder::new`].
    pub fn also(mut self, url: impl IntoUri) -> Self {
        self.more.push(url.into_uri());
        self
    }

    /// The initiator that dials and upgrades: headers such as
    /// `Authorization`, the dialect, the `ALPN` offer, TLS settings and the
    /// handshake timeout. Its URI is replaced by the tunnel's URL, and it is
    /// set to send the upgrade again on a `204`.
    ///
    /// Default is [`initiator::Builder::new`] with a 10 s timeout, which is
    /// also how long a frozen relay can hold a dial.
    pub fn initiator(mut self, initiator: initiator::Builder) -> Self {
        self.initiator = initiator;
        self
    }

    /// How each connection is set up: an HTTP/1.1 upgrade on a connection
    /// of its own, or (with [`Setup::Http2`]) a channel set up by extended
    /// CONNECT, all of a URL's channels on one HTTP/2 connection (TLS
    /// negotiates `h2`; `http://` URLs speak h2c), which is dialled again
    /// when it closes. A relay that does not enable extended CONNECT ends
    /// the tunnel with [`Error::NoHttp2Setup`]: it is a setting of the
    /// relay, which retrying does not change.
    ///
    /// Default is [`Setup::Http1`].
    pub fn setup(mut self, setup: Setup) -> Self {
        self.setup = setup;
        self
    }

    /// hyper's server settings for the connections, as on
    /// [`Server`]. The HTTP/2 keep-alive set here is replaced by
    /// [`keep_alive`](Builder::keep_alive), and HTTP/2's extended CONNECT
    /// is turned on, so a relay can carry upgrades such as WebSocket.
    ///
    /// Default is [`Server::new`].
    pub fn server(mut self, server: Server) -> Self {
        self.server = server;
        self
    }

    /// How many connections to keep open.
    ///
    /// Default is 1 when the relay chose HTTP/2, which multiplexes requests,
    /// and 4 when it chose HTTP/1.1, where a connection carries one request
    /// at a time: four concurrent requests without queueing at the relay,
    /// like a small browser pool. With [`also`](Builder::also), at least
    /// one per URL.
    pub fn connections(mut self, count: usize) -> Self {
        self.connections = Some(count.max(1));
        self
    }

    /// The backoff between failed dials: the first retry waits up to
    /// `base`, each further failure doubles that bound, and no wait
    /// exceeds `cap`. Each wait is drawn uniformly below its bound.
    ///
    /// Default is 500 ms and 30 s.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff = (base, cap.max(base));
        self
    }

    /// How long a connection must stay up to prove healthy and reset the
    /// backoff (serving a request proves it too). A relay that accepts
    /// the upgrade and drops the connection at once therefore still sees
    /// growing waits.
    ///
    /// Default is 10 seconds.
    pub fn healthy_after(mut self, duration: Duration) -> Self {
        self.healthy_after = duration;
        self
    }

    /// How many dials in a row may fail (after backoff) before the tunnel
    /// ends with the last error. `None` retries forever.
    ///
    /// Default is `None`: a device does not give up.
    pub fn max_failures(mut self, max: Option<u32>) -> Self {
        self.max_failures = max;
        self
    }

    /// Whether a `404` answer to the upgrade is retried, for relays where
    /// a name can appear later.
    ///
    /// Default is `false`: a 404 ends the tunnel.
    pub fn retry_not_found(mut self, retry: bool) -> Self {
        self.retry_not_found = retry;
        self
    }

    /// How many `307`/`308` redirects one dial follows before it fails with
    /// [`Error::TooManyRedirects`], which ends the tunnel.
    ///
    /// Default is 5.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// How long an HTTP/1.1 connection may pass without a byte moving
    /// either way, with no request in flight, before it is replaced.
    ///
    /// Default is 30 seconds.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The HTTP/2 keep-alive: a PING after `interval` without traffic, and
    /// the connection replaced when its answer takes longer than `timeout`;
    /// with [`Setup::Http2`] on the connection the channels share too.
    ///
    /// Default is 20 s and 10 s.
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = (interval, timeout);
        self
    }

    /// How long a shutdown waits for requests in flight before it closes
    /// the connections.
    ///
    /// Default is 10 seconds.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Starts keeping `service` reachable. The returned [`Tunnel`] must be
    /// awaited (or spawned) to run; dropping it closes every connection.
    ///
    /// `service` is a hyper service, or with the `tower` feature a tower
    /// service such as an axum `Router`; it is cloned for each connection.
    pub fn serve<K, I, S, B>(self, service: I) -> Tunnel
    where
        I: IntoHttpService<K, Service = S>,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let service = service.into_http_service();
        let (config, shared) = match self.config(false) {
            Ok(parts) => parts,
            Err(error) => return Tunnel::failed(error),
        };
        let server = config.server.clone();
        let grace = config.grace_period;
        let runner: Runner = Box::new(move |dialed: Dialed, mut stop| {
            let service = Counted {
                inner: service.clone(),
                activity: dialed.activity,
            };
            let mut connection = server.serve_connection(dialed.transposed, service);
            Box::pin(async move {
                tokio::select! {
                    result = &mut connection => return result,
                    _ = stop.wait_for(|stop| *stop) => {}
                }
                connection.graceful_shutdown();
                tokio::time::timeout(grace, connection)
                    .await
                    .unwrap_or(Err(Error::TimedOut(grace)))
            })
        });
        Tunnel::start(config, shared, runner)
    }

    fn config(self, listener_idle: bool) -> Result<(Arc<Config>, Arc<Shared>), Error> {
        let url = self.url?;
        let mut urls = vec![url.clone()];
        for more in self.more {
            urls.push(more?);
        }
        let (interval, timeout) = self.keep_alive;
        // Extended CONNECT (RFC 8441) lets a relay carry WebSocket and
        // other upgrades to the service over HTTP/2.
        let server = self.server.http2(|h2| {
            h2.keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .enable_connect_protocol();
        });
        let config = Config {
            initiator: self
                .initiator
                .uri(&url)
                .resend_on_no_content(true)
                .http2_keep_alive(self.keep_alive.0, self.keep_alive.1),
            urls,
            server,
            connections: self.connections,
            backoff_base: self.backoff.0,
            backoff_cap: self.backoff.1,
            healthy_after: self.healthy_after,
            max_failures: self.max_failures,
            retry_not_found: self.retry_not_found,
            max_redirects: self.max_redirects,
            idle_timeout: self.idle_timeout,
            listener_idle,
            grace_period: self.grace_period,
            setup: self.setup,
            sessions: link::Sessions::default(),
        };
        Ok((Arc::new(config), Shared::new()))
    }
}

/// A running tunnel: a future that resolves when the tunnel stops, with
/// `Ok` after [`Handle::shutdown`] and the error otherwise (a refused
/// credential, a redirect loop, the failure limit).
#[must_use = "futures do nothing unless polled"]
pub struct Tunnel {
    handle: Handle,
    run: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
}

impl Tunnel {
    fn start(config: Arc<Config>, shared: Arc<Shared>, runner: Runner) -> Self {
        Tunnel {
            handle: Handle {
                shared: shared.clone(),
            },
            run: Box::pin(pool::supervise(config, shared, runner)),
        }
    }

    fn failed(error: Error) -> Self {
        let shared = Shared::new();
        shared.update(|s| {
            s.phase = Phase::Failed;
            s.last_error = Some(error.clone());
        });
        Tunnel {
            handle: Handle { shared },
            run: Box::pin(std::future::ready(Err(error))),
        }
    }

    /// A handle to observe and stop the tunnel from elsewhere.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Future for Tunnel {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.run.as_mut().poll(cx)
    }
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("status", &*self.handle.shared.status.borrow())
            .finish_non_exhaustive()
    }
}
