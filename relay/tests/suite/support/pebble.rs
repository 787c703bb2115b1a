//! Debian's `pebble`, Let's Encrypt's ACME test server, with
//! `pebble-challtestsrv` as its DNS (every name is 127.0.0.1), validating
//! TLS-ALPN-01 for real on the port under test. A test that needs it
//! fails when it cannot start it.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;

use super::binary::Log;
use super::within;

/// A port the system just handed out and took back, for a server that
/// must be told its port before it starts (pebble's config; the port
/// pebble validates on).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct such ports: all held at once before they are given back,
/// so the system cannot hand out one twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners = [(); N].map(|()| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|listener| listener.local_addr().unwrap().port())
}

/// pebble and its DNS, running until dropped.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS, PEM, for `--acme-ca`.
    pub ca: PathBuf,
    /// pebble's log: orders, validations, issuance.
    pub log: Log,
    management: SocketAddr,
    ca_der: CertificateDer<'static>,
    dir: PathBuf,
    _children: [Child; 2],
}

impl Pebble {
    /// Starts pebble validating TLS-ALPN-01 on `tls_port`. Its own ports
    /// are free when picked, not when it binds them: a test beside this
    /// one may take one first, so a start that stops early picks others.
    pub async fn start(tls_port: u16) -> Pebble {
        for _ in 0..3 {
            if let Some(pebble) = Pebble::try_start(tls_port).await {
                return pebble;
            }
        }
        panic!("pebble did not start in three tries");
    }

    async fn try_start(tls_port: u16) -> Option<Pebble> {
        let dir =
            std::env::temp_dir().join(format!("ptth-pebble-{}", ptth_relay::token::random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ca.key_pair.serialize_pem()).unwrap();
        // Distinct from the port under test too, which is free until the
        // relay binds it.
        let [acme, management, dns, dns_management, http] = loop {
            let ports = free_ports();
            if !ports.contains(&tls_port) {
                break ports;
            }
        };
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme}",
            "managementListenAddress": "127.0.0.1:{management}",
            "certificate": "{cert}", "privateKey": "{key}",
            "httpPort": {http}, "tlsPort": {tls_port},
            "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            cert = dir.join("ca.pem").display(),
            key = dir.join("key.pem").display(),
        );
        std::fs::write(dir.join("pebble.json"), config).unwrap();
        let mut dns_server = spawn(
            "pebble-challtestsrv",
            &[
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{dns_management}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
        );
        let mut dns_log = Log::of_stdout(&mut dns_server);
        dns_log.until_or_end("Starting challenge servers").await?;
        let config = dir.join("pebble.json");
        let mut pebble = spawn(
            "pebble",
            &[
                "-config",
                config.to_str().unwrap(),
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ],
        );
        let mut log = Log::of_stdout(&mut pebble);
        log.until_or_end("ACME directory available").await?;
        Some(Pebble {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            ca: dir.join("ca.pem"),
            log,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            ca_der: ca.cert.der().clone(),
            dir,
            _children: [dns_server, pebble],
        })
    }

    /// The root pebble issues under, from its management interface: new
    /// at every start.
    pub async fn root(&self) -> CertificateDer<'static> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        // pebble logs that its management interface listens before the
        // goroutine that serves it has bound the port, and says nothing
        // when it has: a refused connection is tried again, a while.
        let tcp = within(async {
            loop {
                match TcpStream::connect(self.management).await {
                    Ok(tcp) => return tcp,
                    Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(error) => panic!("pebble's management interface: {error}"),
                }
            }
        })
        .await;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector(roots, &[b"http/1.1"])
            .connect(name, tcp)
            .await
            .unwrap();
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::get("/roots/0")
            .header("host", self.management.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = within(sender.send_request(request)).await.unwrap();
        assert_eq!(response.status(), 200, "pebble's root");
        let pem = response.into_body().collect().await.unwrap().to_bytes();
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(&pem).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{program} does not start ({error}): apt-get install pebble")
        })
}

/// A TLS client trusting `roots`, offering `alpn`.
pub fn connector(roots: RootCertStore, alpn: &[&[u8]]) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// The leaf certificate `port` serves for `host`, verified against
/// `root`, or the handshake's error.
pub async fn served(
    port: u16,
    host: &str,
    root: &CertificateDer<'static>,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let tls = within(connector(roots, &[b"http/1.1"]).connect(name, tcp)).await?;
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    Ok(certs[0].clone().into_owned())
}

/// A directory of its own under the system's temporary one.
pub fn scratch(what: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ptth-{what}-{}", ptth_relay::token::random_token()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
