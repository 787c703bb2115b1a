//! What a relay is configured with: plain data, at the bottom of the
//! crate, so the command line and the config file build it and every
//! other module reads it without naming each other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::keys::Keys;
use crate::token::Digest;

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
    /// How long a peer has to send a response head once it has a
    /// request. Default is 60 s.
    pub response_timeout: Duration,
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
    /// Connections held at once, per client address (an IPv6 one by its
    /// /64) and in all; past either, a new connection is closed at once.
    /// Default is [`Bounds::connections`].
    pub connections: Bounds,
    /// Proxies in front of the relay (a load balancer) whose forwarding
    /// fields are kept and appended to; anyone else's are replaced.
    /// Default is none.
    pub trusted_proxies: Vec<Cidr>,
    /// TCP names and their public ports. Default is [`Tcp::default`]: no
    /// port range, so no TCP.
    pub tcp: Tcp,
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
            response_timeout: Duration::from_secs(60),
            longpoll: LongPoll::default(),
            max_names: 100_000,
            body_timeout: Duration::from_secs(30),
            in_flight_per_client: 64,
            connections: Bounds::connections(),
            trusted_proxies: Vec::new(),
            tcp: Tcp::default(),
        }
    }
}

/// How public requests find their name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// `/<name>/...` on the relay's own host.
    Path,
    /// `<name>.<domain>`, on any path.
    Host {
        /// The domain names live under.
        domain: String,
    },
}

/// Who may claim which names (docs/relay.md, "Claiming a name").
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Names pinned to tokens by the operator, by the tokens' digests.
    pub pinned: HashMap<String, Digest>,
    /// Whether names that are not pinned are refused.
    pub closed: bool,
    /// Access keys. With any, a claim of a name that is not pinned needs
    /// a key that allows it, unless `open` says otherwise.
    pub keys: Keys,
    /// With keys, whether claims without one are still taken, as open
    /// registration. Default is `false`.
    pub open: bool,
}

impl Policy {
    /// Whether a name that is neither pinned nor claimed with a key may be
    /// claimed: first come, first served.
    pub fn registration_open(&self) -> bool {
        !self.closed && (self.keys.is_empty() || self.open)
    }
}

/// How many claims one address may make: a burst, refilled at a rate.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRate {
    /// Claims allowed at once.
    pub burst: u32,
    /// Claims allowed per second after the burst.
    pub per_second: u32,
}

impl Default for ClaimRate {
    /// 20 at once, 10 a second: a device with a large pool connects at
    /// once, and a reconnect loop is slowed to a pace the relay does not
    /// feel.
    fn default() -> Self {
        ClaimRate {
            burst: 20,
            per_second: 10,
        }
    }
}

/// How long a public request may wait for a connection of its name.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For a name with no connection at all: a peer may be reconnecting.
    pub peer: Duration,
    /// For a name whose HTTP/1.1 connections are all busy.
    pub queue: Duration,
}

impl Default for Waits {
    /// docs/relay.md, "Statuses": 1 s for a peer (ReverseHttp's request timeout), 10 s in
    /// the queue (frp's `userConnTimeout`).
    fn default() -> Self {
        Waits {
            peer: Duration::from_secs(1),
            queue: Duration::from_secs(10),
        }
    }
}

/// How the relay checks that a peer's connection still moves: HTTP/2
/// PINGs, and on HTTP/1.1 an `OPTIONS *` request when the connection is
/// idle, since only a request proves an HTTP/1.1 peer alive.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// How often to check.
    pub interval: Duration,
    /// How long the answer may take before the connection is evicted.
    pub timeout: Duration,
}

impl Default for Liveness {
    /// 20 s and 10 s: a frozen peer is evicted within 30 s, and the
    /// checks keep idle flows alive under the minute after which
    /// middleboxes drop them.
    fn default() -> Self {
        Liveness {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
        }
    }
}

/// How long-poll clients are served.
#[derive(Debug, Clone, Copy)]
pub struct LongPoll {
    /// How long a poll is held before `204`. Default is 30 s, ReverseHttp's.
    pub hold: Duration,
    /// The largest request body sent to, or reply read from, a client.
    /// Default is 1 MiB: bodies cross whole, never streamed.
    pub max_body: usize,
    /// Requests queued or awaiting replies, per name. Default is 64.
    pub requests: usize,
    /// Polls parked per name. Default is 32.
    pub polls: usize,
    /// Polls parked on the whole relay. Default is 10,000.
    pub parked: usize,
    /// Polls parked by one client address (an IPv6 one by its /64), so
    /// one client cannot take every place. Default is none: 1/8 of
    /// `parked`.
    pub parked_per_client: Option<usize>,
}

impl LongPoll {
    /// The bounds on parked polls, per client and in all.
    pub fn parked_bounds(&self) -> Bounds {
        Bounds {
            per_client: self.parked_per_client.unwrap_or(self.parked / 8).max(1),
            total: self.parked,
        }
    }
}

impl Default for LongPoll {
    fn default() -> Self {
        LongPoll {
            hold: Duration::from_secs(30),
            max_body: 1024 * 1024,
            requests: 64,
            polls: 32,
            parked: 10_000,
            parked_per_client: None,
        }
    }
}

/// TCP names (docs/relay.md, "TCP tunnels"): the public ports they are
/// given, and the bounds on their visitors.
#[derive(Debug, Clone)]
pub struct Tcp {
    /// The ports TCP names are given. Default is none: claims asking for
    /// a port are refused.
    pub ports: Option<PortRange>,
    /// The address their ports listen on. Default is 127.0.0.1; `serve`
    /// takes its `--listen` address's.
    pub address: IpAddr,
    /// Ports kept for one name each, which no other name is given.
    /// Default is none.
    pub reserved: HashMap<String, u16>,
    /// Visitor connections one name carries at once; past it, a new one
    /// is closed at once. Default is 1,024.
    pub connections_per_name: usize,
    /// Ports the names claimed from one client address (an IPv6 one by
    /// its /64) hold at once; past it, a claim gets `429`. Default is 16.
    pub ports_per_client: usize,
    /// How long a visitor's connection may carry no byte either way
    /// before it is closed. Default is none: ssh sessions sit idle for
    /// hours, and the device's keepalives are its own business.
    pub idle_timeout: Option<Duration>,
    /// How long a visitor's connection waits for the device to answer its
    /// CONNECT. Default is 10 s.
    pub open_timeout: Duration,
}

impl Default for Tcp {
    fn default() -> Self {
        Tcp {
            ports: None,
            address: IpAddr::from([127, 0, 0, 1]),
            reserved: HashMap::new(),
            connections_per_name: 1024,
            ports_per_client: 16,
            idle_timeout: None,
            open_timeout: Duration::from_secs(10),
        }
    }
}

/// A range of ports, both ends included: `20000-20999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port, not below the first.
    pub last: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a port range such as 20000-20999");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let port = |part: &str| part.trim().parse::<u16>().ok().filter(|port| *port != 0);
        match (port(first), port(last)) {
            (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
            _ => Err(bad()),
        }
    }
}

/// How many places (connections, parked polls) may be held at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Per client address (an IPv6 client by its /64).
    pub per_client: usize,
    /// In all.
    pub total: usize,
}

impl Bounds {
    /// The connections' default: 256 per client, and in all 7/8 of the
    /// open-file limit, leaving the rest for what the relay dials itself
    /// (cluster nodes, etcd) and for files.
    pub fn connections() -> Self {
        Bounds {
            per_client: 256,
            total: default_total(),
        }
    }
}

/// 7/8 of the soft open-file limit, at least 64.
fn default_total() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    seven_eighths(soft)
}

fn seven_eighths(limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    (limit - limit / 8).max(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_two_ports_in_order_or_one() {
        for (text, range) in [
            ("20000-20999", Some((20000, 20999))),
            (" 22 - 22 ", Some((22, 22))),
            ("2222", Some((2222, 2222))),
            ("20999-20000", None),
            ("0-10", None),
            ("1-65536", None),
            ("a-b", None),
            ("", None),
        ] {
            let parsed = text.parse::<PortRange>().ok();
            let expected = range.map(|(first, last)| PortRange { first, last });
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn connections_take_seven_eighths_of_the_descriptors_and_at_least_64() {
        for (limit, total) in [
            (1024, 896),
            (1_048_576, 917_504),
            (1000, 875),
            (73, 64),
            (0, 64),
            (u64::MAX, usize::MAX - usize::MAX / 8),
        ] {
            assert_eq!(seven_eighths(limit), total, "{limit}");
        }
    }
}
