//! The relay's shared state and what changes it: the name table and its
//! claims (through the cluster when there is one), the counts of what
//! every client holds, the sweeps, the drain. Handlers in `routes` read
//! it; nothing here knows a route.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::Request;

use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::names::{ClaimError, Claimed, Names};
use crate::ports::Ports;
use crate::settings::{Bounds, Settings};
use crate::slots::Slots;

/// A relay: its settings, its name table and the acceptor its peers
/// upgrade with. Serve it with [`crate::server::Server`].
#[derive(Debug)]
pub struct Relay {
    pub(crate) settings: Settings,
    pub(crate) names: Names,
    pub(crate) acceptor: ptth::acceptor::Builder,
    /// Shared with the bodies that count bytes as they pass.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: Limiter,
    /// Polls parked on the whole relay, by client.
    pub(crate) parked: Arc<Slots>,
    /// Public requests in flight, by client.
    pub(crate) in_flight: Arc<Slots>,
    /// Connections held, by client.
    pub(crate) connections: Arc<Slots>,
    /// TCP names' public ports.
    pub(crate) ports: Ports,
    /// The cluster this node belongs to, once it joined one.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

/// The largest HTTP/2 frame a peer may send the relay. A device streaming
/// a download (a TCP visitor's, a large body) then writes it in few large
/// frames instead of 16 KiB ones, each a header to parse and a wake-up;
/// bulk through a TCP name went from about rathole's speed to 1.2-1.5x
/// (docs/performance.md, "TCP tunnels"). What a peer can make the relay
/// hold is still bounded by the connection's flow-control window, which
/// the frame lies within.
const PEER_FRAME: u32 = 1024 * 1024;

impl Relay {
    /// A relay with `settings` and no names yet.
    pub fn new(settings: Settings) -> Arc<Self> {
        let acceptor = ptth::acceptor::Builder::new().http2(|h2| {
            h2.keep_alive_interval(settings.liveness.interval)
                .keep_alive_timeout(settings.liveness.timeout)
                .keep_alive_while_idle(true)
                .max_frame_size(PEER_FRAME);
        });
        let parked = Slots::new(settings.longpoll.parked_bounds());
        let in_flight = Slots::new(in_flight_bounds(&settings));
        let connections = Slots::new(settings.connections);
        Arc::new(Relay {
            names: Names::new(settings.policy.clone(), settings.max_names),
            limiter: Limiter::new(settings.claim_rate),
            settings,
            acceptor,
            metrics: Arc::new(Metrics::new()),
            parked,
            in_flight,
            connections,
            ports: Ports::default(),
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

    /// Undoes a claim that created `name` (its pool `pool`) and was then
    /// refused: the name is free again at once, here and in the cluster.
    pub(crate) async fn unclaim(&self, name: &str, pool: &Arc<crate::pool::Pool>) {
        self.names.forget_unused(name, pool);
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            cluster.forget(name).await;
        }
    }

    /// Joins this relay to `cluster`: claims go through etcd from now on,
    /// and requests for names with peers on other nodes are forwarded
    /// there. Call it once, before the server runs.
    #[cfg(feature = "cluster")]
    pub fn attach_cluster(self: &Arc<Self>, cluster: crate::cluster::Cluster) {
        if self.cluster.set(cluster).is_ok() {
            tokio::spawn(sweep_cluster(Arc::downgrade(self)));
        }
    }

    /// Forgets names whose lease ran out, every `interval` while the relay
    /// lives: a name nobody looks up again must not keep its memory.
    pub(crate) async fn sweep_names(relay: Weak<Relay>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            match relay.upgrade() {
                Some(relay) => {
                    relay.names.sweep();
                    relay.release_ports();
                }
                None => return,
            }
        }
    }

    /// Takes the policy (pins, keys, open registration) and the bounds
    /// of `settings` (names, claim rate, connections, requests in flight,
    /// parked polls), as a reload of the config file does; the other
    /// settings stay as the relay started with them. Names the new policy
    /// no longer grants are released and their peers closed once their
    /// requests in flight are done. Returns how many names were released.
    pub fn reload(&self, settings: &Settings) -> usize {
        self.limiter.set_rate(settings.claim_rate);
        self.connections.set_bounds(settings.connections);
        self.in_flight.set_bounds(in_flight_bounds(settings));
        self.parked.set_bounds(settings.longpoll.parked_bounds());
        let released = (self.names).reload(settings.policy.clone(), settings.max_names);
        for pool in &released {
            pool.drain();
        }
        self.release_ports();
        released.len()
    }

    /// Releases the ports of names no longer held (a lease ran out, a
    /// reload released them), closing their listeners.
    pub(crate) fn release_ports(&self) {
        let held = |name: &str, pool: &Arc<crate::pool::Pool>| {
            (self.names.lookup(name)).is_some_and(|now| Arc::ptr_eq(&now, pool))
        };
        let released = self.ports.sweep(held);
        if released > 0 {
            tracing::debug!(released, "TCP ports released");
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
            return cluster.marked(request);
        }
        let _ = request;
        false
    }

    /// The public TCP port the cluster records for `name`: the one its
    /// claims on every node get. `None` without a cluster.
    pub(crate) fn recorded_port(&self, name: &str) -> Option<u16> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            return cluster.port_of(name);
        }
        let _ = name;
        None
    }

    /// The ports the cluster records for names other than `name`; none
    /// without a cluster.
    pub(crate) fn ports_taken_elsewhere(&self, name: &str) -> std::collections::HashSet<u16> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            return cluster.ports_of_others(name);
        }
        let _ = name;
        std::collections::HashSet::new()
    }

    /// Records `port` for `name` in the cluster; the port the name has
    /// (`port`, or another that a node recorded first), or `None` when
    /// another name holds it. Without a cluster, `port`.
    pub(crate) async fn hold_port(&self, name: &str, port: u16) -> Option<u16> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster.get() {
            return cluster.hold_port(name, port).await;
        }
        let _ = name;
        Some(port)
    }

    /// Long polls parked now, on every name.
    pub fn parked_polls(&self) -> usize {
        self.parked.held()
    }

    /// What the relay has counted.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus text of what the relay counts now.
    pub fn metrics_text(&self) -> String {
        let (names, h1, h2) = self.names.census();
        self.metrics.render(names, h1, h2)
    }
}

/// Public requests in flight: per client as configured, and in all bounded
/// by the connections that carry them.
fn in_flight_bounds(settings: &Settings) -> Bounds {
    Bounds {
        per_client: settings.in_flight_per_client.max(1),
        total: usize::MAX,
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

/// Releases, every third of the node TTL, the names whose last local peer
/// left, so other nodes stop forwarding to this one.
#[cfg(feature = "cluster")]
async fn sweep_cluster(relay: Weak<Relay>) {
    loop {
        let (cluster, interval) = {
            let Some(relay) = relay.upgrade() else {
                return;
            };
            let Some(cluster) = relay.cluster.get().cloned() else {
                return;
            };
            let interval = cluster.node_ttl() / 3;
            for name in cluster.owned_names() {
                let gone = relay.names.lookup(&name).is_none_or(|pool| pool.is_empty());
                if gone && let Err(error) = cluster.release(&name).await {
                    tracing::debug!(%error, %name, "a name was not released");
                }
            }
            // Names claimed here while etcd could not be reached.
            let owned = cluster.owned_names();
            for (name, digest) in relay.names.served() {
                if !owned.contains(&name) {
                    match cluster.claim(&name, &digest, false).await {
                        Ok(_) => tracing::debug!(%name, "a local name joined the cluster"),
                        Err(error) => {
                            tracing::debug!(%error, %name, "a local name is not in the cluster yet")
                        }
                    }
                }
            }
            (cluster, interval)
        };
        drop(cluster);
        tokio::time::sleep(interval).await;
    }
}
