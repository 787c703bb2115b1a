//! A guard in front of a tunnel's service, called through a relay played
//! by this crate's acceptor on real sockets: who has no credentials, the
//! wrong ones or the right ones, from inside the allowed ranges or not.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use crate::connect;
use crate::support::fake_relay::{FakeRelay, accept_all};
use crate::support::within;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use ptth::acceptor::SendRequest;
use ptth::guard::{Guard, PasswordCheck};

/// `Basic` credentials for `user:password`.
fn basic(user_password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::from("Basic ");
    for chunk in user_password.as_bytes().chunks(3) {
        let bits =
            chunk.iter().fold(0u32, |bits, &b| bits << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            let sextet = (bits >> (18 - 6 * i)) & 63;
            text.push(if i <= chunk.len() {
                ALPHABET[sextet as usize] as char
            } else {
                '='
            });
        }
    }
    text
}

/// Answers with every header field it got, one `name: value` a line.
async fn headers(
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut text = String::new();
    for (name, value) in request.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A tunnel serving `headers` behind `guard`, and the relay's sender to it.
async fn guarded(guard: Guard) -> SendRequest<Full<Bytes>> {
    let mut relay = FakeRelay::start("127.0.0.1:0".parse().unwrap(), accept_all()).await;
    let tunnel = ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp", relay.addr))
        .serve(guard.service(service_fn(headers)));
    tokio::spawn(tunnel);
    let sender = relay.next_sender().await;
    // The relay keeps listening for the test's length.
    tokio::spawn(async move { while relay.upgrades.recv().await.is_some() {} });
    sender
}

/// What came back: the status, the challenge if any, and the body.
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(sender: &mut SendRequest<Full<Bytes>>, fields: &[(&str, &str)]) -> Answer {
    let mut request = Request::get("/").header("x-kept", "1");
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::default()).unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    let status = response.status();
    let challenge = (response.headers().get("www-authenticate"))
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

const CHALLENGE: &str = "Basic realm=\"ptth\", charset=\"UTF-8\"";

#[tokio::test]
async fn only_a_user_s_credentials_pass_and_they_go_no_further() {
    let guard = Guard::new()
        .basic_auth("ada", "lovelace")
        .basic_auth("grace", "hopper:cobol");
    let mut sender = guarded(guard).await;
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("authorization", &basic("ada:lovelacE"))],
        &[("authorization", &basic("ada:hopper:cobol"))],
        &[("authorization", &basic("adb:lovelace"))],
        &[("authorization", &basic("ada"))],
        &[("authorization", "Bearer lovelace")],
        // Two fields, one right: which one was checked would be open.
        &[
            ("authorization", &basic("ada:lovelace")),
            ("authorization", &basic("ada:wrong")),
        ],
    ];
    for fields in refused {
        let answer = call(&mut sender, fields).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{fields:?}");
        assert_eq!(answer.challenge.as_deref(), Some(CHALLENGE), "{fields:?}");
        assert_eq!(answer.body, "", "{fields:?}");
    }
    for user in ["ada:lovelace", "grace:hopper:cobol"] {
        let answer = call(&mut sender, &[("authorization", &basic(user))]).await;
        assert_eq!(answer.status, StatusCode::OK, "{user}");
        assert_eq!(answer.challenge, None);
        assert!(answer.body.contains("x-kept: 1\n"), "{}", answer.body);
        assert!(!answer.body.contains("authorization"), "{}", answer.body);
    }
}

#[tokio::test]
async fn only_clients_inside_the_ranges_pass() {
    let guard = Guard::new()
        .allow_ip("192.0.2.0/24".parse().unwrap())
        .allow_ip("2001:db8::1".parse().unwrap());
    let mut sender = guarded(guard).await;
    for (fields, status) in [
        (&[("x-real-ip", "192.0.2.77")][..], StatusCode::OK),
        (&[("x-real-ip", "2001:db8::1")][..], StatusCode::OK),
        (&[("x-real-ip", "::ffff:192.0.2.1")][..], StatusCode::OK),
        (&[("x-real-ip", "198.51.100.1")][..], StatusCode::FORBIDDEN),
        (&[("x-real-ip", "2001:db8::2")][..], StatusCode::FORBIDDEN),
        (&[("x-real-ip", "192.0.2.77:80")][..], StatusCode::FORBIDDEN),
        (
            &[("x-forwarded-for", "192.0.2.77")][..],
            StatusCode::FORBIDDEN,
        ),
        (&[][..], StatusCode::FORBIDDEN),
        (
            &[("x-real-ip", "192.0.2.77"), ("x-real-ip", "198.51.100.1")][..],
            StatusCode::FORBIDDEN,
        ),
    ] {
        let answer = call(&mut sender, fields).await;
        assert_eq!(answer.status, status, "{fields:?}");
        assert_eq!(answer.challenge, None, "{fields:?}");
        if status == StatusCode::OK {
            assert!(answer.body.contains("x-real-ip: "), "{}", answer.body);
        }
    }
}

#[tokio::test]
async fn the_address_is_judged_first_then_the_credentials() {
    let guard = Guard::new()
        .basic_auth("ada", "lovelace")
        .allow_ip("192.0.2.0/24".parse().unwrap())
        .client_ip_header(http::HeaderName::from_static("x-client"));
    let mut sender = guarded(guard).await;
    let right = basic("ada:lovelace");
    for (fields, status) in [
        (
            &[("x-client", "198.51.100.1"), ("authorization", &right)][..],
            StatusCode::FORBIDDEN,
        ),
        (
            &[("x-real-ip", "192.0.2.1"), ("authorization", &right)][..],
            StatusCode::FORBIDDEN,
        ),
        (&[("x-client", "198.51.100.1")][..], StatusCode::FORBIDDEN),
        (&[("x-client", "192.0.2.1")][..], StatusCode::UNAUTHORIZED),
        (
            &[("x-client", "192.0.2.1"), ("authorization", &right)][..],
            StatusCode::OK,
        ),
    ] {
        assert_eq!(call(&mut sender, fields).await.status, status, "{fields:?}");
    }
}

/// Accepts one password, and notes the thread each check ran on.
#[derive(Clone)]
struct Noting {
    costly: bool,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl PasswordCheck for Noting {
    fn matches(&self, password: &[u8]) -> bool {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        password == b"lovelace"
    }

    fn is_costly(&self) -> bool {
        self.costly
    }
}

// On this test's single-threaded runtime, every task runs on the test's
// thread: a check that ran elsewhere ran on a blocking thread.
#[tokio::test]
async fn a_costly_check_runs_off_the_request_s_thread() {
    for costly in [false, true] {
        let noting = Noting {
            costly,
            threads: Arc::default(),
        };
        let mut sender = guarded(Guard::new().basic_auth_check("ada", noting.clone())).await;
        for (user, status) in [
            ("ada:lovelace", StatusCode::OK),
            ("ada:x", StatusCode::UNAUTHORIZED),
        ] {
            let answer = call(&mut sender, &[("authorization", &basic(user))]).await;
            assert_eq!(answer.status, status, "{user} costly={costly}");
        }
        let here = std::thread::current().id();
        let threads = noting.threads.lock().unwrap().clone();
        assert_eq!(threads.len(), 2);
        assert!(
            threads.iter().all(|thread| (*thread != here) == costly),
            "costly={costly}"
        );
    }
}

#[test]
fn the_test_s_basic_encoder_is_base64() {
    assert_eq!(basic("ada:lovelace"), "Basic YWRhOmxvdmVsYWNl");
    assert_eq!(basic("ada:love:lace"), "Basic YWRhOmxvdmU6bGFjZQ==");
    assert_eq!(basic("ab"), "Basic YWI=");
}

/// With the `axum` feature: the guard as a tower layer on a `Router`.
#[cfg(feature = "axum")]
#[tokio::test]
async fn a_guard_is_a_tower_layer_on_a_router() {
    use axum::routing::get;
    let guard = Guard::new()
        .basic_auth("ada", "lovelace")
        .allow_ip("192.0.2.0/24".parse().unwrap());
    let router = axum::Router::new()
        .route(
            "/",
            get(|request: axum::extract::Request| async move {
                format!("{}", request.headers().contains_key("authorization"))
            }),
        )
        .layer(guard);
    let mut relay = FakeRelay::start("127.0.0.1:0".parse().unwrap(), accept_all()).await;
    let tunnel =
        ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp", relay.addr)).serve(router);
    tokio::spawn(tunnel);
    let mut sender = relay.next_sender().await;
    let right = basic("ada:lovelace");
    for (fields, status, body) in [
        (
            &[("x-real-ip", "192.0.2.1"), ("authorization", &right)][..],
            StatusCode::OK,
            "false",
        ),
        (
            &[("x-real-ip", "192.0.2.1")][..],
            StatusCode::UNAUTHORIZED,
            "",
        ),
        (
            &[("x-real-ip", "10.0.0.1"), ("authorization", &right)][..],
            StatusCode::FORBIDDEN,
            "",
        ),
    ] {
        let answer = call(&mut sender, fields).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, body),
            "{fields:?}"
        );
    }
}

#[tokio::test]
async fn a_guard_in_front_of_dial_judges_the_address_the_connect_names() {
    use tokio::io::AsyncWriteExt;
    within(async {
        let target = connect::echo_target().await;
        for protocol in [ptth::Protocol::Http1, ptth::Protocol::Http2] {
            let mut device = connect::device(protocol, move |transposed| {
                let guard = Guard::new().allow_ip("192.0.2.0/24".parse().unwrap());
                Box::pin(transposed.serve(guard.service(ptth::connect::Dial::new(target))))
            })
            .await;
            let from = |ip: &str| {
                let mut fields = http::HeaderMap::new();
                fields.insert("x-real-ip", ip.parse().unwrap());
                fields
            };
            let authority: http::uri::Authority = "lamp.relay.example:22".parse().unwrap();
            let outside = from("198.51.100.7");
            let refused = ptth::connect::open_with(
                &mut device.sender,
                authority.clone(),
                outside,
                connect::OPEN,
            )
            .await
            .unwrap_err();
            assert_eq!(
                refused.status(),
                Some(StatusCode::FORBIDDEN),
                "{protocol:?}"
            );
            let inside = from("192.0.2.9");
            let mut stream =
                ptth::connect::open_with(&mut device.sender, authority, inside, connect::OPEN)
                    .await
                    .unwrap();
            stream.write_all(b"let in").await.unwrap();
            stream.shutdown().await.unwrap();
            assert_eq!(
                connect::read_to_end_or_error(&mut stream).await.unwrap(),
                b"let in"
            );
        }
    })
    .await;
}
