//! What `serve` and `expose` log, read from their stderr as a script or
//! journald would: one line per request on each side, plain text when
//! stderr is no terminal, the level from `-q` or `RUST_LOG`, JSON on
//! request, and a sentence when the origin is down.

use std::process::Stdio;

use crate::support::binary::{self, Log, announced};
use crate::support::pebble::free_port;
use crate::support::{Reply, describe, get, http1_origin};
use http::StatusCode;
use hyper::service::service_fn;

/// `serve` on loopback with `extra` flags and `env`: its URL and log.
async fn serve(extra: &[&str], env: &[(&str, &str)]) -> (tokio::process::Child, Log, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend(extra);
    let mut child = binary::run_with(&args, Stdio::piped(), env);
    let log = Log::of(&mut child);
    let line = announced(&mut child).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    (child, log, url)
}

/// `expose` of `name` on `relay` to `to`, once it is up.
async fn expose(relay: &str, name: &str, to: &str) -> (tokio::process::Child, Log) {
    let args = [
        "expose", "--relay", relay, "--name", name, "--token", "t", "--to", to,
    ];
    let mut child = binary::run(&args, Stdio::piped());
    let log = Log::of(&mut child);
    announced(&mut child).await;
    (child, log)
}

#[tokio::test]
async fn each_side_logs_one_plain_line_per_request_and_says_when_the_origin_is_down() {
    let (_serve, mut relay_log, url) = serve(&[], &[]).await;
    let origin = format!("http://{}", http1_origin(service_fn(describe)).await);
    let (_lamp, mut lamp_log) = expose(&url, "lamp", &origin).await;
    let Reply { status, .. } = get(&format!("{url}/lamp/hello?x=1")).await;
    assert_eq!(status, StatusCode::OK);
    let line = relay_log.until(" request ").await;
    for field in [
        "client=127.0.0.1:",
        "method=GET",
        "target=/lamp/hello?x=1",
        "status=200",
        "ms=",
        "bytes=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
    let line = lamp_log.until(" request ").await;
    let origin_field = format!("origin={origin}/");
    for field in [
        "method=GET",
        "target=/lamp/hello?x=1",
        "status=200",
        &origin_field,
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }

    // An origin that is not there: a 502 in a sentence, and the reason in
    // expose's log.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_dead, mut dead_log) = expose(&url, "dead", &dead).await;
    let Reply { status, body, .. } = get(&format!("{url}/dead/")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_GATEWAY,
            "the origin behind this name is down: it refused the connection\n"
        )
    );
    let line = dead_log.until("the origin is down").await;
    assert!(line.contains("it refused the connection"), "{line}");
}

#[tokio::test]
async fn the_level_comes_from_q_or_rust_log_and_json_is_one_object_a_line() {
    for (extra, env) in [
        (&["-q"][..], &[][..]),
        (&[][..], &[("RUST_LOG", "warn")][..]),
    ] {
        let (mut serve, mut log, url) = serve(extra, env).await;
        get(&format!("{url}/nobody/")).await;
        serve.start_kill().unwrap();
        let rest = log.rest().await;
        assert!(!rest.contains(" request "), "{extra:?} {env:?}: {rest}");
    }
    let (mut serve, mut log, url) = serve(&["--log-format", "json"], &[]).await;
    let Reply { status, .. } = get(&format!("{url}/nobody/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let line = log.until("\"request\"").await;
    serve.start_kill().unwrap();
    let object: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(object["level"], "INFO");
    assert_eq!(object["fields"]["method"], "GET");
    assert_eq!(object["fields"]["status"], 404);
}

/// Runs `ptth-relay ARGS` to its end, which must be a failure; its last
/// line on stderr.
async fn failed_with(args: &[&str]) -> String {
    let output = crate::support::within(binary::run(args, Stdio::piped()).wait_with_output())
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.lines().last().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_refused_claim_ends_expose_with_the_relay_s_reason() {
    let (_serve, _log, url) = serve(&["--name", "lamp=s3cret"], &[]).await;
    let args = [
        "expose",
        "--relay",
        &url,
        "--name",
        "lamp",
        "--token",
        "guess",
        "--to",
        "http://127.0.0.1:9",
    ];
    assert_eq!(
        failed_with(&args).await,
        "ptth-relay: the peer refused the credentials (403 Forbidden): \
         the name \"lamp\" is taken or closed to this token"
    );
}

#[tokio::test]
async fn expose_with_https_against_a_plain_relay_stops_at_once_and_says_why() {
    let (_serve, _log, url) = serve(&[], &[]).await;
    let https = url.replace("http://", "https://");
    let args = [
        "expose",
        "--relay",
        &https,
        "--name",
        "lamp",
        "--to",
        "http://127.0.0.1:9",
    ];
    let authority = url.strip_prefix("http://").unwrap();
    assert_eq!(
        failed_with(&args).await,
        format!("ptth-relay: {authority} does not speak TLS: its URL is http://, not https://")
    );
}
