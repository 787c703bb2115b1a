//! TCP tunnels as users run them: `serve --tcp-ports`, `expose tcp:PORT`,
//! and visitors on the public port, ssh's shape of traffic and ssh itself.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;

use crate::support::binary::{self, Log, announced};
use crate::support::{raw, within};

/// `count` consecutive ports no one listens on, outside the ephemeral
/// range, found by binding them: a range no other test or program holds
/// now.
pub fn free_range(count: u16) -> (u16, u16) {
    loop {
        let first = 20_000 + u16::try_from(getrandom::u32().unwrap() % 10_000).unwrap();
        let last = first + count - 1;
        let bound: Vec<_> = (first..=last)
            .map_while(|port| StdListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if bound.len() == usize::from(count) {
            return (first, last);
        }
    }
}

/// A relay with a TCP range of `ports`; its URL.
pub async fn relay_with_ports(ports: u16, more: &[&str]) -> (Child, String) {
    let (first, last) = free_range(ports);
    let range = format!("{first}-{last}");
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--tcp-ports", &range];
    args.extend_from_slice(more);
    let mut serve = binary::run(&args, Stdio::null());
    let line = announced(&mut serve).await;
    (
        serve,
        line.strip_prefix("listening on ").unwrap().to_owned(),
    )
}

/// A relay config file holding `toml`, in a scratch directory named
/// `scratch`; its path.
pub fn config_file(scratch: &str, toml: &str) -> String {
    let path = crate::support::pebble::scratch(scratch).join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `expose tcp:PORT` on `relay`, and the public address it announced.
pub async fn expose_tcp(relay: &str, target: u16, more: &[&str]) -> (Child, String) {
    let target = format!("tcp:{target}");
    let mut args = vec!["expose", &target, "--relay", relay];
    args.extend_from_slice(more);
    let mut expose = binary::run(&args, Stdio::null());
    let line = announced(&mut expose).await;
    let address = line.strip_prefix("public address: tcp://");
    (
        expose,
        address.unwrap_or_else(|| panic!("{line}")).to_owned(),
    )
}

/// An echo server that passes a half-close on: when the client ends its
/// writing, it ends its own once everything is echoed.
pub async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut from, mut to) = socket.into_split();
                if tokio::io::copy(&mut from, &mut to).await.is_ok() {
                    let _ = to.shutdown().await;
                }
            });
        }
    });
    port
}

/// Writes `sent` to `address`, ends its writing, and reads to the end.
pub async fn echoed(address: &str, sent: &[u8]) -> Vec<u8> {
    try_echoed(address, sent).await.unwrap()
}

/// [`echoed`], or the error of a visitor closed or reset.
pub async fn try_echoed(address: &str, sent: &[u8]) -> std::io::Result<Vec<u8>> {
    try_echoed_from("127.0.0.1", address, sent).await
}

/// [`try_echoed`] from the loopback address `source`, as a visitor from
/// another address is (127.0.0.0/8 is all loopback).
pub async fn try_echoed_from(source: &str, address: &str, sent: &[u8]) -> std::io::Result<Vec<u8>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    let mut visitor = socket.connect(address.parse().unwrap()).await?;
    visitor.write_all(sent).await?;
    visitor.shutdown().await?;
    let mut back = Vec::new();
    visitor.read_to_end(&mut back).await?;
    Ok(back)
}

#[tokio::test]
async fn a_visitor_that_ends_its_writing_still_reads_everything_back() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &["--name", "echo"]).await;
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let back = within(echoed(&address, &sent)).await;
    assert!(back == sent, "{} bytes back of {}", back.len(), sent.len());
}

#[tokio::test]
async fn two_hundred_visitors_at_once_on_one_name() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &[]).await;
    let mut visitors = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let address = address.clone();
        visitors.spawn(async move {
            let sent: Vec<u8> = (0..4096u32).map(|j| (i + j) as u8).collect();
            assert!(echoed(&address, &sent).await == sent, "visitor {i}");
        });
    }
    within(async {
        while let Some(done) = visitors.join_next().await {
            done.unwrap();
        }
    })
    .await;
}

/// Reads until the end of the stream or an error, which a visitor sees
/// when its connection is closed or reset.
async fn until_closed(visitor: &mut TcpStream) -> usize {
    let mut read = 0;
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = visitor.read(&mut buf).await {
        read += n;
    }
    read
}

#[tokio::test]
async fn a_device_that_cannot_reach_its_server_has_the_visitor_closed_at_once() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    // A port nothing listens on: the device's dial is refused.
    let closed = StdListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_expose, address) = expose_tcp(&relay, port, &[]).await;
    let mut visitor = TcpStream::connect(&address).await.unwrap();
    // Closed, not held open until some timeout: within's bound is far
    // below the relay's 10 s wait for an answer.
    assert_eq!(within(until_closed(&mut visitor)).await, 0);
}

#[tokio::test]
async fn a_device_that_vanishes_mid_transfer_closes_the_visitor() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (mut expose, address) = expose_tcp(&relay, echo_server().await, &[]).await;
    let mut visitor = TcpStream::connect(&address).await.unwrap();
    visitor.write_all(b"before").await.unwrap();
    let mut before = [0; 6];
    within(visitor.read_exact(&mut before)).await.unwrap();
    expose.kill().await.unwrap();
    // The visitor keeps writing as a busy transfer would; the close must
    // reach it all the same.
    let writing = async { while visitor.write_all(&[7; 16 * 1024]).await.is_ok() {} };
    within(writing).await;
}

#[tokio::test]
async fn a_port_outside_the_range_or_on_a_relay_without_one_is_refused() {
    let (_serve, relay) = relay_with_ports(2, &[]).await;
    let args = [
        "expose", "tcp:22", "--relay", &relay, "--name", "web", "--port", "1",
    ];
    let mut expose = binary::run(&args, Stdio::piped());
    let mut log = Log::of(&mut expose);
    let said = log.until("ptth-relay:").await;
    assert!(
        said.contains("409") && said.contains("port 1 is not free"),
        "{said}"
    );
    // The refused claim left the name free: another run, with a token
    // of its own, gets it at once.
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &["--name", "web"]).await;
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let plain = line.strip_prefix("listening on ").unwrap();
    let mut expose = binary::run(&["expose", "tcp:22", "--relay", plain], Stdio::piped());
    let mut log = Log::of(&mut expose);
    let said = log.until("ptth-relay:").await;
    assert!(
        said.contains("501") && said.contains("no port range"),
        "{said}"
    );
}

#[tokio::test]
async fn a_client_s_visitors_are_bounded_like_its_other_connections() {
    let config = config_file("tcp-bounds", "[connections]\nper-client = 2\n");
    let (_serve, relay) = relay_with_ports(2, &["--config", &config]).await;
    // The device's connection, from the same loopback address, held a
    // place only until its upgrade: the visitors get both.
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &[]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut visitor = TcpStream::connect(&address).await.unwrap();
        visitor.write_all(b"x").await.unwrap();
        within(visitor.read_exact(&mut [0])).await.unwrap();
        held.push(visitor);
    }
    let mut over = TcpStream::connect(&address).await.unwrap();
    assert_eq!(within(until_closed(&mut over)).await, 0, "closed at once");
    drop(held);
    // The places come free as the relay sees the two close, which takes
    // a moment: visitors until then are closed, as the third was.
    let again = within(async {
        loop {
            if let Ok(back @ [_, ..]) = try_echoed(&address, b"room again").await.as_deref() {
                return back.to_vec();
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(again, b"room again");
}

#[tokio::test]
async fn ssh_reaches_a_real_sshd_through_the_relay() {
    let sshd = crate::support::sshd::Sshd::start().await;
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (_expose, address) = expose_tcp(&relay, sshd.port, &["--name", "ssh-box"]).await;
    let (host, port) = address.rsplit_once(':').unwrap();
    let said = within(sshd.run(host, port, "echo through the relay")).await;
    assert_eq!(said, "through the relay\n");
}

#[tokio::test]
async fn a_gibibyte_each_way_arrives_with_its_checksum() {
    const SIZE: u64 = 1 << 30;
    const BLOCK: usize = 256 * 1024;
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &[]).await;
    let visitor = TcpStream::connect(&address).await.unwrap();
    let (mut from, mut to) = visitor.into_split();
    let sending = async move {
        let mut block = vec![0; BLOCK];
        for index in 0..SIZE / BLOCK as u64 {
            fill(&mut block, index);
            to.write_all(&block).await.unwrap();
        }
        to.shutdown().await.unwrap();
    };
    // Each block read back whole is compared with the one sent, made
    // again: a byte lost, repeated or out of order fails at its block.
    let receiving = async move {
        let (mut block, mut expected) = (vec![0; BLOCK], vec![0; BLOCK]);
        let mut index = 0;
        while from.read_exact(&mut block).await.is_ok() {
            fill(&mut expected, index);
            assert!(block == expected, "block {index} differs");
            index += 1;
        }
        index * BLOCK as u64
    };
    let both = async { tokio::join!(sending, receiving) };
    let ((), received) = tokio::time::timeout(Duration::from_secs(300), both)
        .await
        .expect("a gibibyte each way within 5 minutes");
    assert_eq!(received, SIZE);
}

/// Bytes that differ from block to block, cheaply.
fn fill(block: &mut [u8], index: u64) {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

#[tokio::test]
async fn more_visitors_than_hyper_s_stream_limit_stay_open_at_once() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &[]).await;
    // hyper's HTTP/2 server takes 200 streams at once by default; the
    // per-client bound (256) leaves room for the device's connection.
    within(held_open(&address, 250)).await;
}

/// `count` visitors of `address`, opened one after another, each seen
/// echoing its number and all kept open.
pub async fn held_open(address: &str, count: u32) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for i in 0..count {
        let mut visitor = TcpStream::connect(address).await.unwrap();
        visitor.write_all(&i.to_be_bytes()).await.unwrap();
        let mut back = [0; 4];
        visitor.read_exact(&mut back).await.unwrap();
        assert_eq!(u32::from_be_bytes(back), i, "visitor {i}");
        open.push(visitor);
    }
    open
}

#[tokio::test]
async fn a_visitor_goes_to_the_connection_with_the_fewest_streams() {
    let (_serve, relay) = relay_with_ports(4, &[]).await;
    let echo = echo_server().await;
    // Two connections of one stream each: a second visitor put on the
    // first one's connection would wait there for the open timeout.
    let port = (http::HeaderName::from_static("ptth-tcp-port"), 0.into());
    let token = (
        http::header::AUTHORIZATION,
        "Bearer pair-token".parse().unwrap(),
    );
    let initiator = ptth::initiator::Builder::new()
        .header(port.0, port.1)
        .header(token.0, token.1);
    let server = ptth::initiator::Server::new().http2(|http2| {
        http2.max_concurrent_streams(1);
    });
    let device = ptth::tunnel::Builder::new(format!("{relay}/reversehttp/pair"))
        .initiator(initiator)
        .connections(2)
        .server(server)
        .serve(ptth::connect::Dial::host(format!("127.0.0.1:{echo}")));
    let handle = device.handle();
    tokio::spawn(device);
    let up = within(handle.wait_for(|status| status.connected == 2)).await;
    let public = up.public_url.expect("a public address").to_string();
    let address = public.trim_start_matches("tcp://").trim_end_matches('/');
    let mut first = TcpStream::connect(address).await.unwrap();
    first.write_all(b"held").await.unwrap();
    within(first.read_exact(&mut [0; 4])).await.unwrap();
    let back = within(try_echoed(address, b"second")).await;
    assert_eq!(back.unwrap(), b"second");
    handle.shutdown();
}

#[tokio::test]
async fn one_address_cannot_take_every_port() {
    let config = config_file("tcp-ports", "[tcp]\nports-per-client = 1\n");
    let (_serve, relay) = relay_with_ports(4, &["--config", &config]).await;
    let (_held, _) = expose_tcp(&relay, echo_server().await, &["--name", "first"]).await;
    // A second TCP name claimed from the same address, as a raw upgrade.
    let authority = relay.trim_start_matches("http://");
    let claim = raw::claim(authority, "second", &["Ptth-Tcp-Port: 0"]);
    let (head, _) = within(claim).await;
    assert_eq!(head, "HTTP/1.1 429");
}

#[tokio::test]
async fn a_public_connect_to_the_http_port_is_refused_not_carried_to_the_device() {
    let (_serve, relay) =
        relay_with_ports(1, &["--routing", "host", "--domain", "relay.test"]).await;
    let (_expose, _) = expose_tcp(&relay, echo_server().await, &["--name", "box"]).await;
    // Host routing finds the name in a CONNECT's authority as in any
    // Host: the device would dial its target for a client the TCP port's
    // bounds never counted.
    let authority = relay.trim_start_matches("http://");
    let mut public = TcpStream::connect(authority).await.unwrap();
    let request = "CONNECT box.relay.test:80 HTTP/1.1\r\nHost: box.relay.test:80\r\n\r\n";
    public.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0; 12];
    within(public.read_exact(&mut head)).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 501", "{}", String::from_utf8_lossy(&head));
}

#[tokio::test]
async fn expose_allow_ip_lets_in_the_visitors_of_its_ranges_alone() {
    let (_serve, relay) = relay_with_ports(1, &[]).await;
    let only = ["--allow-ip", "127.0.0.3"];
    let (_expose, address) = expose_tcp(&relay, echo_server().await, &only).await;
    // The relay tells the device each visitor's address; the device's
    // guard refuses the CONNECT, and the relay closes the visitor.
    let outside = within(try_echoed(&address, b"from .1")).await;
    assert!(
        outside.as_deref().is_ok_and(<[u8]>::is_empty) || outside.is_err(),
        "{outside:?}"
    );
    let inside = within(try_echoed_from("127.0.0.3", &address, b"from .3")).await;
    assert_eq!(inside.unwrap(), b"from .3");
}
