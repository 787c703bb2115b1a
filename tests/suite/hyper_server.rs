//! PTTH accepted inside an ordinary hyper server with `ptth::upgrade::accept`.
//!
//! The acceptor here is a hyper server that reads the upgrade request
//! itself. Its service decides (an `Authorization` check stands in for real
//! policy), calls `accept`, answers with the `101` it returns, and hands the
//! `Pending` to a task that calls the initiator back once hyper has given up
//! the connection. That task reports what it saw over a channel, which is
//! how the test learns what happened inside the server.

use crate::support;
use std::convert::Infallible;
use std::net::SocketAddr;

use crate::support::{listener, within};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HeaderValue, UPGRADE, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ptth::upgrade::Pending;
use ptth::{Dialect, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The credentials the server's policy asks for.
const TOKEN: &str = "Bearer let-me-in";

/// What the server's service did with one upgrade request.
#[derive(Debug)]
enum Outcome {
    /// Refused by the policy, before PTTH looked at it.
    Unauthorized,
    /// Refused by `ptth::upgrade::accept`.
    Rejected(ptth::Error),
    /// Upgraded; the call-back task's result.
    CalledBack(Result<CallBack, ptth::Error>),
}

/// What the server saw after switching: the upgrade request's body, the
/// protocol of the transposed connection, and each reversed response as
/// `STATUS BODY`.
#[derive(Debug)]
struct CallBack {
    upgrade_body: Bytes,
    protocol: Protocol,
    answers: Vec<String>,
}

/// Which hyper server reads the upgrade request.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// `hyper::server::conn::http1` with `.with_upgrades()`.
    Http1,
    /// hyper-util's auto (HTTP/1.1 or HTTP/2) builder with upgrades, as
    /// axum serves.
    Auto,
}

/// The reversed requests the server sends, and the body of each.
const REQUESTS: [(Method, &str, &str); 2] = [
    (Method::GET, "/hello", ""),
    (Method::POST, "/echo", "ping from the server"),
];

/// The server's service. The upgrade request's body is read before
/// answering, as `accept`'s documentation asks (after the head, the bytes on
/// the socket belong to the transposed connection), and is reported so the
/// test can check it arrived whole.
async fn upgrade_service(
    acceptor: ptth::acceptor::Builder,
    outcomes: mpsc::UnboundedSender<Outcome>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.headers().get(AUTHORIZATION).map(|v| v.as_bytes()) != Some(TOKEN.as_bytes()) {
        let _ = outcomes.send(Outcome::Unauthorized);
        return Ok(unauthorized());
    }
    // The parts keep hyper's upgrade handle in their extensions, so the
    // request can be rebuilt around the collected body and still upgrade.
    let (parts, body) = request.into_parts();
    let upgrade_body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let mut request = Request::from_parts(parts, Empty::<Bytes>::new());
    match ptth::upgrade::accept::<Full<Bytes>, _>(&acceptor, &mut request) {
        Ok((switching, pending)) => {
            tokio::spawn(async move {
                let _ = outcomes.send(Outcome::CalledBack(call_back(pending, upgrade_body).await));
            });
            Ok(switching)
        }
        Err(rejection) => {
            let _ = outcomes.send(Outcome::Rejected(rejection.error));
            Ok(rejection.response)
        }
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"who are you?\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// Runs once hyper has sent the `101`: sends `REQUESTS` to the initiator in
/// turn, then hangs up and waits for the connection to finish.
async fn call_back(
    pending: Pending<Full<Bytes>>,
    upgrade_body: Bytes,
) -> Result<CallBack, ptth::Error> {
    let (mut sender, connection) = pending.await?;
    let protocol = sender.protocol();
    let driver = tokio::spawn(connection);
    let mut answers = Vec::new();
    for (method, path, body) in REQUESTS {
        let request = support::request(method.as_str(), path, body);
        let (status, body) = support::try_exchange(&mut sender, request).await?;
        answers.push(format!(
            "{} {}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ));
    }
    drop(sender);
    driver.await.expect("driver task")?;
    Ok(CallBack {
        upgrade_body,
        protocol,
        answers,
    })
}

/// Serves one connection from `listener` with the chosen hyper server, and
/// the PTTH service behind it.
async fn serve_one(
    listener: TcpListener,
    server: Server,
    acceptor: ptth::acceptor::Builder,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    let (tcp, _) = listener.accept().await.expect("accept");
    let io = TokioIo::new(tcp);
    let service =
        service_fn(move |request| upgrade_service(acceptor.clone(), outcomes.clone(), request));
    match server {
        Server::Http1 => hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await
            .expect("hyper http1 server"),
        Server::Auto => hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(io, service)
            .await
            .expect("hyper-util auto server"),
    }
}

/// A server for one connection, running on a free loopback port.
struct Running {
    addr: SocketAddr,
    /// What the service did, one report per upgrade request.
    reports: mpsc::UnboundedReceiver<Outcome>,
    /// The hyper connection; it panics if hyper reports an error.
    server: JoinHandle<()>,
}

impl Running {
    /// The next report from the service.
    async fn report(&mut self) -> Outcome {
        self.reports.recv().await.expect("a report from the server")
    }

    /// Waits for hyper's connection to end, and fails if it ended badly.
    async fn finished(self) {
        self.server
            .await
            .expect("the hyper connection ends cleanly");
    }
}

async fn start(server: Server, acceptor: ptth::acceptor::Builder) -> Running {
    let (listener, addr) = listener().await;
    let (outcomes, reports) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve_one(listener, server, acceptor, outcomes));
    Running {
        addr,
        reports,
        server,
    }
}

/// The initiator: dial, upgrade, then serve `support::describe` until the server
/// hangs up. Returns the protocol the handshake chose.
async fn initiate(
    addr: SocketAddr,
    builder: ptth::initiator::Builder,
) -> Result<Protocol, ptth::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let transposed = builder.handshake(tcp).await?;
    let protocol = transposed.protocol();
    transposed.serve(service_fn(support::describe)).await?;
    Ok(protocol)
}

/// An initiator with the credentials the policy wants and an upgrade body.
fn authorized(dialect: Dialect, alpn: &[Protocol]) -> ptth::initiator::Builder {
    ptth::initiator::Builder::new()
        .uri("/reverse")
        .dialect(dialect)
        .protocols(alpn.iter().copied())
        .header(AUTHORIZATION, HeaderValue::from_static(TOKEN))
        .body("device=7")
}

/// One whole round: upgrade through `server`, two reversed requests, and a
/// clean end on both sides.
async fn round_trip(server: Server, dialect: Dialect, alpn: &[Protocol], expected: Protocol) {
    let mut running = start(server, ptth::acceptor::Builder::new()).await;
    let initiator = tokio::spawn(initiate(running.addr, authorized(dialect, alpn)));

    let outcome = running.report().await;
    let Outcome::CalledBack(called) = outcome else {
        panic!("expected an upgrade, got {outcome:?}");
    };
    let called = called.expect("the call-back");
    assert_eq!(called.upgrade_body, "device=7");
    assert_eq!(called.protocol, expected);
    let version = match expected {
        Protocol::Http2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    assert_eq!(
        called.answers,
        [
            format!("200 {version} GET /hello "),
            format!("200 {version} POST /echo ping from the server"),
        ]
    );

    let served = initiator
        .await
        .expect("initiator task")
        .expect("the initiator upgrades and serves until hung up on");
    assert_eq!(served, expected);
    // hyper's part ended when it handed the connection over.
    running.finished().await;
}

// (a) hyper's HTTP/1.1 server with upgrades.

#[tokio::test]
async fn http1_server_legacy() {
    within(round_trip(
        Server::Http1,
        Dialect::Legacy,
        &[],
        Protocol::Http1,
    ))
    .await;
}

#[tokio::test]
async fn http1_server_current_h1() {
    within(round_trip(
        Server::Http1,
        Dialect::Current,
        &[Protocol::Http1],
        Protocol::Http1,
    ))
    .await;
}

#[tokio::test]
async fn http1_server_current_h2() {
    within(round_trip(
        Server::Http1,
        Dialect::Current,
        &[Protocol::Http2, Protocol::Http1],
        Protocol::Http2,
    ))
    .await;
}

// (b) hyper-util's auto server with upgrades.

#[tokio::test]
async fn auto_server_legacy() {
    within(round_trip(
        Server::Auto,
        Dialect::Legacy,
        &[],
        Protocol::Http1,
    ))
    .await;
}

#[tokio::test]
async fn auto_server_current_h1() {
    within(round_trip(
        Server::Auto,
        Dialect::Current,
        &[Protocol::Http1],
        Protocol::Http1,
    ))
    .await;
}

#[tokio::test]
async fn auto_server_current_h2() {
    within(round_trip(
        Server::Auto,
        Dialect::Current,
        &[Protocol::Http2, Protocol::Http1],
        Protocol::Http2,
    ))
    .await;
}

// (c) Refusals, by the application and by PTTH.

/// The application's own policy refuses: the initiator gets its 401 whole.
#[tokio::test]
async fn policy_refusal_is_declined_with_status_and_body() {
    within(async {
        let mut running = start(Server::Http1, ptth::acceptor::Builder::new()).await;
        let anonymous = ptth::initiator::Builder::new().uri("/reverse");

        let error = initiate(running.addr, anonymous)
            .await
            .expect_err("no credentials, no upgrade");
        let ptth::Error::Declined(declined) = error else {
            panic!("expected Declined, got {error:?}");
        };
        assert_eq!(declined.status, StatusCode::UNAUTHORIZED);
        assert_eq!(declined.headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(declined.body, "who are you?\n");
        assert!(matches!(running.report().await, Outcome::Unauthorized));
        running.finished().await;
    })
    .await;
}

/// A well-formed PTTH request that this server cannot take (a dialect it
/// turned off, or no protocol in common) is refused by `accept` with a 426,
/// which a normally configured initiator sees as `Declined`.
#[tokio::test]
async fn unacceptable_ptth_request_is_declined_with_426() {
    within(async {
        let no_legacy = ptth::acceptor::Builder::new().dialects([Dialect::Current]);
        let only_h1 = ptth::acceptor::Builder::new().protocols([Protocol::Http1]);
        let cases = [
            (no_legacy, authorized(Dialect::Legacy, &[])),
            (only_h1, authorized(Dialect::Current, &[Protocol::Http2])),
        ];
        for (acceptor, initiator) in cases {
            let mut running = start(Server::Http1, acceptor).await;
            let error = initiate(running.addr, initiator)
                .await
                .expect_err("the server cannot take this upgrade");
            let declined = error.declined().expect("a Declined error");
            assert_eq!(declined.status, StatusCode::UPGRADE_REQUIRED);
            assert_eq!(declined.headers[UPGRADE], "ptth, PTTH/1.0");
            assert!(
                declined.body.starts_with(b"PTTH upgrade required"),
                "{:?}",
                declined.body
            );
            let report = running.report().await;
            assert!(
                matches!(
                    report,
                    Outcome::Rejected(
                        ptth::Error::UnsupportedProtocol { .. }
                            | ptth::Error::NoCommonProtocol { .. }
                    )
                ),
                "{report:?}"
            );
            running.finished().await;
        }
    })
    .await;
}

/// Writes `request` on a fresh connection and reads the whole answer; the
/// refusals here say `Connection: close`, so the server ends the stream.
async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    String::from_utf8(answer).expect("UTF-8 answer")
}

/// The status code on an answer's status line.
fn status_code(answer: &str) -> &str {
    let line = answer.lines().next().unwrap_or_default();
    line.split_whitespace().nth(1).unwrap_or_default()
}

/// A WebSocket upgrade reaching the PTTH endpoint is no PTTH request:
/// `accept` refuses it and the client reads `426` with the PTTH offer.
#[tokio::test]
async fn websocket_upgrade_gets_426() {
    within(async {
        let mut running = start(Server::Http1, ptth::acceptor::Builder::new()).await;
        let answer = raw_exchange(
            running.addr,
            &format!(
                "GET /reverse HTTP/1.1\r\nHost: localhost\r\nAuthorization: {TOKEN}\r\n\
                 Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status_code(&answer), "426", "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("upgrade: ptth, ptth/1.0"),
            "{answer}"
        );
        let report = running.report().await;
        assert!(
            matches!(
                &report,
                Outcome::Rejected(ptth::Error::UnsupportedProtocol { offered })
                    if offered == "websocket"
            ),
            "{report:?}"
        );
        running.finished().await;
    })
    .await;
}

// (d) HTTP/1.0 cannot upgrade.

/// An HTTP/1.0 request naming `Upgrade: ptth` is refused by `accept` (hyper
/// would not switch it either): `426`, never `101`.
#[tokio::test]
async fn http10_upgrade_request_is_not_upgraded() {
    within(async {
        let mut running = start(Server::Http1, ptth::acceptor::Builder::new()).await;
        let answer = raw_exchange(
            running.addr,
            &format!(
                "GET /reverse HTTP/1.0\r\nHost: localhost\r\nAuthorization: {TOKEN}\r\n\
                 Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2, http%2F1.1\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status_code(&answer), "426", "{answer}");
        assert!(!answer.contains(" 101 "), "{answer}");
        let report = running.report().await;
        assert!(
            matches!(report, Outcome::Rejected(ptth::Error::NotUpgrade(_))),
            "{report:?}"
        );
        running.finished().await;
    })
    .await;
}

/// A hyper server without `.with_upgrades()` answers the `101` but never
/// hands the connection over: the switch fails with an error that says
/// what to change, not with hyper's bare "operation was canceled".
#[tokio::test]
async fn a_server_without_upgrades_is_named_as_the_cause() {
    within(async {
        let (listener, addr) = listener().await;
        let (reports, mut switched) = mpsc::unbounded_channel();
        let service = support::switching_service(reports);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let io = TokioIo::new(tcp);
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        });
        let initiator = tokio::spawn(initiate(addr, ptth::initiator::Builder::new()));
        let error = switched.recv().await.unwrap().unwrap_err();
        assert!(matches!(error, ptth::Error::NotHandedOver(_)), "{error:?}");
        assert!(
            error.to_string().contains("serve it with upgrades enabled"),
            "{error}"
        );
        initiator.abort();
        server.abort();
    })
    .await;
}
