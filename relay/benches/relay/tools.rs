//! The programs the harness compares against, and the processes it runs.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Makes sure nginx, wrk, curl, haproxy (and for the cluster, etcd) are installed
/// (from Debian) and rathole
/// and bore are built (from crates.io, into `cache`); returns the folder
/// with the built binaries.
pub fn install(cache: &Path) -> PathBuf {
    let mut wanted = vec![
        ("nginx", "nginx-light"),
        ("wrk", "wrk"),
        ("curl", "curl"),
        ("haproxy", "haproxy"),
    ];
    if cfg!(feature = "cluster") {
        wanted.push(("etcd", "etcd-server"));
    }
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| package)
        .collect();
    if !missing.is_empty() {
        eprintln!("installing {missing:?} with apt-get");
        run(Command::new("apt-get")
            .args(["install", "-y"])
            .args(&missing));
    }
    let bin = cache.join("bin");
    // rathole 0.5.0's lock file pins a `time` that no longer compiles, so
    // it is resolved afresh; TLS and noise stay off, as in the comparison
    // nothing is encrypted.
    for (program, krate, flags) in [
        ("bore", "bore-cli", &["--locked"][..]),
        (
            "rathole",
            "rathole",
            &["--no-default-features", "--features", "server,client"][..],
        ),
    ] {
        if !bin.join(program).exists() {
            eprintln!("building {krate} from crates.io into {}", cache.display());
            run(Command::new("cargo")
                .args(["install", "--root"])
                .arg(cache)
                .arg(krate)
                .args(flags)
                .env("CARGO_TARGET_DIR", cache.join("build")));
        }
    }
    bin
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn run(command: &mut Command) {
    let status = command.status().expect("cannot start a setup command");
    assert!(status.success(), "{command:?} failed: {status}");
}

/// A port that was free a moment ago, for the programs that cannot be
/// told to pick one themselves.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free port")
}

/// A child process, killed when dropped.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` with its stdout and stderr read line by line.
    pub fn start(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let (send, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Process { child, lines }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no line with {needle:?}: {error}"),
            }
        }
    }

    /// The process id, for reading its memory.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on {addr}");
}

/// A process's resident memory, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    kib * 1024
}

/// CPU time a process has used so far, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: f64,
    pub system: f64,
}

impl Cpu {
    /// The time used since `before`, in µs per one of `requests`.
    pub fn per_request_since(self, before: Cpu, requests: f64) -> Cpu {
        Cpu {
            user: (self.user - before.user) / requests * 1e6,
            system: (self.system - before.system) / requests * 1e6,
        }
    }
}

/// The CPU time `pid` has used so far, user and system.
pub fn cpu(pid: u32) -> Cpu {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are the 14th and 15th fields, counting the pid and
    // the name, in clock ticks of 1/100 s on Linux.
    let seconds = |field: &str| field.parse::<u64>().unwrap() as f64 / 100.0;
    Cpu {
        user: seconds(fields[11]),
        system: seconds(fields[12]),
    }
}
