//! The device's side: a service that answers CONNECT by dialling the one
//! target it was given, then splices (`docs/protocol.md, "TCP over PTTH:
//! CONNECT"`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use super::body::DialBody;
use super::splice::Splice;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The future of a [`Dial`] answer.
type Answer<R, E> = Pin<Box<dyn Future<Output = Result<Response<DialBody<R>>, E>> + Send>>;

/// A hyper service that answers `CONNECT` by opening a TCP connection to
/// its target and carrying bytes both ways: a device's ssh or database
/// port, reached through a relay.
///
/// The target is the one given here, whatever the request names: the
/// authority of a `CONNECT` comes from the other side of the relay, and
/// a device that dialled it would be an open proxy into its network.
/// The request's authority is only logged.
///
/// On `CONNECT` it dials the target within the
/// [connect timeout](Dial::connect_timeout). If that fails the answer is
/// `502 Bad Gateway` with a line of text, and nothing else happens. Else
/// the answer is `200` with no body, and from then on the request's stream
/// (an HTTP/2 stream, or the whole HTTP/1.1 connection) and the TCP
/// connection are copied into each other by a [`Splice`] on a task of its
/// own, with half-close. Other requests go to the
/// [fallback](Dial::fallback), except the relay's liveness check
/// `OPTIONS *`, answered `204` here because it is about the connection,
/// not the service.
///
/// ```no_run
/// # async fn run() -> Result<(), ptth::Error> {
/// use ptth::connect::Dial;
///
/// let ssh = Dial::new("127.0.0.1:22".parse().unwrap());
/// ptth::tunnel::serve("https://relay.example/reversehttp/lamp", ssh).await
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a Dial does nothing until it serves a connection"]
pub struct Dial<F = NotAllowed> {
    config: Arc<Config>,
    fallback: F,
}

#[derive(Debug, Clone)]
struct Config {
    target: Target,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    buffer_size: Option<usize>,
}

#[derive(Debug, Clone)]
enum Target {
    Addr(SocketAddr),
    /// Resolved at each dial, each address tried in turn.
    Host(String),
}

impl Dial {
    /// Dials `target` for every `CONNECT`.
    pub fn new(target: SocketAddr) -> Self {
        Self::with(Target::Addr(target))
    }

    /// Dials `target`, a `host:port` such as `"db.internal:5432"`, for
    /// every `CONNECT`: the name is resolved at each dial, and each of its
    /// addresses tried in turn until one answers.
    pub fn host(target: impl Into<String>) -> Self {
        Self::with(Target::Host(target.into()))
    }

    fn with(target: Target) -> Self {
        Dial {
            config: Arc::new(Config {
                target,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                idle_timeout: None,
                buffer_size: None,
            }),
            fallback: NotAllowed,
        }
    }
}

impl<F> Dial<F> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The time allowed to open the TCP connection to the target; also
    /// how long the stream may take to be handed over once the `200` is
    /// sent. A dial that takes longer is answered `502`.
    ///
    /// Default is 10 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().connect_timeout = timeout;
        self
    }

    /// Closes a stream and its TCP connection once no byte has moved
    /// either way for `timeout` (see [`Splice::idle_timeout`]).
    ///
    /// Default is none: a quiet session stays open, as a quiet ssh
    /// session does on a plain TCP connection.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().idle_timeout = Some(timeout);
        self
    }

    /// The buffer each direction of a stream copies through, in bytes
    /// (see [`Splice::buffer_size`]): larger ones move bulk transfers in
    /// fewer, larger writes, at the cost of memory per busy stream.
    ///
    /// Default is the splice's, 32 KiB.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.config_mut().buffer_size = Some(bytes);
        self
    }

    /// Answers requests other than `CONNECT` (and `OPTIONS *`) with
    /// `fallback`, a hyper service, or with the `tower` feature a tower
    /// service such as an axum `Router`: one device can serve its web
    /// pages and its ssh port under one name.
    ///
    /// Default is [`NotAllowed`]: `405 Method Not Allowed` with
    /// `Allow: CONNECT`.
    pub fn fallback<G>(self, fallback: G) -> Dial<G> {
        Dial {
            config: self.config,
            fallback,
        }
    }
}

impl<F> fmt::Debug for Dial<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dial")
            .field("target", &self.config.target)
            .field("connect_timeout", &self.config.connect_timeout)
            .field("idle_timeout", &self.config.idle_timeout)
            .field("buffer_size", &self.config.buffer_size)
            .finish_non_exhaustive()
    }
}

/// What a [`Dial`] answers itself, or `None` for the fallback.
enum Own {
    Connect,
    Options,
}

fn own(request: &Request<Incoming>) -> Option<Own> {
    if request.method() == Method::CONNECT {
        Some(Own::Connect)
    } else if request.method() == Method::OPTIONS && request.uri() == "*" {
        Some(Own::Options)
    } else {
        None
    }
}

impl<F> Dial<F> {
    /// The answer to a request this service handles itself.
    fn answer<R, E>(&self, own: Own, request: Request<Incoming>) -> Answer<R, E>
    where
        R: Send + 'static,
        E: Send + 'static,
    {
        match own {
            Own::Options => {
                let mut response = Response::new(DialBody::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Box::pin(std::future::ready(Ok(response)))
            }
            Own::Connect => {
                let config = self.config.clone();
                Box::pin(async move { Ok(config.connect(request).await) })
            }
        }
    }
}

impl<F, R> Service<Request<Incoming>> for Dial<F>
where
    F: Service<Request<Incoming>, Response = Response<R>>,
    F::Future: Send + 'static,
    F::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<DialBody<R>>;
    type Error = F::Error;
    type Future = Answer<R, F::Error>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if let Some(own) = own(&request) {
            return self.answer(own, request);
        }
        let answer = self.fallback.call(request);
        Box::pin(async move { Ok(answer.await?.map(DialBody::fallback)) })
    }
}

/// With the `tower` feature a `Dial` whose fallback is a tower service
/// (an axum `Router`) is a tower service.
#[cfg(feature = "tower")]
impl<F, R> tower_service::Service<Request<Incoming>> for Dial<F>
where
    F: tower_service::Service<Request<Incoming>, Response = Response<R>> + Clone,
    F::Future: Send + 'static,
    F::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<DialBody<R>>;
    type Error = F::Error;
    type Future = Answer<R, F::Error>;

    /// Ready when the fallback is, as a request may go on to it.
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), F::Error>> {
        self.fallback.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        if let Some(own) = own(&request) {
            return self.answer(own, request);
        }
        // The fallback made ready goes with this request; the clone left
        // behind is made ready for the next (as tower's docs advise).
        let clone = self.fallback.clone();
        let answer = std::mem::replace(&mut self.fallback, clone).call(request);
        Box::pin(async move { Ok(answer.await?.map(DialBody::fallback)) })
    }
}

impl Config {
    /// Dials the target and answers: `200` with the stream spliced on a
    /// task of its own, or `502`.
    async fn connect<R>(self: Arc<Self>, mut request: Request<Incoming>) -> Response<DialBody<R>> {
        let asked = request
            .uri()
            .authority()
            .map(|authority| authority.to_string());
        let dialled = tokio::time::timeout(self.connect_timeout, self.target.dial()).await;
        let tcp = match dialled {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => {
                debug!(dial = ?self.target, ?asked, %error, "CONNECT: cannot reach the target");
                return bad_gateway(format!("cannot reach the target: {}\n", error.kind()));
            }
            Err(_) => {
                debug!(dial = ?self.target, ?asked, "CONNECT: the target did not answer in time");
                return bad_gateway(format!(
                    "the target did not answer within {:?}\n",
                    self.connect_timeout
                ));
            }
        };
        // Interactive sessions (ssh) send keystrokes one by one: Nagle's
        // algorithm would hold each back.
        let _ = tcp.set_nodelay(true);
        let upgrade = hyper::upgrade::on(&mut request);
        debug!(dial = ?self.target, ?asked, "CONNECT: target reached, answering 200");
        tokio::spawn(self.pass(upgrade, tcp));
        Response::new(DialBody::empty())
    }

    /// Waits for hyper to hand the stream over, then splices it with the
    /// target's connection.
    async fn pass(self: Arc<Self>, upgrade: OnUpgrade, tcp: TcpStream) {
        let upgraded = match tokio::time::timeout(self.connect_timeout, upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(error)) => {
                debug!(%error, "CONNECT: the stream was not handed over");
                return;
            }
            Err(_) => {
                debug!("CONNECT: the stream was not handed over in time");
                return;
            }
        };
        let mut splice = Splice::new();
        if let Some(idle) = self.idle_timeout {
            splice = splice.idle_timeout(idle);
        }
        if let Some(bytes) = self.buffer_size {
            splice = splice.buffer_size(bytes);
        }
        let spliced = splice.run(TokioIo::new(upgraded), tcp).await;
        debug!(
            to_target = spliced.a_to_b,
            from_target = spliced.b_to_a,
            ended = ?spliced.ended,
            "CONNECT: stream ended"
        );
    }
}

impl Target {
    async fn dial(&self) -> io::Result<TcpStream> {
        match self {
            Target::Addr(addr) => TcpStream::connect(addr).await,
            Target::Host(host) => TcpStream::connect(host.as_str()).await,
        }
    }
}

fn bad_gateway<R>(text: String) -> Response<DialBody<R>> {
    let mut response = Response::new(DialBody::text(Bytes::from(text)));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The fallback of a [`Dial`] that was given none: answers
/// `405 Method Not Allowed` with `Allow: CONNECT` and a line of text.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotAllowed;

impl<B> Service<Request<B>> for NotAllowed {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn call(&self, _: Request<B>) -> Self::Future {
        let mut response = Response::new("this service takes CONNECT only\n".to_owned());
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        let headers = response.headers_mut();
        headers.insert(ALLOW, HeaderValue::from_static("CONNECT"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        std::future::ready(Ok(response))
    }
}
