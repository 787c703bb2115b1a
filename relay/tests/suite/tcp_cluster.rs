//! TCP names in a cluster: a name's port is the same on every node, and
//! no two names share one across nodes (docs/relay.md, "TCP tunnels").

use std::process::Stdio;

use crate::support::binary::{self, Log, announced};
use crate::support::etcd::Etcd;
use crate::support::within;
use crate::tcp::{echo_server, echoed, expose_tcp, free_range};

/// A `serve` node listening on `ip` with the TCP range `range`, in the
/// cluster of `etcd`; its URL.
async fn node(etcd: &Etcd, id: &str, ip: &str, range: &str) -> (tokio::process::Child, String) {
    let listen = format!("{ip}:0");
    let args = ["serve", "--listen", &listen, "--tcp-ports", range];
    let cluster = ["--node-id", id, "--cluster-etcd", &etcd.endpoint];
    let mut serve = binary::run(&[&args[..], &cluster[..]].concat(), Stdio::null());
    let line = announced(&mut serve).await;
    (
        serve,
        line.strip_prefix("listening on ").unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_tcp_name_has_one_port_on_every_node_and_no_other_name_gets_it() {
    let etcd = Etcd::start();
    let (first, last) = free_range(2);
    let range = format!("{first}-{last}");
    // Two nodes on one machine: each listens on the range, on an address
    // of its own.
    let (_a, relay_a) = node(&etcd, "a", "127.0.0.1", &range).await;
    let (_b, relay_b) = node(&etcd, "b", "127.0.0.2", &range).await;
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
    // A refused claim holds its name for the lease, so `two` keeps one
    // token for both tries.
    let two = ["--name", "two", "--token", "two-token"];
    let target = format!("tcp:{echo}");
    let relay = ["expose", &target, "--relay", &relay_b];
    let args = [&relay[..], &two[..], &["--port", &first_port]].concat();
    let mut refused = binary::run(&args, Stdio::piped());
    let said = Log::of(&mut refused).until("ptth-relay:").await;
    assert!(said.contains("409"), "{said}");
    let (_two_b, address) = expose_tcp(&relay_b, echo, &two).await;
    assert_eq!(address, format!("127.0.0.2:{last}"));

    // `one` claimed on node b too gets its port there, and carries.
    let (_one_b, address) = expose_tcp(&relay_b, echo, &one).await;
    assert_eq!(address, format!("127.0.0.2:{first}"));
    assert_eq!(within(echoed(&address, b"both nodes")).await, b"both nodes");
}
