//! Header names in their usual case on HTTP/1.1 (docs/relay.md,
//! "Long-polling: browsers and plain HTTP clients"): ReverseHttp's Java client reads `Link` from
//! `HttpURLConnection.getHeaderFields()` by its exact case, so a relay
//! that writes `link` loses it at registration. The clients here look
//! names up as it does, in the raw bytes, case and all.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::raw::{exact, exchange_bytes, field_lines, parse, path};
use crate::support::{relay, within};
use ptth_relay::{LongPoll, Settings, Waits};

fn settings() -> Settings {
    Settings {
        longpoll: LongPoll {
            hold: Duration::from_secs(10),
            ..LongPoll::default()
        },
        waits: Waits {
            peer: Duration::from_millis(200),
            ..Waits::default()
        },
        ..Settings::default()
    }
}

/// The status of a raw answer.
fn status(answer: &[u8]) -> u16 {
    parse(answer).status
}

/// The one value of `name`, spelt exactly so.
fn one<'a>(answer: &'a [u8], name: &str) -> &'a str {
    match exact(answer, name)[..] {
        [value] => value,
        _ => panic!("no single {name:?} in {:?}", field_lines(answer)),
    }
}

/// The URL of the `Link` spelt `Link` with `rel`, as the Java client
/// parses it.
fn link(answer: &[u8], rel: &str) -> String {
    let wanted = format!("rel=\"{rel}\"");
    exact(answer, "Link")
        .into_iter()
        .find(|link| link.contains(&wanted))
        .and_then(|link| link.split('<').nth(1)?.split('>').next())
        .unwrap_or_else(|| panic!("no Link {rel} in {:?}", field_lines(answer)))
        .to_owned()
}

/// The Java client's registration: a form POST to the access path.
async fn register(addr: SocketAddr) -> Vec<u8> {
    exchange_bytes(
        addr,
        "POST /reversehttp HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        b"name=lamp&token=-",
    )
    .await
}

async fn poll(addr: SocketAddr, url: String) -> Vec<u8> {
    let head = format!("GET {} HTTP/1.1", path(&url));
    exchange_bytes(addr, &head, b"").await
}

async fn public_get(addr: SocketAddr, target: &'static str) -> Vec<u8> {
    exchange_bytes(addr, &format!("GET {target} HTTP/1.1"), b"").await
}

#[tokio::test]
async fn the_java_client_finds_link_location_and_requesting_client() {
    within(async {
        let running = relay(settings()).await;
        let addr = running.addr;
        let created = register(addr).await;
        assert_eq!(status(&created), 201, "{:?}", field_lines(&created));
        // Where the Java client gives up: "Missing link header".
        let first = link(&created, "first");
        assert_eq!(link(&created, "related"), format!("http://{addr}/lamp/"));
        let location = one(&created, "Location");
        assert_eq!(location, format!("http://{addr}/reversehttp/lamp/-"));

        let public = tokio::spawn(public_get(addr, "/lamp/on"));
        let delivered = poll(addr, first.clone()).await;
        assert_eq!(status(&delivered), 200, "{:?}", field_lines(&delivered));
        assert_eq!(one(&delivered, "Content-Type"), "message/http");
        let client = one(&delivered, "Requesting-Client");
        assert!(client.starts_with("127.0.0.1:"), "{client}");
        link(&delivered, "next");
        assert!(parse(&delivered).text().starts_with("GET /lamp/on HTTP/1.1\r\n"));

        // The Java client posts its replies to the URL it polled.
        let message = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-lamp: on\r\nContent-Length: 3\r\n\r\nlit";
        let head = format!("POST {} HTTP/1.1\r\nContent-Type: message/http", path(&first));
        let answered = exchange_bytes(addr, &head, message).await;
        assert_eq!(status(&answered), 202, "{:?}", field_lines(&answered));

        let public = public.await.unwrap();
        assert_eq!(status(&public), 200, "{:?}", field_lines(&public));
        assert_eq!(parse(&public).text(), "lit");
        // A reply's own spelling is not kept: its fields come out in
        // their usual case like the relay's own (docs/relay.md,
        // "Long-polling: browsers and plain HTTP clients").
        assert_eq!(one(&public, "Content-Type"), "text/plain");
        assert_eq!(one(&public, "X-Lamp"), "on");
    })
    .await;
}

#[tokio::test]
async fn the_relay_s_own_answers_spell_names_in_their_usual_case() {
    within(async {
        let running = relay(settings()).await;
        let addr = running.addr;
        let missing = public_get(addr, "/nobody/").await;
        assert_eq!(status(&missing), 404, "{:?}", field_lines(&missing));
        assert_eq!(one(&missing, "Content-Type"), "text/plain; charset=utf-8");
        assert_eq!(one(&missing, "X-Content-Type-Options"), "nosniff");
        one(&missing, "Content-Length");
        one(&missing, "Date");

        // A registered name whose client never polls: no one takes the
        // request within the peer wait.
        assert_eq!(status(&register(addr).await), 201);
        let unavailable = public_get(addr, "/lamp/").await;
        assert_eq!(status(&unavailable), 503, "{:?}", field_lines(&unavailable));
        assert_eq!(one(&unavailable, "Retry-After"), "1");
        assert_eq!(one(&unavailable, "Content-Type"), "text/plain; charset=utf-8");

        let preflight = exchange_bytes(
            addr,
            "OPTIONS /reversehttp/lamp/-/x HTTP/1.1\r\nOrigin: http://page.example\r\nAccess-Control-Request-Method: POST",
            b"",
        )
        .await;
        assert_eq!(status(&preflight), 204, "{:?}", field_lines(&preflight));
        assert_eq!(one(&preflight, "Access-Control-Allow-Origin"), "*");
        assert!(one(&preflight, "Access-Control-Allow-Methods").contains("POST"));
    })
    .await;
}
