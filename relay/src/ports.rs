//! TCP names' public ports (docs/relay.md, "TCP tunnels"): which name
//! holds which port of the configured range, and the reservations that
//! keep a port for one name.
//!
//! The table holds at most one port per name and no port outside the
//! range, so it is bounded by the range in all, and by `[tcp]
//! ports-per-client` per client address (an IPv6 one by its /64); the
//! claims that lead here pass the names' own limits too (rate per
//! address, names per key, names in all).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio::task::AbortHandle;
#[cfg(feature = "cluster")]
use tokio::task::JoinHandle;

use crate::limit::client_key;
use crate::pool::Pool;
use crate::settings::{PortRange, Tcp};
use crate::tally::{Tallied, Tally};

/// A claim choosing its port, counted against its client address's
/// share until dropped ([`Ports::candidates`]).
pub type Choosing = Tallied<IpAddr>;

/// Why a claim got no port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The relay has no `[tcp] ports` range.
    #[error("this relay carries no TCP: it has no port range")]
    NoRange,
    /// The port asked for is outside the range, reserved for another
    /// name, or held.
    #[error("port {0} is not free for this name")]
    NotFree(u16),
    /// Every port of the range is held or reserved.
    #[error("every TCP port of this relay is held; retry later")]
    Full,
    /// The claim's client address holds as many ports as one may.
    #[error("this address holds {0} TCP ports, as many as one may; retry later")]
    TooMany(usize),
}

/// One held port: the name, its pool (the port is released once the name
/// is held by another pool or by none), and its listener's task.
#[derive(Debug)]
struct Held {
    name: String,
    /// The address that claimed it, as clients are counted.
    client: IpAddr,
    pool: Weak<Pool>,
    listener: AbortHandle,
}

/// The held ports. Cheap to share.
#[derive(Debug, Default)]
pub struct Ports {
    held: Mutex<HashMap<u16, Held>>,
    /// Claims between choosing their ports and holding one, by client
    /// address: they count against the address's share, as the wait in
    /// between (binding, etcd) lets its other claims choose meanwhile.
    choosing: Tally<IpAddr>,
    /// In a cluster, the ports of names whose peers are on other nodes,
    /// each with the name and the task taking its visitors to them.
    #[cfg(feature = "cluster")]
    forwarded: Mutex<HashMap<u16, (String, JoinHandle<()>)>>,
}

impl Ports {
    /// The port `pool` (the pool of `name`) holds already.
    pub fn held_by(&self, pool: &Arc<Pool>) -> Option<u16> {
        port_of(&self.held.lock().expect("the port table"), pool)
    }

    /// The ports a claim of `name` from `client` asking for `asked` (0:
    /// any) may bind, in order: its reservation, else the one asked for,
    /// else the free ones of the range from `start` (a random offset, so
    /// names do not all race for the first). Ports reserved for other
    /// names are never offered, and none to a client address holding or
    /// choosing `ports_per_client` already. The claim counts as choosing
    /// until the [`Choosing`] returned drops, which it does once the port
    /// is held or given up.
    pub fn candidates(
        &self,
        tcp: &Tcp,
        (name, client): (&str, IpAddr),
        asked: u16,
        start: u16,
    ) -> Result<(Vec<u16>, Choosing), PortError> {
        let range = tcp.ports.ok_or(PortError::NoRange)?;
        // Held across the count and the hold below, so that two claims
        // from one address cannot both pass the share.
        let held = self.held.lock().expect("the port table");
        let client = client_key(client);
        let by_client = held.values().filter(|held| held.client == client).count()
            + self.choosing.count(&client);
        if by_client >= tcp.ports_per_client {
            return Err(PortError::TooMany(by_client));
        }
        let reserved_elsewhere = |port: u16| {
            tcp.reserved
                .iter()
                .any(|(other, p)| *p == port && other != name)
        };
        let free = |port: u16| !held.contains_key(&port) && !reserved_elsewhere(port);
        let ports: Vec<u16> = if let Some(&port) = tcp.reserved.get(name) {
            if !free(port) || (asked != 0 && asked != port) {
                return Err(PortError::NotFree(asked.max(port)));
            }
            vec![port]
        } else if asked != 0 {
            if !range.contains(asked) || !free(asked) {
                return Err(PortError::NotFree(asked));
            }
            vec![asked]
        } else {
            range.from(start).filter(|port| free(*port)).collect()
        };
        if ports.is_empty() {
            return Err(PortError::Full);
        }
        Ok((ports, self.choosing.hold(client)))
    }

    /// Records `port` as held by `name`'s `pool`, claimed from `client`,
    /// its listener running as `listener`; or, when two claims of the
    /// name raced and the pool holds a port already, stops this listener
    /// and returns that port.
    pub fn hold(
        &self,
        port: u16,
        (name, client): (&str, IpAddr),
        pool: &Arc<Pool>,
        listener: AbortHandle,
    ) -> u16 {
        let mut held = self.held.lock().expect("the port table");
        if let Some(before) = port_of(&held, pool) {
            listener.abort();
            return before;
        }
        let entry = Held {
            name: name.to_owned(),
            client: client_key(client),
            pool: Arc::downgrade(pool),
            listener,
        };
        held.insert(port, entry);
        port
    }

    /// Releases the ports whose name `holds` no longer says is held by
    /// their pool, closing their listeners. Returns how many.
    pub fn sweep(&self, holds: impl Fn(&str, &Arc<Pool>) -> bool) -> usize {
        let mut held = self.held.lock().expect("the port table");
        let before = held.len();
        held.retain(|_, entry| {
            let keep = entry
                .pool
                .upgrade()
                .is_some_and(|pool| holds(&entry.name, &pool));
            if !keep {
                entry.listener.abort();
            }
            keep
        });
        before - held.len()
    }

    /// Whether a local name holds `port` (its listener is this node's).
    #[cfg(feature = "cluster")]
    pub fn is_held(&self, port: u16) -> bool {
        self.held
            .lock()
            .expect("the port table")
            .contains_key(&port)
    }

    /// Whether visitors of `port` are being forwarded to other nodes.
    #[cfg(feature = "cluster")]
    pub fn is_forwarded(&self, port: u16) -> bool {
        self.forwarded().contains_key(&port)
    }

    /// Records `port` as forwarded for `name` by the task of `listener`.
    #[cfg(feature = "cluster")]
    pub fn forward(&self, port: u16, name: &str, listener: JoinHandle<()>) {
        let before = self.forwarded().insert(port, (name.to_owned(), listener));
        if let Some((_, before)) = before {
            before.abort();
        }
    }

    /// Stops forwarding `port` for `name` (not for another name, whose
    /// visitors it still carries); the listener is closed once the
    /// returned task has ended.
    #[cfg(feature = "cluster")]
    pub fn stop_forwarding(&self, port: u16, name: &str) -> Option<JoinHandle<()>> {
        let mut forwarded = self.forwarded();
        if forwarded
            .get(&port)
            .is_none_or(|(forwarded, _)| forwarded != name)
        {
            return None;
        }
        let (_, listener) = forwarded.remove(&port)?;
        listener.abort();
        Some(listener)
    }

    /// Stops forwarding the ports for which `keep` is false, closing
    /// their listeners, so a local claim can bind one or a released name
    /// frees it.
    #[cfg(feature = "cluster")]
    pub fn retain_forwarded(&self, keep: impl Fn(u16, &str) -> bool) {
        self.forwarded().retain(|port, (name, listener)| {
            let kept = keep(*port, name);
            if !kept {
                listener.abort();
            }
            kept
        });
    }

    #[cfg(feature = "cluster")]
    fn forwarded(&self) -> std::sync::MutexGuard<'_, HashMap<u16, (String, JoinHandle<()>)>> {
        self.forwarded.lock().expect("the forwarded ports")
    }

    /// How many ports are held now.
    pub fn len(&self) -> usize {
        self.held.lock().expect("the port table").len()
    }

    /// Whether no port is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The port `pool` holds in `held`.
fn port_of(held: &HashMap<u16, Held>, pool: &Arc<Pool>) -> Option<u16> {
    let mut ports = held.iter();
    ports
        .find(|(_, held)| std::ptr::eq(held.pool.as_ptr(), Arc::as_ptr(pool)))
        .map(|(port, _)| *port)
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Every port of the range once, from the one `offset` places past
    /// the first, wrapping.
    fn from(self, offset: u16) -> impl Iterator<Item = u16> {
        let size = u32::from(self.last - self.first) + 1;
        let offset = u32::from(offset) % size;
        (0..size).map(move |i| {
            let port = u32::from(self.first) + (offset + i) % size;
            u16::try_from(port).expect("inside the range")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(first: u16, last: u16, reserved: &[(&str, u16)]) -> Tcp {
        Tcp {
            ports: Some(PortRange { first, last }),
            reserved: (reserved.iter())
                .map(|(name, port)| ((*name).to_owned(), *port))
                .collect(),
            ..Tcp::default()
        }
    }

    const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[tokio::test]
    async fn a_client_address_holds_at_most_its_share_of_the_ports() {
        let ports = Ports::default();
        let config = Tcp {
            ports_per_client: 2,
            ..tcp(20000, 20009, &[])
        };
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        ports.hold(20000, ("a", v6(1)), &Arc::new(Pool::default()), idle());
        ports.hold(20001, ("b", v6(2)), &Arc::new(Pool::default()), idle());
        // Another address of the same /64 is the same client.
        let refused = ports.candidates(&config, ("c", v6(3)), 0, 0);
        assert_eq!(refused.unwrap_err(), PortError::TooMany(2));
        let elsewhere = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(ports.candidates(&config, ("c", elsewhere), 0, 0).is_ok());
        // Claims still choosing their ports count until they are done.
        let first = ports.candidates(&config, ("d", elsewhere), 0, 0).unwrap();
        let second = ports.candidates(&config, ("e", elsewhere), 0, 0).unwrap();
        let refused = ports.candidates(&config, ("f", elsewhere), 0, 0);
        assert_eq!(refused.unwrap_err(), PortError::TooMany(2));
        drop((first, second));
        assert!(ports.candidates(&config, ("f", elsewhere), 0, 0).is_ok());
    }

    fn idle() -> AbortHandle {
        tokio::spawn(std::future::pending::<()>()).abort_handle()
    }

    #[tokio::test]
    async fn candidates_are_the_reservation_the_port_asked_or_the_free_ones() {
        let ports = Ports::default();
        let config = tcp(20000, 20003, &[("ssh", 20001)]);
        let pool = Arc::new(Pool::default());
        assert_eq!(ports.hold(20002, ("db", ONE), &pool, idle()), 20002);
        for (name, asked, start, expected) in [
            ("ssh", 0, 0, Ok(vec![20001])),
            ("ssh", 20001, 0, Ok(vec![20001])),
            ("ssh", 20003, 0, Err(PortError::NotFree(20003))),
            ("web", 20003, 0, Ok(vec![20003])),
            ("web", 20001, 0, Err(PortError::NotFree(20001))),
            ("web", 20002, 0, Err(PortError::NotFree(20002))),
            ("web", 30000, 0, Err(PortError::NotFree(30000))),
            ("web", 0, 0, Ok(vec![20000, 20003])),
            ("web", 0, 3, Ok(vec![20003, 20000])),
            ("web", 0, 65535, Ok(vec![20003, 20000])),
        ] {
            let got = ports.candidates(&config, (name, TWO), asked, start);
            assert_eq!(got.map(|(got, _)| got), expected, "{name} {asked} {start}");
        }
        assert_eq!(
            ports
                .candidates(&Tcp::default(), ("web", TWO), 0, 0)
                .unwrap_err(),
            PortError::NoRange
        );
        let (a, b) = (Arc::new(Pool::default()), Arc::new(Pool::default()));
        ports.hold(20000, ("a", ONE), &a, idle());
        ports.hold(20003, ("b", ONE), &b, idle());
        assert_eq!(
            ports.candidates(&config, ("web", TWO), 0, 0).unwrap_err(),
            PortError::Full
        );
        // A second port for a pool that holds one: the first stays.
        let raced = tokio::spawn(std::future::pending::<()>());
        assert_eq!(
            ports.hold(20001, ("a", ONE), &a, raced.abort_handle()),
            20000
        );
        assert!(raced.await.unwrap_err().is_cancelled());
        assert_eq!(ports.len(), 3);
    }

    #[tokio::test]
    async fn a_port_is_released_with_its_name_and_its_listener_stops() {
        let ports = Ports::default();
        let (kept, released) = (Arc::new(Pool::default()), Arc::new(Pool::default()));
        let listener = tokio::spawn(std::future::pending::<()>());
        ports.hold(20000, ("kept", ONE), &kept, idle());
        ports.hold(20001, ("gone", ONE), &released, listener.abort_handle());
        assert_eq!(ports.held_by(&released), Some(20001));
        let swept = ports.sweep(|name, pool| name == "kept" && Arc::ptr_eq(pool, &kept));
        assert_eq!(swept, 1);
        assert_eq!(ports.held_by(&released), None);
        assert_eq!(ports.held_by(&kept), Some(20000));
        assert!(listener.await.unwrap_err().is_cancelled());
        drop(kept);
        assert_eq!(ports.sweep(|_, _| true), 1, "a pool dropped is a name gone");
    }
}
