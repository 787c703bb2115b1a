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

/// `expose PORT --token TOKEN`'s public URL, announced on the relay at
/// `relay`.
async fn exposed(relay: &str, port: &str, token: &str) -> (tokio::process::Child, String) {
    let args = ["expose", port, "--relay", relay, "--token", token];
    let mut expose = binary::run(&args, Stdio::null());
    let line = announced(&mut expose).await;
    let url = line.strip_prefix("public URL: ").unwrap().to_owned();
    (expose, url)
}

#[tokio::test]
async fn without_a_name_the_relay_gives_one_that_stays_with_the_token() {
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let port = http1_origin(service_fn(describe)).await.port().to_string();
    let (first, public) = exposed(&url, &port, "device-one").await;
    let name = public
        .strip_prefix(&format!("{url}/"))
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{public}"));
    let words: Vec<&str> = name.split('-').collect();
    assert!(
        words.len() == 3 && words[2].parse::<u16>().is_ok(),
        "not adjective-noun-number: {name}"
    );
    let Reply { status, body, .. } = get(&format!("{public}hello")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(&format!("GET /{name}/hello\n")), "{body}");
    // Another run with the token gets the name back; another token, another.
    drop(first);
    let (_again, again) = exposed(&url, &port, "device-one").await;
    assert_eq!(again, public);
    let (_other, other) = exposed(&url, &port, "device-two").await;
    assert_ne!(other, public);
}
