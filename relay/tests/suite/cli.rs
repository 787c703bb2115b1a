//! The binary as scripts use it: `serve` and `expose` announce one line on
//! stdout, a local origin becomes reachable at the public URL, and `serve`
//! exits 0 on SIGTERM.

use crate::support;
use std::convert::Infallible;
use std::process::Stdio;

use crate::support::binary::{self, announced};
use crate::support::{Reply, get, within};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::process::{Child, Command};

fn relay_command(args: &[&str]) -> Child {
    binary::run(args, Stdio::null())
}

/// A local HTTP/1.1 server that answers `origin saw METHOD TARGET BODY`.
async fn origin() -> std::net::SocketAddr {
    support::http1_origin(service_fn(|request: Request<Incoming>| async move {
        let line = format!("origin saw {} {} ", request.method(), request.uri());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut text = line.into_bytes();
        text.extend_from_slice(&body);
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    }))
    .await
}

#[tokio::test]
async fn expose_makes_a_local_origin_public_through_serve() {
    let mut serve = relay_command(&["serve", "--listen", "127.0.0.1:0"]);
    let line = announced(&mut serve).await;
    let relay = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    let origin = origin().await;
    for (name, extra) in [
        ("lamp", None),
        ("fan", Some("--h1")),
        ("bell", Some("--http2-setup")),
    ] {
        let origin_url = format!("http://{origin}");
        let mut args = vec![
            "expose",
            "--relay",
            &relay,
            "--name",
            name,
            "--token",
            "t",
            "--to",
            &origin_url,
        ];
        args.extend(extra);
        let mut expose = relay_command(&args);
        let line = announced(&mut expose).await;
        assert_eq!(line, format!("public URL: {relay}/{name}/"));
        let Reply { status, body, .. } = get(&format!("{relay}/{name}/x?y=1")).await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::OK,
                format!("origin saw GET /{name}/x?y=1 ").as_str()
            )
        );
        let post = Request::post(format!("{relay}/{name}/echo"))
            .body(Full::new(Bytes::from_static(b"ping")))
            .unwrap();
        let Reply { status, body, .. } = support::send(post).await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::OK,
                format!("origin saw POST /{name}/echo ping").as_str()
            )
        );
        expose.kill().await.unwrap();
    }
    binary::signal(&serve, "TERM");
    let exit = within(serve.wait()).await.unwrap();
    assert!(exit.success(), "serve exited with {exit}");
}

#[tokio::test]
async fn serve_refuses_bad_settings_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_ptth-relay"))
        .args(["serve", "--routing", "host"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--domain"), "{stderr}");
}
