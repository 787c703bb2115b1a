//! The binary under a low open-file limit: it raises its soft limit to
//! the hard one, and one client holding every connection it may does not
//! stop another from being served.

use std::process::Stdio;

use crate::support::within;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;

/// A connection from `local`, one of the loopback addresses.
async fn connect_from(local: &str, addr: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().unwrap())?;
    socket.connect(addr.parse().unwrap()).await
}

/// The soft and hard open-file limits of process `pid`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[tokio::test]
async fn under_a_low_limit_one_client_cannot_take_every_descriptor() {
    let config = std::env::temp_dir().join(format!("ptth-descriptors-{}.toml", std::process::id()));
    std::fs::write(&config, "[connections]\nper-client = 64\n").unwrap();
    // prlimit (util-linux) starts the relay with 256 descriptors, the hard
    // limit 512; a relay that did not raise its soft limit would have 224
    // places in all.
    let mut serve = Command::new("prlimit")
        .arg("--nofile=256:512")
        .arg(env!("CARGO_BIN_EXE_ptth-relay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit runs the relay (util-linux)");
    let stdout = serve.stdout.take().unwrap();
    let line = within(BufReader::new(stdout).lines().next_line())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_file(&config).unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    assert_eq!(nofile(serve.id().unwrap()), ("512".into(), "512".into()));

    // One client opens 300 silent connections; the relay accepts them in
    // order, and closes each past its 64 at once.
    let mut greedy = Vec::new();
    for _ in 0..300 {
        greedy.push(connect_from("127.0.0.6", &addr).await.unwrap());
    }
    for tcp in &mut greedy[64..] {
        let mut byte = [0u8; 1];
        let read = within(tcp.read(&mut byte)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // Someone else is answered at once.
    let mut bystander = connect_from("127.0.0.7", &addr).await.unwrap();
    bystander
        .write_all(b"GET /nobody/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    within(bystander.read_to_string(&mut answer)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}
