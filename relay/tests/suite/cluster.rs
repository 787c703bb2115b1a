//! Name ownership shared by relay nodes through a real etcd.

use crate::support::{self, Reply};
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::etcd::Etcd;
use ptth_relay::Relay;
use ptth_relay::cluster::{ClaimOutcome, Cluster, Settings};
use ptth_relay::server::Server;
use ptth_relay::token::Digest;

async fn node(etcd: &Etcd, id: &str, ttl: Duration) -> Cluster {
    let mut settings = Settings::new(
        vec![etcd.endpoint.clone()],
        id,
        &format!("http://{id}.test"),
    );
    settings.node_ttl = ttl;
    settings.name_ttl = ttl;
    Cluster::join(settings).await.unwrap()
}

fn digest(token: &str) -> Digest {
    Digest::of(token)
}

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("test did not finish in time")
}

#[tokio::test]
async fn one_token_per_name_across_nodes_and_co_owners() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(10)).await;
        let b = node(&etcd, "b", Duration::from_secs(10)).await;
        let claim = a.claim("lamp", &digest("t"), false).await.unwrap();
        assert!(claim.created);
        let refused = b.claim("lamp", &digest("other"), false).await.unwrap_err();
        assert!(matches!(refused, ClaimOutcome::Refused(_)), "{refused}");
        // A fresh token (the caller gave none) never joins a held name.
        let fresh = b.claim("lamp", &digest("t"), true).await.unwrap_err();
        assert!(matches!(fresh, ClaimOutcome::Refused(_)), "{fresh}");
        let joined = b.claim("lamp", &digest("t"), false).await.unwrap();
        assert!(!joined.created, "the same token makes a co-owner");
        let random = a.claim("fan", &digest("r"), true).await.unwrap();
        assert!(random.created, "{random:?}");
        a.wait_until(|table| table.get("lamp").is_some_and(|lamp| lamp.owners.len() == 2))
            .await;
        let table = b.table();
        let lamp = table.get("lamp").unwrap();
        assert_eq!(lamp.digest, Some(digest("t").to_hex()));
        assert_eq!(lamp.owners["a"], "http://a.test");
    })
    .await;
}

#[tokio::test]
async fn a_dead_node_s_entries_vanish_with_its_lease() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(10)).await;
        let b = node(&etcd, "b", Duration::from_secs(2)).await;
        b.claim("lamp", &digest("t"), false).await.unwrap();
        a.wait_until(|table| {
            table
                .get("lamp")
                .is_some_and(|lamp| lamp.owners.contains_key("b"))
        })
        .await;
        // A crash: no goodbye, the lease is simply no longer renewed.
        drop(b);
        a.wait_until(|table| table.get("lamp").is_none_or(|lamp| lamp.owners.is_empty()))
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_released_name_stays_reserved_for_its_ttl_then_is_free() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(2)).await;
        let b = node(&etcd, "b", Duration::from_secs(10)).await;
        a.claim("fan", &digest("t"), false).await.unwrap();
        a.release("fan").await.unwrap();
        let reserved = b.claim("fan", &digest("other"), false).await.unwrap_err();
        assert!(matches!(reserved, ClaimOutcome::Refused(_)), "{reserved}");
        b.wait_until(|table| table.get("fan").is_none()).await;
        let free = b.claim("fan", &digest("other"), false).await.unwrap();
        assert!(free.created);
    })
    .await;
}

/// A relay node on `127.0.0.1:0` in the cluster, advertising its address.
async fn relay_node(etcd: &Etcd, id: &str) -> (SocketAddr, Cluster) {
    let relay = Relay::new(ptth_relay::Settings::default());
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), relay.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let settings = Settings::new(vec![etcd.endpoint.clone()], id, &format!("http://{addr}"));
    let cluster = Cluster::join(settings).await.unwrap();
    relay.attach_cluster(cluster.clone());
    tokio::spawn(server.run(std::future::pending::<()>()));
    (addr, cluster)
}

#[tokio::test]
async fn every_node_reaches_every_name() {
    let etcd = Etcd::start();
    within(async {
        let mut nodes = Vec::new();
        for id in ["a", "b", "c"] {
            nodes.push(relay_node(&etcd, id).await);
        }
        let (a, b) = (nodes[0].0, nodes[1].0);
        let lamp = support::peer(a, "lamp", "t", ptth::initiator::Builder::new());
        let fan = support::peer(b, "fan", "f", ptth::initiator::Builder::new());
        support::connected(&lamp, 1).await;
        support::connected(&fan, 1).await;
        for (_, cluster) in &nodes {
            cluster
                .wait_until(|table| {
                    ["lamp", "fan"].iter().all(|name| {
                        table
                            .get(name)
                            .is_some_and(|entry| !entry.owners.is_empty())
                    })
                })
                .await;
        }
        for (addr, cluster) in &nodes {
            for name in ["lamp", "fan"] {
                let Reply { status, body, .. } =
                    support::get(&format!("http://{addr}/{name}/hi")).await;
                assert_eq!(
                    status,
                    200,
                    "{name} through node {}: {body}",
                    cluster.node()
                );
                assert!(body.starts_with(&format!("GET /{name}/hi\n")), "{body}");
                let owner = if name == "lamp" { "a" } else { "b" };
                // The owner keeps the forwarding node's chain and adds the
                // node; the mark itself never reaches the device.
                assert!(!body.contains("ptth-relay-hop"), "{body}");
                let hopped = body.contains("x-forwarded-for: 127.0.0.1, 127.0.0.1\n");
                assert_eq!(
                    hopped,
                    cluster.node() != owner,
                    "{name} via {}: {body}",
                    cluster.node()
                );
            }
        }
        let Reply { status, .. } = support::get(&format!("http://{}/nobody/", nodes[2].0)).await;
        assert_eq!(status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_claim_on_another_node_needs_the_same_token() {
    let etcd = Etcd::start();
    within(async {
        let (a, _) = relay_node(&etcd, "a").await;
        let (b, cluster_b) = relay_node(&etcd, "b").await;
        let lamp = support::peer(a, "lamp", "lamp-s3cret", ptth::initiator::Builder::new());
        support::connected(&lamp, 1).await;
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|entry| entry.digest.is_some())
            })
            .await;
        let thief = support::peer(b, "lamp", "other", ptth::initiator::Builder::new());
        let failed = thief.wait_for(|status| status.last_error.is_some()).await;
        let error = failed.last_error.unwrap().to_string();
        assert!(error.contains("403"), "{error}");
        // Without a token, too; and etcd holds the token's digest only.
        let bare = ptth::tunnel::Builder::new(format!("http://{b}/reversehttp/lamp?token=t"))
            .serve(hyper::service::service_fn(support::describe));
        let refused = bare.await.unwrap_err();
        assert_eq!(refused.declined().unwrap().status, 403, "{refused}");
        let mut etcd_client = etcd_client::Client::connect([&etcd.endpoint], None)
            .await
            .unwrap();
        let options = etcd_client::GetOptions::new().with_prefix();
        let stored = etcd_client.get("/ptth/", Some(options)).await.unwrap();
        // The hop secret is binary; the names' values are text.
        let values: Vec<_> = stored
            .kvs()
            .iter()
            .filter_map(|kv| kv.value_str().ok())
            .collect();
        assert!(
            values.contains(&digest("lamp-s3cret").to_hex().as_str()),
            "{values:?}"
        );
        assert!(
            !values.iter().any(|value| value.contains("s3cret")),
            "{values:?}"
        );
        let twin = support::peer(b, "lamp", "lamp-s3cret", ptth::initiator::Builder::new());
        support::connected(&twin, 1).await;
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|entry| entry.owners.len() == 2)
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn routing_goes_on_while_etcd_is_down_and_catches_up_after() {
    let mut etcd = Etcd::start();
    let (a, cluster_a) = relay_node(&etcd, "a").await;
    let (b, cluster_b) = relay_node(&etcd, "b").await;
    within(async {
        let lamp = support::peer(a, "lamp", "t", ptth::initiator::Builder::new());
        support::connected(&lamp, 1).await;
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| !lamp.owners.is_empty())
            })
            .await;
    })
    .await;
    etcd.stop();
    within(async {
        // Local peers, and names other nodes were known to own, still answer.
        for node in [a, b] {
            let Reply { status, body, .. } = support::get(&format!("http://{node}/lamp/")).await;
            assert_eq!(status, 200, "{body}");
        }
        // A claim while etcd is down is granted on this node alone.
        let fan = support::peer(b, "fan", "f", ptth::initiator::Builder::new());
        support::connected(&fan, 1).await;
        let Reply { status, .. } = support::get(&format!("http://{b}/fan/")).await;
        assert_eq!(status, 200);
    })
    .await;
    etcd.restart();
    // Once etcd is back, the local name is claimed in the cluster and the
    // other node learns of it.
    reaches_b_s_fan((a, &cluster_a)).await;
}

/// Node a learns that node b owns `fan`, and reaches it.
async fn reaches_b_s_fan((a, cluster_a): (SocketAddr, &Cluster)) {
    within(async {
        cluster_a
            .wait_until(|table| {
                table
                    .get("fan")
                    .is_some_and(|fan| fan.owners.contains_key("b"))
            })
            .await;
        let Reply { status, body, .. } = support::get(&format!("http://{a}/fan/")).await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
}

#[tokio::test]
async fn a_frozen_etcd_costs_a_claim_its_time_bound_not_forever() {
    let etcd = Etcd::start();
    let (a, cluster_a) = relay_node(&etcd, "a").await;
    let (b, _cluster_b) = relay_node(&etcd, "b").await;
    etcd.freeze();
    within(async {
        // etcd holds every request without an answer: the claim is
        // settled by this node alone, as when etcd is down.
        let fan = support::peer(b, "fan", "f", ptth::initiator::Builder::new());
        support::connected(&fan, 1).await;
        let Reply { status, body, .. } = support::get(&format!("http://{b}/fan/")).await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    etcd.thaw();
    // Once etcd answers again, the name is claimed in the cluster.
    reaches_b_s_fan((a, &cluster_a)).await;
}

/// A device service that switches `Upgrade: echo` requests and echoes
/// their bytes.
async fn echo(
    mut request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let switched = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = switched.await {
            let (mut read, mut write) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut read, &mut write).await;
        }
    });
    let response = http::Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(http_body_util::Full::default())
        .unwrap();
    Ok(response)
}

#[tokio::test]
async fn an_upgrade_crosses_to_the_owner_node() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let etcd = Etcd::start();
    within(async {
        let (a, _) = relay_node(&etcd, "a").await;
        let (b, cluster_b) = relay_node(&etcd, "b").await;
        let bearer = http::HeaderValue::from_static("Bearer t");
        let initiator = ptth::initiator::Builder::new()
            .protocols([ptth::Protocol::Http1])
            .header(http::header::AUTHORIZATION, bearer);
        let tunnel = ptth::tunnel::Builder::new(format!("http://{a}/reversehttp/lamp?token=t"))
            .initiator(initiator)
            .serve(hyper::service::service_fn(echo));
        let device = tunnel.handle();
        tokio::spawn(tunnel);
        support::connected(&device, 1).await;
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| !lamp.owners.is_empty())
            })
            .await;
        let mut tcp = tokio::net::TcpStream::connect(b).await.unwrap();
        let head = format!(
            "GET /lamp/ws HTTP/1.1\r\nHost: {b}\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 1024];
        let n = tcp.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("upgrade: echo"),
            "{answer}"
        );
        tcp.write_all(b"across two nodes").await.unwrap();
        let mut echoed = vec![0; 16];
        tcp.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"across two nodes");
    })
    .await;
}

/// A body of events sent one at a time by the test.
struct Events(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Events {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>>
    {
        self.0
            .poll_recv(cx)
            .map(|event| event.map(|event| Ok(hyper::body::Frame::data(event))))
    }
}

#[tokio::test]
async fn a_stream_crosses_the_hop_one_event_at_a_time() {
    use http_body_util::BodyExt;
    let etcd = Etcd::start();
    within(async {
        let (a, _) = relay_node(&etcd, "a").await;
        let (b, cluster_b) = relay_node(&etcd, "b").await;
        let (streams, mut streamed) = tokio::sync::mpsc::channel(1);
        let service = hyper::service::service_fn(move |_: http::Request<hyper::body::Incoming>| {
            let streams = streams.clone();
            async move {
                let (events, body) = tokio::sync::mpsc::channel(1);
                streams.send(events).await.unwrap();
                Ok::<_, std::convert::Infallible>(http::Response::new(Events(body)))
            }
        });
        let bearer = http::HeaderValue::from_static("Bearer t");
        let initiator = ptth::initiator::Builder::new().header(http::header::AUTHORIZATION, bearer);
        let tunnel = ptth::tunnel::Builder::new(format!("http://{a}/reversehttp/lamp?token=t"))
            .initiator(initiator)
            .serve(service);
        let device = tunnel.handle();
        tokio::spawn(tunnel);
        support::connected(&device, 1).await;
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| !lamp.owners.is_empty())
            })
            .await;
        let request = http::Request::get(format!("http://{b}/lamp/events"))
            .body(http_body_util::Full::default())
            .unwrap();
        let response = support::client().request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let events = streamed.recv().await.unwrap();
        let mut body = response.into_body();
        for event in ["data: one\n\n", "data: two\n\n"] {
            events.send(bytes::Bytes::from(event)).await.unwrap();
            // The next event is sent only once this one has crossed both
            // nodes: nothing on the way holds it back.
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), event);
        }
        drop(events);
        assert!(body.frame().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn an_owner_that_is_gone_is_a_name_without_a_peer() {
    let etcd = Etcd::start();
    within(async {
        let (b, cluster_b) = relay_node(&etcd, "b").await;
        // An owner whose advertised address no longer answers.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let settings = Settings::new(vec![etcd.endpoint.clone()], "ghost", &gone);
        let ghost = Cluster::join(settings).await.unwrap();
        ghost.claim("lamp", &digest("t"), false).await.unwrap();
        cluster_b
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| lamp.owners.contains_key("ghost"))
            })
            .await;
        let Reply {
            status,
            headers,
            body,
        } = support::get(&format!("http://{b}/lamp/")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["retry-after"], "1");
    })
    .await;
}

#[tokio::test]
async fn a_public_client_cannot_pass_as_a_node() {
    let etcd = Etcd::start();
    within(async {
        let (a, _) = relay_node(&etcd, "a").await;
        let (b, cluster_b) = relay_node(&etcd, "b").await;
        let lamp = support::peer(a, "lamp", "t", ptth::initiator::Builder::new());
        support::connected(&lamp, 1).await;
        cluster_b
            .wait_until(|table| table.get("lamp").is_some_and(|e| !e.owners.is_empty()))
            .await;
        // A forged mark neither stops the hop nor makes the client's
        // forwarding fields a node's.
        for mark in ["a", "1.00.a", &format!("9999999999.{}.a", "0".repeat(64))] {
            let request = http::Request::get(format!("http://{b}/lamp/"))
                .header("ptth-relay-hop", mark)
                .header("x-forwarded-for", "6.6.6.6")
                .body(http_body_util::Full::default())
                .unwrap();
            let Reply { status, body, .. } = support::send(request).await;
            assert_eq!(status, 200, "{mark}: {body}");
            assert!(
                body.contains("x-forwarded-for: 127.0.0.1, 127.0.0.1\n"),
                "{mark}: {body}"
            );
        }
    })
    .await;
}
