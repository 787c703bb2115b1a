//! `serve`'s settings from flags and an optional TOML file; flags win.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod acme;
mod keys;
mod tcp;

use self::acme::{AcmeFile, acme};
pub use self::keys::new_key;
use self::keys::{KeyFile, keys};
use self::tcp::{TcpFile, tcp};

use crate::acme::AcmeSettings;
use crate::cidr::Cidr;
use crate::cli::{RoutingMode, ServeArgs};
use crate::names::valid_name;
use crate::settings::{Bounds, ClaimRate, Liveness, LongPoll, Policy, Routing, Settings, Waits};
use crate::token::Digest;

/// The TOML file: the flags' names, with `[names]` as a table of
/// `name = "token"` (or `name = "sha256:<hex>"`, the token's digest, so
/// the file need not hold it in clear), `[[keys]]`, and the bounds no flag
/// sets. Times are in seconds
/// and may have a fraction; every key may be left out.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// routing = "host"
/// domain = "relay.example"
/// closed = true
/// response-timeout = 60  # a peer's time for a response head
/// max-names = 100000
/// body-timeout = 30  # a request body's longest pause
/// in-flight-per-client = 64  # public requests awaiting a head, per address
/// trusted-proxies = ["10.0.0.0/8"]  # whose X-Forwarded-For is kept
/// open = false    # with keys: whether claims without one are taken
/// [names]
/// lamp = "s3cret"
/// [[keys]]        # access keys: `ptth-relay key new` makes one
/// label = "alice"
/// secret = "sha256:<64 hex digits>"
/// names = ["alice-*", "lamp"]  # a name, `prefix*` or `*`
/// max-names = 10        # held at once
/// max-connections = 40  # peer connections of its names
/// [claims]        # per client address
/// burst = 20
/// per-second = 10
/// [waits]         # a public request's wait for a connection
/// peer = 1
/// queue = 10
/// [liveness]      # how peers' connections are checked
/// interval = 20
/// timeout = 10
/// [longpoll]      # long-poll clients
/// hold = 30       # a poll's hold before 204
/// max-body = 1048576
/// requests = 64   # queued or awaiting replies, per name
/// polls = 32      # parked per name
/// parked = 10000  # parked on the relay
/// parked-per-client = 1250  # default: 1/8 of parked
/// [connections]   # held at once; past it, closed at once
/// per-client = 256  # per address, an IPv6 one by its /64
/// total = 57344     # default: 7/8 of the open-file limit
/// [tcp]           # TCP names; without ports, none
/// ports = "20000-20999"
/// connections-per-name = 1024  # visitors at once
/// ports-per-client = 16  # ports of the names one address claimed
/// idle-timeout = 0   # no byte either way for this long; 0 is none
/// open-timeout = 10  # the device's time to answer a visitor's CONNECT
/// [tcp.reserved]  # a port kept for one name
/// ssh-box = 20022
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    listen: Option<SocketAddr>,
    routing: Option<RoutingMode>,
    domain: Option<String>,
    access: Option<String>,
    #[serde(default)]
    names: HashMap<String, String>,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    open: bool,
    #[serde(default)]
    keys: Vec<KeyFile>,
    strip_prefix: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    acme: AcmeFile,
    metrics: Option<SocketAddr>,
    /// `head-timeout`, its old name, still reads.
    #[serde(alias = "head-timeout")]
    response_timeout: Option<Seconds>,
    max_names: Option<usize>,
    body_timeout: Option<Seconds>,
    in_flight_per_client: Option<usize>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    claims: Claims,
    #[serde(default)]
    waits: WaitsFile,
    #[serde(default)]
    liveness: LivenessFile,
    #[serde(default)]
    longpoll: LongPollFile,
    #[serde(default)]
    connections: ConnectionsFile,
    #[serde(default)]
    tcp: TcpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConnectionsFile {
    per_client: Option<usize>,
    total: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LongPollFile {
    hold: Option<Seconds>,
    max_body: Option<usize>,
    requests: Option<usize>,
    polls: Option<usize>,
    parked: Option<usize>,
    parked_per_client: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Claims {
    burst: Option<u32>,
    per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitsFile {
    peer: Option<Seconds>,
    queue: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LivenessFile {
    interval: Option<Seconds>,
    timeout: Option<Seconds>,
}

/// A time in seconds, which may have a fraction; negative, infinite and
/// NaN values are refused where the file is read.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(super) struct Seconds(Duration);

impl TryFrom<f64> for Seconds {
    type Error = String;

    fn try_from(seconds: f64) -> Result<Self, String> {
        Duration::try_from_secs_f64(seconds)
            .map(Seconds)
            .map_err(|_| format!("{seconds} is not a number of seconds"))
    }
}

pub(super) fn or(value: Option<Seconds>, default: Duration) -> Duration {
    value.map_or(default, |Seconds(duration)| duration)
}

/// What `--cluster-etcd` says on a build without the `cluster` feature.
#[cfg(not(feature = "cluster"))]
const NO_CLUSTER: &str = "--cluster-etcd needs ptth-relay built with the `cluster` feature: \
     cargo install --locked --path relay --features cluster";

/// Everything `serve` runs with.
#[derive(Debug)]
pub struct Serve {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The relay's settings.
    pub settings: Settings,
    /// The certificate chain and key files, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where TLS certificates are ordered, instead of files.
    pub acme: Option<AcmeSettings>,
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
}

impl Serve {
    /// Merges the flags over the file named by `--config`, if any.
    pub fn from_args(args: ServeArgs) -> Result<Serve, String> {
        #[cfg(not(feature = "cluster"))]
        if !args.cluster_etcd.is_empty() {
            return Err(NO_CLUSTER.to_owned());
        }
        let file = match &args.config {
            Some(path) => read(path)?,
            None => File::default(),
        };
        let defaults = Settings::default();
        let trusted_proxies = (file.trusted_proxies.iter())
            .map(|range| range.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("trusted-proxies: {error}"))?;
        let connections = file.connections()?;
        let listen = (args.listen.or(file.listen))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let tcp = tcp(&args, &file.tcp, listen.ip())?;
        let liveness = file.liveness(defaults.liveness)?;
        let claim_rate = file.claim_rate(defaults.claim_rate)?;
        let longpoll = file.longpoll(defaults.longpoll);
        let domain = (args.domain.clone().or(file.domain.clone())).map(|d| d.to_ascii_lowercase());
        let routing = match args.routing.or(file.routing).unwrap_or(RoutingMode::Path) {
            RoutingMode::Path => Routing::Path,
            RoutingMode::Host => Routing::Host {
                domain: domain.clone().ok_or("--routing host needs --domain")?,
            },
        };
        let acme = acme(&args, &file.acme, domain, &routing)?;
        let pinned = pins(file.names, args.names)?;
        let access = args
            .access
            .or(file.access)
            .unwrap_or_else(|| "/reversehttp".to_owned());
        if !access.starts_with('/') {
            return Err(format!("--access {access:?} must start with /"));
        }
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.clone()),
            args.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("TLS needs both a certificate and a key".to_owned()),
        };
        if acme.is_some() && tls.is_some() {
            return Err("TLS comes from ACME or from files, not both".to_owned());
        }
        let settings = Settings {
            routing,
            access,
            strip_prefix: file.strip_prefix.unwrap_or(false),
            policy: Policy {
                pinned,
                closed: args.closed || file.closed,
                keys: keys(&file.keys)?,
                open: file.open,
            },
            waits: Waits {
                peer: or(file.waits.peer, defaults.waits.peer),
                queue: or(file.waits.queue, defaults.waits.queue),
            },
            liveness,
            claim_rate,
            response_timeout: or(file.response_timeout, defaults.response_timeout),
            longpoll,
            max_names: file.max_names.unwrap_or(defaults.max_names),
            body_timeout: or(file.body_timeout, defaults.body_timeout),
            in_flight_per_client: (file.in_flight_per_client)
                .unwrap_or(defaults.in_flight_per_client),
            connections,
            trusted_proxies,
            tcp,
        };
        Ok(Serve {
            listen,
            settings,
            tls,
            acme,
            metrics: args.metrics.or(file.metrics),
        })
    }
}

impl File {
    fn claim_rate(&self, defaults: ClaimRate) -> Result<ClaimRate, String> {
        let rate = ClaimRate {
            burst: self.claims.burst.unwrap_or(defaults.burst),
            per_second: self.claims.per_second.unwrap_or(defaults.per_second),
        };
        if rate.burst == 0 || rate.per_second == 0 {
            return Err("[claims] burst and per-second must be at least 1".to_owned());
        }
        Ok(rate)
    }

    fn liveness(&self, defaults: Liveness) -> Result<Liveness, String> {
        let liveness = Liveness {
            interval: or(self.liveness.interval, defaults.interval),
            timeout: or(self.liveness.timeout, defaults.timeout),
        };
        // A zero interval would turn the idle probe into a busy loop.
        if liveness.interval.is_zero() || liveness.timeout.is_zero() {
            return Err("[liveness] interval and timeout must be above 0".to_owned());
        }
        Ok(liveness)
    }

    fn longpoll(&self, defaults: LongPoll) -> LongPoll {
        let polls = &self.longpoll;
        LongPoll {
            hold: or(polls.hold, defaults.hold),
            max_body: polls.max_body.unwrap_or(defaults.max_body),
            requests: polls.requests.unwrap_or(defaults.requests),
            polls: polls.polls.unwrap_or(defaults.polls),
            parked: polls.parked.unwrap_or(defaults.parked),
            parked_per_client: polls.parked_per_client,
        }
    }

    fn connections(&self) -> Result<Bounds, String> {
        let defaults = Bounds::connections();
        let bounds = Bounds {
            per_client: self.connections.per_client.unwrap_or(defaults.per_client),
            total: self.connections.total.unwrap_or(defaults.total),
        };
        if bounds.per_client == 0 || bounds.total == 0 {
            return Err("[connections] per-client and total must be at least 1".to_owned());
        }
        Ok(bounds)
    }
}

/// The names pinned in the file's `[names]` and by `--name`, the flags'
/// winning, each with its token's digest.
fn pins(
    file: HashMap<String, String>,
    flags: Vec<(String, String)>,
) -> Result<HashMap<String, Digest>, String> {
    if let Some(name) = file.keys().find(|name| !valid_name(name)) {
        return Err(format!("{name:?} in [names] is not a valid name"));
    }
    let mut pinned = HashMap::new();
    for (name, token) in file.into_iter().chain(flags) {
        let digest = Digest::from_config(&token)
            .map_err(|error| format!("the token of {name:?}: {error}"))?;
        pinned.insert(name, digest);
    }
    Ok(pinned)
}

fn read(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests;
