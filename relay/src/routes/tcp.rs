//! A TCP name's public port (docs/relay.md, "TCP tunnels"): the port a
//! claim asked for, and each visitor's connection to it carried as a
//! `CONNECT` on the least-loaded connection of the name's pool
//! (docs/protocol.md, "TCP over PTTH: CONNECT").

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, HeaderValue};
use ptth::connect::{Direction, Ended, Splice};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use crate::http::headers::{X_FORWARDED_FOR, X_REAL_IP};
use crate::pool::{self, Pool};
use crate::ports::PortError;
use crate::slots::Slot;
use crate::state::Relay;

/// How many ports of the range a claim tries to bind before it gives up:
/// another program may hold some of them.
const BIND_ATTEMPTS: usize = 32;

/// How long the accept loop pauses after a failed accept (out of
/// descriptors), so that it does not spin while none is free.
pub(super) const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The public port of `name`, whose connections join `pool`: the one it
/// holds, or a new one (`asked`, or any of the range for 0; in a cluster,
/// the one the name has on every node) with its listener started.
pub(crate) async fn port_for(
    relay: &Arc<Relay>,
    (name, client): (&str, IpAddr),
    pool: &Arc<Pool>,
    asked: u16,
) -> Result<u16, PortError> {
    if let Some(port) = relay.ports.held_by(pool) {
        return match asked == 0 || asked == port {
            true => Ok(port),
            false => Err(PortError::NotFree(asked)),
        };
    }
    let asked = match relay.recorded_port(name) {
        Some(port) if asked == 0 || asked == port => port,
        Some(_) => return Err(PortError::NotFree(asked)),
        None => asked,
    };
    let start = u16::try_from(getrandom::u32().unwrap_or(0) & 0xffff).unwrap_or(0);
    // `_choosing` counts this claim against its address's share until
    // the port is held (or given up), across the awaits below.
    let (candidates, _choosing) =
        relay
            .ports
            .candidates(&relay.settings.tcp, (name, client), asked, start)?;
    // Read from the table once: a scan of every name per candidate port
    // made a claim's cost the range times the names.
    let elsewhere = relay.ports_taken_elsewhere(name);
    let candidates = candidates
        .into_iter()
        .filter(|port| !elsewhere.contains(port));
    for port in candidates.take(BIND_ATTEMPTS) {
        stop_forwarding(relay, port, name).await;
        let Ok(listener) = TcpListener::bind((relay.settings.tcp.address, port)).await else {
            continue;
        };
        let listener = match relay.hold_port(name, port).await {
            Some(held) if held == port => listener,
            // Another node gave the name its port first: that one it is.
            Some(held) => {
                drop(listener);
                stop_forwarding(relay, held, name).await;
                let address = (relay.settings.tcp.address, held);
                let Ok(listener) = TcpListener::bind(address).await else {
                    return Err(PortError::NotFree(held));
                };
                return Ok(listen(relay, (name, client), pool, held, listener));
            }
            None => continue,
        };
        return Ok(listen(relay, (name, client), pool, port, listener));
    }
    Err(match asked {
        0 => PortError::Full,
        asked => PortError::NotFree(asked),
    })
}

/// Closes this node's listener forwarding `name`'s `port` to other
/// nodes, if it has one: the name's port is served here from now on.
async fn stop_forwarding(relay: &Relay, port: u16, name: &str) {
    #[cfg(feature = "cluster")]
    if let Some(forwarder) = relay.ports.stop_forwarding(port, name) {
        let _ = forwarder.await;
    }
    let _ = (relay, port, name);
}

/// Starts taking `name`'s visitors on `listener`, bound to `port`;
/// returns the port `pool` holds (another, when two claims raced).
fn listen(
    relay: &Arc<Relay>,
    (name, client): (&str, IpAddr),
    pool: &Arc<Pool>,
    port: u16,
    listener: TcpListener,
) -> u16 {
    let visitors = Visitors {
        relay: Arc::downgrade(relay),
        name: name.to_owned(),
        pool: Arc::downgrade(pool),
        port,
        open: Arc::default(),
    };
    let listener = tokio::spawn(visitors.accept(listener)).abort_handle();
    relay.ports.hold(port, (name, client), pool, listener)
}

/// The visitors of one port.
struct Visitors {
    /// Weak: the relay and the pool outlive no port's task; it ends when
    /// either is gone.
    relay: Weak<Relay>,
    name: String,
    pool: Weak<Pool>,
    port: u16,
    /// Visitor connections open now.
    open: Arc<AtomicUsize>,
}

impl Visitors {
    /// Takes visitors until the name is released: each one's connection is
    /// bounded per client address and in all (as every connection to the
    /// relay is) and per name, then carried on its own task.
    async fn accept(self, listener: TcpListener) {
        loop {
            let (visitor, client) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, port = self.port, "a TCP visitor was not accepted");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            let (Some(relay), Some(pool)) = (self.relay.upgrade(), self.pool.upgrade()) else {
                return;
            };
            if !relay
                .names
                .lookup(&self.name)
                .is_some_and(|now| Arc::ptr_eq(&now, &pool))
            {
                // The name's lease ran out: its port goes with it.
                relay.release_ports();
                return;
            }
            let Some((slot, counted)) = admit(&relay, client, &self.open) else {
                continue;
            };
            let visit = Visit {
                relay,
                pool,
                name: self.name.clone(),
                port: self.port,
                client: client.ip(),
                _slot: Some(slot),
                _counted: Some(counted),
            };
            tokio::spawn(visit.carry(visitor));
        }
    }
}

/// The places a visitor from `client` holds until it closes: one of its
/// address's connections and one of the name's visitors (`open` now);
/// `None`, counted, when either is full.
pub(super) fn admit(
    relay: &Relay,
    client: SocketAddr,
    open: &Arc<AtomicUsize>,
) -> Option<(Slot, Counted)> {
    let Some(slot) = relay.connections.take(client.ip()) else {
        relay.metrics.tcp_visitor("too-many-connections");
        return None;
    };
    let Some(counted) = Counted::take(open, relay.settings.tcp.connections_per_name) else {
        relay.metrics.tcp_visitor("name-full");
        return None;
    };
    Some((slot, counted))
}

/// One visitor's connection, with the places it holds until it closes.
pub(super) struct Visit {
    pub(super) relay: Arc<Relay>,
    pub(super) pool: Arc<Pool>,
    pub(super) name: String,
    pub(super) port: u16,
    /// The visitor's address, which the device is told (`X-Real-IP`).
    pub(super) client: IpAddr,
    /// Its client address's connection place: none for a visitor another
    /// node forwarded, whose hop connection holds one.
    pub(super) _slot: Option<Slot>,
    pub(super) _counted: Option<Counted>,
}

impl Visit {
    /// Opens a stream to a peer of the name and copies both ways; a
    /// visitor no peer takes is closed at once.
    async fn carry(self, visitor: TcpStream) {
        let _ = visitor.set_nodelay(true);
        if let Some(opened) = self.open().await {
            self.splice(visitor, opened).await;
        }
    }

    /// A stream to a peer of the name, and the load it puts on the peer's
    /// connection; `None` when no peer took it (counted and logged).
    pub(super) async fn open(&self) -> Option<(ptth::connect::Stream, pool::Stream)> {
        let relay = &self.relay;
        let (waits, open_timeout) = (relay.settings.waits, relay.settings.tcp.open_timeout);
        let picked = match self.pool.pick(waits).await {
            Ok(picked) => picked,
            Err(unavailable) => {
                debug!(name = %self.name, ?unavailable, "no peer for a TCP visitor");
                relay.metrics.tcp_visitor("no-peer");
                return None;
            }
        };
        // Long-poll peers carry no TCP.
        let Some(mut sender) = picked.sender() else {
            relay.metrics.tcp_visitor("no-peer");
            return None;
        };
        // Informational: the device dials its own target.
        let authority = Authority::try_from(format!("{}:{}", self.name, self.port)).ok()?;
        let fields = visitor_fields(self.client);
        let opened = ptth::connect::open_with(&mut sender, authority, fields, open_timeout).await;
        let stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                info!(name = %self.name, client = %self.client, %error, "a TCP visitor was refused");
                relay.metrics.tcp_visitor("refused");
                return None;
            }
        };
        relay.metrics.tcp_visitor("opened");
        // The stream is not a request in flight: a drain must not wait
        // for an ssh session to end before it closes the connection. It
        // still loads its connection, so the next visitor goes elsewhere.
        Some((stream, picked.into_stream()))
    }

    /// Copies between the visitor and the peer's stream until both ends
    /// closed, counting the bytes.
    pub(super) async fn splice<V>(
        self,
        visitor: V,
        (stream, _load): (ptth::connect::Stream, pool::Stream),
    ) where
        V: AsyncRead + AsyncWrite + Unpin,
    {
        let relay = &self.relay;
        let metrics = relay.metrics.clone();
        let mut splice = Splice::new().on_bytes(move |direction, bytes| {
            metrics.tcp_bytes(direction == Direction::AToB, bytes);
        });
        if let Some(idle) = relay.settings.tcp.idle_timeout {
            splice = splice.idle_timeout(idle);
        }
        let spliced = splice.run(visitor, stream).await;
        let ended = match &spliced.ended {
            Ended::Closed => "closed".to_owned(),
            Ended::Idle(_) => "idle".to_owned(),
            other => format!("{other:?}"),
        };
        info!(
            name = %self.name,
            client = %self.client,
            up = spliced.a_to_b,
            down = spliced.b_to_a,
            %ended,
            "tcp"
        );
    }
}

/// What a device is told of a TCP visitor from `client`, as it is of an
/// HTTP one: `X-Real-IP` (which `expose --allow-ip` judges) and
/// `X-Forwarded-For`.
pub(super) fn visitor_fields(client: IpAddr) -> HeaderMap {
    let mut fields = HeaderMap::new();
    if let Ok(address) = HeaderValue::from_str(&client.to_string()) {
        fields.insert(X_REAL_IP, address.clone());
        fields.insert(X_FORWARDED_FOR, address);
    }
    fields
}

/// One of a name's visitor connections, counted until it drops.
pub(super) struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Counts one more, unless `max` are open.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Counted> {
        let taken = open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < max).then_some(now + 1)
        });
        taken.ok().map(|_| Counted(open.clone()))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
