//! Load test: ptth's transposed connections, with each of its two setups,
//! against plain hyper ones, side by side in one process on loopback, over
//! HTTP/1.1 and HTTP/2.
//!
//! ```text
//! cargo run --release --example load -- [--json PATH] [--quick]
//!     [--paths PATH,...] [--aa] [--rounds N] [--seconds S] [--bulk-mib N]
//!     [--idle N] [--threads N] [--only small|bulk|idle]
//! ```
//!
//! The paths compared, `--paths plain,transposed,channel` by default:
//!
//! - `plain`: plain hyper, the client dials the server.
//! - `transposed`: ptth set up by an HTTP/1.1 upgrade. The initiator dials
//!   the acceptor, upgrades, and then serves with `ptth::initiator::Server`
//!   while the acceptor sends with `ptth::acceptor::SendRequest`.
//! - `channel`: ptth set up over HTTP/2. The initiator dials, starts HTTP/2
//!   with `handshake_http2` and opens channels, each an extended CONNECT
//!   that the acceptor, a hyper HTTP/2 server set up as a relay's is,
//!   answers through `ptth::upgrade::accept`; each channel is then served
//!   and sent on as the `transposed` path's connection is.
//! - `channel-untuned`: `channel` with hyper's default flow-control windows
//!   (1 MiB each) on the acceptor's HTTP/2 server instead of
//!   `SETUP_STREAM_WINDOW` and `SETUP_CONNECTION_WINDOW`, to show what
//!   those buy.
//!
//! Every path runs the same service, the same request loop, the same body
//! types and hyper builders set up alike, so what differs between them is
//! ptth and its setup.
//!
//! - Small GETs with 1, 16 and 64 requests in flight (HTTP/1.1: that many
//!   connections, one request each, which on a channel path are that many
//!   channels on one TCP connection; HTTP/2: one connection or channel,
//!   that many streams): requests per second, p50 and p99 latency, CPU per
//!   request.
//! - Large bodies (256 MiB) each way, one at a time, each on a new
//!   connection (on a channel path, a new TCP connection with one channel):
//!   MiB/s, CPU per MiB.
//! - Resident memory per idle connection (10,000 of them), on the server end
//!   and on the client end, each end in a fresh child process of its own.
//!   On a channel path each is a TCP connection with one channel, as a
//!   relay's idle peer would be.
//!
//! The machine may be noisy, so the paths take turns: after one unrecorded
//! warm-up round each they run A B C, B A C, C A B, A C B, ... (A B, B A,
//! ... for two) and the median of each is reported with its ratio to A's,
//! so every ratio comes from one run. `--aa` is `--paths plain,plain`: it
//! shows how far apart two identical paths measure here. The table goes to
//! stdout, progress to stderr, and with `--json` the same figures to a
//! file; `--quick` is a smoke run.

#[path = "common/load_report.rs"]
mod report;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::process::{ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HOST, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, client, server};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ptth::Protocol;
use report::{MEMORY, RATE, Row, SAME, Unit};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

type BoxError = Box<dyn StdError + Send + Sync>;
type ReqBody = Either<Empty<Bytes>, Chunks>;
type ResBody = Either<Full<Bytes>, Chunks>;

const MIB: u64 = 1024 * 1024;
const CHUNK_SIZE: usize = 64 * 1024;
/// Every bulk body is made of slices of this one static chunk.
static CHUNK: [u8; CHUNK_SIZE] = [b'p'; CHUNK_SIZE];
const SMALL_REPLY: &[u8] = b"hello from the server\n";
const IN_FLIGHT: [usize; 3] = [1, 16, 64];
/// Connections one end opens at once: enough to be quick, few enough to
/// stay inside the listen backlog.
const OPENING_AT_ONCE: usize = 64;
/// The first argument that makes this program one end of the idle test.
const IDLE_CHILD: &str = "--idle-child";
/// The flow-control windows the acceptor's HTTP/2 server grants on the
/// channel path, as an acceptor serving channels may set them (ptth-relay
/// keeps hyper's defaults, which bound what public clients can make it
/// hold): what the initiator sends in a channel (downloads here, a peer's
/// responses at a relay) arrives through them. With hyper's defaults, 1 MiB each, HTTP/1.1 downloads through a
/// channel ran 12-17% slower on loopback, and from 2 MiB per stream up no
/// slower than with 64 MiB; 4 MiB leaves a margin while bounding what a
/// relay, with many peers, may hold per stream. The connection's lets four
/// channels download at once at full rate.
const SETUP_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const SETUP_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some(IDLE_CHILD) => idle_child(&args[2..]),
        _ => Config::parse(&args[1..]).and_then(|config| run(&config, &args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("load: {error}");
            ExitCode::FAILURE
        }
    }
}

struct Config {
    json: Option<String>,
    /// The paths compared, A first: every other path's figures are read as
    /// ratios to A's.
    paths: Vec<Path>,
    rounds: usize,
    round: Duration,
    bulk_bytes: u64,
    idle: usize,
    threads: usize,
    /// One section to run alone (`small`, `bulk` or `idle`), so it can be
    /// given more rounds; all three when `None`.
    only: Option<String>,
}

impl Config {
    const USAGE: &str = "usage: load [--json PATH] [--quick] [--paths PATH,...] [--aa] [--rounds N] \
                         [--seconds S] [--bulk-mib N] [--idle N] [--threads N] \
                         [--only small|bulk|idle]; paths: plain, transposed, channel, \
                         channel-untuned";

    /// The defaults, or `--quick`'s smaller ones, with any flag given on top.
    fn parse(args: &[String]) -> Result<Config, BoxError> {
        let quick = args.iter().any(|arg| arg == "--quick");
        let aa = args.iter().any(|arg| arg == "--aa");
        let mut config = Config {
            json: None,
            paths: if aa {
                vec![Path::Plain, Path::Plain]
            } else {
                vec![Path::Plain, Path::Transposed, Path::Channel]
            },
            rounds: if quick { 2 } else { 6 },
            round: Duration::from_millis(if quick { 200 } else { 1000 }),
            bulk_bytes: if quick { 16 * MIB } else { 256 * MIB },
            idle: if quick { 500 } else { 10_000 },
            threads: 2,
            only: None,
        };
        let mut args = args
            .iter()
            .filter(|arg| !["--quick", "--aa"].contains(&arg.as_str()));
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(Self::USAGE)?;
            match flag.as_str() {
                "--json" => config.json = Some(value.clone()),
                "--paths" if aa => return Err("--aa is --paths plain,plain: give one".into()),
                "--paths" => {
                    config.paths = value
                        .split(',')
                        .map(Path::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--rounds" => config.rounds = value.parse()?,
                "--seconds" => config.round = Duration::try_from_secs_f64(value.parse()?)?,
                "--bulk-mib" => config.bulk_bytes = value.parse::<u64>()? * MIB,
                "--idle" => config.idle = value.parse()?,
                "--threads" => config.threads = value.parse()?,
                "--only" if ["small", "bulk", "idle"].contains(&value.as_str()) => {
                    config.only = Some(value.clone());
                }
                _ => return Err(Self::USAGE.into()),
            }
        }
        if config.rounds == 0 || config.threads == 0 || config.bulk_bytes == 0 {
            return Err("--rounds, --threads and --bulk-mib must be at least 1".into());
        }
        Ok(config)
    }

    fn runs(&self, section: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == section)
    }
}

fn run(config: &Config, args: &[String]) -> Result<(), BoxError> {
    // Raised here, so the idle test's children inherit it.
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX)?;
    if config.idle as u64 + 256 > fd_limit {
        return Err(format!(
            "--idle {} needs more file descriptors than the limit, {fd_limit}",
            config.idle
        )
        .into());
    }
    let command = report::command(args);
    println!("{}", report::header(config, &command));
    let runtime = runtime(config.threads)?;
    let mut rows = Vec::new();
    for protocol in [Proto::H1, Proto::H2] {
        for in_flight in IN_FLIGHT.into_iter().filter(|_| config.runs("small")) {
            eprintln!("load: {protocol}, small GETs, {in_flight} in flight");
            rows.extend(runtime.block_on(request_rows(config, protocol, in_flight))?);
        }
    }
    for protocol in [Proto::H1, Proto::H2] {
        let directions = [Direction::Upload, Direction::Download];
        for direction in directions.into_iter().filter(|_| config.runs("bulk")) {
            eprintln!("load: {protocol}, {}", direction.names()[0]);
            rows.extend(runtime.block_on(bulk_rows(config, protocol, direction))?);
        }
    }
    if config.idle > 0 && config.runs("idle") {
        for protocol in [Proto::H1, Proto::H2] {
            eprintln!("load: {protocol}, {} idle connections", config.idle);
            rows.extend(idle_rows(config, protocol)?);
        }
    }
    print!("{}", report::table(config, &rows));
    if let Some(path) = &config.json {
        std::fs::write(path, report::json(config, &command, &rows))?;
        println!("JSON: {path}");
    }
    Ok(())
}

fn runtime(threads: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

// ---------------------------------------------------------------------------
// What is compared: protocols, paths, ends and roles.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn ptth(self) -> Protocol {
        match self {
            Proto::H1 => Protocol::Http1,
            Proto::H2 => Protocol::Http2,
        }
    }

    fn parse(name: &str) -> Result<Proto, BoxError> {
        [Proto::H1, Proto::H2]
            .into_iter()
            .find(|p| p.ptth().alpn_id() == name)
            .ok_or_else(|| format!("unknown protocol {name}").into())
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.ptth().alpn_id())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Plain hyper: the client dials the server.
    Plain,
    /// ptth set up by an HTTP/1.1 upgrade: the initiator dials the acceptor
    /// and then serves it.
    Transposed,
    /// ptth set up over HTTP/2: the initiator dials the acceptor and then
    /// serves it on channels, one extended CONNECT each.
    Channel,
    /// `Channel` with hyper's default windows on the acceptor's side.
    ChannelUntuned,
}

impl Path {
    const ALL: [Path; 4] = [
        Path::Plain,
        Path::Transposed,
        Path::Channel,
        Path::ChannelUntuned,
    ];

    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain",
            Path::Transposed => "transposed",
            Path::Channel => "channel",
            Path::ChannelUntuned => "channel-untuned",
        }
    }

    /// What the report's header calls it.
    fn describe(self) -> &'static str {
        match self {
            Path::Plain => "plain hyper",
            Path::Transposed => "ptth after an HTTP/1.1 upgrade",
            Path::Channel => "ptth channels over HTTP/2",
            Path::ChannelUntuned => "ptth channels over HTTP/2 with hyper's windows",
        }
    }

    fn parse(name: &str) -> Result<Path, BoxError> {
        Path::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown path {name}").into())
    }

    /// Whether its connections are channels, several of which may share a
    /// TCP connection.
    fn is_channel(self) -> bool {
        matches!(self, Path::Channel | Path::ChannelUntuned)
    }

    /// The HTTP role at each end of the TCP connection: on the ptth paths
    /// the end that dials is the one that serves.
    fn role(self, end: End) -> Role {
        match (self, end) {
            (Path::Plain, End::Dial) => Role::Client,
            (Path::Plain, End::Listen) => Role::Server,
            (_, End::Listen) => Role::Client,
            (_, End::Dial) => Role::Server,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Listen,
    Dial,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

// ---------------------------------------------------------------------------
// The service and the bodies, one of each for every path.

/// `/upload` counts the request body and answers the count, `/download/N`
/// streams N bytes, anything else gets a small fixed body.
async fn service(request: Request<Incoming>) -> Result<Response<ResBody>, hyper::Error> {
    let path = request.uri().path();
    if path == "/upload" {
        let received = drain(request.into_body()).await?;
        let count = Full::new(Bytes::from(received.to_string()));
        return Ok(Response::new(Either::Left(count)));
    }
    if let Some(Ok(remaining)) = path.strip_prefix("/download/").map(str::parse) {
        return Ok(Response::new(Either::Right(Chunks { remaining })));
    }
    let reply = Full::new(Bytes::from_static(SMALL_REPLY));
    Ok(Response::new(Either::Left(reply)))
}

/// A body of `remaining` bytes sent as slices of one static 64 KiB chunk,
/// so producing it copies and allocates nothing, on any path.
struct Chunks {
    remaining: u64,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.remaining.min(CHUNK_SIZE as u64) as usize;
        if len == 0 {
            return Poll::Ready(None);
        }
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads a body to its end without keeping it, and returns its length.
async fn drain(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            length += data.len() as u64;
        }
    }
    Ok(length)
}

/// A request as every path sends it, with its authority given, so the
/// bytes on the wire are the same on every path: HTTP/1.1 gets a `Host`
/// (ptth's sender would add an empty one, plain hyper none), HTTP/2 an
/// absolute target (ptth's sender would add `:authority`, plain hyper none,
/// which a strict server refuses).
fn request(protocol: Proto, method: Method, path: Uri, body: ReqBody) -> Request<ReqBody> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    match protocol {
        Proto::H1 => {
            *request.uri_mut() = path;
            let host = HeaderValue::from_static("localhost");
            request.headers_mut().insert(HOST, host);
        }
        Proto::H2 => {
            let mut parts = path.into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(Authority::from_static("localhost"));
            *request.uri_mut() = Uri::from_parts(parts).expect("an absolute URI");
        }
    }
    request
}

fn small_get(protocol: Proto) -> Request<ReqBody> {
    let small = Uri::from_static("/small");
    request(protocol, Method::GET, small, Either::Left(Empty::new()))
}

// ---------------------------------------------------------------------------
// Opening connections on any path.

/// The client end's handle on one connection, plain or transposed.
enum Sender {
    Http1(client::conn::http1::SendRequest<ReqBody>),
    Http2(client::conn::http2::SendRequest<ReqBody>),
    Transposed(ptth::acceptor::SendRequest<ReqBody>),
}

impl Sender {
    /// Sends `request` once the connection can take it; anything but `200`
    /// is an error.
    async fn send(&mut self, request: Request<ReqBody>) -> Result<Response<Incoming>, BoxError> {
        let response = match self {
            Sender::Http1(tx) => {
                tx.ready().await?;
                tx.send_request(request).await?
            }
            Sender::Http2(tx) => {
                tx.ready().await?;
                tx.send_request(request).await?
            }
            Sender::Transposed(tx) => tx.send_request(request).await?,
        };
        match response.status() {
            StatusCode::OK => Ok(response),
            status => Err(format!("the service answered {status}").into()),
        }
    }

    /// One small GET, its response read to the end.
    async fn get_small(&mut self, protocol: Proto) -> Result<(), BoxError> {
        let response = self.send(small_get(protocol)).await?;
        drain(response.into_body()).await?;
        Ok(())
    }

    /// Another handle on the same connection; HTTP/2 only.
    fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(tx) => Some(Sender::Http2(tx.clone())),
            Sender::Transposed(tx) if tx.protocol() == Protocol::Http2 => {
                Some(Sender::Transposed(tx.clone()))
            }
            Sender::Transposed(_) => None,
        }
    }
}

/// Every builder any path uses, for one protocol. The plain ones are set up
/// as ptth sets up its own (`ptth::initiator::Server::new`: HTTP/1.1
/// keep-alive and no header-read timeout, HTTP/2 with tokio's executor and
/// timer; `ptth::acceptor::Builder::new`: hyper's client defaults, HTTP/2
/// with tokio's timer), so that the paths differ only by ptth itself.
struct Builders {
    protocol: Proto,
    server_h1: server::conn::http1::Builder,
    server_h2: server::conn::http2::Builder<TokioExecutor>,
    client_h1: client::conn::http1::Builder,
    client_h2: client::conn::http2::Builder<TokioExecutor>,
    initiator: ptth::initiator::Builder,
    server: ptth::initiator::Server,
    acceptor: ptth::acceptor::Builder,
    /// The initiator on the channel paths: an extended CONNECT names the
    /// acceptor's authority, where the upgrade goes without one.
    channel_initiator: ptth::initiator::Builder,
    /// The acceptor's HTTP/2 server on the channel path, and on the
    /// untuned one.
    channel_server: server::conn::http2::Builder<TokioExecutor>,
    untuned_server: server::conn::http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(protocol: Proto) -> Self {
        let mut server_h1 = server::conn::http1::Builder::new();
        server_h1.keep_alive(true).header_read_timeout(None);
        let mut server_h2 = server::conn::http2::Builder::new(TokioExecutor::new());
        server_h2.timer(TokioTimer::new());
        let mut client_h2 = client::conn::http2::Builder::new(TokioExecutor::new());
        client_h2.timer(TokioTimer::new());
        let initiator = ptth::initiator::Builder::new().alpn([protocol.ptth()]);
        let channel_initiator = initiator.clone().uri("http://localhost/");
        // As a relay's: tokio's timer and extended CONNECT.
        let mut untuned_server = server::conn::http2::Builder::new(TokioExecutor::new());
        untuned_server
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let mut channel_server = untuned_server.clone();
        channel_server
            .initial_stream_window_size(SETUP_STREAM_WINDOW)
            .initial_connection_window_size(SETUP_CONNECTION_WINDOW);
        Builders {
            protocol,
            server_h1,
            server_h2,
            client_h1: client::conn::http1::Builder::new(),
            client_h2,
            initiator,
            server: ptth::initiator::Server::new(),
            acceptor: ptth::acceptor::Builder::new(),
            channel_initiator,
            channel_server,
            untuned_server,
        }
    }

    /// Takes up `role` on one TCP connection, which on a channel path
    /// carries `channels` channels (and on the others is one connection).
    /// A client sends one GET on each before returning its senders, so by
    /// then both ends are past every handshake.
    async fn open(
        &self,
        path: Path,
        role: Role,
        tcp: TcpStream,
        channels: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        match role {
            Role::Server => {
                self.serve(path, tcp, channels).await?;
                Ok(Vec::new())
            }
            Role::Client => {
                let mut senders = self.client(path, tcp, channels).await?;
                for sender in &mut senders {
                    sender.get_small(self.protocol).await?;
                }
                Ok(senders)
            }
        }
    }

    /// Starts serving on `tcp`: on the transposed path after the upgrade,
    /// on a channel path on each of `channels` channels opened on it.
    async fn serve(&self, path: Path, tcp: TcpStream, channels: usize) -> Result<(), BoxError> {
        let service = service_fn(service);
        match (path, self.protocol) {
            (Path::Plain, Proto::H1) => {
                tokio::spawn(self.server_h1.serve_connection(TokioIo::new(tcp), service));
            }
            (Path::Plain, Proto::H2) => {
                tokio::spawn(self.server_h2.serve_connection(TokioIo::new(tcp), service));
            }
            (Path::Transposed, _) => {
                let transposed = self.initiator.handshake(tcp).await?;
                tokio::spawn(self.server.serve_connection(transposed, service));
            }
            (Path::Channel | Path::ChannelUntuned, _) => {
                let (opener, connection) = self.channel_initiator.handshake_http2(tcp).await?;
                tokio::spawn(connection);
                for _ in 0..channels {
                    let transposed = opener.open().await?;
                    tokio::spawn(self.server.serve_connection(transposed, service));
                }
            }
        }
        Ok(())
    }

    /// Starts a client on `tcp`, on the transposed path after accepting the
    /// upgrade, and returns its sender; on a channel path, a sender on each
    /// of the first `channels` channels set up on it.
    async fn client(
        &self,
        path: Path,
        tcp: TcpStream,
        channels: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        let sender = match (path, self.protocol) {
            (Path::Plain, Proto::H1) => {
                let (tx, connection) = self.client_h1.handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(connection);
                Sender::Http1(tx)
            }
            (Path::Plain, Proto::H2) => {
                let (tx, connection) = self.client_h2.handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(connection);
                Sender::Http2(tx)
            }
            (Path::Transposed, _) => {
                let offer = self.acceptor.read_request(tcp).await?;
                let (tx, connection) = offer.accept().await?;
                tokio::spawn(connection);
                self.transposed(tx)?
            }
            (Path::Channel | Path::ChannelUntuned, _) => {
                return self.accept_channels(path, tcp, channels).await;
            }
        };
        Ok(vec![sender])
    }

    /// Serves HTTP/2 on `tcp` as a relay does, taking every extended
    /// CONNECT with `ptth::upgrade::accept`, and returns a sender on each of
    /// the first `count` channels.
    async fn accept_channels(
        &self,
        path: Path,
        tcp: TcpStream,
        count: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        let (switching, mut switched) = mpsc::unbounded_channel();
        let acceptor = self.acceptor.clone();
        let setup = service_fn(move |mut request: Request<Incoming>| {
            let answer =
                match ptth::upgrade::accept::<_, Full<Bytes>, ReqBody>(&acceptor, &mut request) {
                    Ok((answer, pending)) => {
                        let _ = switching.send(pending);
                        answer
                    }
                    // The initiator reads why from the answer and fails there.
                    Err(rejection) => rejection.response,
                };
            async { Ok::<_, Infallible>(answer) }
        });
        let server = match path {
            Path::ChannelUntuned => &self.untuned_server,
            _ => &self.channel_server,
        };
        tokio::spawn(server.serve_connection(TokioIo::new(tcp), setup));
        let mut senders = Vec::with_capacity(count);
        while senders.len() < count {
            let pending = switched.recv().await.ok_or("the setup connection ended")?;
            let (tx, connection) = pending.await?;
            tokio::spawn(connection);
            senders.push(self.transposed(tx)?);
        }
        Ok(senders)
    }

    /// The acceptor's sender on a ptth path, once it is known to speak this
    /// row's protocol.
    fn transposed(&self, tx: ptth::acceptor::SendRequest<ReqBody>) -> Result<Sender, BoxError> {
        if tx.protocol() != self.protocol.ptth() {
            return Err(format!("transposed to {}, not {}", tx.protocol(), self.protocol).into());
        }
        Ok(Sender::Transposed(tx))
    }
}

/// Where one end gets its connections: by accepting or by dialling.
enum Source {
    Listen(TcpListener),
    Dial(SocketAddr),
}

impl Source {
    fn end(&self) -> End {
        match self {
            Source::Listen(_) => End::Listen,
            Source::Dial(_) => End::Dial,
        }
    }

    async fn next(&self) -> std::io::Result<TcpStream> {
        let tcp = match self {
            Source::Listen(listener) => listener.accept().await?.0,
            Source::Dial(addr) => TcpStream::connect(addr).await?,
        };
        // The same on every path: small messages go out at once.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// Plays one end of `connections` TCP connections on `path`, each carrying
/// `channels` channels on a channel path, opening a few at a time, and
/// returns the senders if this end is the client.
async fn open_end(
    builders: Arc<Builders>,
    path: Path,
    source: Source,
    connections: usize,
    channels: usize,
) -> Result<Vec<Sender>, BoxError> {
    let role = path.role(source.end());
    let mut opening = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..connections {
        if opening.len() == OPENING_AT_ONCE {
            senders.extend(opened(&mut opening).await?);
        }
        let tcp = source.next().await?;
        let builders = builders.clone();
        opening.spawn(async move { builders.open(path, role, tcp, channels).await });
    }
    while !opening.is_empty() {
        senders.extend(opened(&mut opening).await?);
    }
    Ok(senders)
}

/// Waits for the next TCP connection to be open.
async fn opened(
    opening: &mut JoinSet<Result<Vec<Sender>, BoxError>>,
) -> Result<Vec<Sender>, BoxError> {
    match opening.join_next().await {
        Some(result) => result?,
        None => Ok(Vec::new()),
    }
}

/// Opens `count` connections on `path` between two ends in this process,
/// and returns the client end's senders. On a channel path they are `count`
/// channels on one TCP connection, as the setup is meant to be used.
async fn connect(
    builders: &Arc<Builders>,
    path: Path,
    count: usize,
) -> Result<Vec<Sender>, BoxError> {
    let (connections, channels) = if path.is_channel() {
        (1, count)
    } else {
        (count, 1)
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (mut senders, dialled) = tokio::try_join!(
        open_end(
            builders.clone(),
            path,
            Source::Listen(listener),
            connections,
            channels
        ),
        open_end(
            builders.clone(),
            path,
            Source::Dial(addr),
            connections,
            channels
        ),
    )?;
    senders.extend(dialled);
    Ok(senders)
}

/// `in_flight` senders: on HTTP/1.1 one connection each, on HTTP/2 handles
/// on one connection.
async fn senders(
    builders: &Arc<Builders>,
    path: Path,
    in_flight: usize,
) -> Result<Vec<Sender>, BoxError> {
    if builders.protocol == Proto::H1 {
        return connect(builders, path, in_flight).await;
    }
    let mut senders = connect(builders, path, 1).await?;
    while senders.len() < in_flight {
        let shared = senders[0]
            .share()
            .ok_or("an HTTP/2 sender should be shareable")?;
        senders.push(shared);
    }
    Ok(senders)
}

/// Runs `round` for each of `paths`, `rounds` times, after one unrecorded
/// warm-up round each, and returns each path's results in the order of
/// `paths`, taking [`turns`]. A round opens its own connections, so where
/// tokio happens to place their tasks on its workers is drawn anew each
/// round instead of holding for a whole row.
async fn side_by_side<T>(
    paths: &[Path],
    rounds: usize,
    mut round: impl AsyncFnMut(Path) -> Result<T, BoxError>,
) -> Result<Vec<Vec<T>>, BoxError> {
    for &path in paths {
        round(path).await?;
    }
    let mut results: Vec<Vec<T>> = paths.iter().map(|_| Vec::new()).collect();
    for number in 0..rounds {
        for index in turns(number, paths.len()) {
            results[index].push(round(paths[index]).await?);
        }
    }
    Ok(results)
}

/// The order of `paths` paths in round `number`: each round starts with the
/// next path, and every other round runs backwards (A B C, B A C, C A B,
/// A C B, ...; for two, A B, B A, ...), so no path always goes first or
/// always runs in the same one's wake, as it would if the order only
/// rotated.
fn turns(number: usize, paths: usize) -> impl Iterator<Item = usize> {
    let start = number % paths;
    (0..paths).map(move |turn| {
        if number % 2 == 0 {
            (start + turn) % paths
        } else {
            (start + paths - turn) % paths
        }
    })
}

// ---------------------------------------------------------------------------
// Small GETs.

/// A small-GET round's figures.
struct Sample {
    rate: f64,
    p50: f64,
    p99: f64,
    /// CPU time of the whole process (both ends) per request, in µs.
    cpu: f64,
}

async fn request_rows(
    config: &Config,
    protocol: Proto,
    in_flight: usize,
) -> Result<[Row; 4], BoxError> {
    let builders = Arc::new(Builders::new(protocol));
    let samples = side_by_side(&config.paths, config.rounds, async |path| {
        let senders = senders(&builders, path, in_flight).await?;
        load_round(senders, protocol, config.round).await
    })
    .await?;
    let row = |name, unit, target, figure: fn(&Sample) -> f64| Row {
        name,
        protocol,
        in_flight,
        connections: if protocol == Proto::H1 { in_flight } else { 1 },
        unit,
        values: medians(&samples, figure),
        target,
    };
    Ok([
        row(RATE, Unit::PerSecond, Some(SAME), |s| s.rate),
        row("small GET p50", Unit::Micros, None, |s| s.p50),
        row("small GET p99", Unit::Micros, Some(SAME), |s| s.p99),
        row("small GET CPU per request", Unit::Micros, None, |s| s.cpu),
    ])
}

/// One round: every sender runs its own closed loop of small GETs until
/// `length` has passed.
async fn load_round(
    senders: Vec<Sender>,
    protocol: Proto,
    length: Duration,
) -> Result<Sample, BoxError> {
    let cpu_before = cpu_time()?;
    let start = Instant::now();
    let until = start + length;
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(worker(sender, protocol, until)))
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time()? - cpu_before;
    let requests = latencies.len() as f64;
    latencies.sort_unstable();
    Ok(Sample {
        rate: requests / elapsed.as_secs_f64(),
        p50: percentile_micros(&latencies, 0.50),
        p99: percentile_micros(&latencies, 0.99),
        cpu: cpu.as_secs_f64() * 1e6 / requests,
    })
}

/// The CPU time this process has used, all threads, user and system.
fn cpu_time() -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name, field 2, is in parentheses and may hold spaces.
    // Past it, field 3 is at index 0, so utime and stime (fields 14 and 15)
    // are at 11 and 12, in Linux's fixed clock ticks of 10 ms.
    let (_, fields) = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, BoxError> {
        Ok(fields.get(i).ok_or("short /proc/self/stat")?.parse()?)
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Sends small GETs one after another until `until`, at least one, and
/// returns each one's latency in nanoseconds.
async fn worker(mut sender: Sender, protocol: Proto, until: Instant) -> Result<Vec<u64>, BoxError> {
    let mut latencies = Vec::with_capacity(1 << 14);
    loop {
        let start = Instant::now();
        sender.get_small(protocol).await?;
        let end = Instant::now();
        latencies.push((end - start).as_nanos() as u64);
        if end >= until {
            return Ok(latencies);
        }
    }
}

/// The nearest-rank percentile of sorted nanoseconds, in microseconds.
fn percentile_micros(sorted: &[u64], fraction: f64) -> f64 {
    let rank = (sorted.len() as f64 * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// The median of `figure` over each path's rounds.
fn medians<T>(results: &[Vec<T>], figure: fn(&T) -> f64) -> Vec<f64> {
    results
        .iter()
        .map(|rounds| median(rounds.iter().map(figure).collect()))
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Bulk bodies.

#[derive(Clone, Copy)]
enum Direction {
    Upload,
    Download,
}

impl Direction {
    /// The names of its rate row and its CPU row.
    fn names(self) -> [&'static str; 2] {
        match self {
            Direction::Upload => ["bulk upload", "bulk upload CPU per MiB"],
            Direction::Download => ["bulk download", "bulk download CPU per MiB"],
        }
    }
}

/// A bulk round's figures.
struct Bulk {
    rate: f64,
    /// CPU time of the whole process (both ends) per MiB moved, in µs.
    cpu: f64,
}

async fn bulk_rows(
    config: &Config,
    protocol: Proto,
    direction: Direction,
) -> Result<[Row; 2], BoxError> {
    let builders = Arc::new(Builders::new(protocol));
    let results = side_by_side(&config.paths, config.rounds, async |path| {
        bulk_round(&builders, path, direction, config).await
    })
    .await?;
    let row = |name, unit, target, figure: fn(&Bulk) -> f64| Row {
        name,
        protocol,
        in_flight: 1,
        connections: 1,
        unit,
        values: medians(&results, figure),
        target,
    };
    let [rate, cpu] = direction.names();
    Ok([
        row(rate, Unit::MibPerSecond, Some(SAME), |b| b.rate),
        row(cpu, Unit::Micros, None, |b| b.cpu),
    ])
}

/// One round of bulk: bodies of `config.bulk_bytes` moved one after another,
/// each on a new connection, until the round's length has passed; returns
/// MiB/s over the time spent moving them, and CPU time per MiB. One body
/// takes well under a second on loopback and its rate swings widely from
/// one to the next, so a round averages over several.
async fn bulk_round(
    builders: &Arc<Builders>,
    path: Path,
    direction: Direction,
    config: &Config,
) -> Result<Bulk, BoxError> {
    let cpu_before = cpu_time()?;
    let until = Instant::now() + config.round;
    let (mut bodies, mut moving) = (0, Duration::ZERO);
    while bodies == 0 || Instant::now() < until {
        let mut senders = connect(builders, path, 1).await?;
        moving += transfer(
            &mut senders[0],
            builders.protocol,
            direction,
            config.bulk_bytes,
        )
        .await?;
        bodies += 1;
    }
    let mib = (bodies * config.bulk_bytes) as f64 / MIB as f64;
    let cpu = cpu_time()? - cpu_before;
    Ok(Bulk {
        rate: mib / moving.as_secs_f64(),
        cpu: cpu.as_secs_f64() * 1e6 / mib,
    })
}

/// Moves one body of `bytes` in `direction`, checks that all of it
/// arrived, and returns the time it took.
async fn transfer(
    sender: &mut Sender,
    protocol: Proto,
    direction: Direction,
    bytes: u64,
) -> Result<Duration, BoxError> {
    let start = Instant::now();
    match direction {
        Direction::Upload => {
            let body = Either::Right(Chunks { remaining: bytes });
            let upload = request(
                protocol,
                Method::POST,
                Uri::from_static("http://localhost/upload"),
                body,
            );
            let response = sender.send(upload).await?;
            let counted = response.into_body().collect().await?.to_bytes();
            if counted != bytes.to_string().as_bytes() {
                return Err(format!("the service counted {counted:?} of {bytes} bytes").into());
            }
        }
        Direction::Download => {
            let uri = format!("/download/{bytes}").parse()?;
            let download = request(protocol, Method::GET, uri, Either::Left(Empty::new()));
            let response = sender.send(download).await?;
            let received = drain(response.into_body()).await?;
            if received != bytes {
                return Err(format!("received {received} of {bytes} bytes").into());
            }
        }
    }
    Ok(start.elapsed())
}

// ---------------------------------------------------------------------------
// Idle connections: each end in a fresh child process, which keeps the ends
// apart and gives each a heap holding nothing freed by earlier tests.

/// Bytes of resident memory per connection at each end.
struct PerConnection {
    server: f64,
    client: f64,
}

fn idle_rows(config: &Config, protocol: Proto) -> Result<[Row; 2], BoxError> {
    let measured = config
        .paths
        .iter()
        .map(|&path| idle_pair(config, protocol, path))
        .collect::<Result<Vec<_>, _>>()?;
    let row = |name, end: fn(&PerConnection) -> f64| Row {
        name,
        protocol,
        in_flight: 0,
        connections: config.idle,
        unit: Unit::BytesPerConnection,
        values: measured.iter().map(end).collect(),
        target: Some(MEMORY),
    };
    Ok([
        row("idle, server/initiator end", |m| m.server),
        row("idle, client/acceptor end", |m| m.client),
    ])
}

/// Opens `config.idle` connections on `path` between two child processes
/// and returns how much each one's resident memory grew per connection.
fn idle_pair(config: &Config, protocol: Proto, path: Path) -> Result<PerConnection, BoxError> {
    let mut listen = Child::start(config, protocol, path, "listen")?;
    let (addr, listen_before) = listen.ready()?;
    let mut dial = Child::start(config, protocol, path, &addr)?;
    let (_, dial_before) = dial.ready()?;
    // The client end knows when every connection has answered its GET.
    let client = match path.role(End::Listen) {
        Role::Client => &mut listen,
        Role::Server => &mut dial,
    };
    client.expect("idle")?;
    let listen_grew = listen.rss_kib()? - listen_before;
    let dial_grew = dial.rss_kib()? - dial_before;
    listen.finish()?;
    dial.finish()?;
    let per_connection = |kib: i64| kib as f64 * 1024.0 / config.idle as f64;
    let (server, client) = match path.role(End::Listen) {
        Role::Server => (listen_grew, dial_grew),
        Role::Client => (dial_grew, listen_grew),
    };
    Ok(PerConnection {
        server: per_connection(server),
        client: per_connection(client),
    })
}

/// One end of the idle test in a child process, spoken to in lines: it
/// writes `ready ADDR KIB` (where it listens, or `-`, and its resident
/// memory before any connection), the client end then `idle` once every
/// connection is open, and `rss KIB` for each `measure` read; it exits when
/// its stdin closes.
struct Child {
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Child {
    fn start(config: &Config, protocol: Proto, path: Path, addr: &str) -> Result<Child, BoxError> {
        let mut process = Command::new(std::env::current_exe()?)
            .arg(IDLE_CHILD)
            .arg(protocol.to_string())
            .arg(path.name())
            .arg(config.idle.to_string())
            .arg(config.threads.to_string())
            .arg(addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = process.stdin.take();
        let stdout = BufReader::new(process.stdout.take().ok_or("the child has no stdout")?);
        Ok(Child {
            process,
            stdin,
            stdout,
        })
    }

    /// The next line, split into words.
    fn words(&mut self) -> Result<Vec<String>, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("an idle-test child ended early".into());
        }
        Ok(line.split_whitespace().map(str::to_owned).collect())
    }

    fn expect(&mut self, word: &str) -> Result<Vec<String>, BoxError> {
        let words = self.words()?;
        match words.split_first() {
            Some((first, rest)) if first == word => Ok(rest.to_vec()),
            _ => Err(format!("expected {word} from an idle-test child, read {words:?}").into()),
        }
    }

    fn ready(&mut self) -> Result<(String, i64), BoxError> {
        match &self.expect("ready")?[..] {
            [addr, kib] => Ok((addr.clone(), kib.parse()?)),
            other => Err(format!("bad ready line {other:?}").into()),
        }
    }

    fn rss_kib(&mut self) -> Result<i64, BoxError> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "measure")?;
        stdin.flush()?;
        match &self.expect("rss")?[..] {
            [kib] => Ok(kib.parse()?),
            other => Err(format!("bad rss line {other:?}").into()),
        }
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        drop(self.stdin.take());
        let status = self.process.wait()?;
        if !status.success() {
            return Err(format!("an idle-test child failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for Child {
    /// Leaves no child behind when the test fails half-way.
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The child's side of [`Child`]: arguments `PROTOCOL PATH COUNT THREADS
/// ADDR`, where ADDR is `listen` for the end that listens.
fn idle_child(args: &[String]) -> Result<(), BoxError> {
    let [protocol, path, count, threads, addr] = args else {
        return Err(format!("{IDLE_CHILD} takes PROTOCOL PATH COUNT THREADS ADDR").into());
    };
    let (protocol, path, count) = (Proto::parse(protocol)?, Path::parse(path)?, count.parse()?);
    let runtime = runtime(threads.parse()?)?;
    let source = match addr.as_str() {
        "listen" => Source::Listen(runtime.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?),
        addr => Source::Dial(addr.parse()?),
    };
    let shown = match &source {
        Source::Listen(listener) => listener.local_addr()?.to_string(),
        Source::Dial(_) => "-".to_owned(),
    };
    println!("ready {shown} {}", rss_kib()?);
    let role = path.role(source.end());
    let builders = Arc::new(Builders::new(protocol));
    // Held until the end, so the client end's connections stay open.
    // On a channel path, one channel per TCP connection: a relay's idle
    // peer.
    let _senders = runtime.block_on(open_end(builders, path, source, count, 1))?;
    if role == Role::Client {
        println!("idle");
    }
    for line in std::io::stdin().lock().lines() {
        if line? == "measure" {
            println!("rss {}", rss_kib()?);
        }
    }
    Ok(())
}

/// This process's resident memory, in KiB.
fn rss_kib() -> Result<i64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(rss.trim().trim_end_matches("kB").trim().parse()?)
}
