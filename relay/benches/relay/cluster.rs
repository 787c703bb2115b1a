//! The cost of the cluster's forwarding hop: small GETs entering the node
//! that holds the device against entering another node, same run; once
//! with the two nodes sharing the machine's cores with everything else,
//! once with each node held to a CPU budget of its own (as on machines of
//! their own), alternated round by round.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::budget::Budget;
use crate::etcd::Etcd;
use crate::load::{self, Load};
use crate::origin::NAME;
use crate::tools::Process;

/// Each node's share of a core in the budgeted runs: the two nodes hold
/// one core between them, and wrk and the device have the other.
pub const NODE_CPUS: f64 = 0.5;

pub const CONNECTIONS: [usize; 2] = [16, 64];

/// Where the public's requests enter.
#[derive(Clone, Copy, PartialEq)]
pub enum Entry {
    Owner,
    Other,
}

impl Entry {
    pub fn label(self) -> &'static str {
        match self {
            Entry::Owner => "the owner node",
            Entry::Other => "another node (one hop)",
        }
    }
}

/// One wrk run and the CPU each node spent on it, per request.
#[derive(Clone, Copy)]
pub struct Run {
    pub load: Load,
    pub owner_us: f64,
    pub other_us: f64,
}

/// The runs of one setting: a budget (or none), an entry and a count of
/// kept-alive connections.
pub struct Row {
    pub budget: Option<f64>,
    pub entry: Entry,
    pub connections: usize,
    pub runs: Vec<Run>,
}

/// The rows, and why the budgeted ones are missing when they are.
pub struct Hop {
    pub rows: Vec<Row>,
    pub no_budget: Option<String>,
}

fn node(binary: &Path, etcd: &Etcd, id: &str) -> (Process, String) {
    let process = Process::start(
        Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--node-id", id])
            .args(["--cluster-etcd", &etcd.endpoint]),
    );
    let line = process.wait_for("listening on http://");
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    (process, addr)
}

pub fn hop(binary: &Path, rt: &Runtime, rounds: usize, seconds: u64) -> Hop {
    let etcd = Etcd::start();
    // Declared before the nodes, so the groups are removed after them.
    let budgets = Budget::new("owner").and_then(|a| Ok([a, Budget::new("other")?]));
    let (a, owner) = node(binary, &etcd, "a");
    let (b, other) = node(binary, &etcd, "b");
    let no_budget = match &budgets {
        Ok([budget_a, budget_b]) => {
            budget_a.add(a.id());
            budget_b.add(b.id());
            None
        }
        Err(error) => Some(error.clone()),
    };
    let device = crate::paths::in_process_peer(rt, &owner);
    // Until node b's watch has seen the owner, it answers 404.
    let probe = format!("http://{other}/{NAME}/small.html");
    for _ in 0..500 {
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &probe])
            .output()
            .unwrap();
        if status.stdout == b"200" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let settings: &[Option<f64>] = if budgets.is_ok() {
        &[None, Some(NODE_CPUS)]
    } else {
        &[None]
    };
    let mut rows = Vec::new();
    for &budget in settings {
        for connections in CONNECTIONS {
            for entry in [Entry::Owner, Entry::Other] {
                rows.push(Row {
                    budget,
                    entry,
                    connections,
                    runs: Vec::new(),
                });
            }
        }
    }
    for round in 0..rounds {
        eprintln!("cluster hop, round {}", round + 1);
        for row in &mut rows {
            if let Ok(budgets) = &budgets {
                budgets.iter().for_each(|group| group.limit(row.budget));
            }
            let base = match row.entry {
                Entry::Owner => format!("http://{owner}"),
                Entry::Other => format!("http://{other}"),
            };
            let before = [crate::tools::cpu(a.id()), crate::tools::cpu(b.id())];
            let load = load::wrk(row.entry.label(), &base, row.connections, false, seconds);
            let requests = load.requests;
            let per_request = |pid: u32, before| {
                let spent = crate::tools::cpu(pid).per_request_since(before, requests);
                spent.user + spent.system
            };
            row.runs.push(Run {
                load,
                owner_us: per_request(a.id(), before[0]),
                other_us: per_request(b.id(), before[1]),
            });
        }
    }
    device.shutdown();
    Hop { rows, no_budget }
}
