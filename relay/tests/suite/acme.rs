//! Automatic HTTPS against a real ACME server (docs/relay.md, "Automatic
//! HTTPS"): the binary orders its domain's certificate from pebble at
//! start, proven by TLS-ALPN-01 on its own listener; a claimed name's
//! host gets one when a client first asks, an unclaimed one never; a
//! restart with the same cache orders nothing; a certificate inside its
//! renewal window is replaced while the relay runs.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

use crate::support::binary::{self, Log, announced};
use crate::support::pebble::{Pebble, connector, free_port, scratch, served};
use crate::support::within;

const DOMAIN: &str = "relay.test";

/// `serve` with host routing on `port`, certificates from `pebble` kept
/// in `cache`, and `config` as its config file, if any.
async fn serve(port: u16, pebble: &Pebble, cache: &Path, config: Option<&Path>) -> (Child, Log) {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve",
        "--listen",
        &listen,
        "--routing",
        "host",
        "--domain",
        DOMAIN,
        "--acme-directory",
        &pebble.directory,
        "--acme-ca",
        pebble.ca.to_str().unwrap(),
        "--acme-cache",
        cache.to_str().unwrap(),
        "--acme-email",
        "ops@relay.test",
    ];
    if let Some(config) = config {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    let mut child = binary::run(&args, Stdio::piped());
    let log = Log::of(&mut child);
    assert_eq!(
        announced(&mut child).await,
        format!("listening on https://{listen}")
    );
    (child, log)
}

/// Claims `name` by a long-poll registration over TLS.
async fn claim(port: u16, root: &CertificateDer<'static>, name: &str) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let server = ServerName::try_from(DOMAIN).unwrap();
    let mut tls = connector(roots, &[b"http/1.1"])
        .connect(server, tcp)
        .await
        .unwrap();
    let body = format!("name={name}");
    let request = format!(
        "POST /reversehttp HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = within(tls.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_pebble_for_the_domain_and_claimed_names_only() {
    let port = free_port();
    let mut pebble = Pebble::start(port).await;
    let root = pebble.root().await;
    let cache = scratch("acme-cache");

    // First start: the domain's certificate is ordered at once.
    let started = Instant::now();
    let (relay, mut log) = serve(port, &pebble, &cache, None).await;
    log.until("certificate obtained host=relay.test").await;
    let first_certificate = started.elapsed();
    let domain = served(port, DOMAIN, &root)
        .await
        .expect("the domain's certificate");
    pebble.log.until("Issued certificate").await;

    // A name nobody claimed gets no order, and no certificate.
    assert!(served(port, "nobody.relay.test", &root).await.is_err());
    // A claimed name's host gets one the first time a client asks.
    claim(port, &root, "lamp").await;
    let asked = Instant::now();
    let lamp = served(port, "lamp.relay.test", &root)
        .await
        .expect("lamp's certificate");
    let on_demand = asked.elapsed();
    assert_ne!(lamp, domain);
    log.until("certificate obtained host=lamp.relay.test").await;
    eprintln!(
        "figures: first certificate {first_certificate:?} after start, on demand {on_demand:?}"
    );
    drop(relay);
    let lines = log.rest().await;
    assert!(!lines.contains("nobody"), "{lines}");

    // A restart with the same cache serves what it kept and orders nothing.
    let (relay, mut log) = serve(port, &pebble, &cache, None).await;
    let checked = log.until("certificates checked").await;
    assert!(checked.contains("due=0"), "{checked}");
    assert_eq!(served(port, DOMAIN, &root).await.unwrap(), domain);
    assert_eq!(served(port, "lamp.relay.test", &root).await.unwrap(), lamp);
    drop(relay);
    assert!(!log.rest().await.contains("ordering"), "a restart ordered");

    // Inside the renewal window (longer than pebble's 5-year leaves), a
    // certificate is replaced while the relay runs.
    let config = cache.join("renew.toml");
    std::fs::write(
        &config,
        "[acme]\nrenew-before = 200000000\nrenew-check = 1\n",
    )
    .unwrap();
    let (relay, mut log) = serve(port, &pebble, &cache, Some(&config)).await;
    log.until("certificate obtained host=relay.test").await;
    let renewed = served(port, DOMAIN, &root).await.unwrap();
    assert_ne!(renewed, domain, "the certificate was not replaced");
    drop(relay);
    std::fs::remove_dir_all(&cache).unwrap();
}
