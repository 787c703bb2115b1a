//! The example programs as a user runs them: their command lines, exit codes
//! and output are relied on outside this crate, so they are checked here.
//! `cargo test` builds the examples before it runs this file.

use std::path::PathBuf;
use std::process::Stdio;

use crate::support::{listener, read_head, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

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
    let (acceptor, addr, _stderr) = start_acceptor_logging().await;
    (acceptor, addr)
}

/// [`start_acceptor`], with the lines it prints on stderr after the first.
async fn start_acceptor_logging() -> (Child, String, mpsc::UnboundedReceiver<String>) {
    let mut acceptor = example("acceptor").arg("127.0.0.1:0").spawn().unwrap();
    let stderr = acceptor.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let addr = first
        .strip_prefix("acceptor: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep draining stderr so the child never blocks on a full pipe.
    let (log, logged) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log.send(line);
        }
    });
    (acceptor, addr, logged)
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

/// One request to `addr` over a fresh HTTP/1.1 connection: status and body.
#[cfg(feature = "axum")]
async fn call(addr: &str, method: &str, path: &str, body: &'static str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_device_is_called_through_axum_relay() {
    within(async {
        let mut relay = example("axum_relay").arg("127.0.0.1:0").spawn().unwrap();
        let mut stdout = BufReader::new(relay.stdout.take().unwrap()).lines();
        let first = stdout.next_line().await.unwrap().unwrap();
        let addr = first
            .strip_prefix("relay: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();

        let (status, body) = call(&addr, "GET", "/call/lamp/hello", "").await;
        assert_eq!((status, body.as_str()), (404, "no device named lamp\n"));

        let mut device = example("axum_device")
            .arg(format!("http://{addr}/connect/lamp"))
            .spawn()
            .unwrap();
        let mut device_err = BufReader::new(device.stderr.take().unwrap()).lines();
        let line = device_err.next_line().await.unwrap().unwrap();
        assert_eq!(line, "device: serving over h2");
        // The relay files the device once hyper has handed the connection
        // over, just after the device saw its 101: ask until it is there.
        let mut answer = call(&addr, "GET", "/call/lamp/hello", "").await;
        while answer.0 == 404 {
            answer = call(&addr, "GET", "/call/lamp/hello", "").await;
        }
        assert_eq!(answer, (200, "hello from the device\n".to_owned()));
        let echoed = call(&addr, "POST", "/call/lamp/echo", "ping").await;
        assert_eq!(echoed, (200, "ping".to_owned()));

        // When the device goes, so does its name.
        device.kill().await.unwrap();
        let mut gone = call(&addr, "GET", "/call/lamp/hello", "").await;
        while gone.0 != 404 {
            assert_eq!(gone.0, 502, "{}", gone.1);
            gone = call(&addr, "GET", "/call/lamp/hello", "").await;
        }
        relay.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn peer_example_names_a_refused_connection() {
    within(async {
        let (listener, addr) = listener().await;
        drop(listener);
        let peer = example("peer")
            .arg(format!("http://{addr}/reverse"))
            .output()
            .await
            .unwrap();
        assert!(!peer.status.success());
        let stderr = String::from_utf8_lossy(&peer.stderr);
        assert!(
            stderr.contains(&format!("cannot connect to {addr}: ")) && stderr.contains("refused"),
            "{stderr}"
        );
    })
    .await;
}

/// A peer that upgrades and then vanishes: the acceptor example's request
/// fails, and what it prints names hyper's reason, not only "HTTP error".
#[tokio::test]
async fn acceptor_example_names_why_a_vanished_peer_failed() {
    within(async {
        let (mut acceptor, addr, mut stderr) = start_acceptor_logging().await;
        let mut peer = tokio::net::TcpStream::connect(&addr).await.unwrap();
        peer.write_all(
            b"GET /gone HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: ptth\r\n\
              ALPN: http%2F1.1\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        let head = read_head(&mut peer).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        drop(peer);
        let mut line = stderr.recv().await.unwrap();
        while line.contains(" upgraded on ") {
            line = stderr.recv().await.unwrap();
        }
        let (_, reason) = line
            .split_once("HTTP error on the transposed connection: ")
            .unwrap_or_else(|| panic!("unexpected line: {line}"));
        // hyper's reason: the close or the reset, whichever it met first.
        assert!(
            reason.contains("closed") || reason.contains("reset by peer"),
            "{line}"
        );
        acceptor.kill().await.unwrap();
    })
    .await;
}

/// The crates a path in `code` starts from: `a` of each `a::b` that is
/// not itself after `::`, nor a method's turbofish (`.collect::<T>()`).
fn path_roots(code: &str) -> Vec<&str> {
    let mut roots = Vec::new();
    for (at, _) in code.match_indices("::") {
        let before = &code[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        let after_path = before[..start].ends_with("::") || before[..start].ends_with('.');
        if !after_path && word.starts_with(|c: char| c.is_ascii_lowercase()) {
            roots.push(word);
        }
    }
    roots
}

#[test]
fn path_roots_are_the_first_segments_of_lower_case_paths() {
    for (code, roots) in [
        ("use ptth::hyper::body::Bytes;", &["ptth"][..]),
        ("let x = hyper::Request::new(());", &["hyper"][..]),
        ("Duration::from_secs(1); std::io::Error", &["std"][..]),
        ("{ptth::axum::serve(a, b)}", &["ptth"][..]),
        ("offer.accept::<Empty<Bytes>>()", &[][..]),
    ] {
        assert_eq!(path_roots(code), roots, "{code}");
    }
}

/// The README's Rust blocks compile as doc tests; this holds them to what
/// a user's new crate has after the README's install lines: `ptth` (with
/// hyper and http-body-util inside it), tokio's runtime, the standard
/// library, and axum in the `axum` feature's block.
#[test]
fn the_readme_s_code_names_only_ptth_tokio_std_and_axum() {
    let readme = include_str!("../../README.md");
    let blocks = readme.split("```rust").skip(1);
    let mut seen = 0;
    for block in blocks {
        let code = &block[..block.find("```").unwrap()];
        for root in path_roots(code) {
            assert!(
                ["ptth", "tokio", "std", "axum"].contains(&root),
                "the README names `{root}::` in:\n{code}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 5, "{seen} Rust blocks");
}
