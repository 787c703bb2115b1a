//! Nodes that serve TLS reach each other over TLS: the hop is HTTP/2 chosen
//! by ALPN, checked against the cluster's roots.

use crate::support;
use std::sync::Arc;

use crate::support::etcd::Etcd;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ptth_relay::Relay;
use ptth_relay::cluster::{Cluster, Settings};
use ptth_relay::server::Server;
use rustls::{ClientConfig, RootCertStore};

#[tokio::test]
async fn the_hop_between_tls_nodes_is_tls() {
    let etcd = Etcd::start();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ptth-cluster-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let trust = ptth_relay::tls::client(&cert).unwrap();
    support::within(async {
        let mut nodes = Vec::new();
        for id in ["a", "b"] {
            let relay = Relay::new(ptth_relay::Settings::default());
            let acceptor = ptth_relay::tls::acceptor(&cert, &key).unwrap();
            let server = Server::bind("127.0.0.1:0".parse().unwrap(), relay.clone())
                .await
                .unwrap()
                .tls(acceptor);
            let port = server.local_addr().unwrap().port();
            let mut settings = Settings::new(
                vec![etcd.endpoint.clone()],
                id,
                &format!("https://localhost:{port}"),
            );
            settings.tls = Some(trust.clone());
            let cluster = Cluster::join(settings).await.unwrap();
            relay.attach_cluster(cluster.clone());
            tokio::spawn(server.run(std::future::pending::<()>()));
            nodes.push((port, cluster));
        }
        let mut roots = RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut device_tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        device_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tunnel = ptth::tunnel::Builder::new(format!(
            "https://localhost:{}/reversehttp/lamp?token=t",
            nodes[0].0
        ))
        .initiator(ptth::initiator::Builder::new().tls_config(Arc::new(device_tls)))
        .serve(service_fn(support::describe));
        let device = tunnel.handle();
        tokio::spawn(tunnel);
        support::connected(&device, 1).await;
        nodes[1]
            .1
            .wait_until(|table| {
                table
                    .get("lamp")
                    .is_some_and(|lamp| !lamp.owners.is_empty())
            })
            .await;

        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*trust).clone())
            .https_only()
            .enable_http1()
            .build();
        let public: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let request = Request::get(format!("https://localhost:{}/lamp/secret", nodes[1].0))
            .body(Full::default())
            .unwrap();
        let response = public.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("GET /lamp/secret\n"), "{body}");
        // It hopped (the owner kept node b's chain); the mark stays
        // between the nodes.
        assert!(
            body.contains("x-forwarded-for: 127.0.0.1, 127.0.0.1\n"),
            "{body}"
        );
        assert!(!body.contains("ptth-relay-hop"), "{body}");
        assert!(body.contains("x-forwarded-proto: https"), "{body}");
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}
