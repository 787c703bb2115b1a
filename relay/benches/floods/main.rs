//! What one hostile client costs the relay and the others: for each
//! flood, the relay's memory and a bystander's latency while one attacker
//! runs it, against a baseline with no flood.
//!
//! ```text
//! cargo bench -p ptth-relay --bench floods [-- FLOOD... --seconds S --save]
//! ```
//!
//! FLOOD is `baseline`, `names`, `takeover`, `idle`, `stalled-peer`,
//! `stalled-relay`, `parked`, `endless-check` or `endless-continue`;
//! without one, all run. Each row gets a fresh `ptth-relay serve` (this
//! package's release binary, so one row's names and claim buckets do not
//! carry into the next), a healthy name on an in-process HTTP/2 peer, a
//! bystander GETting it from 127.0.0.3, and the attacker on 127.0.0.2:
//! the relay's bounds are per client address. `--save` also writes the
//! report to `relay/benches/results/floods.md`.

#[allow(dead_code)] // the installers there are for the other bench
#[path = "../relay/tools.rs"]
mod tools;

mod attack;
mod holding;
mod peers;
mod polls;
mod requests;
mod tally;
mod victim;
mod wire;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attack::Flood;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use victim::Latencies;

struct Options {
    floods: Vec<Flood>,
    seconds: u64,
    save: bool,
}

fn options() -> Options {
    let mut options = Options {
        floods: Vec::new(),
        seconds: 10,
        save: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes this to every bench target.
            "--bench" => {}
            "--save" => options.save = true,
            "--seconds" => options.seconds = args.next().and_then(|n| n.parse().ok()).unwrap(),
            key => {
                let flood = Flood::ALL.into_iter().find(|flood| flood.key() == key);
                options
                    .floods
                    .push(flood.unwrap_or_else(|| panic!("unknown argument {key:?}")));
            }
        }
    }
    if options.floods.is_empty() {
        options.floods = Flood::ALL.to_vec();
    }
    options
}

/// The relay's config for every row: the liveness check every second, so
/// that flood 6a's peers are checked (and cut) within the run; the rest
/// are the defaults docs/relay.md lists ("Bounds on every party").
const CONFIG: &str = "[liveness]\ninterval = 1\n";

/// The runtimes, each on threads of its own, so that the attacker's work
/// does not queue the bystander's tasks behind it in one scheduler (the
/// two still share the machine's cores with the relay).
struct Runtimes {
    victim: Runtime,
    attacker: Runtime,
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// One row of the table.
struct Row {
    flood: Flood,
    outcomes: String,
    /// The relay's RSS before the flood, its largest during it, and 1 s
    /// after the attacker closed everything.
    rss: [u64; 3],
    bystander: Latencies,
}

fn main() {
    let options = options();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ptth-relay"));
    // The attacker opens connections by the thousand.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = std::env::temp_dir().join(format!("ptth-floods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let runtimes = Runtimes {
        victim: runtime("bystander"),
        attacker: runtime("attacker"),
    };
    let mut rows = Vec::new();
    for &flood in &options.floods {
        eprintln!("flood: {}", flood.key());
        rows.push(measure(flood, &options, &binary, &config, &runtimes));
    }
    let report = report(&options, &rows);
    print!("{report}");
    if options.save {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/floods.md");
        std::fs::write(&path, &report).unwrap();
        eprintln!("written to {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs one flood against a fresh relay while the bystander measures.
fn measure(
    flood: Flood,
    options: &Options,
    binary: &Path,
    config: &Path,
    runtimes: &Runtimes,
) -> Row {
    let (relay, addr) = victim::relay(binary, config);
    let peer = runtimes.victim.block_on(victim::healthy_peer(addr));
    // The first GETs set up what every later one reuses (the peer's
    // stream window, the relay's pool entry); then the relay settles.
    let warm = Instant::now() + Duration::from_millis(500);
    runtimes.victim.block_on(victim::bystander(addr, warm));
    std::thread::sleep(Duration::from_millis(500));
    let start = tools::rss(relay.id());
    let sampler = victim::Sampler::start(relay.id());
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let attack = runtimes.attacker.spawn(attack::run(flood, addr, deadline));
    let bystander = runtimes.victim.block_on(victim::bystander(addr, deadline));
    let outcomes = runtimes.attacker.block_on(attack).unwrap();
    // Time for the relay to see the attacker's connections close.
    std::thread::sleep(Duration::from_secs(1));
    let end = tools::rss(relay.id());
    let peak = sampler.peak().max(end);
    peer.shutdown();
    drop(relay);
    Row {
        flood,
        outcomes,
        rss: [start, peak, end],
        bystander,
    }
}

/// The markdown report: the command, the date, the machine, the table.
fn report(options: &Options, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# One client's floods against ptth-relay\n");
    let _ = writeln!(out, "Command: `{}`  ", command());
    let _ = writeln!(out, "Date: {}  ", date());
    let _ = writeln!(out, "Machine: {}\n", machine());
    let _ = writeln!(
        out,
        "Each row: a fresh `ptth-relay serve` (release build, defaults but \
         `[liveness] interval = 1`), a healthy name on an in-process HTTP/2 \
         peer that reads request bodies before it answers, one attacker on \
         127.0.0.2 running the flood for {} s, and a bystander on 127.0.0.3 \
         GETting the healthy name on a new connection every 10 ms or slower, \
         one at a time (5 s timeout). The relay's RSS is read before the \
         flood, every 50 ms during it (peak), and 1 s after the attacker \
         closed everything (end). One run per row: p50 is the median of that \
         row's GETs, and figures from one run of a machine whose cores other \
         work shares are noisy.\n",
        options.seconds
    );
    let _ = writeln!(
        out,
        "| flood | attacker's outcomes | relay RSS start / peak / end (MiB) | bystander p50 / p99 / max (ms) | bystander errors / GETs |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} |",
            row.flood.label(),
            row.outcomes,
            mib(row.rss),
            millis(&row.bystander.times),
            row.bystander.errors,
            row.bystander.times.len()
        );
    }
    out
}

fn mib(rss: [u64; 3]) -> String {
    let [start, peak, end] = rss.map(|bytes| bytes as f64 / (1024.0 * 1024.0));
    format!("{start:.1} / {peak:.1} / {end:.1}")
}

/// p50, p99 and the largest of `times`, in milliseconds.
fn millis(times: &[Duration]) -> String {
    if times.is_empty() {
        return "–".to_owned();
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |quantile: f64| {
        let rank = (quantile * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
    };
    format!("{:.2} / {:.2} / {:.2}", at(0.5), at(0.99), at(1.0))
}

/// The command that ran this, as typed from the workspace.
fn command() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let mut command = "cargo bench -p ptth-relay --bench floods".to_owned();
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    command
}

fn date() -> String {
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    output.map_or_else(
        |_| "unknown".to_owned(),
        |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

/// The CPU model and the cores this process may use.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown CPU", str::trim);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, shared by the relay, the attacker and the bystander")
}
