use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Mutex, watch};

use crate::{Error, Protocol};

/// Tells transposed connections apart, for as long as the process runs.
///
/// A [`SendRequest`] and the [`Connection`] it belongs to report the same
/// id, and no other connection ever gets it. A registry that keys peers by
/// name should remove an entry only when the entry's id is the id of the
/// connection that ended: a peer that reconnected under the same name has
/// already replaced it with a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Sends requests to the initiator over a transposed connection.
///
/// One type over hyper's HTTP/1.1 and HTTP/2 clients that behaves like a
/// client: clone it freely and send from any task. On HTTP/2 requests run
/// concurrently as streams; on HTTP/1.1 the connection carries one request
/// at a time, so a request waits its turn (in the order
/// [`send_request`](SendRequest::send_request) was called) until the
/// response before it has been read to its end: read each body as its
/// response arrives, or a later request waits for ever.
///
/// # Authority
///
/// A request whose target has no authority (such as `/status`) is
/// completed here, because a strict HTTP/2 server resets a request that
/// has neither `:authority` nor `Host` (RFC 9113, section 8.3.1):
///
/// - a `Host` header or an absolute URI given by the caller always wins;
/// - otherwise, on HTTP/2 the request is sent as `http://AUTHORITY/path`,
///   where AUTHORITY is [`Builder::authority`](super::Builder::authority)
///   when set, else the `Host` of the initiator's upgrade request; when
///   neither names one, it goes with an empty `Host` field instead;
/// - on HTTP/1.1 the request gets `Host: AUTHORITY` when
///   [`Builder::authority`](super::Builder::authority) is set, else an
///   empty `Host`, which is what reversed requests carry in the legacy
///   draft (RFC 9112 allows it when there is no authority).
pub struct SendRequest<B> {
    inner: Inner<B>,
    shared: Arc<Shared>,
}

enum Inner<B> {
    Http1(Arc<Mutex<http1::SendRequest<B>>>),
    Http2(http2::SendRequest<B>),
}

/// What every handle on one connection shares.
#[derive(Debug)]
struct Shared {
    id: ConnectionId,
    protocol: Protocol,
    authority: Authorities,
    /// Changes state when the [`Connection`] future is dropped, which tokio
    /// does as soon as a spawned connection completes.
    closed: watch::Receiver<()>,
}

/// The authority given to requests without one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authorities {
    /// Set on the acceptor's builder: used on both protocols.
    pub(crate) configured: Option<Authority>,
    /// The `Host` of the upgrade request: used on HTTP/2 only.
    pub(crate) upgrade_host: Option<Authority>,
}

impl<B> Clone for SendRequest<B> {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Inner::Http1(tx) => Inner::Http1(Arc::clone(tx)),
            Inner::Http2(tx) => Inner::Http2(tx.clone()),
        };
        SendRequest {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B> SendRequest<B> {
    /// The protocol spoken on the connection.
    pub fn protocol(&self) -> Protocol {
        self.shared.protocol
    }

    /// The connection's id, the same as its [`Connection::id`].
    pub fn id(&self) -> ConnectionId {
        self.shared.id
    }

    /// Waits until the connection could take a request at once, or fails
    /// when it is gone. Not needed before
    /// [`send_request`](SendRequest::send_request), which waits by itself.
    pub async fn ready(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Http1(tx) => tx.lock().await.ready().await?,
            Inner::Http2(tx) => tx.ready().await?,
        }
        Ok(())
    }

    /// Whether a request sent now would go out at once rather than wait.
    pub fn is_ready(&self) -> bool {
        match &self.inner {
            Inner::Http1(tx) => tx.try_lock().is_ok_and(|tx| tx.is_ready()),
            Inner::Http2(tx) => tx.is_ready(),
        }
    }

    /// Whether the connection has closed; no request sent from now on can
    /// succeed.
    pub fn is_closed(&self) -> bool {
        let driver_gone = self.shared.closed.has_changed().is_err();
        driver_gone
            || match &self.inner {
                Inner::Http1(tx) => tx.try_lock().is_ok_and(|tx| tx.is_closed()),
                Inner::Http2(tx) => tx.is_closed(),
            }
    }

    /// Resolves once the connection is over: its [`Connection`] future has
    /// completed (for whatever reason) or was dropped. A registry of peers
    /// awaits this to remove the entry of a peer that went away.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static + use<B> {
        let mut closed = self.shared.closed.clone();
        async move { while closed.changed().await.is_ok() {} }
    }
}

impl<B> SendRequest<B>
where
    B: Body + Send + 'static,
{
    /// Sends a request, waiting for its turn on HTTP/1.1, and resolves to
    /// the response head; the body streams from the returned [`Incoming`].
    /// The request goes out when this is called if the connection can take
    /// it, else when the returned future is first polled and its turn has
    /// come. `&mut self`, as with hyper's senders: clone the sender (it is
    /// cheap) to send from several tasks.
    ///
    /// A target without authority is completed as described under
    /// [Authority](SendRequest#authority).
    pub fn send_request(
        &mut self,
        mut request: Request<B>,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'static + use<B> {
        let sending = match &mut self.inner {
            Inner::Http1(tx) => {
                // Callers that forward requests set Host already, and then
                // this is the cheapest check.
                if !request.headers().contains_key(HOST) {
                    let host = match &self.shared.authority.configured {
                        Some(authority) => host_value(authority),
                        None => HeaderValue::from_static(""),
                    };
                    request.headers_mut().insert(HOST, host);
                }
                // Nobody holds or awaits the turn and hyper can take the
                // request now: send it at once. A waiter is never overtaken,
                // since tokio's mutex hands a released turn to the first one.
                match tx.try_lock() {
                    Ok(mut tx) if tx.is_ready() => Sending::Http1(tx.send_request(request)),
                    _ => Sending::Queued(Box::pin(send_in_turn(Arc::clone(tx), request))),
                }
            }
            Inner::Http2(tx) => {
                if request.uri().authority().is_none() {
                    self.shared.authority.complete(&mut request);
                }
                Sending::Http2(tx.send_request(request))
            }
        };
        async move {
            Ok(match sending {
                Sending::Http1(response) => response.await?,
                Sending::Queued(response) => response.await?,
                Sending::Http2(response) => response.await?,
            })
        }
    }
}

type Responding = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Error>> + Send>>;

/// A request on its way: sent, or waiting for its turn on HTTP/1.1.
enum Sending<H1, H2> {
    Http1(H1),
    Queued(Responding),
    Http2(H2),
}

/// Waits for the turn on an HTTP/1.1 connection, then sends.
async fn send_in_turn<B>(
    tx: Arc<Mutex<http1::SendRequest<B>>>,
    request: Request<B>,
) -> Result<Response<Incoming>, Error>
where
    B: Body + Send + 'static,
{
    let response = {
        let mut tx = tx.lock().await;
        tx.ready().await?;
        tx.send_request(request)
    };
    Ok(response.await?)
}

impl Authorities {
    /// Gives an HTTP/2 request without authority one, from its `Host`
    /// header, the configured authority or the upgrade's `Host`, in that
    /// order; with none of them it keeps (or gets) a `Host` field.
    fn complete<B>(&self, request: &mut Request<B>) {
        let from_host = request
            .headers()
            .get(HOST)
            .and_then(|host| Authority::try_from(host.as_bytes()).ok());
        let authority = match from_host {
            Some(authority) => {
                // It travels as `:authority` now; both would be redundant.
                request.headers_mut().remove(HOST);
                authority
            }
            None if request.headers().contains_key(HOST) => return,
            None => match self.configured.as_ref().or(self.upgrade_host.as_ref()) {
                Some(authority) => authority.clone(),
                None => {
                    request
                        .headers_mut()
                        .insert(HOST, HeaderValue::from_static(""));
                    return;
                }
            },
        };
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        // Scheme, authority and a path always make a valid URI.
        *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    }
}

fn host_value(authority: &Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(feature = "tower")]
impl<B> tower_service::Service<Request<B>> for SendRequest<B>
where
    B: Body + Send + 'static,
{
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = Responding;

    /// Always ready: requests queue inside on HTTP/1.1, and a closed
    /// connection fails the request itself.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(self.send_request(request))
    }
}

impl<B> fmt::Debug for SendRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRequest")
            .field("id", &self.shared.id)
            .field("protocol", &self.shared.protocol)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A future that drives a transposed connection on the sending side. It
/// must be polled (usually spawned) for requests to make progress.
///
/// It resolves:
///
/// - with `Ok(())` once every [`SendRequest`] clone has been dropped and no
///   response body is still being read; the connection is then closed;
/// - when the initiator closes the connection or it fails: on HTTP/2 a
///   clean close gives `Ok(())` and a reset or a keep-alive PING left
///   unanswered gives `Err` ([`Error::is_timeout`] for the PING); on
///   HTTP/1.1, as with hyper's own client, a peer that vanishes may give
///   `Ok(())`, the error going to the request or body in flight.
///
/// Dropping it closes the connection: requests in flight fail, and
/// [`SendRequest::closed`] resolves.
#[must_use = "futures do nothing unless polled"]
pub struct Connection {
    id: ConnectionId,
    protocol: Protocol,
    inner: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>,
    _closed: watch::Sender<()>,
}

impl Connection {
    /// The protocol spoken on the connection.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The connection's id, the same as its senders' [`SendRequest::id`].
    pub fn id(&self) -> ConnectionId {
        self.id
    }
}

impl Future for Connection {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map_err(Error::from)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// Starts hyper's client on a socket whose 101 has been sent.
pub(crate) async fn handshake<I, B>(
    io: I,
    protocol: Protocol,
    authority: Authorities,
    http1: &http1::Builder,
    http2: &http2::Builder<TokioExecutor>,
) -> Result<(SendRequest<B>, Connection), Error>
where
    I: Read + Write + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (inner, conn): (_, Pin<Box<dyn Future<Output = _> + Send>>) = match protocol {
        Protocol::Http1 => {
            let (tx, conn) = http1.handshake(io).await?;
            (
                Inner::Http1(Arc::new(Mutex::new(tx))),
                Box::pin(conn.with_upgrades()),
            )
        }
        Protocol::Http2 => {
            let (tx, conn) = http2.handshake(io).await?;
            (Inner::Http2(tx), Box::pin(conn))
        }
    };
    let id = ConnectionId::next();
    let (closed_tx, closed) = watch::channel(());
    let shared = Arc::new(Shared {
        id,
        protocol,
        authority,
        closed,
    });
    Ok((
        SendRequest { inner, shared },
        Connection {
            id,
            protocol,
            inner: conn,
            _closed: closed_tx,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(authorities: &Authorities, request: Request<()>) -> Request<()> {
        let mut request = request;
        authorities.complete(&mut request);
        request
    }

    #[test]
    fn relative_h2_requests_get_an_authority() {
        let upgrade = Authorities {
            configured: None,
            upgrade_host: Some(Authority::from_static("relay.example:8080")),
        };
        let request = completed(&upgrade, Request::get("/status?x=1").body(()).unwrap());
        assert_eq!(request.uri(), "http://relay.example:8080/status?x=1");
        assert!(!request.headers().contains_key(HOST));

        let configured = Authorities {
            configured: Some(Authority::from_static("device.local")),
            ..upgrade.clone()
        };
        let request = completed(&configured, Request::get("/").body(()).unwrap());
        assert_eq!(request.uri(), "http://device.local/");

        let request = Request::get("/").header(HOST, "given.example").body(());
        let request = completed(&configured, request.unwrap());
        assert_eq!(request.uri(), "http://given.example/");
        assert!(!request.headers().contains_key(HOST));
    }

    #[test]
    fn without_any_authority_an_empty_host_is_sent() {
        let request = completed(&Authorities::default(), Request::get("/").body(()).unwrap());
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[HOST], "");

        let request = Request::get("/").header(HOST, "").body(()).unwrap();
        let request = completed(&Authorities::default(), request);
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[HOST], "");
    }
}
