//! The relay's shared state and settings, and the one hyper service that
//! takes both the public's requests and the peers' claims.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::assets;
use crate::limit::{ClaimRate, Limiter};
use crate::longpoll::{self, LongPoll};
use crate::metrics::Metrics;
use crate::names::{ClaimError, Claimed, Names, Policy};
use crate::pool::{BoxError, Liveness, Waits};
pub use crate::route::Routing;
use crate::slots::Slots;
use crate::{peers, public};

/// The body of every response the relay gives.
pub type RelayBody = BoxBody<Bytes, BoxError>;

/// What a relay is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How public requests find their name. Default is [`Routing::Path`].
    pub routing: Routing,
    /// The path peers claim names under. Default is `/reversehttp`.
    pub access: String,
    /// In path mode, whether `/<name>` is removed from the target before
    /// it reaches the peer. Default is `false`: the target is forwarded
    /// unaltered, as ReverseHttp requires.
    pub strip_prefix: bool,
    /// Who may claim which names. Default is open registration.
    pub policy: Policy,
    /// How long a public request waits for a connection.
    pub waits: Waits,
    /// How peers' connections are checked. Default is
    /// [`Liveness::default`]: a frozen peer is evicted within 30 s.
    pub liveness: Liveness,
    /// How many claims one client address may make. Default is
    /// [`ClaimRate::default`].
    pub claim_rate: ClaimRate,
    /// How long a peer has to send a response head. Default is 60 s.
    pub head_timeout: Duration,
    /// Whether the relay is reached over TLS, for public URLs and
    /// `X-Forwarded-Proto`. Default is `false`.
    pub tls: bool,
    /// How long-poll clients are served. Default is
    /// [`LongPoll::default`].
    pub longpoll: LongPoll,
    /// The most names held at once; a claim past it is `503`. Default is
    /// 100,000.
    pub max_names: usize,
    /// How long a request body may pause before it is cut. Default is
    /// 30 s.
    pub body_timeout: Duration,
    /// Public requests one client address (an IPv6 one by its /64) may
    /// have waiting for their response head at once: a peer takes a
    /// bounded number of requests (an HTTP/2 peer, 200 streams by hyper's
    /// default), and one client stalling its uploads must not take them
    /// all. Past it, `429`. Default is 64.
    pub in_flight_per_client: usize,
    /// Proxies in front of the relay (a load balancer) whose forwarding
    /// fields are kept and appended to; anyone else's are replaced.
    /// Default is none.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            routing: Routing::Path,
            access: "/reversehttp".to_owned(),
            strip_prefix: false,
            policy: Policy::default(),
            waits: Waits::default(),
            liveness: Liveness::default(),
            claim_rate: ClaimRate::default(),
            head_timeout: Duration::from_secs(60),
            tls: false,
            longpoll: LongPoll::default(),
            max_names: 100_000,
            body_timeout: Duration::from_secs(30),
            in_flight_per_client: 64,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A relay: its settings, its name table and the acceptor its peers
/// upgrade with. Serve it with [`crate::server`].
#[derive(Debug)]
pub struct Relay {
    pub(crate) settings: Settings,
    pub(crate) names: Names,
    pub(crate) acceptor: ptth::acceptor::Builder,
    pub(crate) metrics: Metrics,
    pub(crate) limiter: Limiter,
    /// Polls parked on the whole relay, by client.
    pub(crate) parked: Arc<Slots>,
    /// Public requests in flight, by client.
    pub(crate) in_flight: Arc<Slots>,
    /// The cluster this node belongs to, once it joined one.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

impl Relay {
    /// A relay with `settings` and no names yet.
    pub fn new(settings: Settings) -> Arc<Self> {
        let mut acceptor = ptth::acceptor::Builder::new();
        acceptor
            .http2()
            .keep_alive_interval(settings.liveness.interval)
            .keep_alive_timeout(settings.liveness.timeout)
            .keep_alive_while_idle(true);
        let parked = Slots::new(settings.longpoll.parked_bounds());
        let in_flight = Slots::new(crate::slots::Bounds {
            per_client: settings.in_flight_per_client.max(1),
            // Bounded in all by the connections that carry them.
            total: usize::MAX,
        });
        Arc::new(Relay {
            names: Names::new(settings.policy.clone(), settings.max_names),
            limiter: Limiter::new(settings.claim_rate),
            settings,
            acceptor,
            metrics: Metrics::new(),
            parked,
            in_flight,
            #[cfg(feature = "cluster")]
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// The name table.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Claims `name` for a client at `client`: in the cluster first, when
    /// this node is in one (so every node agrees on the token), then in
    /// the local table. `charge` says which claims the client's claim
    /// limit counts.
    pub(crate) async fn claim(
        &self,
        name: &str,
        token: Option<&str>,
        lease: Option<Duration>,
        client: IpAddr,
        charge: Charge,
    ) -> Result<Claimed, ClaimError> {
        let take = || self.limiter.take(client).map_err(ClaimError::RateLimited);
        if charge == Charge::Every {
            take()?;
        }
        let admit = || match charge {
            Charge::Every => Ok(()),
            Charge::Creating => take(),
        };
        let claimed = self.claim_admitted(name, token, lease, admit).await;
        // A refused token costs a claim too, so tokens cannot be guessed
        // at the pace of polls.
        if let (Err(ClaimError::Forbidden(_)), Charge::Creating) = (&claimed, charge) {
            take()?;
        }
        claimed
    }

    async fn claim_admitted(
        &self,
        name: &str,
        token: Option<&str>,
        lease: Option<Duration>,
        admit: impl FnOnce() -> Result<(), ClaimError>,
    ) -> Result<Claimed, ClaimError> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            self.names.permits(name, token)?;
            if self.names.lookup(name).is_none() {
                admit()?;
            }
            // The token is settled here, so etcd and this node's table
            // keep the digest of the same one.
            let fresh = token.is_none();
            let token = token.map_or_else(crate::token::random_token, str::to_owned);
            let digest = crate::token::Digest::of(&token);
            let granted = crate::cluster::claim(cluster, name, &digest, fresh).await?;
            // Without etcd (`None`), this node settles the claim alone.
            let mut claimed = self.names.claim(name, Some(&token), lease, || Ok(()))?;
            if let Some(granted) = granted {
                claimed.created = granted.created;
            }
            return Ok(claimed);
        }
        self.names.claim(name, token, lease, admit)
    }

    /// Joins this relay to `cluster`: claims go through etcd from now on,
    /// and requests for names with peers on other nodes are forwarded
    /// there. Call it once, before the server runs.
    #[cfg(feature = "cluster")]
    pub fn attach_cluster(self: &Arc<Self>, cluster: crate::cluster::Cluster) {
        if self.cluster.set(cluster).is_ok() {
            tokio::spawn(crate::cluster::sweep(Arc::downgrade(self)));
        }
    }

    /// Forgets names whose lease ran out, every `interval` while the relay
    /// lives: a name nobody looks up again must not keep its memory.
    pub(crate) async fn sweep_names(relay: std::sync::Weak<Relay>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            match relay.upgrade() {
                Some(relay) => relay.names.sweep(),
                None => return,
            }
        }
    }

    /// Closes every peer once it has no request in flight, and ends every
    /// parked poll: what a shutdown does before it waits for requests.
    pub fn drain(&self) {
        for pool in self.names.pools() {
            pool.drain();
        }
    }

    /// Whether `request` came from another node of this relay's cluster,
    /// proven by its hop mark: it is then served here, never forwarded
    /// again, and its forwarding fields are the node's.
    pub(crate) fn came_from_node<B>(&self, request: &Request<B>) -> bool {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            return crate::cluster::forward::from_node(cluster, request);
        }
        let _ = request;
        false
    }

    /// Long polls parked now, on every name.
    pub fn parked_polls(&self) -> usize {
        self.parked.held()
    }

    /// What the relay has counted.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The hyper service for one accepted connection from `client`.
    pub fn service(self: &Arc<Self>, client: SocketAddr) -> Service {
        Service {
            relay: self.clone(),
            client,
        }
    }

    /// Whether `path` is under the peers' access path, and the rest of it.
    fn peer_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.settings.access.trim_end_matches('/'))?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// Which claims of a client its claim limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Every claim: a PTTH setup or a registration, each a deliberate act.
    Every,
    /// Claims that create a name or present a wrong token: polls and JSON
    /// posts, which a long-poll client repeats all day on its own name.
    Creating,
}

/// The relay's hyper service for one connection.
#[derive(Debug, Clone)]
pub struct Service {
    relay: Arc<Relay>,
    client: SocketAddr,
}

impl Service {
    /// The client this connection came from.
    pub fn client(&self) -> SocketAddr {
        self.client
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<RelayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RelayBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let relay = self.relay.clone();
        let client = self.client;
        Box::pin(async move {
            if assets::wanted(&relay, &request) {
                return Ok(assets::serve(&request));
            }
            let response = match relay.peer_path(request.uri().path()) {
                Some(rest) => {
                    let rest = rest.to_owned();
                    if peers::is_setup(&request) {
                        peers::claim(&relay, request, &rest, client).await
                    } else {
                        longpoll::handle(&relay, request, &rest, client).await
                    }
                }
                None => {
                    let started = tokio::time::Instant::now();
                    let response = public::forward(&relay, request, client).await;
                    relay.metrics.answered(response.status(), started.elapsed());
                    response
                }
            };
            Ok(response)
        })
    }
}

/// A short plain-text answer of the relay's own.
pub(crate) fn status(code: StatusCode, text: &str) -> Response<RelayBody> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The text may hold what a client sent (a host); a browser must not
    // read it as anything but text.
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> RelayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}
