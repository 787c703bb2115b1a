//! The command line, exactly as scripts and tests rely on it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A PTTH relay: programs that cannot be dialled claim a name, and the
/// public reaches them through it.
#[derive(Debug, Parser)]
#[command(name = "ptth-relay", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// How much is logged, on stderr.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The log's level and format, for every command. `RUST_LOG`, when set,
/// wins over `-v` and `-q` (`RUST_LOG=ptth_relay=debug`).
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Logs more: `-v` debug, `-vv` trace [default: info].
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Logs less: `-q` warnings and errors, `-qq` errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
    /// One line of text per event, or one JSON object [default: text].
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-12-03T12:00:00Z  INFO ptth_relay: request method=GET ...`
    Text,
    /// `{"timestamp":..,"level":"INFO","fields":{..},"target":..}`
    Json,
}

impl LogArgs {
    /// The level `-v` and `-q` ask for.
    pub fn level(&self) -> tracing::Level {
        use tracing::Level;
        match (self.verbose, self.quiet) {
            (0, 0) => Level::INFO,
            (1, _) => Level::DEBUG,
            (_, 0) => Level::TRACE,
            (_, 1) => Level::WARN,
            _ => Level::ERROR,
        }
    }
}

/// The two roles, and the operator's tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a relay: public traffic and peers on one address.
    Serve(Box<ServeArgs>),
    /// Keep a local HTTP server reachable at a name on a relay.
    Expose(Box<ExposeArgs>),
    /// Access keys for a relay's config file.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `ptth-relay key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Makes a fresh key: prints it once, and the `[[keys]]` block with its
    /// digest to paste into the relay's config file.
    New(KeyNewArgs),
}

/// `ptth-relay key new`.
#[derive(Debug, Args)]
pub struct KeyNewArgs {
    /// Who the key is for.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// The names it may claim: a name, `prefix*` or `*`; repeatable.
    #[arg(long = "names", value_name = "PATTERN", required = true)]
    pub names: Vec<String>,
    /// The most names it may hold at once [default: no bound of its own].
    #[arg(long, value_name = "N")]
    pub max_names: Option<usize>,
    /// The most peer connections its names may have [default: no bound of
    /// its own].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
}

/// How public requests find their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// `/<name>/...`
    Path,
    /// `<name>.<domain>`
    Host,
}

/// `ptth-relay serve`.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// The address for public traffic and peers [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// How public requests find their name [default: path].
    #[arg(long, value_enum)]
    pub routing: Option<RoutingMode>,
    /// The domain names live under, for host routing.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The path peers claim names under [default: /reversehttp].
    #[arg(long, value_name = "PATH")]
    pub access: Option<String>,
    /// Pins NAME to TOKEN; repeatable.
    #[arg(long = "name", value_name = "NAME=TOKEN", value_parser = pin)]
    pub names: Vec<(String, String)>,
    /// Refuses names that are not pinned.
    #[arg(long)]
    pub closed: bool,
    /// The certificate chain, PEM, to serve TLS with.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key, PEM, to serve TLS with.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serves TLS with certificates from this ACME server's directory
    /// URL, proven by TLS-ALPN-01 on --listen: for --domain, and with host
    /// routing for each claimed name's host.
    #[arg(long, value_name = "URL", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_directory: Option<String>,
    /// The ACME account's contact address.
    #[arg(long, value_name = "ADDR")]
    pub acme_email: Option<String>,
    /// Where certificates and the ACME account are kept across restarts.
    #[arg(long, value_name = "DIR")]
    pub acme_cache: Option<PathBuf>,
    /// Certificates, PEM, to trust in the ACME server's own HTTPS besides
    /// the Mozilla roots.
    #[arg(long, value_name = "PEM")]
    pub acme_ca: Option<PathBuf>,
    /// Serves Prometheus metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Gives TCP names public ports from this range, such as 20000-20999
    /// [default: none, no TCP].
    #[arg(long, value_name = "FIRST-LAST")]
    pub tcp_ports: Option<crate::settings::PortRange>,
    /// Reads the same settings from a TOML file; flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Taken without the `cluster` feature only to say that it is needed.
    #[cfg(not(feature = "cluster"))]
    #[arg(long, hide = true, value_name = "URL")]
    pub cluster_etcd: Vec<String>,
    /// Joins a cluster of relay nodes through etcd at these client URLs.
    #[cfg(feature = "cluster")]
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "node_id"
    )]
    pub cluster_etcd: Vec<String>,
    /// This node's id in the cluster, unique among its nodes.
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "ID", requires = "cluster_etcd")]
    pub node_id: Option<String>,
    /// Where the other nodes reach this one [default: the listening address].
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "URL", requires = "cluster_etcd")]
    pub advertise: Option<String>,
    /// The certificates, PEM, to trust in nodes that advertise https URLs.
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "PEM", requires = "cluster_etcd")]
    pub cluster_ca: Option<PathBuf>,
}

/// `ptth-relay expose`.
#[derive(Debug, Default, Args)]
pub struct ExposeArgs {
    /// The relay: its base URL (`http://` when no scheme is given), or the
    /// URL of its access path. Repeat it for the nodes of a relay cluster:
    /// connections spread over them, and move to the others when one dies.
    #[arg(long, value_name = "URL", env = "PTTH_RELAY", value_delimiter = ',')]
    pub relay: Vec<String>,
    /// Reads `relay`, `token`, `name`, `relay-ca` and `strip-prefix` from
    /// a TOML file; flags win [default: ~/.config/ptth-relay/expose.toml,
    /// or under $XDG_CONFIG_HOME, when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The name to claim [default: a readable one the relay derives from
    /// the token, the same for every run with that token].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The name's token [default: a random one, made for this run].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The local HTTP server to forward requests to, as `--to`: a port
    /// alone (`3000` is `http://127.0.0.1:3000`), `HOST:PORT`, or a URL;
    /// or a TCP server, `tcp:PORT` or `tcp://HOST:PORT`, that the relay's
    /// visitors reach on a public port of their own.
    #[arg(
        value_name = "PORT|HOST:PORT|URL|tcp:PORT",
        required_unless_present = "to"
    )]
    pub origin: Option<String>,
    /// The local server to forward to, as the positional argument does.
    #[arg(long, value_name = "ORIGIN_URL", conflicts_with = "origin")]
    pub to: Option<String>,
    /// For a TCP server, the public port to ask the relay for [default:
    /// any of the relay's range].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Connections to keep open [default: 1 on HTTP/2, 4 on HTTP/1.1].
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Offers only HTTP/1.1 on the transposed connections.
    #[arg(long)]
    pub h1: bool,
    /// Speaks the legacy `PTTH/1.0` dialect.
    #[arg(long, conflicts_with = "http2_setup")]
    pub legacy: bool,
    /// Sets the connections up over HTTP/2 (extended CONNECT): all of them
    /// as channels on one HTTP/2 connection per relay URL, for paths that
    /// pass HTTP/2 and drop `Upgrade`.
    #[arg(long)]
    pub http2_setup: bool,
    /// Answers public requests without these HTTP Basic credentials with
    /// 401; repeatable. The password shows in the process list: prefer
    /// --basic-auth-file.
    #[arg(long, value_name = "USER:PASS")]
    pub basic_auth: Vec<Secret>,
    /// As --basic-auth, for the users of FILE: `user:HASH` lines, HASH a
    /// bcrypt hash (`$2b$...`, `$2y$...`) or `sha256:<hex>` of the
    /// password.
    #[arg(long, value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// Answers public requests from outside CIDR with 403, judged by the
    /// client address the relay reports (`X-Real-IP`); repeatable. A bare
    /// address is a range of one.
    #[arg(long, value_name = "CIDR")]
    pub allow_ip: Vec<ptth::guard::Cidr>,
    /// Certificates, PEM, to trust in the relay's `https://` certificate
    /// beside the Mozilla roots: a company CA, a private ACME server's.
    #[arg(long, value_name = "PEM")]
    pub relay_ca: Option<PathBuf>,
    /// Certificates, PEM, to trust in an `https://` origin's certificate
    /// beside the Mozilla roots.
    #[arg(long, value_name = "PEM")]
    pub to_ca: Option<PathBuf>,
    /// The `Host` the origin sees: the visitor's, or the origin's own
    /// authority [default: keep].
    #[arg(long, value_enum, value_name = "keep|rewrite")]
    pub host_header: Option<HostHeader>,
    /// Asks a path-routing relay to take `/NAME` off the path: the origin
    /// sees `/hello.txt` for `/NAME/hello.txt` [default: the relay's
    /// choice, which is to keep it unless its operator set otherwise].
    #[arg(long)]
    pub strip_prefix: bool,
    /// Serves the inspector on ADDR: the recent requests, live, with
    /// replay (docs/relay.md, "Inspector"). It shows the secrets that
    /// pass, so ADDR must be loopback unless --inspect-public is given.
    #[arg(long, value_name = "ADDR")]
    pub inspect: Option<SocketAddr>,
    /// Lets --inspect listen on an address that is not loopback.
    #[arg(long, requires = "inspect")]
    pub inspect_public: bool,
    /// How many exchanges the inspector keeps, the oldest dropped first
    /// [default: 200].
    #[arg(long, value_name = "N", requires = "inspect",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub inspect_history: Option<u64>,
}

/// A command-line value that holds a secret (`--basic-auth USER:PASS`):
/// `Debug` shows none of it, and no error message names it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret(text.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The `Host` an origin sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostHeader {
    /// The visitor's, as the relay forwarded it.
    Keep,
    /// The origin's own authority, for origins that serve by name.
    Rewrite,
}

fn pin(text: &str) -> Result<(String, String), String> {
    let (name, token) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=TOKEN"))?;
    if !crate::names::valid_name(name) {
        return Err(format!("{name:?} is not a valid name"));
    }
    Ok((name.to_owned(), token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_every_documented_flag() {
        let cli = Cli::try_parse_from([
            "ptth-relay",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--routing",
            "host",
            "--domain",
            "relay.example",
            "--access",
            "/peers",
            "--name",
            "lamp=s1",
            "--name",
            "fan=s2",
            "--closed",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--metrics",
            "127.0.0.1:9090",
            "--config",
            "relay.toml",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.routing, Some(RoutingMode::Host));
        assert_eq!(
            args.names,
            [("lamp".into(), "s1".into()), ("fan".into(), "s2".into())]
        );
        assert!(args.closed);
        assert!(Cli::try_parse_from(["ptth-relay", "serve", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["ptth-relay", "serve", "--name", "Bad=x"]).is_err());
    }

    #[test]
    fn expose_takes_every_documented_flag() {
        let cli = Cli::try_parse_from([
            "ptth-relay",
            "expose",
            "--relay",
            "http://127.0.0.1:8080",
            "--name",
            "lamp",
            "--token",
            "s1",
            "--to",
            "http://127.0.0.1:3000",
            "--connections",
            "3",
            "--h1",
            "--legacy",
        ])
        .unwrap();
        let Command::Expose(args) = cli.command else {
            panic!("not expose");
        };
        assert_eq!(
            (args.connections, args.h1, args.legacy),
            (Some(3), true, true)
        );
        let cli = Cli::try_parse_from([
            "ptth-relay",
            "expose",
            "--relay",
            "http://127.0.0.1:8080",
            "--name",
            "lamp",
            "--to",
            "http://127.0.0.1:3000",
            "--http2-setup",
        ])
        .unwrap();
        let Command::Expose(args) = cli.command else {
            panic!("not expose");
        };
        assert!(args.http2_setup);
        let cli = Cli::try_parse_from([
            "ptth-relay",
            "expose",
            "--relay",
            "http://127.0.0.1:8080",
            "--name",
            "lamp",
            "--to",
            "http://127.0.0.1:3000",
            "--basic-auth",
            "ada:lovelace",
            "--basic-auth",
            "grace:hopper",
            "--basic-auth-file",
            "users.txt",
            "--allow-ip",
            "10.0.0.0/8",
            "--allow-ip",
            "::1",
        ])
        .unwrap();
        let Command::Expose(args) = cli.command else {
            panic!("not expose");
        };
        assert_eq!(
            args.basic_auth,
            ["ada:lovelace".into(), "grace:hopper".into()]
        );
        assert_eq!(args.basic_auth_file, Some(PathBuf::from("users.txt")));
        let ranges = ["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(args.allow_ip, ranges);
        let bad_range = [
            "ptth-relay",
            "expose",
            "--relay",
            "r",
            "--name",
            "n",
            "--to",
            "t",
            "--allow-ip",
            "10/8",
        ];
        assert!(Cli::try_parse_from(bad_range).is_err());
        assert!(Cli::try_parse_from(["ptth-relay", "expose", "--name", "lamp"]).is_err());
    }
}
