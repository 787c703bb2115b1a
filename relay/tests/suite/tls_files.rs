//! `serve --tls-cert/--tls-key` with the binary: the files are read again
//! on SIGHUP and when they change on disk, connections already open go on,
//! and `expose --relay-ca` reaches a relay whose certificate no public CA
//! signed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rcgen::CertifiedKey;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::binary::{self, Log, announced};
use crate::support::pebble::{connector, scratch};
use crate::support::within;
use ptth_relay::cli::ExposeArgs;

/// Writes `certified` as `dir`'s key and certificate files, key first.
fn install(dir: &Path, certified: &CertifiedKey) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    (cert, key)
}

/// A TLS connection to `port` as `localhost`, trusting both certificates.
async fn dial(port: u16, roots: &RootCertStore) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    within(connector(roots.clone(), &[b"http/1.1"]).connect(name, tcp))
        .await
        .unwrap()
}

fn leaf(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// A GET on `tls`, kept alive; the status line.
async fn get(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let request = "GET /nobody/ HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut read = vec![0; 4096];
    let n = within(tls.read(&mut read)).await.unwrap();
    let answer = String::from_utf8_lossy(&read[..n]).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn tls_files_are_read_again_on_sighup_and_on_change_and_open_connections_go_on() {
    let names = || vec!["localhost".to_owned()];
    let [first, second] = [(); 2].map(|()| rcgen::generate_simple_self_signed(names()).unwrap());
    let mut roots = RootCertStore::empty();
    roots.add(first.cert.der().clone()).unwrap();
    roots.add(second.cert.der().clone()).unwrap();
    let dir = scratch("tls-files");
    let (cert, key) = install(&dir, &first);
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut serve = binary::run(&args, Stdio::piped());
    let mut log = Log::of(&mut serve);
    let line = announced(&mut serve).await;
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let mut open = dial(port, &roots).await;
    assert_eq!(leaf(&open), *first.cert.der());
    assert!(get(&mut open).await.ends_with("404 Not Found"));

    // SIGHUP: new handshakes get the new pair; the open connection goes on.
    install(&dir, &second);
    binary::signal(&serve, "HUP");
    log.until("TLS files reloaded").await;
    assert_eq!(leaf(&dial(port, &roots).await), *second.cert.der());
    assert!(get(&mut open).await.ends_with("404 Not Found"));

    // A change on disk is noticed without a signal.
    install(&dir, &first);
    log.until("TLS files reloaded").await;
    assert_eq!(leaf(&dial(port, &roots).await), *first.cert.der());

    // expose trusts the relay's certificate through --relay-ca.
    let origin =
        crate::support::http1_origin(hyper::service::service_fn(crate::support::describe)).await;
    let (announce, announced_url) = tokio::sync::oneshot::channel();
    let args = ExposeArgs {
        relay: vec![format!("https://localhost:{port}")],
        name: Some("lamp".into()),
        token: Some("t".into()),
        to: Some(format!("http://{origin}")),
        relay_ca: Some(cert.clone()),
        ..ExposeArgs::default()
    };
    tokio::spawn(ptth_relay::expose::run(args, move |url| {
        let _ = announce.send(url);
    }));
    let url = within(announced_url).await.unwrap();
    assert_eq!(url, format!("https://localhost:{port}/lamp/"));
    std::fs::remove_dir_all(&dir).unwrap();
}
