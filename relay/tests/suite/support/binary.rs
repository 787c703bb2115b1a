//! The `ptth-relay` binary as a script runs it: its announced line on
//! stdout, its log lines on stderr, and signals.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::within;

/// `ptth-relay ARGS`, stdout piped, stderr as `stderr` says.
pub fn run(args: &[&str], stderr: Stdio) -> Child {
    run_with(args, stderr, &[])
}

/// [`run`] with `env` set as well.
pub fn run_with(args: &[&str], stderr: Stdio, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ptth-relay"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("the ptth-relay binary runs")
}

/// The first line the process writes on stdout.
pub async fn announced(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let line = within(BufReader::new(stdout).lines().next_line()).await;
    line.unwrap().expect("a line on stdout")
}

/// The lines a process writes on stderr, as they come.
pub struct Log(mpsc::UnboundedReceiver<String>);

impl Log {
    /// Reads the stderr of `child`, which must be piped.
    pub fn of(child: &mut Child) -> Log {
        Log::read(child.stderr.take().unwrap())
    }

    /// Reads the stdout of `child`, which must be piped.
    pub fn of_stdout(child: &mut Child) -> Log {
        Log::read(child.stdout.take().unwrap())
    }

    fn read(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Log {
        let mut lines = BufReader::new(stream).lines();
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = sender.send(line);
            }
        });
        Log(receiver)
    }

    /// The next line that contains `needle`.
    pub async fn until(&mut self, needle: &str) -> String {
        (self.until_or_end(needle).await).expect("the stream ended before the line")
    }

    /// The next line that contains `needle`, or `None` when the stream
    /// ends first.
    pub async fn until_or_end(&mut self, needle: &str) -> Option<String> {
        within(async {
            while let Some(line) = self.0.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await
    }
}

impl Log {
    /// Every line from here to the end of the stream, once the process
    /// has ended.
    pub async fn rest(&mut self) -> String {
        let mut rest = String::new();
        within(async {
            while let Some(line) = self.0.recv().await {
                rest.push_str(&line);
                rest.push('\n');
            }
        })
        .await;
        rest
    }
}

/// Sends `signal` (`HUP`, `TERM`, ...) to `child`.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}
