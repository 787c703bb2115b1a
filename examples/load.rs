//! Load test: ptth's transposed connections against plain hyper ones, side
//! by side in one process on loopback, over HTTP/1.1 and HTTP/2.
//!
//! ```text
//! cargo run --release --example load -- [--json PATH] [--quick] [--aa]
//!     [--rounds N] [--seconds S] [--bulk-mib N] [--idle N] [--threads N]
//!     [--only small|bulk|idle]
//! ```
//!
//! Path A is plain hyper: the client dials the server. Path B is ptth: the
//! initiator dials the acceptor, upgrades, and then serves with
//! `ptth::initiator::Server` while the acceptor sends with
//! `ptth::acceptor::SendRequest`. Both paths run the same service, the same
//! request loop, the same body types and hyper builders set up alike, so
//! what differs between them is ptth.
//!
//! - Small GETs with 1, 16 and 64 requests in flight (HTTP/1.1: that many
//!   connections, one request each; HTTP/2: one connection, that many
//!   streams): requests per second, p50 and p99 latency, CPU per request.
//! - Large bodies (256 MiB) each way, one at a time: MiB/s, CPU per MiB.
//! - Resident memory per idle connection (10,000 of them), on the server end
//!   and on the client end, each end in a fresh child process of its own.
//!
//! The machine may be noisy, so A and B take turns: after one unrecorded
//! warm-up round each they run A B, B A, A B, ... and the median of each is
//! reported, so every B/A ratio comes from one run. `--aa` runs plain hyper
//! as B too, to show how far apart two identical paths measure here. The
//! table goes to stdout, progress to stderr, and with `--json` the same
//! figures to a file; `--quick` is a smoke run.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
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
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
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
const RATE: &str = "small GET rate";
/// The targets the figures are read against.
const SAME: Target = Target::Between(0.97, 1.03);
const MEMORY: Target = Target::AtMost(1.10);
const SCALING: Target = Target::AtLeast(3.0);

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
    /// What B is: transposed, or with `--aa` plain again, which shows how
    /// far apart two identical paths measure on this machine.
    b: Path,
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
    const USAGE: &str = "usage: load [--json PATH] [--quick] [--aa] [--rounds N] [--seconds S] \
                         [--bulk-mib N] [--idle N] [--threads N] [--only small|bulk|idle]";

    /// The defaults, or `--quick`'s smaller ones, with any flag given on top.
    fn parse(args: &[String]) -> Result<Config, BoxError> {
        let quick = args.iter().any(|arg| arg == "--quick");
        let aa = args.iter().any(|arg| arg == "--aa");
        let mut config = Config {
            json: None,
            b: if aa { Path::Plain } else { Path::Transposed },
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

    fn paths(&self) -> [Path; 2] {
        [Path::Plain, self.b]
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
    let command = args
        .iter()
        .map(|arg| quoted(arg))
        .collect::<Vec<_>>()
        .join(" ");
    println!("{}", header(config, &command));
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
    print!("{}", table(config, &rows));
    if let Some(path) = &config.json {
        std::fs::write(path, json(config, &command, &rows))?;
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
    /// A: plain hyper, the client dials the server.
    Plain,
    /// B: ptth, the initiator dials the acceptor and then serves it.
    Transposed,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain",
            Path::Transposed => "transposed",
        }
    }

    fn parse(name: &str) -> Result<Path, BoxError> {
        [Path::Plain, Path::Transposed]
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown path {name}").into())
    }

    /// The HTTP role at each end of the TCP connection: on the transposed
    /// path the end that dials is the one that serves.
    fn role(self, end: End) -> Role {
        match (self, end) {
            (Path::Plain, End::Dial) | (Path::Transposed, End::Listen) => Role::Client,
            (Path::Plain, End::Listen) | (Path::Transposed, End::Dial) => Role::Server,
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
// The service and the bodies, one of each for both paths.

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
/// so producing it copies and allocates nothing, on either path.
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

/// A request as both paths send it, with its authority given, so the bytes
/// on the wire are the same on both paths: HTTP/1.1 gets a `Host` (ptth's
/// sender would add an empty one, plain hyper none), HTTP/2 an absolute
/// target (ptth's sender would add `:authority`, plain hyper none, which a
/// strict server refuses).
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
// Opening connections on either path.

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

/// Every builder either path uses, for one protocol. The plain ones are set
/// up as ptth sets up its own (`ptth::initiator::Server::new`: HTTP/1.1
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
        Builders {
            protocol,
            server_h1,
            server_h2,
            client_h1: client::conn::http1::Builder::new(),
            client_h2,
            initiator,
            server: ptth::initiator::Server::new(),
            acceptor: ptth::acceptor::Builder::new(),
        }
    }

    /// Takes up `role` on one connection. A client sends one GET before
    /// returning its sender, so by then both ends are past every handshake.
    async fn open(
        &self,
        path: Path,
        role: Role,
        tcp: TcpStream,
    ) -> Result<Option<Sender>, BoxError> {
        match role {
            Role::Server => {
                self.serve(path, tcp).await?;
                Ok(None)
            }
            Role::Client => {
                let mut sender = self.client(path, tcp).await?;
                sender.get_small(self.protocol).await?;
                Ok(Some(sender))
            }
        }
    }

    /// Starts serving on `tcp`, on the transposed path after the upgrade.
    async fn serve(&self, path: Path, tcp: TcpStream) -> Result<(), BoxError> {
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
        }
        Ok(())
    }

    /// Starts a client on `tcp`, on the transposed path after accepting the
    /// upgrade.
    async fn client(&self, path: Path, tcp: TcpStream) -> Result<Sender, BoxError> {
        Ok(match (path, self.protocol) {
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
                if tx.protocol() != self.protocol.ptth() {
                    return Err(
                        format!("transposed to {}, not {}", tx.protocol(), self.protocol).into(),
                    );
                }
                Sender::Transposed(tx)
            }
        })
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
        // The same on both paths: small messages go out at once.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// Plays one end of `count` connections on `path`, opening a few at a
/// time, and returns the senders if this end is the client.
async fn open_end(
    builders: Arc<Builders>,
    path: Path,
    source: Source,
    count: usize,
) -> Result<Vec<Sender>, BoxError> {
    let role = path.role(source.end());
    let mut opening = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..count {
        if opening.len() == OPENING_AT_ONCE {
            senders.extend(opened(&mut opening).await?);
        }
        let tcp = source.next().await?;
        let builders = builders.clone();
        opening.spawn(async move { builders.open(path, role, tcp).await });
    }
    while !opening.is_empty() {
        senders.extend(opened(&mut opening).await?);
    }
    Ok(senders)
}

/// Waits for the next connection to be open.
async fn opened(
    opening: &mut JoinSet<Result<Option<Sender>, BoxError>>,
) -> Result<Option<Sender>, BoxError> {
    match opening.join_next().await {
        Some(result) => result?,
        None => Ok(None),
    }
}

/// Opens `count` connections on `path` between two ends in this process,
/// and returns the client end's senders.
async fn connect(
    builders: &Arc<Builders>,
    path: Path,
    count: usize,
) -> Result<Vec<Sender>, BoxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (mut senders, dialled) = tokio::try_join!(
        open_end(builders.clone(), path, Source::Listen(listener), count),
        open_end(builders.clone(), path, Source::Dial(addr), count),
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

/// Runs `round` for A and for B (`paths`), `rounds` times, after one
/// unrecorded warm-up round each, and returns each path's results. Which
/// path goes first alternates (A B, B A, A B, ...), so neither always runs
/// in the other's wake. A round opens its own connections, so where tokio happens
/// to place their tasks on its workers is drawn anew each round instead of
/// holding for a whole row.
async fn side_by_side<T>(
    paths: [Path; 2],
    rounds: usize,
    mut round: impl AsyncFnMut(Path) -> Result<T, BoxError>,
) -> Result<[Vec<T>; 2], BoxError> {
    for path in paths {
        round(path).await?;
    }
    let mut results = [Vec::new(), Vec::new()];
    for number in 0..rounds {
        let order = if number % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            results[index].push(round(paths[index]).await?);
        }
    }
    Ok(results)
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
    let [plain, transposed] = side_by_side(config.paths(), config.rounds, async |path| {
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
        plain: median(plain.iter().map(figure).collect()),
        transposed: median(transposed.iter().map(figure).collect()),
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
    let [plain, transposed] = side_by_side(config.paths(), config.rounds, async |path| {
        bulk_round(&builders, path, direction, config).await
    })
    .await?;
    let row = |name, unit, target, figure: fn(&Bulk) -> f64| Row {
        name,
        protocol,
        in_flight: 1,
        connections: 1,
        unit,
        plain: median(plain.iter().map(figure).collect()),
        transposed: median(transposed.iter().map(figure).collect()),
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
    let plain = idle_pair(config, protocol, Path::Plain)?;
    let transposed = idle_pair(config, protocol, config.b)?;
    let row = |name, end: fn(&PerConnection) -> f64| Row {
        name,
        protocol,
        in_flight: 0,
        connections: config.idle,
        unit: Unit::BytesPerConnection,
        plain: end(&plain),
        transposed: end(&transposed),
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
    let _senders = runtime.block_on(open_end(builders, path, source, count))?;
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

// ---------------------------------------------------------------------------
// The report.

/// One figure, measured on both paths.
struct Row {
    name: &'static str,
    protocol: Proto,
    in_flight: usize,
    connections: usize,
    unit: Unit,
    plain: f64,
    transposed: f64,
    target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.transposed / self.plain
    }

    fn met(&self) -> Option<bool> {
        self.target.map(|target| target.met(self.ratio()))
    }
}

#[derive(Clone, Copy)]
enum Unit {
    PerSecond,
    Micros,
    MibPerSecond,
    BytesPerConnection,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::PerSecond => "req/s",
            Unit::Micros => "µs",
            Unit::MibPerSecond => "MiB/s",
            Unit::BytesPerConnection => "B/conn",
        }
    }

    fn decimals(self) -> usize {
        match self {
            Unit::Micros | Unit::MibPerSecond => 1,
            Unit::PerSecond | Unit::BytesPerConnection => 0,
        }
    }
}

/// Where a ratio should fall.
#[derive(Clone, Copy)]
enum Target {
    Between(f64, f64),
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::Between(low, high) => (low..=high).contains(&ratio),
            Target::AtMost(high) => ratio <= high,
            Target::AtLeast(low) => ratio >= low,
        }
    }

    fn label(self) -> String {
        match self {
            Target::Between(low, high) => format!("{low:.2}..{high:.2}"),
            Target::AtMost(high) => format!("<= {high:.2}"),
            Target::AtLeast(low) => format!(">= {low:.2}"),
        }
    }
}

/// HTTP/2's multiplexing at work: the rate of HTTP/2 with 64 in flight
/// over that of HTTP/1.1 with 1, plain and transposed. The target is on
/// the transposed one; the plain one shows what hyper alone reaches.
fn scaling(rows: &[Row]) -> Option<(f64, f64)> {
    let rate = |protocol, in_flight| {
        rows.iter()
            .find(|row| row.name == RATE && row.protocol == protocol && row.in_flight == in_flight)
    };
    let (h2, h1) = (rate(Proto::H2, 64)?, rate(Proto::H1, 1)?);
    Some((h2.plain / h1.plain, h2.transposed / h1.transposed))
}

fn header(config: &Config, command: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    format!(
        "ptth load test: plain hyper (A) against {} (B), over loopback on this machine\n\
         machine: {cores} cores ({cpu}); tokio multi-thread runtime, {} worker threads\n\
         command: {command}\n\
         method: per row a warm-up round each, then {} rounds of {:.1} s each for A and B, taking turns\n        \
         (A B, B A, ...) on new connections every round; medians. Bulk: {} MiB bodies one after\n        \
         another, each on a new connection. Idle: {} connections, each end in a child process.\n",
        if config.b == Path::Plain {
            "plain hyper again"
        } else {
            "ptth transposed"
        },
        config.threads,
        config.rounds,
        config.round.as_secs_f64(),
        config.bulk_bytes / MIB,
        config.idle,
    )
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn table(config: &Config, rows: &[Row]) -> String {
    let b = format!("{} (B)", config.b.name());
    let mut out = format!(
        "{:<36} {:<8} {:>8} {:>6} {:>12} {b:>14} {:>7}  target\n",
        "metric", "protocol", "inflight", "conns", "plain (A)", "B/A"
    );
    for row in rows {
        let decimals = row.unit.decimals();
        let target = match (row.target, row.met()) {
            (Some(target), Some(met)) => {
                format!("{} {}", if met { "ok  " } else { "MISS" }, target.label())
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<36} {:<8} {:>8} {:>6} {:>12.decimals$} {:>14.decimals$} {:>7.3}  {target}",
            format!("{} ({})", row.name, row.unit.label()),
            row.protocol,
            row.in_flight,
            row.connections,
            row.plain,
            row.transposed,
            row.ratio(),
        );
    }
    if let Some((plain, transposed)) = scaling(rows) {
        let met = if SCALING.met(transposed) {
            "ok"
        } else {
            "MISS"
        };
        let _ = writeln!(
            out,
            "\nrequests/s of h2 with 64 in flight over http/1.1 with 1: plain (A) {plain:.2}x, \
             {} (B) {transposed:.2}x ({met}, target {} for B)",
            config.b.name(),
            SCALING.label()
        );
    }
    out
}

fn json(config: &Config, command: &str, rows: &[Row]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!(
        "{{\n  \"command\": {},\n  \"b\": {},\n  \"transport\": \"loopback\",\n  \"cores\": {cores},\n  \"cpu\": {},\n  \
         \"worker_threads\": {},\n  \"rounds\": {},\n  \"round_seconds\": {},\n  \"bulk_bytes\": {},\n  \
         \"idle_connections\": {},\n  \"rows\": [\n",
        json_string(command),
        json_string(config.b.name()),
        json_string(&cpu_model().unwrap_or_default()),
        config.threads,
        config.rounds,
        config.round.as_secs_f64(),
        config.bulk_bytes,
        config.idle,
    );
    let entries: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "    {{\"name\": {}, \"unit\": {}, \"protocol\": {}, \"inflight\": {}, \"connections\": {}, \
                 \"plain\": {}, \"transposed\": {}, \"ratio\": {}, \"target\": {}, \"within_target\": {}}}",
                json_string(row.name),
                json_string(row.unit.label()),
                json_string(&row.protocol.to_string()),
                row.in_flight,
                row.connections,
                json_number(row.plain),
                json_number(row.transposed),
                json_number(row.ratio()),
                row.target.map_or("null".to_owned(), |t| json_string(&t.label())),
                row.met().map_or("null".to_owned(), |met| met.to_string()),
            )
        })
        .collect();
    out.push_str(&entries.join(",\n"));
    out.push_str("\n  ]");
    if let Some((plain, transposed)) = scaling(rows) {
        let _ = write!(
            out,
            ",\n  \"scaling\": {{\"name\": \"requests/s of h2 with 64 in flight over http/1.1 with 1\", \
             \"plain\": {}, \"transposed\": {}, \"target\": {}, \"within_target\": {}}}",
            json_number(plain),
            json_number(transposed),
            json_string(&SCALING.label()),
            SCALING.met(transposed),
        );
    }
    out.push_str("\n}\n");
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON has no NaN or infinity; a ratio over a zero becomes `null`.
fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "null".to_owned()
    }
}

/// An argument as a shell would need it to be written.
fn quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
