//! The whole PTTH exchange over TLS on loopback.
//!
//! TLS roles never swap: the initiator dials and is the TLS *client*, the
//! acceptor is the TLS *server*. Only the HTTP roles reverse, inside the
//! encrypted stream. PTTH chooses the transposed protocol with its own
//! `ALPN` header, so at the TLS layer the initiator offers no ALPN (when it
//! does TLS itself) or only `http/1.1` (when `connect` does).

use crate::support;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::{listener, within};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use ptth::acceptor::SendRequest;
use ptth::{Dialect, Protocol};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// How many requests the HTTP/2 test sends at once; the initiator's service
/// holds each of them until all have arrived.
const CONCURRENT: usize = 3;

/// Both ends of TLS, trusting one certificate made for `localhost` here.
struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// The client settings, for `ptth::initiator::Builder::tls_config`.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    client: Arc<ClientConfig>,
    /// The certificate, as a root to trust.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    root: CertificateDer<'static>,
}

fn tls() -> Tls {
    // An explicit provider, so nothing depends on a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .expect("generate a certificate");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));

    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server certificate");

    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("trust the certificate");
    let mut server = server;
    // Lets the connect test see what the initiator offers at the TLS layer.
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Arc::new(client);

    Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(client.clone()),
        client,
        root: cert,
    }
}

/// The initiator's first half: dial, and become the TLS client.
async fn dial(connector: &TlsConnector, addr: SocketAddr) -> client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    connector
        .connect(name, tcp)
        .await
        .expect("TLS client handshake")
}

/// The acceptor's first half: accept, and become the TLS server.
async fn answer(acceptor: &TlsAcceptor, listener: &TcpListener) -> server::TlsStream<TcpStream> {
    let (tcp, _) = listener.accept().await.expect("accept");
    acceptor.accept(tcp).await.expect("TLS server handshake")
}

/// The initiator's service: `support::describe`, except that requests to
/// `/together` wait at `barrier`, which only lets them go once all of them
/// are in flight at the same time.
async fn describe(
    request: Request<Incoming>,
    barrier: Arc<Barrier>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.uri().path() == "/together" {
        barrier.wait().await;
    }
    support::describe(request).await
}

/// The initiator, whole: TLS client, PTTH handshake, then HTTP server on the
/// same TLS stream until the acceptor closes it. Returns the protocol the
/// handshake chose.
async fn initiate(
    connector: TlsConnector,
    addr: SocketAddr,
    builder: ptth::initiator::Builder,
) -> Result<Protocol, ptth::Error> {
    let tls = dial(&connector, addr).await;
    // PTTH's protocol choice must not lean on TLS ALPN: none was set.
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let transposed = builder.handshake(tls).await?;
    let protocol = transposed.protocol();
    let barrier = Arc::new(Barrier::new(CONCURRENT));
    transposed
        .serve(service_fn(move |request| {
            describe(request, Arc::clone(&barrier))
        }))
        .await?;
    Ok(protocol)
}

/// Sends one request on the transposed connection and returns the status
/// and body of its response.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    body: &'static str,
) -> Result<(StatusCode, String), ptth::Error> {
    let request = support::request(method.as_str(), path, body);
    let (status, body) = support::try_exchange(sender, request).await?;
    Ok((
        status,
        String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    ))
}

/// Runs one exchange: the initiator upgrades with `builder`, the acceptor
/// accepts and sends a few requests in turn, checking each answer. Both
/// sides must then end cleanly when the acceptor hangs up.
async fn exchange(builder: ptth::initiator::Builder, expected: Protocol) {
    let Tls {
        acceptor,
        connector,
        ..
    } = tls();
    let (listener, addr) = listener().await;
    let initiator = tokio::spawn(initiate(connector, addr, builder.clone()));

    let tls = answer(&acceptor, &listener).await;
    let offer = ptth::acceptor::Builder::new()
        .read_request(tls)
        .await
        .expect("read the upgrade request");
    assert_eq!(offer.request().uri(), "/reverse");
    assert_eq!(offer.request().headers()["host"], "localhost");
    assert_eq!(offer.protocol(), expected);
    let (mut sender, connection) = offer
        .accept::<Full<Bytes>>()
        .await
        .expect("accept the upgrade");
    assert_eq!(sender.protocol(), expected);
    let driver = tokio::spawn(connection);

    let version = match expected {
        Protocol::Http2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    for (method, path, body) in [
        (Method::GET, "/hello", ""),
        (Method::POST, "/echo", "ping over TLS"),
        (Method::PUT, "/state", "on"),
    ] {
        let (status, answer) = call(&mut sender, method.clone(), path, body)
            .await
            .expect("reversed request");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, format!("{version} {method} {path} {body}"));
    }

    // Hanging up the sending side closes the connection; the initiator's
    // server must see that as a normal end, not an error.
    drop(sender);
    driver
        .await
        .expect("driver task")
        .expect("acceptor's connection");
    let served = initiator
        .await
        .expect("initiator task")
        .expect("initiator's server");
    assert_eq!(served, expected);
}

fn builder(dialect: Dialect, alpn: &[Protocol]) -> ptth::initiator::Builder {
    ptth::initiator::Builder::new()
        .uri("https://localhost/reverse")
        .dialect(dialect)
        .protocols(alpn.iter().copied())
}

#[tokio::test]
async fn current_dialect_h2_over_tls() {
    within(exchange(
        builder(Dialect::Current, &[Protocol::Http2, Protocol::Http1]),
        Protocol::Http2,
    ))
    .await;
}

#[tokio::test]
async fn current_dialect_h1_over_tls() {
    within(exchange(
        builder(Dialect::Current, &[Protocol::Http1]),
        Protocol::Http1,
    ))
    .await;
}

#[tokio::test]
async fn legacy_dialect_over_tls() {
    within(exchange(builder(Dialect::Legacy, &[]), Protocol::Http1)).await;
}

/// HTTP/2 over the reversed TLS stream multiplexes: several requests are in
/// flight at once. The initiator's service only answers `/together` once
/// all `CONCURRENT` of them have arrived, so one-at-a-time would time out.
#[tokio::test]
async fn h2_over_tls_carries_concurrent_requests() {
    within(async {
        let Tls {
            acceptor,
            connector,
            ..
        } = tls();
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(initiate(
            connector,
            addr,
            builder(Dialect::Current, &[Protocol::Http2]),
        ));

        let tls = answer(&acceptor, &listener).await;
        let offer = ptth::acceptor::Builder::new()
            .read_request(tls)
            .await
            .expect("read the upgrade request");
        let (sender, connection) = offer.accept::<Full<Bytes>>().await.expect("accept");
        let driver = tokio::spawn(connection);

        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT {
            let mut handle = sender.clone();
            calls.spawn(
                async move { call(&mut handle, Method::POST, "/together", "same time").await },
            );
        }
        let answers = calls.join_all().await;
        assert_eq!(answers.len(), CONCURRENT);
        for answer in answers {
            let (status, body) = answer.expect("concurrent request");
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, "HTTP/2.0 POST /together same time");
        }

        drop(sender);
        driver.await.expect("driver task").expect("connection");
        let served = initiator.await.expect("initiator task").expect("server");
        assert_eq!(served, Protocol::Http2);
    })
    .await;
}

/// An acceptor may refuse over TLS like over TCP: the initiator gets the
/// whole refusal (status, headers, body) as `Declined`, read through TLS.
#[tokio::test]
async fn refusal_over_tls_is_declined() {
    within(async {
        let Tls {
            acceptor,
            connector,
            ..
        } = tls();
        let (listener, addr) = listener().await;
        let initiator = tokio::spawn(async move {
            let tls = dial(&connector, addr).await;
            builder(Dialect::Current, &[Protocol::Http2])
                .handshake(tls)
                .await
                .map(|transposed| transposed.protocol())
        });

        let tls = answer(&acceptor, &listener).await;
        let offer = ptth::acceptor::Builder::new()
            .read_request(tls)
            .await
            .expect("read the upgrade request");
        let mut refusal = Response::new(Bytes::from_static(b"credentials, please\n"));
        *refusal.status_mut() = StatusCode::UNAUTHORIZED;
        refusal
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let _still_open = offer.reject(refusal).await.expect("write the refusal");

        let error = initiator
            .await
            .expect("initiator task")
            .expect_err("the upgrade was refused");
        let declined = error.declined().expect("a Declined error");
        assert_eq!(declined.status, StatusCode::UNAUTHORIZED);
        assert_eq!(declined.headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(declined.body, "credentials, please\n");
    })
    .await;
}

/// `connect` with an `https` URL does TLS itself, never offering `h2` at
/// the TLS layer, even to a server that prefers it, because the upgrade
/// request is HTTP/1.1; the upgrade's own ALPN header then picks h2.
#[cfg(feature = "tls")]
#[tokio::test]
async fn connect_dials_https_urls_with_tls() {
    within(async {
        let tls = tls();
        let (listener, addr) = listener().await;
        let url = format!("https://localhost:{}/reverse", addr.port());
        let initiator = ptth::initiator::Builder::new().tls_config(tls.client.clone());
        let device = tokio::spawn(async move {
            let transposed = initiator.connect(url).await?;
            assert!(transposed.io().is_tls());
            let barrier = Arc::new(Barrier::new(CONCURRENT));
            let service = service_fn(move |request| describe(request, Arc::clone(&barrier)));
            transposed.serve(service).await
        });
        let stream = answer(&tls.acceptor, &listener).await;
        // The server prefers h2, but the initiator never offers it.
        assert_ne!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let offer = ptth::acceptor::Builder::new()
            .read_request(stream)
            .await
            .unwrap();
        assert_eq!(offer.protocol(), Protocol::Http2);
        let (mut sender, connection) = offer.accept::<Full<Bytes>>().await.unwrap();
        tokio::spawn(connection);
        let (status, answer) = call(&mut sender, Method::GET, "/over-tls", "")
            .await
            .unwrap();
        assert_eq!(
            (status, answer.as_str()),
            (StatusCode::OK, "HTTP/2.0 GET /over-tls ")
        );
        drop(sender);
        device.await.unwrap().unwrap();
    })
    .await;
}

/// The default TLS settings trust Mozilla's roots only, so a self-signed
/// relay is refused, and the error says why.
#[cfg(feature = "tls")]
#[tokio::test]
async fn connect_refuses_an_untrusted_certificate_and_says_so() {
    within(async {
        let tls = tls();
        let (listener, addr) = listener().await;
        let relay = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tls.acceptor.accept(tcp).await.is_err()
        });
        let url = format!("https://localhost:{}/reverse", addr.port());
        let error = ptth::initiator::connect(url).await.unwrap_err();
        let message = support::report::Report(&error).to_string();
        assert!(message.contains("invalid peer certificate"), "{message}");
        assert!(relay.await.unwrap(), "the relay saw the handshake fail");
    })
    .await;
}

/// A relay whose certificate comes from a private CA is reached by
/// trusting that CA, beside Mozilla's roots or instead of them.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_private_root_is_trusted_beside_or_instead_of_mozilla_s() {
    within(async {
        let tls = tls();
        let (listener, addr) = listener().await;
        let acceptor = tls.acceptor.clone();
        let relay = tokio::spawn(async move {
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let stream = acceptor.accept(tcp).await.unwrap();
                let offer = ptth::acceptor::Builder::new()
                    .read_request(stream)
                    .await
                    .unwrap();
                drop(offer.accept::<Full<Bytes>>().await.unwrap());
            }
        });
        let url = format!("https://localhost:{}/reverse", addr.port());
        let root = || [tls.root.clone()];
        for initiator in [
            ptth::initiator::Builder::new().trust(root()),
            ptth::initiator::Builder::new().trust_only(root()),
        ] {
            let transposed = initiator.connect(url.as_str()).await.unwrap();
            assert!(transposed.io().is_tls());
        }
        relay.await.unwrap();
    })
    .await;
}

/// The tunnel dials `https` URLs through the same TLS support, and serves
/// what the relay sends through it.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_tunnel_serves_over_https() {
    within(async {
        let tls = tls();
        let (listener, addr) = listener().await;
        let url = format!("https://localhost:{}/reversehttp/lamp", addr.port());
        let barrier = Arc::new(Barrier::new(1));
        let service = service_fn(move |request| describe(request, Arc::clone(&barrier)));
        let tunnel = ptth::tunnel::Builder::new(url)
            .initiator(ptth::initiator::Builder::new().tls_config(tls.client.clone()))
            .serve(service);
        let handle = tunnel.handle();
        let running = tokio::spawn(tunnel);
        let stream = answer(&tls.acceptor, &listener).await;
        let offer = ptth::acceptor::Builder::new()
            .read_request(stream)
            .await
            .unwrap();
        assert_eq!(offer.request().uri(), "/reversehttp/lamp");
        let (mut sender, connection) = offer.accept::<Full<Bytes>>().await.unwrap();
        tokio::spawn(connection);
        let (status, answer) = call(&mut sender, Method::GET, "/lamp", "").await.unwrap();
        assert_eq!(
            (status, answer.as_str()),
            (StatusCode::OK, "HTTP/2.0 GET /lamp ")
        );
        handle.shutdown();
        running.await.unwrap().unwrap();
    })
    .await;
}

/// A URL whose scheme does not match the server fails at once with a
/// sentence that says which to use, and the tunnel does not retry it:
/// `https://` to a plain HTTP server, and `http://` to a TLS one.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_url_with_the_wrong_scheme_says_so_and_is_not_retried() {
    within(async {
        let tls = tls();
        let (listener, addr) = listener().await;
        let acceptor = tls.acceptor.clone();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // First a plain HTTP server's answer to whatever comes, then a
            // TLS server.
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0; 1024]).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        for (scheme, said) in [
            (
                "https",
                "does not speak TLS: its URL is http://, not https://",
            ),
            ("http", "speaks TLS: its URL is https://, not http://"),
        ] {
            let url = format!("{scheme}://localhost:{}/reverse", addr.port());
            let initiator = ptth::initiator::Builder::new().tls_config(tls.client.clone());
            let error = initiator.connect(url.as_str()).await.unwrap_err();
            assert!(
                matches!(error, ptth::Error::WrongScheme { .. }),
                "{scheme}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("localhost:{} {said}", addr.port())
            );
        }
        server.await.unwrap();
    })
    .await;
}
