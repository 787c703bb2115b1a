//! Long-poll clients beside PTTH peers in one pool, Second Life's JSON
//! encoding, and the bounds on polls, replies and waits.

use crate::support;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::raw::{Answer, exchange, path};
use crate::support::{Reply, relay, within};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use ptth_relay::LongPoll;
use ptth_relay::Settings;
use tokio::sync::{Notify, mpsc};

fn settings(longpoll: LongPoll) -> Settings {
    Settings {
        longpoll,
        ..Settings::default()
    }
}

fn hold(ms: u64) -> LongPoll {
    LongPoll {
        hold: Duration::from_millis(ms),
        ..LongPoll::default()
    }
}

async fn json_post(addr: SocketAddr, target: &str, body: &str) -> Answer {
    exchange(
        addr,
        &format!(
            "POST {target} HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Type: application/json"
        ),
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_json_client_takes_a_binary_request_and_posts_its_answer() {
    within(async {
        let running = relay(settings(hold(200))).await;
        let addr = running.addr;
        let idle = json_post(addr, "/reversehttp/lamp", "{}").await;
        assert_eq!(idle.status, 200);
        assert_eq!(idle.header("content-type"), Some("application/json"));
        assert_eq!(idle.body, b"{}", "the hold ended with nothing");

        let public = tokio::spawn(async move {
            let request = Request::post(format!("http://{addr}/lamp/raw"))
                .body(Full::new(Bytes::from_static(b"\x00\xff")))
                .unwrap();
            support::send(request).await
        });
        let delivered = json_post(addr, "/reversehttp/lamp", "").await;
        assert!(delivered.header("requesting-client").is_some());
        let (id, request) = ptth::longpoll::json::parse_request(&delivered.body)
            .unwrap()
            .unwrap();
        assert_eq!(request.uri(), "/lamp/raw");
        assert_eq!(request.body().as_ref(), b"\x00\xff");
        assert!(delivered.text().contains("\"body-encoding\":\"base64\""));

        let answer = format!(
            "{{\"message-id\": \"{id}\", \"status\": 201, \"reason\": \"Created\", \"headers\": [[\"X-Lamp\", \"on\"]], \"body\": \"ok\"}}"
        );
        let next = json_post(addr, "/reversehttp/lamp", &answer).await;
        assert_eq!(next.body, b"{}", "the answering post is the next poll");
        let Reply { status, headers, body } = public.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (201, "ok"));
        assert_eq!(headers["x-lamp"], "on");
        let bad = json_post(addr, "/reversehttp/lamp", "{\"message-id\": 7}").await;
        assert_eq!(bad.status, 400, "{}", bad.text());
    })
    .await;
}

/// A PTTH peer whose `/lamp/slow` waits for `release`, telling `arrived`.
fn gated_peer(
    addr: SocketAddr,
    release: Arc<Notify>,
    arrived: mpsc::Sender<()>,
) -> ptth::tunnel::Handle {
    let service = service_fn(move |request: Request<Incoming>| {
        let (release, arrived) = (release.clone(), arrived.clone());
        async move {
            if request.uri().path() == "/lamp/slow" {
                arrived.send(()).await.unwrap();
                release.notified().await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("from the PTTH peer"))))
        }
    });
    let bearer = http::HeaderValue::from_static("Bearer t");
    let initiator = ptth::initiator::Builder::new().header(http::header::AUTHORIZATION, bearer);
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/lamp?token=t"))
        .initiator(initiator)
        .serve(service);
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    handle
}

#[tokio::test]
async fn a_ptth_peer_and_a_long_poll_client_serve_one_name() {
    within(async {
        let running = relay(settings(hold(5_000))).await;
        let addr = running.addr;
        let release = Arc::new(Notify::new());
        let (arrived, mut arrivals) = mpsc::channel(1);
        let peer = gated_peer(addr, release.clone(), arrived);
        support::connected(&peer, 1).await;
        let registered = exchange(addr, "POST /reversehttp HTTP/1.1", b"name=lamp&token=t").await;
        assert_eq!(registered.status, 204, "the poller joins the peer's pool");
        let first = registered.link("first");

        let slow = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/slow")));
        arrivals.recv().await.unwrap();
        // The PTTH peer has one request in flight; the poller has none.
        let fast = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/fast")));
        let delivered = exchange(addr, &format!("GET {} HTTP/1.1", path(&first)), b"").await;
        assert!(
            delivered.text().starts_with("GET /lamp/fast "),
            "{delivered:?}"
        );
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nfrom the tab!";
        let posted = exchange(addr, &format!("POST {} HTTP/1.1", path(&first)), reply).await;
        assert_eq!(posted.status, 202);
        assert_eq!(fast.await.unwrap().body, "from the tab!");
        release.notify_one();
        assert_eq!(slow.await.unwrap().body, "from the PTTH peer");
    })
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_a_silent_client_is_504() {
    within(async {
        let longpoll = LongPoll {
            max_body: 16,
            ..hold(5_000)
        };
        let settings = Settings {
            response_timeout: Duration::from_millis(300),
            ..settings(longpoll)
        };
        let running = relay(settings).await;
        let addr = running.addr;
        let first = exchange(addr, "POST /reversehttp HTTP/1.1", b"name=lamp&token=t")
            .await
            .link("first");
        let large = exchange(
            addr,
            &format!("POST {} HTTP/1.1", path(&first)),
            &[b'x'; 17],
        )
        .await;
        assert_eq!(large.status, 413);
        let request = Request::post(format!("http://{addr}/lamp/"))
            .body(Full::new(Bytes::from(vec![b'x'; 17])))
            .unwrap();
        assert_eq!(support::send(request).await.status, 413);

        // This client takes the request and never replies.
        let public = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/")));
        let delivered = exchange(addr, &format!("GET {} HTTP/1.1", path(&first)), b"").await;
        assert_eq!(delivered.status, 200);
        let Reply { status, body, .. } = public.await.unwrap();
        assert_eq!(status, 504, "{body}");
    })
    .await;
}

/// A connection from `local`, another loopback address than the test's.
async fn connect_from(local: &str, addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_parks_at_most_its_share_and_others_still_poll() {
    within(async {
        let longpoll = LongPoll {
            parked: 80,
            ..hold(20_000)
        };
        let running = relay(settings(longpoll)).await;
        let addr = running.addr;
        let mut parked = Vec::new();
        for id in 0..10 {
            let mut tcp = connect_from("127.0.0.5", addr).await;
            let head = format!("GET /reversehttp/greedy/t/{id} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut tcp, head.as_bytes())
                .await
                .unwrap();
            parked.push(tcp);
        }
        while running.relay.parked_polls() < 10 {
            tokio::task::yield_now().await;
        }
        let mut eleventh = connect_from("127.0.0.5", addr).await;
        let head = format!(
            "GET /reversehttp/greedy/t/x HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut eleventh, head.as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut eleventh, &mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("from this address"), "{answer}");
        // Another address parks on its own name.
        let other = tokio::spawn(async move {
            exchange(addr, "GET /reversehttp/modest/t/1 HTTP/1.1", b"").await
        });
        while running.relay.parked_polls() < 11 {
            tokio::task::yield_now().await;
        }
        drop(other);
    })
    .await;
}

#[tokio::test]
async fn parked_polls_are_bounded_per_name_and_per_relay() {
    within(async {
        let longpoll = LongPoll {
            polls: 25,
            parked: 1_000,
            ..hold(20_000)
        };
        // Forty names from one address: past the default claim limit.
        let running = relay(Settings {
            claim_rate: ptth_relay::ClaimRate {
                burst: 100,
                per_second: 1,
            },
            ..settings(longpoll)
        })
        .await;
        let addr = running.addr;
        let mut parked = Vec::new();
        for name in 0..40 {
            for id in 0..25 {
                // Eight addresses: one address may park only 1/8 of all.
                let mut tcp = connect_from(&format!("127.0.0.{}", 10 + name % 8), addr).await;
                let head =
                    format!("GET /reversehttp/n{name}/t/{id} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                tokio::io::AsyncWriteExt::write_all(&mut tcp, head.as_bytes())
                    .await
                    .unwrap();
                parked.push(tcp);
            }
            if name == 0 {
                while running.relay.parked_polls() < 25 {
                    tokio::task::yield_now().await;
                }
                let per_name = exchange(addr, "GET /reversehttp/n0/t/x HTTP/1.1", b"").await;
                assert_eq!(per_name.status, 503);
                assert!(
                    per_name.text().contains("parked polls"),
                    "{}",
                    per_name.text()
                );
            }
        }
        while running.relay.parked_polls() < 1_000 {
            tokio::task::yield_now().await;
        }
        let over = exchange(addr, "GET /reversehttp/n41/t/x HTTP/1.1", b"").await;
        assert_eq!(over.status, 503);
        assert!(over.text().contains("on this relay"), "{}", over.text());
    })
    .await;
}
