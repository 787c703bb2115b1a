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

#[path = "common/load_idle.rs"]
mod idle;
#[path = "common/load_open.rs"]
mod open;
#[path = "common/load_paths.rs"]
mod paths;
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
use idle::*;
use open::*;
use paths::*;
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
