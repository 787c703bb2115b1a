//! Helpers shared by the integration tests: loopback pairs of this crate's
//! two sides, and raw-socket peers that write bytes the way real peers do.

#[path = "../../../examples/common/echo.rs"]
pub mod echo;
#[path = "../../../examples/common/report.rs"]
pub mod report;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use ptth::acceptor::SendRequest;
use ptth::{Dialect, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use echo::echo;
pub mod fake_relay;
pub mod h2_acceptor;
pub mod pipe;

/// Bounds every test: a hang is a failure, reported as such.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("test did not finish in time")
}

pub async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// An initiator that has upgraded and serves the echo service, and the
/// acceptor's sender on the other end.
pub struct Pair {
    pub sender: SendRequest<Full<Bytes>>,
    pub client: JoinHandle<Result<(), ptth::Error>>,
    pub server: JoinHandle<Result<(), ptth::Error>>,
}

pub async fn pair(dialect: Dialect, protocol: Protocol) -> Pair {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let transposed = ptth::initiator::Builder::new()
            .uri(format!("http://{addr}/reverse"))
            .dialect(dialect)
            .protocols([protocol])
            .handshake(tcp)
            .await?;
        transposed.serve(service_fn(echo)).await
    });
    let (tcp, peer) = listener.accept().await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let offer = ptth::acceptor::Builder::new()
        .read_request_from(tcp, peer)
        .await
        .unwrap();
    assert_eq!(offer.dialect(), dialect);
    assert_eq!(offer.protocol(), protocol);
    let (sender, connection) = offer.accept().await.unwrap();
    assert_eq!(sender.protocol(), protocol);
    Pair {
        sender,
        client: tokio::spawn(connection),
        server,
    }
}

/// How one switch inside a hyper server ended.
pub type Switched = Result<(SendRequest<Empty<Bytes>>, ptth::acceptor::Connection), ptth::Error>;

/// A hyper service that answers every valid PTTH upgrade request with
/// `ptth::upgrade::accept`'s `101` and reports to `switched` how each
/// switch ended.
pub fn switching_service(
    switched: mpsc::UnboundedSender<Switched>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let switched = switched.clone();
        async move {
            let acceptor = ptth::acceptor::Builder::new();
            let accepted = ptth::upgrade::accept(&acceptor, &mut request);
            let Ok((switching, pending)) = accepted else {
                panic!("a valid upgrade request");
            };
            tokio::spawn(async move { switched.send(pending.await) });
            Ok(switching)
        }
    })
}

/// A service that answers `VERSION METHOD PATH BODY`, so the sending side
/// can tell which protocol carried each request.
pub async fn describe(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let line = format!(
        "{:?} {} {} ",
        request.version(),
        request.method(),
        request.uri().path()
    );
    let body = request.into_body().collect().await?.to_bytes();
    let mut answer = line.into_bytes();
    answer.extend_from_slice(&body);
    Ok(Response::new(Full::new(Bytes::from(answer))))
}

pub fn request(method: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// Sends a request and returns the status and whole body.
pub async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (hyper::StatusCode, Bytes) {
    try_exchange(sender, request).await.unwrap()
}

/// [`exchange`] for callers that report failures instead of panicking.
pub async fn try_exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Bytes), ptth::Error> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

pub async fn collect(response: Response<hyper::body::Incoming>) -> (hyper::StatusCode, Bytes) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// Reads one message head (up to and including its blank line, CRLF or
/// bare LF) without reading past it, byte by byte as a careful raw peer
/// would.
pub async fn read_head<T: AsyncRead + Unpin>(io: &mut T) -> String {
    let mut head = Vec::new();
    loop {
        let byte = io.read_u8().await.expect("peer closed inside a head");
        head.push(byte);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return String::from_utf8(head).unwrap();
        }
    }
}

/// Reads until the peer closes.
pub async fn read_to_close<T: AsyncRead + Unpin>(io: &mut T) -> String {
    let mut all = Vec::new();
    io.read_to_end(&mut all).await.unwrap();
    String::from_utf8_lossy(&all).into_owned()
}
