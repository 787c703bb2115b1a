//! A real etcd for the cluster tests, on free ports with its own data
//! directory; the test fails, never skips, when etcd cannot start.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = "/usr/bin/etcd";

/// A running etcd, stopped and its data removed when dropped.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    peer: u16,
    /// The client URL.
    pub endpoint: String,
}

impl Etcd {
    pub fn start() -> Etcd {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} not found: run `apt-get install -y etcd-server`"
        );
        let (client, peer) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("ptth-etcd-{client}-{}", std::process::id()));
        let endpoint = format!("http://127.0.0.1:{client}");
        let mut etcd = Etcd {
            child: None,
            dir,
            peer,
            endpoint,
        };
        etcd.restart();
        etcd
    }

    /// Kills etcd, keeping its data for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        let (dir, endpoint) = (&self.dir, &self.endpoint);
        let peer_url = format!("http://127.0.0.1:{}", self.peer);
        let mut child = Command::new(BINARY)
            .args(["--name", "test", "--data-dir"])
            .arg(dir)
            .args(["--listen-client-urls", endpoint])
            .args(["--advertise-client-urls", endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BINARY}: {error}"));
        let (ready, readiness) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready to serve client requests") {
                    let _ = ready.send(Ok(()));
                }
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            let _ = ready.send(Err(tail.join("\n")));
        });
        match readiness.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(tail)) => panic!("etcd exited before it was ready:\n{tail}"),
            Err(_) => panic!("etcd was not ready within 30 s"),
        }
        self.child = Some(child);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free port")
}
