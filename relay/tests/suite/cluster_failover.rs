//! A node of a three-node cluster is killed (SIGKILL): the device's tunnel
//! comes back on another node, and every node serves its name again.

use crate::support::{self, Reply};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::etcd::Etcd;
use hyper::service::service_fn;
use ptth_relay::cluster::{Cluster, Settings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `ptth-relay serve` node in the cluster, and its address.
async fn node(etcd: &Etcd, id: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptth-relay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--node-id", id])
        .args(["--cluster-etcd", &etcd.endpoint])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the ptth-relay binary runs");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next_line().await.unwrap();
    let line = line.expect("the listening line");
    let addr = line.rsplit("http://").next().unwrap().to_owned();
    (child, addr)
}

#[tokio::test]
async fn a_killed_node_s_device_comes_back_on_another() {
    let etcd = Etcd::start();
    let run = async {
        let (mut a, addr_a) = node(&etcd, "a").await;
        let (_b, addr_b) = node(&etcd, "b").await;
        let (_c, addr_c) = node(&etcd, "c").await;
        let observer = Settings::new(
            vec![etcd.endpoint.clone()],
            "observer",
            "http://observer.invalid",
        );
        let observer = Cluster::join(observer).await.unwrap();

        let bearer = http::HeaderValue::from_static("Bearer t");
        let initiator = ptth::initiator::Builder::new().header(http::header::AUTHORIZATION, bearer);
        let tunnel =
            ptth::tunnel::Builder::new(format!("http://{addr_a}/reversehttp/lamp?token=t"))
                .also(format!("http://{addr_b}/reversehttp/lamp?token=t"))
                .also(format!("http://{addr_c}/reversehttp/lamp?token=t"))
                .connections(1)
                .initiator(initiator)
                .backoff(Duration::from_millis(50), Duration::from_millis(500))
                .serve(service_fn(support::describe));
        let device = tunnel.handle();
        tokio::spawn(tunnel);
        support::connected(&device, 1).await;
        observer
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| lamp.owners.contains_key("a"))
            })
            .await;
        let Reply { status, body, .. } = support::get(&format!("http://{addr_c}/lamp/")).await;
        assert_eq!(status, 200, "through c to the device on a: {body}");

        a.start_kill().unwrap();
        let killed = Instant::now();
        loop {
            let Reply { status, .. } = support::get(&format!("http://{addr_c}/lamp/")).await;
            if status == 200 {
                break;
            }
        }
        let back = killed.elapsed();
        println!(
            "failover: the name answered through node c again {back:?} after node a was killed"
        );
        assert!(back < Duration::from_secs(5), "{back:?}");
        let Reply { status, .. } = support::get(&format!("http://{addr_b}/lamp/")).await;
        assert_eq!(status, 200, "through b");

        // The dead node's ownership ends with its lease (10 s), after which
        // no node routes to it.
        observer
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| !lamp.owners.contains_key("a"))
            })
            .await;
        let gone = killed.elapsed();
        println!("failover: node a's ownership vanished {gone:?} after it was killed");
    };
    tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("test did not finish in time");
}
