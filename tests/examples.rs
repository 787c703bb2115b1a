//! The example programs as a user runs them: their command lines, exit codes
//! and output are relied on outside this crate, so they are checked here.
//! `cargo test` builds the examples before it runs this file.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{listener, read_head, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

fn example(name: &str) -> Command {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    let mut command = Command::new(path);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the acceptor example on a free port and returns it with its
/// address, read from the line it prints when listening.
async fn start_acceptor() -> (Child, String) {
    let mut acceptor = example("acceptor").arg("127.0.0.1:0").spawn().unwrap();
    let stderr = acceptor.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let addr = first
        .strip_prefix("acceptor: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (acceptor, addr)
}

#[tokio::test]
async fn peer_and_acceptor_examples_talk_in_every_dialect() {
    within(async {
        let (mut acceptor, addr) = start_acceptor().await;
        let mut stdout = BufReader::new(acceptor.stdout.take().unwrap()).lines();
        for flags in [&[][..], &["--legacy"], &["--h1"]] {
            let peer = example("peer")
                .arg(format!("http://{addr}/reverse?id=1"))
                .args(flags)
                .output()
                .await
                .unwrap();
            assert!(
                peer.status.success(),
                "{flags:?}: {}",
                String::from_utf8_lossy(&peer.stderr)
            );
            let mut printed = Vec::new();
            for _ in 0..3 {
                printed.push(stdout.next_line().await.unwrap().unwrap());
            }
            assert_eq!(
                printed,
                ["200 GET /hello", "200 POST /echo", "ping"],
                "{flags:?}"
            );
        }
        acceptor.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn peer_example_fails_naming_the_status_when_declined() {
    within(async {
        let (listener, addr) = listener().await;
        let refuse = tokio::spawn(async move {
            let (mut raw, _) = listener.accept().await.unwrap();
            read_head(&mut raw).await;
            raw.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = raw.read_to_end(&mut rest).await;
        });
        let peer = example("peer")
            .arg(format!("http://{addr}/reverse"))
            .output()
            .await
            .unwrap();
        assert!(!peer.status.success());
        let stderr = String::from_utf8_lossy(&peer.stderr);
        assert!(stderr.contains("403"), "{stderr}");
        refuse.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn acceptor_example_survives_a_bad_peer() {
    within(async {
        let (mut acceptor, addr) = start_acceptor().await;
        let mut bad = tokio::net::TcpStream::connect(&addr).await.unwrap();
        bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut bad).await;
        assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
        let peer = example("peer")
            .arg(format!("http://{addr}/after-a-bad-one"))
            .output()
            .await
            .unwrap();
        assert!(
            peer.status.success(),
            "{}",
            String::from_utf8_lossy(&peer.stderr)
        );
        acceptor.kill().await.unwrap();
    })
    .await;
}
