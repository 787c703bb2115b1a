//! TCP names in a cluster: a name's port is the same on every node, no
//! two names share one across nodes, and a node without a peer of the
//! name carries its visitors to one that has (docs/relay.md, "TCP
//! tunnels").

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::binary::{self, Log, announced};
use crate::support::etcd::Etcd;
use crate::support::raw;
use crate::support::within;
use crate::tcp::{
    config_file, echo_server, echoed, expose_tcp, free_range, held_open, try_echoed,
    try_echoed_from,
};

/// A `serve` node listening on `ip` with the TCP range `range`, in the
/// cluster of `etcd`, with `more` arguments; its URL.
async fn node(
    etcd: &Etcd,
    id: &str,
    ip: &str,
    range: &str,
    more: &[&str],
) -> (tokio::process::Child, String) {
    let listen = format!("{ip}:0");
    let args = ["serve", "--listen", &listen, "--tcp-ports", range];
    let cluster = ["--node-id", id, "--cluster-etcd", &etcd.endpoint];
    let mut serve = binary::run(&[&args[..], &cluster[..], more].concat(), Stdio::null());
    let line = announced(&mut serve).await;
    (
        serve,
        line.strip_prefix("listening on ").unwrap().to_owned(),
    )
}

/// Two nodes whose range is one port, node a on 127.0.0.1 and node b on
/// 127.0.0.2, with `more` arguments each.
struct TwoNodes {
    a: tokio::process::Child,
    relay_a: String,
    _b: tokio::process::Child,
    /// The port on node b.
    on_b: String,
}

async fn two_nodes(etcd: &Etcd, more: &[&str]) -> TwoNodes {
    let (port, _) = free_range(1);
    let range = format!("{port}-{port}");
    let (a, relay_a) = node(etcd, "a", "127.0.0.1", &range, more).await;
    let (b, _) = node(etcd, "b", "127.0.0.2", &range, more).await;
    TwoNodes {
        a,
        relay_a,
        _b: b,
        on_b: format!("127.0.0.2:{port}"),
    }
}

#[tokio::test]
async fn a_tcp_name_has_one_port_on_every_node_and_no_other_name_gets_it() {
    let etcd = Etcd::start();
    let (first, last) = free_range(2);
    let range = format!("{first}-{last}");
    // Two nodes on one machine: each listens on the range, on an address
    // of its own.
    let (_a, relay_a) = node(&etcd, "a", "127.0.0.1", &range, &[]).await;
    let (_b, relay_b) = node(&etcd, "b", "127.0.0.2", &range, &[]).await;
    let echo = echo_server().await;
    let first_port = first.to_string();
    let one = ["--name", "one", "--token", "one-token"];
    let (_one_a, address) = expose_tcp(
        &relay_a,
        echo,
        &[&one[..], &["--port", &first_port]].concat(),
    )
    .await;
    assert_eq!(address, format!("127.0.0.1:{first}"));

    // Node b's range is free on its own address, but the cluster gave
    // `first` to `one`.
    // Each try has a token of its own: the refused claim freed the name
    // in the cluster too.
    let two = ["--name", "two"];
    let target = format!("tcp:{echo}");
    let relay = ["expose", &target, "--relay", &relay_b];
    let args = [&relay[..], &two[..], &["--port", &first_port]].concat();
    let mut refused = binary::run(&args, Stdio::piped());
    let said = Log::of(&mut refused).until("ptth-relay:").await;
    assert!(said.contains("409"), "{said}");
    let (_two_b, address) = expose_tcp(&relay_b, echo, &two).await;
    assert_eq!(address, format!("127.0.0.2:{last}"));

    // Node b has no peer of `one`, but listens on its port and carries
    // its visitors to node a; it starts listening once its watch has
    // seen the port, so the visitor tries until the port takes it.
    let on_b = format!("127.0.0.2:{first}");
    let hopped = echoed_once_listening(&on_b, b"through node b").await;
    assert_eq!(hopped, b"through node b");

    // A public client passing as a node, with a mark it made up, gets no
    // stream to the peer.
    let authority = relay_a.trim_start_matches("http://");
    let mut forger = TcpStream::connect(authority).await.unwrap();
    let forged = format!(
        "CONNECT one:{first} HTTP/1.1\r\nHost: one:{first}\r\n\
         ptth-relay-hop: {}.{}.b\r\n\r\n",
        u32::MAX,
        "0".repeat(64)
    );
    forger.write_all(forged.as_bytes()).await.unwrap();
    let mut head = [0; 12];
    within(forger.read_exact(&mut head)).await.unwrap();
    assert_ne!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));

    // `one` claimed on node b too gets its port there, and carries.
    let (_one_b, address) = expose_tcp(&relay_b, echo, &one).await;
    assert_eq!(address, format!("127.0.0.2:{first}"));
    assert_eq!(within(echoed(&address, b"both nodes")).await, b"both nodes");
}

/// Until `address` echoes `sent`: a node listens on another node's name's
/// port once its watch has seen the port.
async fn echoed_once_listening(address: &str, sent: &[u8]) -> Vec<u8> {
    echoed_once_listening_from("127.0.0.1", address, sent).await
}

/// [`echoed_once_listening`] from the loopback address `source`.
async fn echoed_once_listening_from(source: &str, address: &str, sent: &[u8]) -> Vec<u8> {
    within(async {
        loop {
            match try_echoed_from(source, address, sent).await {
                Ok(back) => return back,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_frozen_owner_node_costs_a_visitor_the_open_timeout_not_forever() {
    let etcd = Etcd::start();
    let config = config_file("tcp-cluster", "[tcp]\nopen-timeout = 1\n");
    let nodes = two_nodes(&etcd, &["--config", &config]).await;
    let (_device, _) = expose_tcp(&nodes.relay_a, echo_server().await, &["--name", "one"]).await;
    let on_b = &nodes.on_b;
    assert_eq!(echoed_once_listening(on_b, b"before").await, b"before");

    // Node a stops answering, its sockets still open: node b's visitor
    // is closed after the open timeout instead of waiting on it.
    let pid = nodes.a.id().unwrap().to_string();
    let stop = |signal: &str| {
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status();
        assert!(status.unwrap().success());
    };
    stop("-STOP");
    let stalled = within(try_echoed(on_b, b"after")).await;
    stop("-CONT");
    // Closed (reset, or ended with nothing echoed).
    let echoed = stalled.as_ref().map_or(0, Vec::len);
    assert_eq!(echoed, 0, "{stalled:?}");
}

#[tokio::test]
async fn more_visitors_through_another_node_than_one_hop_connection_takes() {
    let etcd = Etcd::start();
    let nodes = two_nodes(&etcd, &[]).await;
    let (_device, _) = expose_tcp(&nodes.relay_a, echo_server().await, &[]).await;
    echoed_once_listening(&nodes.on_b, b"node b listens").await;
    // An owner's HTTP/2 server takes 200 streams at once on a connection
    // (hyper's default): node b opens another hop connection past that.
    within(held_open(&nodes.on_b, 250)).await;
}

#[tokio::test]
async fn one_address_s_concurrent_claims_hold_no_more_ports_than_its_share() {
    let etcd = Etcd::start();
    let (first, last) = free_range(4);
    let range = format!("{first}-{last}");
    let config = config_file("tcp-cluster-share", "[tcp]\nports-per-client = 1\n");
    let (_a, relay_a) = node(&etcd, "a", "127.0.0.1", &range, &["--config", &config]).await;
    // Four TCP claims from one address at once, as raw upgrades: each
    // waits on etcd between choosing its port and holding it.
    let authority = relay_a.trim_start_matches("http://");
    let names = (0..4).map(|i| format!("share-{i}"));
    let fields = ["Ptth-Tcp-Port: 0"];
    let answers = within(raw::claims_at_once(authority, names, &fields)).await;
    let (switched, heads) = raw::switched(&answers);
    assert_eq!(switched, 1, "{heads:?}");
}

#[tokio::test]
async fn a_forwarded_visitor_s_address_reaches_the_device() {
    let etcd = Etcd::start();
    let nodes = two_nodes(&etcd, &[]).await;
    // The hop's own connections come from 127.0.0.1: a device told the
    // hop's address instead of the visitor's would refuse this one.
    let only = ["--allow-ip", "127.0.0.3"];
    let (_device, _) = expose_tcp(&nodes.relay_a, echo_server().await, &only).await;
    let back = echoed_once_listening_from("127.0.0.3", &nodes.on_b, b"from .3 via b").await;
    assert_eq!(back, b"from .3 via b");
}
