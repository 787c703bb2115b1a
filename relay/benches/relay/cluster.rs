//! The cost of the cluster's forwarding hop: small GETs entering the node
//! that holds the device against entering another node, same run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::etcd::Etcd;
use crate::load::{self, Load};
use crate::origin::NAME;
use crate::tools::Process;

/// The two entries' runs at 16 and 64 kept-alive connections.
pub struct Hop {
    pub owner: Vec<Vec<Load>>,
    pub other: Vec<Vec<Load>>,
}

pub const CONNECTIONS: [usize; 2] = [16, 64];

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
    let (_a, owner) = node(binary, &etcd, "a");
    let (_b, other) = node(binary, &etcd, "b");
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
    let mut hop = Hop {
        owner: vec![Vec::new(); CONNECTIONS.len()],
        other: vec![Vec::new(); CONNECTIONS.len()],
    };
    for round in 0..rounds {
        eprintln!("cluster hop, round {}", round + 1);
        for (c, &connections) in CONNECTIONS.iter().enumerate() {
            let base = format!("http://{owner}");
            hop.owner[c].push(load::wrk(
                "entering the owner node",
                &base,
                connections,
                false,
                seconds,
            ));
            let base = format!("http://{other}");
            hop.other[c].push(load::wrk(
                "entering another node",
                &base,
                connections,
                false,
                seconds,
            ));
        }
    }
    device.shutdown();
    hop
}
