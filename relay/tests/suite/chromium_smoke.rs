//! The Chromium harness on its own, with no relay: a page served by the
//! test logs to the console, runs `ptth.js`'s codecs, and keeps running
//! after it has loaded.

use std::convert::Infallible;
use std::time::Duration;

use crate::support::chromium::Chromium;
use crate::support::http1_origin;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;

const PTTH_JS: &str = include_str!("../../static/ptth.js");

/// Chromium's cold start on a busy two-core machine takes seconds.
const WAIT: Duration = Duration::from_secs(20);

// The module is imported after the first log so that a harness failure
// and a ptth.js failure read differently.
const PAGE: &str = r#"<!doctype html>
<script type="module">
console.log("ready " + (1 + 1));
const { parseRequest, encodeResponse } = await import("/ptth.js");
const head = "POST /lamp/up?x=1 HTTP/1.1\r\nHost: example\r\nX-Two: a\r\n  b\r\nContent-Length: 4\r\n\r\n";
const bytes = new Uint8Array([...new TextEncoder().encode(head), 0, 255, 13, 10, 99]);
const r = parseRequest(bytes);
const fields = r.headers.map(([n, v]) => `${n}=${v}`).join(",");
console.log(`parsed ${r.method} ${r.target} ${r.version} ${fields} ${r.body.length} ${[...r.body]}`);
const bare = parseRequest(new TextEncoder().encode("GET / HTTP/1.0\n\nxyz"));
console.log(`bare ${bare.method} ${bare.target} ${bare.headers.length} ${bare.body.length}`);
const out = await encodeResponse(new Response(new Uint8Array([0, 255, 1]), { status: 201, headers: { "X-A": "b" } }));
console.log("encoded " + [...out].map((b) => b.toString(16).padStart(2, "0")).join(""));
const later = () => setTimeout(() => console.log("alive after load"), 200);
document.readyState === "complete" ? later() : addEventListener("load", later);
</script>
"#;

async fn site(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, kind, body) = match request.uri().path() {
        "/" => (StatusCode::OK, "text/html", PAGE),
        // Module scripts are refused without a JavaScript type.
        "/ptth.js" => (StatusCode::OK, "text/javascript", PTTH_JS),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found"),
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    Ok(response)
}

#[tokio::test]
async fn chromium_runs_a_page_and_ptth_js_codecs() {
    let addr = http1_origin(service_fn(site)).await;
    let mut browser = Chromium::open(&format!("http://{addr}/"));

    assert_eq!(browser.wait_for_console("ready", WAIT).await, "ready 2");
    assert_eq!(
        browser.wait_for_console("parsed", WAIT).await,
        "parsed POST /lamp/up?x=1 HTTP/1.1 Host=example,X-Two=a b,Content-Length=4 4 0,255,13,10"
    );
    assert_eq!(
        browser.wait_for_console("bare", WAIT).await,
        "bare GET / 0 3"
    );

    let mut expected = b"HTTP/1.1 201 Created\r\nx-a: b\r\nContent-Length: 3\r\n\r\n".to_vec();
    expected.extend([0, 255, 1]);
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        browser.wait_for_console("encoded", WAIT).await,
        format!("encoded {hex}")
    );

    // The relay's poll loops need the page to outlive its load event.
    browser.wait_for_console("alive after load", WAIT).await;
}
