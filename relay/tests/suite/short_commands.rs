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

/// An HTTPS origin on loopback for `localhost`, serving `describe`; its
/// port and its certificate's PEM file.
async fn https_origin(dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = dir.join("origin.pem");
    std::fs::write(&pem, certified.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service_fn(describe))
                    .await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn an_https_origin_is_reached_with_its_ca_and_sees_its_own_host_if_asked() {
    let dir = crate::support::pebble::scratch("https-origin");
    let (port, pem) = https_origin(&dir).await;
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let to = format!("https://localhost:{port}");
    for (name, host_header, host) in [
        (
            "kept",
            "keep",
            url.strip_prefix("http://").unwrap().to_owned(),
        ),
        ("rewritten", "rewrite", format!("localhost:{port}")),
    ] {
        let args = [
            "expose",
            "--relay",
            &url,
            "--name",
            name,
            "--to",
            &to,
            "--to-ca",
            pem.to_str().unwrap(),
            "--host-header",
            host_header,
        ];
        let mut expose = binary::run(&args, Stdio::null());
        announced(&mut expose).await;
        let Reply { status, body, .. } = get(&format!("{url}/{name}/x")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // `x-forwarded-host: ...` ends the same way: whole lines only.
        assert!(
            body.lines().any(|line| line == format!("host: {host}")),
            "{host_header}: {body}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn strip_prefix_is_the_choice_of_the_name_whose_claim_asked_for_it() {
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let port = http1_origin(service_fn(describe)).await.port().to_string();
    let mut exposed = Vec::new();
    for (name, strip) in [("stripped", true), ("kept", false)] {
        let mut args = vec!["expose", &port, "--relay", &url, "--name", name];
        if strip {
            args.push("--strip-prefix");
        }
        let mut expose = binary::run(&args, Stdio::null());
        announced(&mut expose).await;
        exposed.push(expose);
    }
    for (target, seen) in [
        ("/stripped/hello.txt?x=1", "GET /hello.txt?x=1\n"),
        ("/stripped", "GET /\n"),
        ("/stripped?x", "GET /?x\n"),
        ("/kept/hello.txt", "GET /kept/hello.txt\n"),
    ] {
        let Reply { status, body, .. } = get(&format!("{url}{target}")).await;
        assert_eq!(status, StatusCode::OK, "{target}");
        assert!(body.starts_with(seen), "{target}: {body}");
    }
}

/// A fresh directory holding `ptth-relay/expose.toml` with `text`, mode
/// `mode`; the directory, to be `XDG_CONFIG_HOME`, and the file.
fn config_dir(text: &str, mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::support::pebble::scratch("expose-config");
    let file = dir.join("ptth-relay").join("expose.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, file)
}

#[tokio::test]
async fn the_relay_name_and_token_come_from_a_config_file_and_flags_win() {
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let port = http1_origin(service_fn(describe)).await.port().to_string();
    let text = format!("relay = \"{url}\"\nname = \"desk\"\ntoken = \"t1\"\nstrip-prefix = true\n");
    let (dir, file) = config_dir(&text, 0o600);
    let xdg = [("XDG_CONFIG_HOME", dir.to_str().unwrap())];
    // The default file, found under XDG_CONFIG_HOME.
    let mut expose = binary::run_with(&["expose", &port], Stdio::null(), &xdg);
    assert_eq!(
        announced(&mut expose).await,
        format!("public URL: {url}/desk/")
    );
    let Reply { body, .. } = get(&format!("{url}/desk/hello")).await;
    assert!(body.starts_with("GET /hello\n"), "{body}");
    // The file's token holds the name: another run of it joins.
    let named = ["expose", &port, "--config", file.to_str().unwrap()];
    let mut joined = binary::run(&named, Stdio::null());
    assert_eq!(
        announced(&mut joined).await,
        format!("public URL: {url}/desk/")
    );
    // A flag wins over the file.
    let flagged = ["expose", &port, "--name", "den", "--token", "t2"];
    let mut flagged = binary::run_with(&flagged, Stdio::null(), &xdg);
    assert_eq!(
        announced(&mut flagged).await,
        format!("public URL: {url}/den/")
    );
}

#[tokio::test]
async fn a_token_in_a_file_others_may_read_is_warned_of_and_a_missing_file_is_an_error() {
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    // An invalid name ends the run at once, with the file read.
    let text = format!("relay = \"{url}\"\nname = \"Not_A_Name\"\ntoken = \"t\"\n");
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        let (_, file) = config_dir(&text, mode);
        let args = ["expose", "3000", "--config", file.to_str().unwrap()];
        let mut expose = binary::run(&args, Stdio::piped());
        let stderr = binary::Log::of(&mut expose).rest().await;
        assert_eq!(
            stderr.contains("others may read it"),
            warned,
            "{mode:o}: {stderr}"
        );
    }
    let missing = ["expose", "3000", "--config", "/nonexistent/expose.toml"];
    let mut expose = binary::run(&missing, Stdio::piped());
    let stderr = binary::Log::of(&mut expose).rest().await;
    assert!(
        stderr.contains("/nonexistent/expose.toml: No such file"),
        "{stderr}"
    );
}
