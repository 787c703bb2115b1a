//! `expose --inspect`: the binaries as a person runs them, `serve` and
//! `expose PORT --inspect 127.0.0.1:0`, a counting origin, requests
//! through the relay, and the inspector's JSON API and page (in real
//! headless Chromium), and streams and switched protocols passing an
//! inspected `expose` as they happen.

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::support::binary::{self, Log, announced};
use crate::support::chromium::Chromium;
use crate::support::{Reply, client, get, http1_origin, send, within};

/// Chromium's cold start on a busy two-core machine takes seconds.
const WAIT: Duration = Duration::from_secs(20);

/// How large the origin's `/big` answer is: past the 64 KiB kept.
const BIG: usize = 100_000;

/// `serve` on loopback: its process and URL.
async fn serve() -> (Child, String) {
    let mut child = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut child).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
}

/// An origin on loopback that counts the requests it sees, reads each
/// body to its end, and answers `hello from PATH`, or `BIG` bytes for a
/// path ending in `/big`.
async fn origin() -> (u16, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request.uri().path().to_owned();
            let _ = request.into_body().collect().await;
            let body = match path.ends_with("/big") {
                true => vec![b'x'; BIG],
                false => format!("hello from {path}").into_bytes(),
            };
            let response = Response::builder()
                .header("x-from", "origin")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    (http1_origin(service).await.port(), seen)
}

/// `expose PORT --inspect 127.0.0.1:0` as `lamp` on `relay`, with `extra`
/// flags, once it is up: its process and the inspector's URL.
async fn expose(relay: &str, port: u16, extra: &[&str]) -> (Child, String) {
    let port = port.to_string();
    let mut args = vec!["expose", "--relay", relay, "--name", "lamp"];
    args.extend([port.as_str(), "--inspect", "127.0.0.1:0"]);
    args.extend(extra);
    let mut child = binary::run(&args, Stdio::null());
    let mut stdout = Log::of_stdout(&mut child);
    let line = stdout.until("inspector: ").await;
    stdout.until("public URL: ").await;
    let inspector = line.strip_prefix("inspector: ").unwrap().to_owned();
    assert!(inspector.starts_with("http://127.0.0.1:"), "{line}");
    (child, inspector)
}

/// `GET URL` as JSON.
async fn json(url: &str) -> Value {
    let Reply { status, body, .. } = get(url).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `POST {inspector}/api/requests/{id}/replay`: the status and the body.
async fn replay(inspector: &str, id: &Value) -> (StatusCode, String) {
    let url = format!("{inspector}/api/requests/{id}/replay");
    let request = Request::post(url).body(Full::default()).unwrap();
    let Reply { status, body, .. } = send(request).await;
    (status, body)
}

/// Whether `headers`, `[name, value]` pairs, hold `name: value`.
fn has_header(headers: &Value, name: &str, value: &str) -> bool {
    let pairs = headers.as_array().unwrap();
    pairs.iter().any(|pair| pair[0] == name && pair[1] == value)
}

#[tokio::test]
async fn requests_through_the_relay_are_listed_with_their_heads_and_bodies_and_replayed() {
    let (_serve, relay) = serve().await;
    let (port, seen) = origin().await;
    let (_expose, inspector) = expose(&relay, port, &[]).await;

    let request = Request::get(format!("{relay}/lamp/hello?x=1"))
        .header("x-visitor", "1")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(request).await.body, "hello from /lamp/hello");
    let list = json(&format!("{inspector}/api/requests")).await;
    let exchange = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(exchange["method"], "GET");
    assert_eq!(exchange["target"], "/lamp/hello?x=1");
    assert_eq!(exchange["status"], 200);
    assert!(exchange["duration_ms"].is_u64(), "{exchange}");
    assert!(has_header(
        &exchange["request"]["headers"],
        "x-visitor",
        "1"
    ));
    // The visitor's host, which an HTTP/2 relay sends as the authority:
    // the origin sees it, and so must a replay's origin.
    let host = relay.strip_prefix("http://").unwrap();
    let request_headers = &exchange["request"]["headers"];
    assert!(has_header(request_headers, "host", host), "{exchange}");
    assert!(has_header(
        &exchange["response"]["headers"],
        "x-from",
        "origin"
    ));
    let body = &exchange["response"]["body"];
    assert_eq!(body["data"], "hello from /lamp/hello", "{body}");
    assert_eq!(
        (&body["truncated"], &body["ended"]),
        (&false.into(), &true.into())
    );

    // The replay reaches the origin again and is an exchange of its own.
    let (status, text) = replay(&inspector, &exchange["id"]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let replayed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(replayed["replay_of"], exchange["id"]);
    assert_eq!(replayed["status"], 200);
    let request_headers = &replayed["request"]["headers"];
    assert!(has_header(request_headers, "host", host), "{replayed}");
    assert_eq!(
        replayed["response"]["body"]["data"],
        "hello from /lamp/hello"
    );
    let newest = json(&format!("{inspector}/api/requests?after=1")).await;
    assert_eq!(newest[0]["id"], replayed["id"], "{newest}");
    assert_eq!(
        replay(&inspector, &Value::from(999)).await.0,
        StatusCode::NOT_FOUND
    );

    // A web page must neither read the inspector through a name of its
    // own (DNS rebinding) nor make it replay.
    let rebound = Request::get(format!("{inspector}/api/requests"))
        .header("host", "evil.example")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(rebound).await.status, StatusCode::MISDIRECTED_REQUEST);
    let forged = Request::post(format!("{inspector}/api/requests/1/replay"))
        .header("origin", "http://evil.example")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(forged).await.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bodies_past_64_kib_are_cut_and_a_cut_request_is_not_replayed() {
    let (_serve, relay) = serve().await;
    let (port, seen) = origin().await;
    let (_expose, inspector) = expose(&relay, port, &[]).await;

    let Reply { body, .. } = get(&format!("{relay}/lamp/big")).await;
    assert_eq!(body.len(), BIG, "the visitor gets the whole body");
    let upload = Request::post(format!("{relay}/lamp/upload"))
        .body(Full::new(Bytes::from(vec![b'u'; BIG])))
        .unwrap();
    assert_eq!(send(upload).await.status, StatusCode::OK);

    let list = json(&format!("{inspector}/api/requests")).await;
    let (upload, big) = (&list[0], &list[1]);
    let kept = &big["response"]["body"];
    assert_eq!(big["target"], "/lamp/big");
    assert_eq!(
        (&kept["size"], &kept["truncated"]),
        (&BIG.into(), &true.into())
    );
    assert_eq!(kept["data"].as_str().unwrap().len(), 64 * 1024);
    let kept = &upload["request"]["body"];
    assert_eq!(
        (&kept["size"], &kept["truncated"]),
        (&BIG.into(), &true.into())
    );

    let (status, text) = replay(&inspector, &upload["id"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("cannot be replayed"), "{text}");
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the origin saw no replay");
}

#[tokio::test]
async fn the_history_keeps_only_the_newest_exchanges() {
    let (_serve, relay) = serve().await;
    let (port, _) = origin().await;
    let (_expose, inspector) = expose(&relay, port, &["--inspect-history", "3"]).await;
    for n in 1..=5 {
        get(&format!("{relay}/lamp/{n}")).await;
    }
    let list = json(&format!("{inspector}/api/requests")).await;
    let targets: Vec<&str> = (list.as_array().unwrap().iter())
        .map(|exchange| exchange["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["/lamp/5", "/lamp/4", "/lamp/3"]);
    let (status, _) = replay(&inspector, &Value::from(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "dropped from the history");
}

#[tokio::test]
async fn an_inspector_off_loopback_is_refused_without_the_opt_in() {
    let (_serve, relay) = serve().await;
    let args = [
        "expose",
        "--relay",
        &relay,
        "--name",
        "lamp",
        "9",
        "--inspect",
        "0.0.0.0:0",
    ];
    let output = within(binary::run(&args, Stdio::piped()).wait_with_output())
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ptth-relay: --inspect 0.0.0.0:0 is not a loopback address")
            && last.contains("give --inspect-public as well"),
        "{last}"
    );
}

#[tokio::test]
async fn the_page_shows_exchanges_as_they_pass_and_replays_the_latest() {
    let (_serve, relay) = serve().await;
    let (port, seen) = origin().await;
    let (_expose, inspector) = expose(&relay, port, &[]).await;
    let mut page = Chromium::open(&format!("{inspector}/?replay=latest"));
    page.wait_for_console("inspector: ready", WAIT).await;

    let Reply { status, .. } = get(&format!("{relay}/lamp/hello")).await;
    assert_eq!(status, StatusCode::OK);
    page.wait_for_console("inspector: row GET /lamp/hello 200", WAIT)
        .await;
    let line = page.wait_for_console("inspector: replayed ", WAIT).await;
    assert_eq!(line, "inspector: replayed 1 -> 2 200");
    // The page opens the replay's exchange, its headers and bodies.
    let shown = page.wait_for_console("inspector: shown 2 ", WAIT).await;
    let body = "hello from /lamp/hello".len();
    assert_eq!(
        shown,
        format!("inspector: shown 2 GET /lamp/hello 200, {body} response body bytes")
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the origin saw the replay");
    // The replay is a row of its own.
    page.wait_for_console("inspector: row GET /lamp/hello 200", WAIT)
        .await;
}

/// An origin that streams `/lamp/events` with chunks the test sends (the
/// sender of each stream comes out of the returned channel) and switches
/// `/lamp/echo` to a protocol that sends every byte back.
async fn streaming_origin() -> (u16, mpsc::UnboundedReceiver<mpsc::UnboundedSender<Bytes>>) {
    let (streams, opened) = mpsc::unbounded_channel();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let streams = streams.clone();
        async move {
            if request.uri().path() == "/lamp/echo" {
                let upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let io = TokioIo::new(upgrade.await.unwrap());
                    let (mut from, mut to) = tokio::io::split(io);
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                });
                let switched = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(Empty::new().boxed())
                    .unwrap();
                return Ok::<_, Infallible>(switched);
            }
            let (chunks, body) = mpsc::unbounded_channel::<Bytes>();
            streams.send(chunks).unwrap();
            let frames = futures_util::stream::unfold(body, |mut body| async move {
                let chunk = body.recv().await?;
                Some((Ok::<_, Infallible>(Frame::data(chunk)), body))
            });
            Ok(Response::new(StreamBody::new(frames).boxed()))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service.clone())
                .with_upgrades();
            tokio::spawn(connection);
        }
    });
    (port, opened)
}

/// The exchange for `target`, the newest one.
async fn exchange(inspector: &str, target: &str) -> Value {
    let list = json(&format!("{inspector}/api/requests")).await;
    let found = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == target);
    found
        .unwrap_or_else(|| panic!("no {target} in {list}"))
        .clone()
}

#[tokio::test]
async fn streams_and_upgrades_pass_an_inspected_expose_as_they_happen() {
    let (_serve, relay) = serve().await;
    let (port, mut opened) = streaming_origin().await;
    let (_expose, inspector) = expose(&relay, port, &[]).await;

    // Each chunk reaches the visitor before the next is sent: nothing
    // waits for the body's end, and the exchange is listed at its head.
    let request = Request::get(format!("{relay}/lamp/events"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = within(client().request(request)).await.unwrap();
    let chunks = within(opened.recv()).await.unwrap();
    let mut body = response.into_body();
    chunks.send(Bytes::from("one ")).unwrap();
    let first = within(body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "one ");
    let streaming = exchange(&inspector, "/lamp/events").await;
    let kept = &streaming["response"]["body"];
    assert_eq!(
        (&kept["data"], &kept["ended"]),
        (&"one ".into(), &false.into())
    );
    chunks.send(Bytes::from("two")).unwrap();
    drop(chunks);
    let rest = within(body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "two");
    let ended = exchange(&inspector, "/lamp/events").await;
    let kept = &ended["response"]["body"];
    assert_eq!(
        (&kept["data"], &kept["ended"]),
        (&"one two".into(), &true.into())
    );

    // A switch of protocols still carries bytes both ways.
    let authority = relay.strip_prefix("http://").unwrap();
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection.with_upgrades());
    let request = Request::get("/lamp/echo")
        .header("host", authority)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(within(hyper::upgrade::on(response)).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    within(io.read_exact(&mut echoed)).await.unwrap();
    assert_eq!(&echoed, b"ping");
    // Recorded as the origin saw it, whichever protocol the relay spoke.
    let echo = exchange(&inspector, "/lamp/echo").await;
    assert_eq!(
        (&echo["method"], &echo["status"]),
        (&"GET".into(), &101.into())
    );
    assert!(
        has_header(&echo["request"]["headers"], "upgrade", "echo"),
        "{echo}"
    );
}
