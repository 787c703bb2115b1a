//! `serve` over TLS: peers claim names with `https` (by upgrade, and by
//! extended CONNECT over HTTP/2), and the public reaches them over TLS,
//! here with HTTP/2 chosen by ALPN.

use crate::support;
use std::sync::Arc;

use crate::support::{connected, within};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ptth_relay::server::Server;
use ptth_relay::{Relay, Settings};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

#[tokio::test]
async fn peers_and_the_public_come_in_over_tls() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ptth-relay-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let acceptor = ptth_relay::tls::acceptor(&cert, &key).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let relay = Relay::new(Settings::default());
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), relay)
        .await
        .unwrap()
        .tls(acceptor);
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.run(std::future::pending()));

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = |alpn: &[&[u8]]| {
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    };

    let tunnel =
        ptth::tunnel::Builder::new(format!("https://localhost:{port}/reversehttp/lamp?token=t"))
            .initiator(ptth::initiator::Builder::new().tls_config(client(&[b"http/1.1"])))
            .serve(service_fn(support::describe));
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    let status = connected(&handle, 1).await;
    assert_eq!(
        status.public_url.unwrap(),
        format!("https://localhost:{port}/lamp/").as_str()
    );

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(client(&[b"h2"]));
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("https://localhost:{port}/lamp/over-tls"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET /lamp/over-tls\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");

    // A peer setting its channels up over HTTP/2, h2 chosen at the TLS
    // layer, answers on the same public connection.
    let tunnel =
        ptth::tunnel::Builder::new(format!("https://localhost:{port}/reversehttp/fan?token=t"))
            .initiator(ptth::initiator::Builder::new().tls_config(client(&[])))
            .setup(ptth::Setup::Http2)
            .serve(service_fn(support::describe));
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    connected(&handle, 1).await;
    let request = Request::get(format!("https://localhost:{port}/fan/spin"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"GET /fan/spin\n"));
}
