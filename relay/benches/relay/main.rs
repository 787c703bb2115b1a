//! The relay against the same origin direct, rathole and bore, on one
//! machine in one run, with rounds alternated between the paths so that
//! a noisy neighbour hits every path alike; medians are reported.
//!
//! ```text
//! cargo bench -p ptth-relay --bench relay [-- PART... --rounds N --seconds S]
//! ```
//!
//! PART is `load`, `bulk`, `idle`, `first`, `setup` (the relay's peers set
//! up by upgrade or over HTTP/2) or `cluster`; without one, all run but
//! `setup`, and `cluster` only with its feature. `--paths KEY,...` runs
//! only those paths of `load` and `bulk` (`tcp,rathole`: a change to the
//! TCP path against its anchor; the keys are `Kind::key`'s). The
//! figures are only worth reading on a machine with no other load.
//! `PTTH_BENCH_RELAY=PATH` runs another build of `ptth-relay` (to compare
//! before and after a change); `PTTH_BENCH_CACHE=DIR` keeps the built
//! rathole and bore elsewhere than `target/bench-cache`.

#[cfg(feature = "cluster")]
mod budget;
#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "cluster")]
// The benches start etcd once and never restart it.
#[allow(dead_code)]
#[path = "../../tests/suite/support/etcd.rs"]
mod etcd;
mod load;
mod origin;
mod paths;
mod peers;
mod poller;
mod small;
mod tcp;
mod tools;

use std::path::{Path, PathBuf};
use std::time::Duration;

use paths::{Kind, Up};
use tokio::runtime::Runtime;

pub struct Options {
    parts: Vec<String>,
    pub rounds: usize,
    pub seconds: u64,
    /// The paths `--paths` kept, by key; none is every path.
    pub paths: Option<Vec<String>>,
}

impl Options {
    /// The `kinds` that `--paths` kept.
    pub fn kinds(&self, kinds: &[Kind]) -> Vec<Kind> {
        (kinds.iter().copied())
            .filter(|kind| {
                self.paths
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|key| key == kind.key()))
            })
            .collect()
    }
}

fn options() -> Options {
    let mut options = Options {
        parts: Vec::new(),
        rounds: 3,
        seconds: 5,
        paths: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes this to every bench target.
            "--bench" => {}
            "--rounds" => options.rounds = args.next().and_then(|n| n.parse().ok()).unwrap(),
            "--seconds" => options.seconds = args.next().and_then(|n| n.parse().ok()).unwrap(),
            "--paths" => {
                let keys = args.next().unwrap();
                options.paths = Some(keys.split(',').map(String::from).collect());
            }
            "load" | "bulk" | "idle" | "first" | "cluster" | "setup" => options.parts.push(arg),
            other => panic!("unknown argument {other:?}"),
        }
    }
    if options.parts.is_empty() {
        options.parts = ["load", "bulk", "idle", "first"].map(String::from).to_vec();
        if cfg!(feature = "cluster") {
            options.parts.push("cluster".to_owned());
        }
    }
    options
}

fn main() {
    let options = options();
    let built = PathBuf::from(env!("CARGO_BIN_EXE_ptth-relay"));
    let target = built.parent().and_then(Path::parent).unwrap().to_owned();
    // Another build of the relay, to compare before and after a change.
    let relay_bin = std::env::var_os("PTTH_BENCH_RELAY").map_or(built, PathBuf::from);
    let cache = std::env::var_os("PTTH_BENCH_CACHE")
        .map_or_else(|| target.join("bench-cache"), PathBuf::from);
    let tools = tools::install(&cache);
    let dir = std::env::temp_dir().join(format!("ptth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Ten thousand peers need ten thousand sockets on each side.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("# ptth-relay benchmarks, rounds: {}\n", options.rounds);
    for part in &options.parts {
        match part.as_str() {
            "load" => small::gets(&options, &relay_bin, &tools, &dir, &rt),
            "bulk" => bulk(&options, &relay_bin, &tools, &dir, &rt),
            "idle" => idle(&relay_bin, &tools, &dir, &rt),
            "cluster" => cluster(&options, &relay_bin, &rt),
            "setup" => setup(&options, &relay_bin, &tools, &dir, &rt),
            _ => first(&relay_bin, &dir, &rt),
        }
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

pub fn all_up(
    kinds: &[Kind],
    origin: std::net::SocketAddr,
    relay: &Path,
    tools: &Path,
    dir: &Path,
    rt: &Runtime,
) -> Vec<Up> {
    kinds
        .iter()
        .map(|&kind| paths::up(kind, origin, relay, tools, dir, rt))
        .collect()
}

fn bulk(options: &Options, relay: &Path, tools: &Path, dir: &Path, rt: &Runtime) {
    let origin = rt.block_on(origin::bulk());
    let file = load::upload_file(dir);
    let paths = all_up(&options.kinds(&Kind::BULK), origin, relay, tools, dir, rt);
    let mut runs = vec![(Vec::new(), Vec::new()); paths.len()];
    for round in 0..options.rounds {
        eprintln!("bulk, round {}", round + 1);
        for (p, path) in paths.iter().enumerate() {
            runs[p].0.push(load::down(&path.base));
            runs[p].1.push(load::up(&path.base, &file));
        }
    }
    println!("## Bulk: 1 GiB each way with curl (hyper origin)\n");
    println!("| path | down MiB/s | up MiB/s |\n|---|---:|---:|");
    for (path, (down, up)) in paths.iter().zip(&mut runs) {
        println!(
            "| {} | {:.0} | {:.0} |",
            path.kind.label(),
            load::median(down),
            load::median(up)
        );
    }
    println!();
}

/// `expose` with its connections set up by upgrade or as channels over
/// HTTP/2, side by side: small GETs kept alive, and bulk each way.
fn setup(options: &Options, relay: &Path, tools: &Path, dir: &Path, rt: &Runtime) {
    let (_nginx, small_origin) = origin::nginx(dir);
    let bulk_origin = rt.block_on(origin::bulk());
    let file = load::upload_file(dir);
    let kinds = [Kind::Expose, Kind::ExposeHttp2Setup];
    let small = all_up(&kinds, small_origin, relay, tools, dir, rt);
    let bulk = all_up(&kinds, bulk_origin, relay, tools, dir, rt);
    let connections = [16, 64];
    let mut rates = vec![vec![Vec::new(); connections.len()]; kinds.len()];
    let mut moved = vec![(Vec::new(), Vec::new()); kinds.len()];
    for round in 0..options.rounds {
        eprintln!("setups, round {}", round + 1);
        for (p, path) in small.iter().enumerate() {
            for (c, &count) in connections.iter().enumerate() {
                let label = path.kind.label();
                let run = load::wrk(label, &path.base, count, false, options.seconds);
                rates[p][c].push(run.per_second);
            }
        }
        for (p, path) in bulk.iter().enumerate() {
            moved[p].0.push(load::down(&path.base));
            moved[p].1.push(load::up(&path.base, &file));
        }
    }
    println!("## The relay's peers set up by upgrade or over HTTP/2\n");
    println!("| path | 16 conns req/s | 64 conns req/s | down MiB/s | up MiB/s |");
    println!("|---|---:|---:|---:|---:|");
    for (p, kind) in kinds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            kind.label(),
            load::median(&mut rates[p][0]),
            load::median(&mut rates[p][1]),
            load::median(&mut moved[p].0),
            load::median(&mut moved[p].1),
        );
    }
    println!();
}

fn idle(relay: &Path, tools: &Path, dir: &Path, rt: &Runtime) {
    eprintln!("idle peers");
    let rows = peers::idle(relay, dir, rt, &[1_000, 10_000]);
    println!("## Relay memory with idle HTTP/2 peers (one name each)\n");
    println!("| peers | relay RSS | per peer |\n|---:|---:|---:|");
    for (count, rss, per_peer) in rows {
        println!(
            "| {count} | {:.1} MiB | {:.1} KiB |",
            rss as f64 / (1024.0 * 1024.0),
            per_peer as f64 / 1024.0
        );
    }
    println!();
    let visitors = 1_000;
    eprintln!("idle TCP visitors");
    println!("## Memory per idle TCP visitor connection ({visitors} visitors)\n");
    println!("| tunnel | its public side's RSS per visitor |\n|---|---:|");
    for (label, per_visitor) in tcp::idle(relay, tools, dir, rt, visitors) {
        println!("| {label} | {:.1} KiB |", per_visitor as f64 / 1024.0);
    }
    println!();
}

fn first(relay: &Path, dir: &Path, rt: &Runtime) {
    eprintln!("first requests");
    let rounds = 50;
    let first = peers::first(relay, dir, rt, rounds);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("## From a peer's dial to its first routed request ({rounds} fresh peers)\n");
    println!("| step | median | worst |\n|---|---:|---:|");
    println!(
        "| dial to 101 (claimed) | {:.2} ms | {:.2} ms |",
        ms(first.claimed.0),
        ms(first.claimed.1)
    );
    println!(
        "| dial to first answer through the relay | {:.2} ms | {:.2} ms |",
        ms(first.answered.0),
        ms(first.answered.1)
    );
    println!();
}

#[cfg(feature = "cluster")]
fn cluster(options: &Options, relay: &Path, rt: &Runtime) {
    use cluster::Entry;
    let hop = cluster::hop(relay, rt, options.rounds, options.seconds);
    let cpus = |budget: Option<f64>| {
        budget.map_or_else(
            || "shared".to_owned(),
            |cpus| format!("{cpus} CPU per node"),
        )
    };
    println!("## The cluster's hop: entering the device's node or another one\n");
    println!(
        "| nodes' CPU | entry | connections | req/s | p50 | p99 | owner node µs/req | other node µs/req |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for row in &hop.rows {
        let mut per_second: Vec<f64> = row.runs.iter().map(|run| run.load.per_second).collect();
        let mut p50s: Vec<Duration> = row.runs.iter().map(|run| run.load.p50).collect();
        let mut p99s: Vec<Duration> = row.runs.iter().map(|run| run.load.p99).collect();
        let mut owner: Vec<f64> = row.runs.iter().map(|run| run.owner_us).collect();
        let mut other: Vec<f64> = row.runs.iter().map(|run| run.other_us).collect();
        let rate = load::median(&mut per_second);
        rates.push((row.budget, row.entry, row.connections, rate));
        println!(
            "| {} | {} | {} | {rate:.0} | {:.2} ms | {:.2} ms | {:.1} | {:.1} |",
            cpus(row.budget),
            row.entry.label(),
            row.connections,
            load::median(&mut p50s).as_secs_f64() * 1e3,
            load::median(&mut p99s).as_secs_f64() * 1e3,
            load::median(&mut owner),
            load::median(&mut other),
        );
    }
    println!();
    for &(budget, entry, connections, direct) in &rates {
        if entry != Entry::Owner {
            continue;
        }
        let hopped = rates
            .iter()
            .find(|&&(b, e, c, _)| b == budget && e == Entry::Other && c == connections)
            .map_or(f64::NAN, |row| row.3);
        println!(
            "- the hop's cost, nodes' CPU {}, {connections} connections: {:.0}% of req/s",
            cpus(budget),
            (1.0 - hopped / direct) * 100.0
        );
    }
    if let Some(why) = &hop.no_budget {
        println!("- the budgeted runs were not made: {why}");
    }
    println!();
}

#[cfg(not(feature = "cluster"))]
fn cluster(_: &Options, _: &Path, _: &Runtime) {
    panic!("the cluster part needs `--features cluster`");
}
