//! A real OpenSSH server on a port of its own, with throwaway host and
//! client keys, for the TCP tunnel's ssh test; it fails, not skips, when
//! `sshd` is missing (Debian's `openssh-server`).

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::binary::Log;
use super::pebble::scratch;

/// A running `sshd`; dropping it stops it.
pub struct Sshd {
    pub port: u16,
    dir: PathBuf,
    _process: Child,
}

/// Makes an ed25519 key pair at `path` and `path.pub`.
fn keygen(path: &std::path::Path) {
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(made.success(), "ssh-keygen");
}

impl Sshd {
    /// Starts `sshd` on a free loopback port, letting in the holder of a
    /// key made for it, as the user the tests run as.
    pub async fn start() -> Sshd {
        let dir = scratch("sshd");
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd insists on its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let d = dir.display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\n"
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut process = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sshd runs (apt-get install openssh-server)");
        Log::of(&mut process).until("Server listening on").await;
        Sshd {
            port,
            dir,
            _process: process,
        }
    }

    /// Runs `command` over ssh to `host:port` with the client key; its
    /// stdout.
    pub async fn run(&self, host: &str, port: &str, command: &str) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        let output = Command::new("ssh")
            .args(["-p", port, "-i"])
            .arg(self.dir.join("client_key"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@{host}"))
            .arg(command)
            .output()
            .await
            .expect("ssh runs (apt-get install openssh-client)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ssh failed: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
