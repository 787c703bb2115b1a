//! The everyday path, typed as a new user would: `expose PORT` with the
//! relay from `PTTH_RELAY`, written without a scheme.

use std::process::Stdio;

use crate::support::binary::{self, announced};
use crate::support::{Reply, describe, get, http1_origin};
use http::StatusCode;
use hyper::service::service_fn;

#[tokio::test]
async fn expose_a_port_on_the_relay_named_in_the_environment() {
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let relay = url.strip_prefix("http://").unwrap();
    let port = http1_origin(service_fn(describe)).await.port().to_string();
    let args = ["expose", &port, "--name", "lamp"];
    let mut expose = binary::run_with(&args, Stdio::null(), &[("PTTH_RELAY", relay)]);
    assert_eq!(
        announced(&mut expose).await,
        format!("public URL: {url}/lamp/")
    );
    let Reply { status, body, .. } = get(&format!("{url}/lamp/hello")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("GET /lamp/hello\n"), "{body}");
}
