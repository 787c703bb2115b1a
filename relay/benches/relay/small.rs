//! Small GETs through every path with wrk: requests per second and
//! latency, the ratios to rathole (the layer-4 copier) and to one HAProxy
//! hop (the layer-7 anchor) round by round, and each process's CPU time
//! per request.

use std::path::Path;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::load::{self, Load};
use crate::paths::{Kind, Up};
use crate::tools::{Cpu, cpu};
use crate::{Options, all_up, origin};

/// The connection counts, and whether each request has a new connection.
const CONNECTIONS: [(usize, bool); 4] = [(16, false), (64, false), (16, true), (64, true)];

/// One wrk run on one path, and the CPU each of its processes spent.
struct Run {
    load: Load,
    cpu: Vec<(&'static str, Cpu)>,
}

pub fn gets(options: &Options, relay: &Path, tools: &Path, dir: &Path, rt: &Runtime) {
    let (_nginx, origin) = origin::nginx(dir);
    let paths = all_up(&options.kinds(&Kind::LOAD), origin, relay, tools, dir, rt);
    // runs[path][connections][round]
    let mut runs: Vec<Vec<Vec<Run>>> = (0..paths.len())
        .map(|_| (0..CONNECTIONS.len()).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..options.rounds {
        eprintln!("small GETs, round {}", round + 1);
        for (c, &(count, close)) in CONNECTIONS.iter().enumerate() {
            for (p, path) in paths.iter().enumerate() {
                runs[p][c].push(run(path, count, close, options.seconds));
            }
        }
    }
    println!(
        "## Small GETs ({} B, nginx origin; wrk -t1, {} s per run)\n",
        origin::SMALL,
        options.seconds
    );
    println!("| path | connections | req/s | p50 | p99 |\n|---|---|---:|---:|---:|");
    for (p, path) in paths.iter().enumerate() {
        for (c, &(count, close)) in CONNECTIONS.iter().enumerate() {
            let runs = &runs[p][c];
            let mut rates: Vec<f64> = runs.iter().map(|run| run.load.per_second).collect();
            let mut p50s: Vec<Duration> = runs.iter().map(|run| run.load.p50).collect();
            let mut p99s: Vec<Duration> = runs.iter().map(|run| run.load.p99).collect();
            println!(
                "| {} | {count}, {} | {:.0} | {:.2} ms | {:.2} ms |",
                path.kind.label(),
                reuse(close),
                load::median(&mut rates),
                load::median(&mut p50s).as_secs_f64() * 1e3,
                load::median(&mut p99s).as_secs_f64() * 1e3,
            );
        }
    }
    println!();
    ratios(&paths, &runs);
    cpu_table(&paths, &runs);
}

fn reuse(close: bool) -> &'static str {
    match close {
        true => "new per request",
        false => "kept alive",
    }
}

/// A wrk run on `path`, with the CPU its processes spent in it.
fn run(path: &Up, connections: usize, close: bool, seconds: u64) -> Run {
    let pids = path.pids();
    let before: Vec<Cpu> = pids.iter().map(|&(_, pid)| cpu(pid)).collect();
    let load = load::wrk(path.kind.label(), &path.base, connections, close, seconds);
    let cpu = (pids.iter().zip(before))
        .map(|(&(role, pid), before)| (role, cpu(pid).per_request_since(before, load.requests)))
        .collect();
    Run { load, cpu }
}

/// Each path's requests per second over rathole's and over one HAProxy
/// hop's: the median of the rounds' ratios, each round's paths having
/// run one after another.
fn ratios(paths: &[Up], runs: &[Vec<Vec<Run>>]) {
    let index = |kind: Kind| paths.iter().position(|path| path.kind == kind);
    let anchors = [index(Kind::Rathole), index(Kind::Haproxy)];
    println!("### Ratios, median of the rounds' ratios\n");
    println!("| path | connections | / rathole | / HAProxy one hop |\n|---|---|---:|---:|");
    for (p, path) in paths.iter().enumerate() {
        for (c, &(count, close)) in CONNECTIONS.iter().enumerate() {
            // A path `--paths` left out has no ratio to it.
            let ratio = |anchor: Option<usize>| {
                let Some(anchor) = anchor else {
                    return "-".to_owned();
                };
                let mut rounds: Vec<f64> = (runs[p][c].iter().zip(&runs[anchor][c]))
                    .map(|(run, anchor)| run.load.per_second / anchor.load.per_second)
                    .collect();
                format!("{:.2}", load::median(&mut rounds))
            };
            println!(
                "| {} | {count}, {} | {} | {} |",
                path.kind.label(),
                reuse(close),
                ratio(anchors[0]),
                ratio(anchors[1]),
            );
        }
    }
    println!();
}

/// The CPU time per request of each process on each path, user and
/// system, medians of the rounds.
fn cpu_table(paths: &[Up], runs: &[Vec<Vec<Run>>]) {
    println!("### CPU per request, each process (µs, user + system, median of the rounds)\n");
    println!("| path | process | connections | user | system |\n|---|---|---|---:|---:|");
    for (p, path) in paths.iter().enumerate() {
        for (i, (role, _)) in path.pids().iter().enumerate() {
            for (c, &(count, close)) in CONNECTIONS.iter().enumerate() {
                let mut user: Vec<f64> = runs[p][c].iter().map(|run| run.cpu[i].1.user).collect();
                let mut system: Vec<f64> =
                    runs[p][c].iter().map(|run| run.cpu[i].1.system).collect();
                println!(
                    "| {} | {role} | {count}, {} | {:.1} | {:.1} |",
                    path.kind.label(),
                    reuse(close),
                    load::median(&mut user),
                    load::median(&mut system),
                );
            }
        }
    }
    println!();
}
