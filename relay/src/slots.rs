//! Places bounded per client address and in total: connections, so that
//! one client cannot hold every descriptor the relay has, and parked long
//! polls, so that one client cannot take every place for polls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::limit::client_key;
use crate::settings::Bounds;

/// The places held now, by client.
#[derive(Debug)]
pub struct Slots {
    held: Mutex<Held>,
}

#[derive(Debug)]
struct Held {
    /// Under the lock with the counts, so a reload changes both at once;
    /// places held past new, lower bounds stay until they are given back.
    bounds: Bounds,
    total: usize,
    // Bounded by `total`: a client is here only while it holds one.
    by_client: HashMap<IpAddr, usize>,
}

impl Slots {
    /// No place held yet, bounded by `bounds`.
    pub fn new(bounds: Bounds) -> Arc<Self> {
        Arc::new(Slots {
            held: Mutex::new(Held {
                bounds,
                total: 0,
                by_client: HashMap::new(),
            }),
        })
    }

    /// Bounds new places by `bounds` from now on.
    pub fn set_bounds(&self, bounds: Bounds) {
        self.held.lock().expect("the slot counts").bounds = bounds;
    }

    /// Takes one more place for `ip`, held until the guard drops, or
    /// `None` when the client or everyone together holds as many as may be.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = client_key(ip);
        let mut held = self.held.lock().expect("the slot counts");
        let mine = held.by_client.get(&key).copied().unwrap_or(0);
        if held.total >= held.bounds.total || mine >= held.bounds.per_client {
            return None;
        }
        held.total += 1;
        held.by_client.insert(key, mine + 1);
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        self.held.lock().expect("the slot counts").total
    }
}

/// One place held; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("the slot counts");
        held.total -= 1;
        if let Some(mine) = held.by_client.get_mut(&self.key) {
            *mine -= 1;
            if *mine == 0 {
                held.by_client.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_client_and_in_all() {
        let conns = Slots::new(Bounds {
            per_client: 2,
            total: 3,
        });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let a1 = conns.take(ip("192.0.2.1")).unwrap();
        let _a2 = conns.take(ip("192.0.2.1")).unwrap();
        assert!(conns.take(ip("192.0.2.1")).is_none(), "per client");
        let _v6 = conns.take(ip("2001:db8::1")).unwrap();
        assert!(conns.take(ip("192.0.2.2")).is_none(), "in all");
        drop(a1);
        let _b = conns.take(ip("192.0.2.2")).unwrap();
        assert_eq!(conns.held(), 3);
        assert_eq!(conns.held.lock().unwrap().by_client.len(), 3);
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let conns = Slots::new(Bounds {
            per_client: 1,
            total: 10,
        });
        let _one = conns.take("2001:db8::1".parse().unwrap()).unwrap();
        assert!(conns.take("2001:db8::2".parse().unwrap()).is_none());
        assert!(conns.take("2001:db8:0:1::2".parse().unwrap()).is_some());
    }

    #[test]
    fn new_bounds_hold_for_new_places_and_leave_the_held_ones() {
        let conns = Slots::new(Bounds {
            per_client: 3,
            total: 10,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| conns.take(ip).unwrap()).collect();
        conns.set_bounds(Bounds {
            per_client: 1,
            total: 10,
        });
        assert_eq!(conns.held(), 3, "held places stay");
        assert!(conns.take(ip).is_none());
        drop(held);
        let _one = conns.take(ip).unwrap();
        assert!(conns.take(ip).is_none());
        conns.set_bounds(Bounds {
            per_client: 5,
            total: 1,
        });
        assert!(conns.take("192.0.2.2".parse().unwrap()).is_none(), "in all");
    }
}
