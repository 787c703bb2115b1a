//! A browser tab serves HTTP through the relay: real headless Chromium runs
//! `ptth.js` in a page from another origin, and requests from Rust reach
//! it through the relay, including while the tab is reconnecting.

use crate::support;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::chromium::Chromium;
use crate::support::pipe::Pipe;
use crate::support::{http1_origin, relay, within};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use ptth_relay::LongPoll;
use ptth_relay::Settings;

/// Chromium's cold start on a busy two-core machine takes seconds.
const WAIT: Duration = Duration::from_secs(20);

/// The tab's handler echoes the body and says what it saw.
fn page(relay: SocketAddr) -> String {
    format!(
        r#"<!doctype html>
<script type="module">
import {{ serve }} from "http://{relay}/_ptth/ptth.js";
const tunnel = serve({{ relay: "http://{relay}", name: "tab" }}, async (request) => {{
  const body = new Uint8Array(await request.arrayBuffer());
  return new Response(body, {{
    status: 200,
    headers: {{ "x-seen": `${{request.method}} ${{new URL(request.url).pathname}} ${{body.length}}` }},
  }});
}});
tunnel.addEventListener("status", (event) => console.log("tab " + event.detail.state));
const ready = await tunnel.ready;
console.log("tab ready " + ready.publicUrl);
</script>
"#
    )
}

async fn site(html: String) -> SocketAddr {
    let html = Bytes::from(html);
    http1_origin(service_fn(move |_: Request<Incoming>| {
        let html = html.clone();
        async move {
            let response = Response::builder()
                .header("content-type", "text/html")
                .body(Full::new(html))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    }))
    .await
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = support::client().request(request).await.unwrap();
    let seen = response
        .headers()
        .get("x-seen")
        .map_or(String::new(), |seen| seen.to_str().unwrap().to_owned());
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, seen, body.to_vec())
}

#[tokio::test]
async fn a_tab_serves_requests_through_the_relay() {
    let settings = Settings {
        longpoll: LongPoll {
            hold: Duration::from_secs(2),
            ..LongPoll::default()
        },
        ..Settings::default()
    };
    let running = relay(settings).await;
    let relay = running.addr;
    let network = Pipe::to(relay).await;
    let site = site(page(network.addr)).await;
    let mut tab = Chromium::open(&format!("http://{site}/"));
    let ready = tab.wait_for_console("tab ready", WAIT).await;
    assert!(
        ready.ends_with(&format!("{}/tab/", network.addr)),
        "{ready}"
    );

    within(async {
        let (status, seen, body) = call(relay, "GET", "/tab/hello", Vec::new()).await;
        assert_eq!((status, seen.as_str()), (200, "GET /tab/hello 0"));
        assert!(body.is_empty());

        let (status, seen, body) = call(relay, "POST", "/tab/form", b"colour=blue".to_vec()).await;
        assert_eq!((status, seen.as_str()), (200, "POST /tab/form 11"));
        assert_eq!(body, b"colour=blue");

        let every_byte: Vec<u8> = (0..=255).collect();
        let (status, seen, body) = call(relay, "PUT", "/tab/bytes", every_byte.clone()).await;
        assert_eq!((status, seen.as_str()), (200, "PUT /tab/bytes 256"));
        assert_eq!(
            body, every_byte,
            "a binary body crosses both ways unchanged"
        );
    })
    .await;

    network.cut().await;
    tab.wait_for_console("tab backoff", WAIT).await;
    within(async {
        // The tab's parked poll ended with its connection; the request
        // waits in the name's queue.
        while running.relay.parked_polls() > 0 {
            tokio::task::yield_now().await;
        }
        let away = tokio::spawn(call(relay, "GET", "/tab/while-away", Vec::new()));
        network.restore();
        let (status, seen, _) = away.await.unwrap();
        assert_eq!((status, seen.as_str()), (200, "GET /tab/while-away 0"));
    })
    .await;
}
