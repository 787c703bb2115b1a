//! A real etcd for the cluster tests, on free ports with its own data
//! directory; the test fails, never skips, when etcd cannot start.

use std::io::{BufRead, BufReader};
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
        // The ports are free when picked, not when etcd binds them: a
        // test running beside this one may take one first, so a start
        // that finds its port taken picks new ones.
        let mut tries = 0;
        loop {
            let [client, peer] = free_ports();
            let dir =
                std::env::temp_dir().join(format!("ptth-etcd-{client}-{}", std::process::id()));
            let endpoint = format!("http://127.0.0.1:{client}");
            let mut etcd = Etcd {
                child: None,
                dir,
                peer,
                endpoint,
            };
            match etcd.try_start() {
                Ok(()) => return etcd,
                Err(tail) if tail.contains("address already in use") && tries < 3 => tries += 1,
                Err(tail) => panic!("etcd exited before it was ready:\n{tail}"),
            }
        }
    }

    /// Kills etcd, keeping its data for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd (`SIGSTOP`): its sockets stay open and nothing
    /// answers, as with a hung etcd or one behind a partition that drops
    /// packets. Dropping a frozen etcd still kills it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen etcd go on (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("etcd is running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        if let Err(tail) = self.try_start() {
            panic!("etcd exited before it was ready:\n{tail}");
        }
    }

    /// Starts etcd on its ports and data, or says why it stopped.
    fn try_start(&mut self) -> Result<(), String> {
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
            Ok(Err(tail)) => {
                let _ = child.wait();
                return Err(tail);
            }
            Err(_) => panic!("etcd was not ready within 30 s"),
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two ports the system handed out at once and took back (this file is
/// also included by the benches, which have no `pebble` module).
fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").expect("a port"));
    listeners.map(|listener| listener.local_addr().expect("its address").port())
}
