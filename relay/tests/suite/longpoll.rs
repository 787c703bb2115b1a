//! ReverseHttp long-poll clients on the relay, written as raw bytes the
//! way the shipped JS, Python and Java clients send them (docs/protocol.md, "Polls").

use crate::support;
use std::time::Duration;

use crate::support::raw::{Answer, exchange, path};
use crate::support::{Reply, relay, within};
use ptth_relay::LongPoll;
use ptth_relay::Settings;

fn settings(hold_ms: u64) -> Settings {
    Settings {
        longpoll: LongPoll {
            hold: Duration::from_millis(hold_ms),
            ..LongPoll::default()
        },
        ..Settings::default()
    }
}

async fn register(addr: std::net::SocketAddr, form: &str) -> Answer {
    exchange(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        form.as_bytes(),
    )
    .await
}

async fn poll(addr: std::net::SocketAddr, url: &str) -> Answer {
    exchange(
        addr,
        &format!("GET {} HTTP/1.1\r\nAccept: message/http", path(url)),
        b"",
    )
    .await
}

async fn reply(addr: std::net::SocketAddr, url: &str, message: &[u8]) -> Answer {
    exchange(
        addr,
        &format!("POST {} HTTP/1.1\r\nContent-Type: message/http", path(url)),
        message,
    )
    .await
}

#[tokio::test]
async fn registration_answers_as_the_reference_gateway() {
    within(async {
        let running = relay(settings(200)).await;
        let addr = running.addr;
        let created = register(addr, "name=lamp&token=s3cret").await;
        assert_eq!(created.status, 201, "{created:?}");
        assert!(created.body.is_empty());
        let first = created.link("first");
        assert!(first.starts_with(&format!("http://{addr}/reversehttp/lamp/s3cret/")), "{first}");
        assert_eq!(created.link("related"), format!("http://{addr}/lamp/"));
        assert_eq!(
            created.header("location"),
            Some(format!("http://{addr}/reversehttp/lamp/s3cret").as_str())
        );
        assert_eq!(created.all("link").count(), 2, "separate Link lines");
        assert_eq!(created.header("access-control-allow-origin"), Some("*"));

        assert_eq!(register(addr, "name=lamp&token=s3cret").await.status, 204);
        assert_eq!(register(addr, "name=lamp&token=other").await.status, 403);
        assert_eq!(register(addr, "token=x").await.status, 400);
        assert_eq!(register(addr, "name=Not_A_Label").await.status, 400);
        assert_eq!(register(addr, "name=fan&lease=soon").await.status, 400);
        let query = exchange(addr, "POST /reversehttp?name=fan&token=t HTTP/1.1", b"").await;
        assert_eq!(query.status, 201, "parameters in the query string");

        let preflight = exchange(
            addr,
            "OPTIONS /reversehttp/lamp/s3cret/x HTTP/1.1\r\nOrigin: http://page.example\r\nAccess-Control-Request-Method: POST",
            b"",
        )
        .await;
        assert_eq!(preflight.status, 204);
        assert!(preflight.header("access-control-allow-methods").unwrap().contains("POST"));
        assert!(preflight.header("access-control-expose-headers").unwrap().contains("Requesting-Client"));
    })
    .await;
}

#[tokio::test]
async fn a_public_request_goes_out_on_a_poll_and_the_reply_comes_back() {
    within(async {
        let running = relay(settings(300)).await;
        let addr = running.addr;
        let first = register(addr, "name=lamp&token=-").await.link("first");
        // The shipped clients poll the same URL again after a 204.
        let empty = poll(addr, &first).await;
        assert_eq!(empty.status, 204);
        assert!(empty.link("next").contains("/reversehttp/lamp/-/"));

        let public = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/on?x=1")));
        let delivered = poll(addr, &first).await;
        assert_eq!(delivered.status, 200, "{delivered:?}");
        assert_eq!(delivered.header("content-type"), Some("message/http"));
        let client = delivered.header("requesting-client").unwrap();
        assert!(client.starts_with("127.0.0.1:"), "{client}");
        let text = delivered.text();
        assert!(text.starts_with("GET /lamp/on?x=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("x-forwarded-for: 127.0.0.1"), "{text}");

        // The Python client's reply: HTTP/1.0 and no Content-Length.
        let answered = reply(
            addr,
            &first,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nlit",
        )
        .await;
        assert_eq!(answered.status, 202);
        let second = reply(addr, &first, b"HTTP/1.0 200 OK\r\n\r\nagain").await;
        assert_eq!(second.status, 404, "a second reply");
        let empty = reply(addr, &delivered.link("next"), b"").await;
        assert_eq!(empty.status, 400);

        let Reply {
            status,
            headers,
            body,
        } = public.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "lit"));
        assert_eq!(headers["content-type"], "text/plain");
    })
    .await;
}

#[tokio::test]
async fn a_garbage_reply_is_accepted_and_the_public_gets_502() {
    within(async {
        let running = relay(settings(5_000)).await;
        let addr = running.addr;
        let first = register(addr, "name=lamp&token=t").await.link("first");
        let public = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/")));
        assert_eq!(poll(addr, &first).await.status, 200);
        assert_eq!(reply(addr, &first, b"not http at all").await.status, 202);
        let Reply { status, body, .. } = public.await.unwrap();
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("malformed"), "{body}");
    })
    .await;
}

#[tokio::test]
async fn two_default_clients_share_the_name() {
    within(async {
        let running = relay(settings(5_000)).await;
        let addr = running.addr;
        let a = register(addr, "name=lamp&token=-").await.link("first");
        let b = register(addr, "name=lamp&token=-").await.link("first");
        assert_ne!(a, b);
        let (poll_a, poll_b) = (
            tokio::spawn(poll_owned(addr, a.clone())),
            tokio::spawn(poll_owned(addr, b.clone())),
        );
        let one = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/1")));
        let two = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/2")));
        let (got_a, got_b) = (poll_a.await.unwrap(), poll_b.await.unwrap());
        let mut targets = vec![got_a.text(), got_b.text()];
        targets.sort();
        assert!(
            targets[0].starts_with("GET /lamp/1 ") && targets[1].starts_with("GET /lamp/2 "),
            "{targets:?}"
        );
        for (url, got) in [(&a, &got_a), (&b, &got_b)] {
            let body = got.text()[4..11].to_owned();
            let message = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            assert_eq!(reply(addr, url, message.as_bytes()).await.status, 202);
        }
        assert_eq!(one.await.unwrap().body, "/lamp/1");
        assert_eq!(two.await.unwrap().body, "/lamp/2");
    })
    .await;
}

#[tokio::test]
async fn a_poll_after_a_restart_recreates_the_name() {
    within(async {
        let before = relay(settings(5_000)).await;
        let first = register(before.addr, "name=lamp&token=keep")
            .await
            .link("first");
        drop(before);
        let after = relay(settings(5_000)).await;
        let addr = after.addr;
        let url = format!("http://{addr}{}", path(&first));
        let parked = tokio::spawn(poll_owned(addr, url.clone()));
        let public = tokio::spawn(support::get_owned(format!("http://{addr}/lamp/back")));
        let delivered = parked.await.unwrap();
        assert!(
            delivered.text().starts_with("GET /lamp/back "),
            "{delivered:?}"
        );
        assert_eq!(
            reply(
                addr,
                &url,
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nback"
            )
            .await
            .status,
            202
        );
        assert_eq!(public.await.unwrap().body, "back");
        let other = exchange(addr, "GET /reversehttp/lamp/stolen/x HTTP/1.1", b"").await;
        assert_eq!(other.status, 403, "another token");
    })
    .await;
}

async fn poll_owned(addr: std::net::SocketAddr, url: String) -> Answer {
    poll(addr, &url).await
}

/// hyper drops a request's service future when its client closes, so a
/// poll whose client went away stops counting, and no request is handed
/// to it.
#[tokio::test]
async fn a_poll_whose_client_left_is_unparked_at_once() {
    within(async {
        let running = relay(settings(20_000)).await;
        let addr = running.addr;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("GET /reversehttp/lamp/t/1 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut tcp, head.as_bytes())
            .await
            .unwrap();
        while running.relay.parked_polls() == 0 {
            tokio::task::yield_now().await;
        }
        drop(tcp);
        while running.relay.parked_polls() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_name_whose_client_stopped_polling_answers_503_within_the_peer_wait() {
    within(async {
        let running = relay(settings(100)).await;
        let addr = running.addr;
        let created = register(addr, "name=lamp&token=s3cret").await;
        assert_eq!(created.status, 201, "{created:?}");
        // One poll, held and answered 204; then the client is gone.
        let polled = poll(addr, &created.link("first")).await;
        assert_eq!(polled.status, 204, "{polled:?}");
        let started = tokio::time::Instant::now();
        let Reply {
            status,
            headers,
            body,
        } = support::get(&format!("http://{addr}/lamp/")).await;
        let took = started.elapsed();
        assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert!(took < Duration::from_secs(3), "answered after {took:?}");
    })
    .await;
}
