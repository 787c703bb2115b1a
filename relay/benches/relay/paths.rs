//! The ways from the load generator to an origin: direct, through the
//! relay (behind `expose`, or with the peer in-process), through rathole
//! and bore (layer-4 copiers), and through HAProxy in HTTP mode, one hop
//! and two chained (the shape of relay + expose), as the layer-7 anchor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hyper::service::service_fn;
use ptth::tunnel::{self, Handle, Phase};
use tokio::runtime::Runtime;

use crate::origin::{self, NAME};
use crate::tools::{Process, free_port, wait_listening};

/// The paths, in the order the tables list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Expose,
    /// `expose --http2-setup`: the peer's connections are channels on one
    /// HTTP/2 connection to the relay.
    ExposeHttp2Setup,
    /// `expose tcp://ORIGIN`: the origin as a TCP server on a public port
    /// of the relay's, each visitor connection a CONNECT.
    ExposeTcp,
    InProcess,
    Rathole,
    Bore,
    /// HAProxy in HTTP mode, one thread, connections to the origin reused.
    Haproxy,
    /// Two such HAProxies chained: two HTTP hops, as relay + expose are.
    Haproxy2,
    /// A Rust long-poll client with this many polls parked.
    LongPoll(usize),
}

impl Kind {
    /// The paths bulk transfers take: long-poll bodies cross whole and
    /// are bounded, so they do not carry a gigabyte.
    pub const BULK: [Kind; 8] = [
        Kind::Direct,
        Kind::Expose,
        Kind::ExposeTcp,
        Kind::InProcess,
        Kind::Rathole,
        Kind::Bore,
        Kind::Haproxy,
        Kind::Haproxy2,
    ];

    /// The paths small GETs take.
    pub const LOAD: [Kind; 10] = [
        Kind::Direct,
        Kind::Expose,
        Kind::ExposeTcp,
        Kind::InProcess,
        Kind::LongPoll(1),
        Kind::LongPoll(16),
        Kind::Rathole,
        Kind::Bore,
        Kind::Haproxy,
        Kind::Haproxy2,
    ];

    /// The short name `--paths` picks this path by.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Expose => "expose",
            Kind::ExposeHttp2Setup => "h2-setup",
            Kind::ExposeTcp => "tcp",
            Kind::InProcess => "in-process",
            Kind::Rathole => "rathole",
            Kind::Bore => "bore",
            Kind::Haproxy => "haproxy",
            Kind::Haproxy2 => "haproxy2",
            Kind::LongPoll(1) => "long-poll",
            Kind::LongPoll(_) => "long-poll16",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Direct => "direct to the origin",
            Kind::Expose => "ptth-relay + expose (h2 peer)",
            Kind::ExposeHttp2Setup => "ptth-relay + expose --http2-setup (h2 in a channel)",
            Kind::ExposeTcp => "ptth-relay + expose tcp: (TCP)",
            Kind::InProcess => "ptth-relay, in-process peer (h2)",
            Kind::Rathole => "rathole 0.5 (TCP)",
            Kind::Bore => "bore 0.6",
            Kind::Haproxy => "HAProxy 2.6, HTTP mode, one hop",
            Kind::Haproxy2 => "HAProxy 2.6, HTTP mode, two hops",
            Kind::LongPoll(1) => "ptth-relay, long-poll client, 1 poll",
            Kind::LongPoll(_) => "ptth-relay, long-poll client, 16 polls",
        }
    }
}

/// A path that is up: its base URL, and what keeps it up.
pub struct Up {
    pub kind: Kind,
    pub base: String,
    // Fields drop in order: the clients stop before the relay they poll.
    _polls: Option<tokio::task::JoinSet<()>>,
    tunnel: Option<Handle>,
    processes: Vec<(&'static str, Process)>,
}

impl Up {
    /// The processes on the path, each with its role (`relay`, `expose`,
    /// `hop 1`, ...), for their CPU time.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        (self.processes.iter())
            .map(|(role, process)| (*role, process.id()))
            .collect()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(tunnel) = &self.tunnel {
            tunnel.shutdown();
        }
    }
}

/// Starts a relay from this package's binary and returns it and its
/// address.
pub fn relay(binary: &Path, config: Option<&Path>) -> (Process, SocketAddr) {
    let mut command = Command::new(binary);
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let process = Process::start(&mut command);
    let line = process.wait_for("listening on http://");
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (process, addr)
}

/// Brings up `kind` in front of `origin`; `tools` holds rathole and bore.
pub fn up(
    kind: Kind,
    origin: SocketAddr,
    relay_bin: &Path,
    tools: &Path,
    dir: &Path,
    rt: &Runtime,
) -> Up {
    let mut processes = Vec::new();
    let mut tunnel = None;
    let mut polls = None;
    let base = match kind {
        Kind::Direct => format!("http://{origin}"),
        Kind::Expose | Kind::ExposeHttp2Setup | Kind::InProcess => {
            let (process, addr) = relay(relay_bin, None);
            processes.push(("relay", process));
            if kind != Kind::InProcess {
                let mut command = Command::new(relay_bin);
                command
                    .args(["expose", "--relay", &format!("http://{addr}")])
                    .args(["--name", NAME, "--to", &format!("http://{origin}")]);
                if kind == Kind::ExposeHttp2Setup {
                    command.arg("--http2-setup");
                }
                let expose = Process::start(&mut command);
                expose.wait_for("public URL:");
                processes.push(("expose", expose));
            } else {
                tunnel = Some(in_process_peer(rt, addr));
            }
            format!("http://{addr}")
        }
        Kind::ExposeTcp => {
            let (relay, expose, port) = expose_tcp(relay_bin, dir, origin);
            processes.push(("relay", relay));
            processes.push(("expose", expose));
            format!("http://127.0.0.1:{port}")
        }
        Kind::LongPoll(count) => {
            let (process, addr) = relay(relay_bin, None);
            processes.push(("relay", process));
            polls = Some(rt.block_on(crate::poller::serve(addr, count)));
            format!("http://{addr}")
        }
        Kind::Rathole => {
            let (control, visitors) = (free_port(), free_port());
            let server = dir.join("rathole-server.toml");
            let client = dir.join("rathole-client.toml");
            std::fs::write(
                &server,
                format!(
                    "[server]\nbind_addr = \"127.0.0.1:{control}\"\n\
                     [server.services.{NAME}]\ntoken = \"t\"\nbind_addr = \"127.0.0.1:{visitors}\"\n"
                ),
            )
            .unwrap();
            std::fs::write(
                &client,
                format!(
                    "[client]\nremote_addr = \"127.0.0.1:{control}\"\n\
                     [client.services.{NAME}]\ntoken = \"t\"\nlocal_addr = \"{origin}\"\n"
                ),
            )
            .unwrap();
            let rathole = tools.join("rathole");
            processes.push((
                "server",
                Process::start(Command::new(&rathole).arg("-s").arg(&server)),
            ));
            wait_listening(SocketAddr::from(([127, 0, 0, 1], control)));
            processes.push((
                "client",
                Process::start(Command::new(&rathole).arg("-c").arg(&client)),
            ));
            format!("http://127.0.0.1:{visitors}")
        }
        Kind::Bore => {
            // bore's control port is fixed at 7835.
            let bore = tools.join("bore");
            let server =
                Process::start(Command::new(&bore).args(["server", "--bind-addr", "127.0.0.1"]));
            processes.push(("server", server));
            wait_listening(SocketAddr::from(([127, 0, 0, 1], 7835)));
            let local = Process::start(
                Command::new(&bore)
                    .args(["local", &origin.port().to_string()])
                    .args(["--local-host", "127.0.0.1", "--to", "127.0.0.1"])
                    .env("NO_COLOR", "1"),
            );
            let line = plain(&local.wait_for("listening at"));
            let port = line
                .rsplit(':')
                .next()
                .and_then(|port| port.trim().parse::<u16>().ok())
                .unwrap_or_else(|| panic!("no port in {line:?}"));
            processes.push(("client", local));
            format!("http://127.0.0.1:{port}")
        }
        Kind::Haproxy | Kind::Haproxy2 => {
            let hops = if kind == Kind::Haproxy { 1 } else { 2 };
            let mut next = origin;
            for hop in (1..=hops).rev() {
                let (process, addr) = haproxy(dir, hop, next);
                processes.push((if hop == 1 { "hop 1" } else { "hop 2" }, process));
                next = addr;
            }
            format!("http://{next}")
        }
    };
    ready(&base);
    Up {
        kind,
        base,
        _polls: polls,
        tunnel,
        processes,
    }
}

/// A relay whose one TCP port is the returned one, with `expose` serving
/// `origin` on it. Its bounds per client address and per name are lifted,
/// since every visitor of the bench comes from one address.
fn expose_tcp(relay_bin: &Path, dir: &Path, origin: SocketAddr) -> (Process, Process, u16) {
    let port = free_port();
    let config = dir.join("relay-tcp.toml");
    std::fs::write(
        &config,
        format!(
            "[connections]\nper-client = 1000000\n\
             [tcp]\nports = \"{port}-{port}\"\nconnections-per-name = 1000000\n"
        ),
    )
    .unwrap();
    let (relay, addr) = relay(relay_bin, Some(&config));
    let expose = Process::start(
        Command::new(relay_bin)
            .args(["expose", &format!("tcp://{origin}")])
            .args(["--relay", &format!("http://{addr}"), "--name", NAME]),
    );
    expose.wait_for("public address: tcp://");
    (relay, expose, port)
}

/// One HAProxy in HTTP mode in front of `to`, as an operator would tune
/// it for this: one thread, idle server connections reused by any
/// client (`http-reuse always`), no logging. `hop` names its files.
fn haproxy(dir: &Path, hop: u32, to: SocketAddr) -> (Process, SocketAddr) {
    let port = free_port();
    let config = dir.join(format!("haproxy-{hop}.cfg"));
    std::fs::write(
        &config,
        format!(
            "global\n  nbthread 1\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  \
             timeout server 60s\n  http-reuse always\n\
             frontend visitors\n  bind 127.0.0.1:{port}\n  default_backend next\n\
             backend next\n  server next {to}\n"
        ),
    )
    .unwrap();
    let process = Process::start(Command::new("haproxy").arg("-db").arg("-f").arg(&config));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr);
    (process, addr)
}

/// The origin's service as a device on the relay at `relay`, claiming
/// [`NAME`] over one HTTP/2 tunnel; returns once it is connected.
pub fn in_process_peer(rt: &Runtime, relay: impl std::fmt::Display) -> Handle {
    // With a token of its own, as a device has: a reconnect after the
    // relay dropped a connection gets the name back (without one it is
    // refused while the name is held, and the path serves 404s).
    let url = format!("http://{relay}/reversehttp/{NAME}?token=bench-device");
    rt.block_on(async {
        let serving = tunnel::serve(url, service_fn(origin::serve));
        let handle = serving.handle();
        tokio::spawn(serving);
        let up = handle
            .wait_for(|status| status.connected > 0 || status.phase != Phase::Running)
            .await;
        assert!(up.connected > 0, "a peer never connected: {up:?}");
        handle
    })
}

/// `line` without ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until `base` answers the small GET with a 200.
fn ready(base: &str) {
    let authority = base.trim_start_matches("http://");
    for _ in 0..500 {
        if let Ok(mut tcp) = TcpStream::connect(authority) {
            tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let request = format!(
                "GET /{NAME}/small.html HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = Vec::new();
            if tcp.write_all(request.as_bytes()).is_ok()
                && tcp.read_to_end(&mut answer).is_ok()
                && answer.starts_with(b"HTTP/1.1 200")
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{base} never answered the small GET");
}
