//! Real headless Chromium for tests: it opens one page, keeps running it
//! (timers and fetches go on after the load), and hands the test what the
//! page writes with `console.log`.
//!
//! Chromium prints each console message on its stderr as
//! `[pid:tid:MMDD/HHMMSS.micros:INFO:CONSOLE:7] "text", source: URL (7)`;
//! only the first line of a multi-line message carries that prefix, so
//! pages should log single lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

const BINARY: &str = "/usr/bin/chromium";

/// How many stderr lines a failure message shows.
const TAIL: usize = 40;

pub struct Chromium {
    child: Child,
    profile: PathBuf,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Console messages received but not yet returned by a wait.
    unclaimed: Vec<String>,
    tail: Vec<String>,
}

impl Chromium {
    /// Starts Chromium on `url` with a fresh profile. Panics when Chromium
    /// is not installed: a browser test must fail, never skip.
    pub fn open(url: &str) -> Chromium {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} not found: run `apt-get install -y chromium`"
        );
        let profile = fresh_profile();
        let mut child = Command::new(BINARY)
            .args([
                // The new headless mode: the page lives until the process is
                // killed, unlike `--dump-dom` or `--screenshot` runs.
                "--headless",
                // Root in a container has no user namespace for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                // Only the test's own requests on the wire.
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, receiver) = mpsc::unbounded_channel();
        // A thread, not a task: the pipe is blocking, and the reader must
        // outlive whichever runtime the test uses.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            // Bytes, not `lines()`: a page may log text that is not UTF-8.
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if lines.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
        Chromium {
            child,
            profile,
            stderr: receiver,
            unclaimed: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// The text of the earliest console message containing `needle` that
    /// no earlier wait returned. Panics, with Chromium's last stderr lines,
    /// after `timeout` or if Chromium exits first.
    pub async fn wait_for_console(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.unclaimed.iter().position(|m| m.contains(needle)) {
                return self.unclaimed.remove(i);
            }
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    if let Some(message) = console_message(&line) {
                        self.unclaimed.push(message.to_owned());
                    }
                    if self.tail.len() == TAIL {
                        self.tail.remove(0);
                    }
                    self.tail.push(line);
                }
                Ok(None) => panic!(
                    "Chromium exited before logging {needle:?}; its stderr ended with:\n{}",
                    self.tail.join("\n")
                ),
                Err(_) => panic!(
                    "no console message containing {needle:?} within {timeout:?}; \
                     unclaimed messages: {:?}; stderr ended with:\n{}",
                    self.unclaimed,
                    self.tail.join("\n")
                ),
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The renderer and helper processes exit on their own once the
        // browser process is gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `"text"` out of `...:CONSOLE:7] "text", source: URL (7)` (older
/// Chromium writes `CONSOLE(7)]`).
fn console_message(line: &str) -> Option<&str> {
    let after = &line[line.find(":CONSOLE")?..];
    let start = after.find("] \"")? + 3;
    let end = after.rfind("\", source: ")?;
    after.get(start..end)
}

fn fresh_profile() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "ptth-chromium-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot create profile {}: {e}", dir.display()));
    dir
}
