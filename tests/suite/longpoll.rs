//! The long-poll hub over real sockets, with clients that write raw bytes
//! as the shipped ReverseHttp and Second Life clients do.

use std::net::SocketAddr;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ptth::longpoll::{Hub, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::within;

async fn serve(hub: Hub) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), hub.clone());
            tokio::spawn(connection);
        }
    });
    addr
}

/// Sends `request` on a fresh connection and reads the whole answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_goes_out_as_message_http_and_the_reply_comes_back() {
    within(async {
        let hub = Hub::new();
        let addr = serve(hub.clone()).await;
        let first = exchange(addr, b"GET /poll/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(first.starts_with("HTTP/1.1 204"), "{first}");
        let next = first
            .split("link: <")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .expect("a next link")
            .to_owned();
        assert!(next.starts_with("/poll/") && next.len() == "/poll/".len() + 32, "{next}");

        let mut viewers = hub.sender();
        let sent = tokio::spawn(async move {
            let request = Request::post("/lamp?x=1")
                .header("host", "app.example")
                .body(Full::new(Bytes::from_static(b"\x00\x01on")))
                .unwrap();
            viewers.send_request(request).await
        });
        let poll = format!("GET {next} HTTP/1.1\r\nHost: x\r\nAccept: message/http\r\nConnection: close\r\n\r\n");
        let delivered = exchange(addr, poll.as_bytes()).await;
        assert!(delivered.starts_with("HTTP/1.1 200"), "{delivered}");
        assert!(delivered.contains("content-type: message/http"), "{delivered}");
        assert!(
            delivered.ends_with("POST /lamp?x=1 HTTP/1.1\r\nhost: app.example\r\ncontent-length: 4\r\n\r\n\u{0}\u{1}on"),
            "{delivered:?}"
        );

        // As the Python client replies: HTTP/1.0, no Content-Length.
        let reply = b"HTTP/1.0 201 Created\r\nX-Lamp: on\r\n\r\nlit";
        let post = format!(
            "POST {next} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.len()
        );
        let mut bytes = post.into_bytes();
        bytes.extend_from_slice(reply);
        let accepted = exchange(addr, &bytes).await;
        assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
        let again = exchange(addr, &bytes).await;
        assert!(again.starts_with("HTTP/1.1 404"), "a second reply: {again}");

        let response = sent.await.unwrap().unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-lamp"], "on");
    })
    .await;
}

#[tokio::test]
async fn json_clients_post_a_reply_and_get_the_next_request() {
    within(async {
        let hub = Hub::builder().hold(Duration::from_millis(200)).build();
        let addr = serve(hub.clone()).await;
        let post = |body: &str| {
            format!(
                "POST /poll/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let idle = exchange(addr, post("{}").as_bytes()).await;
        assert!(idle.starts_with("HTTP/1.1 200") && idle.ends_with("\r\n\r\n{}"), "{idle}");

        let mut viewers = hub.sender();
        let sent = tokio::spawn(async move {
            let request = Request::get("/status").body(Full::new(Bytes::new())).unwrap();
            viewers.send_request(request).await
        });
        let delivered = exchange(addr, post("").as_bytes()).await;
        let json = delivered.split("\r\n\r\n").nth(1).unwrap();
        let (id, request) = ptth::longpoll::json::parse_request(json.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((request.method().as_str(), request.uri().path()), ("GET", "/status"));
        let reply = format!(
            "{{\"message-id\": \"{id}\", \"status\": 200, \"headers\": [[\"Content-Type\", \"application/octet-stream\"]], \"body\": \"AP8=\", \"body-encoding\": \"base64\"}}"
        );
        let next = exchange(addr, post(&reply).as_bytes()).await;
        assert!(next.ends_with("\r\n\r\n{}"), "the reply's POST polls on: {next}");
        let response = sent.await.unwrap().unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body.as_ref(), b"\x00\xff");
    })
    .await;
}

#[tokio::test]
async fn bounds_answer_with_statuses() {
    within(async {
        let limits = Limits {
            requests: 1,
            polls: 1,
            reply_wait: Duration::from_millis(300),
        };
        let hub = Hub::builder()
            .limits(limits)
            .max_body(8)
            .hold(Duration::from_secs(10))
            .build();
        let addr = serve(hub.clone()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /poll/a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        while hub.parked() == 0 {
            tokio::task::yield_now().await;
        }
        let second = exchange(addr, b"GET /poll/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(second.starts_with("HTTP/1.1 503"), "{second}");
        assert!(second.contains("parked polls"), "{second}");
        let large = exchange(
            addr,
            b"POST /poll/a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n123456789",
        )
        .await;
        assert!(large.starts_with("HTTP/1.1 413"), "{large}");
        let empty = exchange(addr, b"POST /poll/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        assert!(empty.starts_with("HTTP/1.1 400"), "{empty}");

        // The parked poll takes the request and never replies.
        let error = hub
            .sender()
            .send_request(Request::get("/").body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error}");
        let mut delivered = vec![0; 4096];
        let n = tcp.read(&mut delivered).await.unwrap();
        assert!(delivered[..n].starts_with(b"HTTP/1.1 200"));
    })
    .await;
}

/// In axum the hub is a route service; `route_service` keeps the path
/// whole, so the `next` links it writes point back at it.
#[cfg(feature = "axum")]
#[tokio::test]
async fn the_hub_mounts_in_axum() {
    within(async {
        let hub = Hub::new();
        let app = axum::Router::new()
            .route_service("/poll/", hub.clone())
            .route_service("/poll/{id}", hub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let first = exchange(addr, b"GET /poll/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(first.starts_with("HTTP/1.1 204"), "{first}");
        let next = first.split("link: <").nth(1).unwrap().split('>').next().unwrap().to_owned();
        assert!(next.starts_with("/poll/"), "{next}");
        let mut viewers = hub.sender();
        let sent = tokio::spawn(async move {
            viewers
                .send_request(Request::get("/ping").body(Full::new(Bytes::new())).unwrap())
                .await
        });
        let poll = format!("GET {next} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(exchange(addr, poll.as_bytes()).await.ends_with("GET /ping HTTP/1.1\r\ncontent-length: 0\r\n\r\n"));
        let reply = format!("POST {next} HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        assert!(exchange(addr, reply.as_bytes()).await.starts_with("HTTP/1.1 202"));
        assert_eq!(sent.await.unwrap().unwrap().status(), 200);
    })
    .await;
}
