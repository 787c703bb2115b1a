//! The relay's side: `CONNECT` sent on a transposed connection, and the
//! stream it opens (`docs/protocol.md, "TCP over PTTH: CONNECT"`).

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HOST, HeaderMap, HeaderValue};
use http::uri::{Authority, Parts};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::short_reason;
use crate::{Error, Protocol, acceptor};

/// The most of a refusal's body kept for its [`reason`](OpenError::reason).
const REFUSAL_BODY_MAX: usize = 1024;

/// A request on its way, as a [`Sender`] sends it.
type Sending<'a> = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Error>> + Send + 'a>>;

mod sealed {
    pub trait Sealed {}
}

/// What a `CONNECT` can be sent on: this crate's [`acceptor::SendRequest`],
/// or hyper's own HTTP/1.1 and HTTP/2 senders. Implemented here only.
pub trait Sender: sealed::Sealed {
    /// The request body type; a `CONNECT` carries its `Default`, which
    /// must be empty (as `Empty` and `Full::default()` are).
    type Body: Default;

    /// Sends `request` once the connection can take it.
    fn send_connect(&mut self, request: Request<Self::Body>) -> Sending<'_>;

    /// The protocol the connection speaks.
    fn protocol(&self) -> Protocol;
}

impl<B> sealed::Sealed for acceptor::SendRequest<B> {}

impl<B> Sender for acceptor::SendRequest<B>
where
    B: Body + Default + Send + 'static,
{
    type Body = B;

    fn send_connect(&mut self, request: Request<B>) -> Sending<'_> {
        Box::pin(self.send_request(request))
    }

    fn protocol(&self) -> Protocol {
        acceptor::SendRequest::protocol(self)
    }
}

impl<B> sealed::Sealed for http1::SendRequest<B> {}

impl<B> Sender for http1::SendRequest<B>
where
    B: Body + Default + Send + 'static,
{
    type Body = B;

    fn send_connect(&mut self, request: Request<B>) -> Sending<'_> {
        Box::pin(async move {
            self.ready().await?;
            Ok(self.send_request(request).await?)
        })
    }

    fn protocol(&self) -> Protocol {
        Protocol::Http1
    }
}

impl<B> sealed::Sealed for http2::SendRequest<B> {}

impl<B> Sender for http2::SendRequest<B>
where
    B: Body + Default + Send + 'static,
{
    type Body = B;

    fn send_connect(&mut self, request: Request<B>) -> Sending<'_> {
        Box::pin(async move {
            self.ready().await?;
            Ok(self.send_request(request).await?)
        })
    }

    fn protocol(&self) -> Protocol {
        Protocol::Http2
    }
}

/// Opens a byte stream to the device behind `sender`: sends
/// `CONNECT authority` and, on a `2xx` answer, returns the stream it
/// opened. Everything, the answer and the hand-over, must happen within
/// `timeout`.
///
/// On HTTP/2 the stream is one of the connection's streams, and the
/// connection goes on carrying others. On HTTP/1.1 it is the whole
/// connection, which no other request can use from then on (clones of an
/// [`acceptor::SendRequest`] see it closed).
///
/// `authority` is what the visitor asked for; the device may log it, but
/// [`Dial`](super::Dial) dials its own target whatever it says. An answer
/// other than `2xx` is a refusal ([`OpenError::status`]): the device could
/// not reach its target (`502`), or serves no `CONNECT` (`405`).
pub fn open<S>(
    sender: &mut S,
    authority: Authority,
    timeout: Duration,
) -> impl Future<Output = Result<Stream, OpenError>> + Send + '_
where
    S: Sender,
{
    open_with(sender, authority, HeaderMap::new(), timeout)
}

/// As [`open`], with `fields` in the `CONNECT`: what the device may want
/// to know of the visitor, such as the `X-Real-IP` a
/// [`Guard`](crate::guard::Guard) in front of a [`Dial`](super::Dial)
/// judges. `Host`, which the request sets itself, is not taken from them.
pub fn open_with<S>(
    sender: &mut S,
    authority: Authority,
    fields: HeaderMap,
    timeout: Duration,
) -> impl Future<Output = Result<Stream, OpenError>> + Send + '_
where
    S: Sender,
{
    let mut request = connect_request(sender.protocol(), authority);
    for (name, value) in &fields {
        if name != HOST {
            request.headers_mut().append(name, value.clone());
        }
    }
    // Sent here, before the future: it then holds only the boxed send,
    // and no `S` or `S::Body`, whose `Send` a caller spawning it from an
    // async block of its own could not prove (rustc's higher-ranked
    // lifetime errors).
    let sending = sender.send_connect(request);
    let exchange = async move {
        let response = sending.await.map_err(Kind::Send)?;
        let status = response.status();
        if !status.is_success() {
            let body = start_of(response.into_body()).await;
            return Err(Kind::Refused { status, body });
        }
        match hyper::upgrade::on(response).await {
            Ok(upgraded) => Ok(Stream {
                io: TokioIo::new(upgraded),
            }),
            Err(error) => Err(Kind::NotHandedOver(Arc::new(error))),
        }
    };
    async move {
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(|kind| OpenError { kind }),
            Err(_) => Err(OpenError {
                kind: Kind::TimedOut(timeout),
            }),
        }
    }
}

/// `CONNECT authority`, in authority form; on HTTP/1.1 with `Host` naming
/// it too (RFC 9112, section 3.2.3), on HTTP/2 as `:authority` alone
/// (RFC 9113, section 8.5).
fn connect_request<B: Default>(protocol: Protocol, authority: Authority) -> Request<B> {
    let host = HeaderValue::from_str(authority.as_str()).ok();
    let mut parts = Parts::default();
    parts.authority = Some(authority);
    let mut request = Request::new(B::default());
    *request.method_mut() = Method::CONNECT;
    // An authority alone is always a valid URI (authority form).
    *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    if let (Protocol::Http1, Some(host)) = (protocol, host) {
        request.headers_mut().insert(HOST, host);
    }
    request
}

/// The start of a refusal's body, for its reason; what does not come at
/// once is not waited for past the caller's timeout.
async fn start_of(mut body: Incoming) -> Bytes {
    let mut kept = BytesMut::new();
    while kept.len() < REFUSAL_BODY_MAX {
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let Some(Ok(frame)) = frame else { break };
        if let Ok(data) = frame.into_data() {
            let room = REFUSAL_BODY_MAX - kept.len();
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    kept.freeze()
}

/// Why [`open`] returned no stream.
///
/// Its predicates tell a refusal ([`status`](OpenError::status)) from a
/// connection that went away ([`is_closed`](OpenError::is_closed)) and
/// from an answer that came too late ([`is_timeout`](OpenError::is_timeout)).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenError {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Refused { status: StatusCode, body: Bytes },
    TimedOut(Duration),
    Send(Error),
    NotHandedOver(Arc<hyper::Error>),
}

impl OpenError {
    /// The status of the answer, when the device answered with something
    /// other than `2xx` (`502`: it could not reach its target).
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            Kind::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the device answered, and not with `2xx`.
    pub fn is_refused(&self) -> bool {
        self.status().is_some()
    }

    /// The device's own words in a refusal, when its body is one short
    /// line of text (at most 200 characters, no control characters).
    pub fn reason(&self) -> Option<&str> {
        match &self.kind {
            Kind::Refused { body, .. } => short_reason(body),
            _ => None,
        }
    }

    /// Whether the time given to [`open`] ran out, or hyper's own bound
    /// (an HTTP/2 keep-alive PING left unanswered).
    pub fn is_timeout(&self) -> bool {
        match &self.kind {
            Kind::TimedOut(_) => true,
            Kind::Send(error) => error.is_timeout(),
            _ => false,
        }
    }

    /// Whether the connection went away (closed or reset) before the
    /// stream was open.
    pub fn is_closed(&self) -> bool {
        match &self.kind {
            Kind::Send(error) => error.is_closed(),
            Kind::NotHandedOver(error) => Error::Http(error.clone()).is_closed(),
            _ => false,
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Refused { status, .. } => {
                write!(f, "CONNECT refused with {status}")?;
                match self.reason() {
                    Some(reason) => write!(f, ": {reason}"),
                    None => Ok(()),
                }
            }
            Kind::TimedOut(timeout) => write!(f, "CONNECT not answered within {timeout:?}"),
            Kind::Send(_) => write!(f, "CONNECT not answered"),
            Kind::NotHandedOver(_) => write!(f, "CONNECT accepted, but the stream never opened"),
        }
    }
}

impl StdError for OpenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Send(error) => Some(error),
            Kind::NotHandedOver(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// A byte stream to a device's target, opened by [`open`]: tokio's
/// `AsyncRead` and `AsyncWrite`. Shutting it down ends this side's bytes
/// (`END_STREAM` on HTTP/2, a TCP shutdown on HTTP/1.1) while the other
/// way keeps flowing; dropping it closes both ways.
#[derive(Debug)]
pub struct Stream {
    io: TokioIo<Upgraded>,
}

impl Stream {
    /// hyper's upgraded connection underneath, for `downcast` to the IO it
    /// ran on (HTTP/1.1 only).
    pub fn into_inner(self) -> Upgraded {
        self.io.into_inner()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
