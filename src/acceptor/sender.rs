use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::HOST;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioExecutor;

use crate::{Error, Protocol};

/// Sends requests to the initiator over a transposed connection.
///
/// One type over hyper's HTTP/1.1 and HTTP/2 senders. On HTTP/2,
/// [`try_clone`](SendRequest::try_clone) gives more handles so requests run
/// concurrently; on HTTP/1.1 requests go one at a time.
pub struct SendRequest<B> {
    inner: Inner<B>,
}

enum Inner<B> {
    Http1(http1::SendRequest<B>),
    Http2(http2::SendRequest<B>),
}

impl<B> SendRequest<B> {
    /// The protocol spoken on the connection.
    pub fn protocol(&self) -> Protocol {
        match self.inner {
            Inner::Http1(_) => Protocol::Http1,
            Inner::Http2(_) => Protocol::Http2,
        }
    }

    /// Waits until a request can be sent, or fails when the connection is
    /// gone.
    pub async fn ready(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Http1(tx) => tx.ready().await?,
            Inner::Http2(tx) => tx.ready().await?,
        }
        Ok(())
    }

    /// Whether a request can be sent right now.
    pub fn is_ready(&self) -> bool {
        match &self.inner {
            Inner::Http1(tx) => tx.is_ready(),
            Inner::Http2(tx) => tx.is_ready(),
        }
    }

    /// Whether the connection has closed; no request sent from now on can
    /// succeed.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Http1(tx) => tx.is_closed(),
            Inner::Http2(tx) => tx.is_closed(),
        }
    }

    /// Another handle on the same connection, when it is HTTP/2; `None` on
    /// HTTP/1.1, which carries one request at a time.
    pub fn try_clone(&self) -> Option<Self> {
        match &self.inner {
            Inner::Http1(_) => None,
            Inner::Http2(tx) => Some(SendRequest {
                inner: Inner::Http2(tx.clone()),
            }),
        }
    }
}

impl<B> SendRequest<B>
where
    B: Body + 'static,
{
    /// Sends a request and resolves to its response head; the body streams
    /// from the returned [`Incoming`].
    ///
    /// On HTTP/1.1 a request without `Host` gets an empty one, as reversed
    /// requests should carry. On HTTP/2 a target without scheme and
    /// authority (such as `/status`) is sent with `:scheme: http` and no
    /// `:authority`.
    pub fn send_request(
        &mut self,
        mut request: Request<B>,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + use<B> {
        let response = match &mut self.inner {
            Inner::Http1(tx) => {
                if !request.headers().contains_key(HOST) {
                    request
                        .headers_mut()
                        .insert(HOST, HeaderValue::from_static(""));
                }
                Either::Http1(tx.send_request(request))
            }
            Inner::Http2(tx) => Either::Http2(tx.send_request(request)),
        };
        async move {
            Ok(match response {
                Either::Http1(fut) => fut.await?,
                Either::Http2(fut) => fut.await?,
            })
        }
    }
}

enum Either<A, B> {
    Http1(A),
    Http2(B),
}

impl<B> fmt::Debug for SendRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRequest")
            .field("protocol", &self.protocol())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A future that drives a transposed connection on the sending side. It
/// must be polled (usually spawned) for requests to make progress, and
/// resolves when the connection closes.
///
/// It resolves once every [`SendRequest`] handle and every response body
/// still being read are dropped, or when the initiator goes away. As with
/// hyper's own client connections, a peer that vanishes on HTTP/1.1 may end
/// it with `Ok(())`: the error goes to the request or body in flight.
#[must_use = "futures do nothing unless polled"]
pub struct Connection {
    protocol: Protocol,
    inner: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>,
}

impl Connection {
    /// The protocol spoken on the connection.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

impl Future for Connection {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map_err(Error::Http)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// Starts hyper's client on a socket whose 101 has been sent.
pub(crate) async fn handshake<I, B>(
    io: I,
    protocol: Protocol,
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
            (Inner::Http1(tx), Box::pin(conn.with_upgrades()))
        }
        Protocol::Http2 => {
            let (tx, conn) = http2.handshake(io).await?;
            (Inner::Http2(tx), Box::pin(conn))
        }
    };
    Ok((
        SendRequest { inner },
        Connection {
            protocol,
            inner: conn,
        },
    ))
}
