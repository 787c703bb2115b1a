//! A relay in-process on `127.0.0.1:0`, peers made with the `ptth`
//! tunnel, and a public client.

pub mod binary;
pub mod chromium;
#[cfg(feature = "cluster")]
pub mod etcd;
pub mod pebble;
// The core's tests use all of it; these only the listening pipe.
#[allow(dead_code)]
#[path = "../../../../tests/suite/support/pipe.rs"]
pub mod pipe;
pub mod raw;
pub mod sshd;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ptth::tunnel::Handle;
use ptth_relay::server::Server;
use ptth_relay::{Relay, Settings};
use tokio::sync::oneshot;

/// Bounds every test: a hang is a failure.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("test did not finish in time")
}

/// A running relay; dropping it stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub relay: Arc<Relay>,
    pub stop: Option<oneshot::Sender<()>>,
    pub served: tokio::task::JoinHandle<()>,
}

pub async fn relay(settings: Settings) -> Running {
    let relay = Relay::new(settings);
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), relay.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        relay,
        stop: Some(stop),
        served,
    }
}

/// What a peer's service saw of a request: the target and the headers.
pub async fn describe(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // On HTTP/2 the target arrives as an absolute URI whose authority is
    // the public Host; print what an HTTP/1.1 peer would see.
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut text = format!("{} {target}\n", request.method());
    if let Some(authority) = request.uri().authority() {
        text.push_str(&format!("host: {authority}\n"));
    }
    for (name, value) in request.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    let response = Response::builder()
        .header("x-from", "peer")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .body(Full::new(Bytes::from(text)))
        .unwrap();
    Ok(response)
}

/// A tunnel claiming `name` on the relay at `addr`, serving `describe`.
pub fn peer(
    addr: SocketAddr,
    name: &str,
    token: &str,
    initiator: ptth::initiator::Builder,
) -> Handle {
    let bearer = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let tunnel = ptth::tunnel::Builder::new(format!("http://{addr}/reversehttp/{name}"))
        .initiator(initiator.header(http::header::AUTHORIZATION, bearer))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .serve(service_fn(describe));
    let handle = tunnel.handle();
    tokio::spawn(tunnel);
    handle
}

/// Waits until a tunnel has `n` connections.
pub async fn connected(handle: &Handle, n: usize) -> ptth::tunnel::Status {
    within(handle.wait_for(|s| s.connected >= n)).await
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a public client got back: the status, the headers and the body
/// as text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// GETs `url`.
pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// [`get`] for `tokio::spawn`.
pub async fn get_owned(url: String) -> Reply {
    get(&url).await
}

pub async fn send(request: Request<Full<Bytes>>) -> Reply {
    let response = within(client().request(request)).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A local HTTP/1.1 server on `127.0.0.1:0` running `service`, as the
/// origin that `expose` forwards to.
pub async fn http1_origin<S, B>(service: S) -> SocketAddr
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service.clone());
            tokio::spawn(connection);
        }
    });
    addr
}

/// Log lines a test's tracing subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
