//! Accepting PTTH inside an existing hyper or axum server.
//!
//! The server reads the upgrade request itself; [`accept`] validates it
//! exactly as [`acceptor::Builder`] does and gives back the `101` to answer
//! with and a [`Pending`] future that yields the request sender once hyper
//! has switched the connection. The connection must be served with upgrades
//! enabled (`serve_connection(..).with_upgrades()`, or
//! `serve_connection_with_upgrades` under hyper-util's `auto` builder, which
//! is what axum uses).
//!
//! The same call takes the setup over HTTP/2: an extended CONNECT (RFC
//! 8441) with `:protocol: ptth`, which it answers `200` with the chosen
//! `ALPN` instead of `101`. The HTTP/2 server must enable extended CONNECT
//! (`enable_connect_protocol()` on hyper's or hyper-util's `http2` builder;
//! `axum::serve` does). Refusals there are `400` where HTTP/1.1 gets `426`,
//! as HTTP/2 has no `Upgrade` to name the way.
//!
//! ```no_run
//! use http_body_util::{Empty, Full};
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//!
//! async fn handle(
//!     mut request: Request<Incoming>,
//! ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
//!     let acceptor = ptth::acceptor::Builder::new();
//!     match ptth::upgrade::accept::<Empty<Bytes>, _>(&acceptor, &mut request) {
//!         Ok((switching, pending)) => {
//!             tokio::spawn(async move {
//!                 let (mut sender, connection) = pending.await?;
//!                 tokio::spawn(connection);
//!                 let request = Request::get("/status").body(Empty::new()).unwrap();
//!                 let response = sender.send_request(request).await?;
//!                 println!("the initiator answered {}", response.status());
//!                 Ok::<_, ptth::Error>(())
//!             });
//!             Ok(switching)
//!         }
//!         Err(rejection) => Ok(rejection.response),
//!     }
//! }
//! ```
//!
//! [`acceptor::Builder`]: crate::acceptor::Builder

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use tracing::{Instrument, debug, field};

use crate::acceptor::{self, Connection, SendRequest};
use crate::channel::Channel;
use crate::{Error, Setup};

type Started<B> = Result<(SendRequest<B>, Connection), Error>;

/// What [`accept`] gives for an acceptable request: the `101` response to
/// answer with, and the future that completes the switch.
pub type Accepted<ResB, B> = (Response<ResB>, Pending<B>);

/// Validates the upgrade request `request` (or HTTP/2 extended CONNECT)
/// and, when it is acceptable, returns the response to answer it with
/// (`101`, or `200` to an extended CONNECT) and a future that completes
/// the switch.
///
/// `B` is the body type of the requests the sender will send, and `ResB`
/// the response's, which only needs `From<Bytes>` (hyper's `Full<Bytes>`
/// and axum's `Body` both qualify). Both are usually inferred; where they
/// are not, name them in that order: `accept::<Full<Bytes>, _>(..)`.
///
/// An upgrade request with a body (credentials in a legacy `POST`) is best
/// read whole before answering: split the request with
/// `Request::into_parts`, collect the body, and rebuild it with
/// `Request::from_parts`; the upgrade handle travels in the parts.
pub fn accept<B, ResB>(
    acceptor: &acceptor::Builder,
    request: &mut Request<impl Sized>,
) -> Result<Accepted<ResB, B>, Box<Rejection<ResB>>>
where
    ResB: From<Bytes>,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let span = tracing::debug_span!(
        "ptth_handshake",
        role = "acceptor",
        server = "hyper",
        dialect = field::Empty,
        protocol = field::Empty,
    );
    let validated = acceptor
        .validate_any(
            request.method(),
            request.version(),
            request.headers(),
            request.extensions(),
        )
        .map_err(|error| {
            span.in_scope(|| {
                debug!(
                    error = &error as &dyn std::error::Error,
                    "upgrade request refused"
                )
            });
            let response = acceptor::refusal(&error, request.version())
                .unwrap_or_else(|| {
                    let mut response = Response::new(Bytes::new());
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    response
                })
                .map(ResB::from);
            Box::new(Rejection { error, response })
        })?;
    let mut response = Response::new(ResB::from(Bytes::new()));
    *response.status_mut() = acceptor::accepting_status(&validated);
    *response.headers_mut() = acceptor::switching_headers(&validated);

    let host = acceptor::upgrade_host(request);
    let on_upgrade = hyper::upgrade::on(request);
    let acceptor = acceptor.clone();
    let protocol = validated.protocol;
    let setup = validated.setup;
    span.record("dialect", field::display(validated.dialect));
    span.record("protocol", field::display(protocol));
    let started = async move {
        let upgraded = on_upgrade
            .await
            .map_err(|error| Error::NotHandedOver(std::sync::Arc::new(error)))?;
        let started = match setup {
            Setup::Http1 => acceptor.start_client(upgraded, protocol, host).await,
            _ => {
                let channel = TokioIo::new(Channel::new(upgraded));
                acceptor.start_client(channel, protocol, host).await
            }
        };
        match &started {
            Ok(_) => debug!("upgraded"),
            Err(error) => debug!(error = error as &dyn std::error::Error, "the switch failed"),
        }
        started
    }
    .instrument(span);
    Ok((
        response,
        Pending {
            inner: Box::pin(started),
        },
    ))
}

/// A request that [`accept`] refused: why, and the response to answer it
/// with (`400`, `426` ...).
#[derive(Debug)]
#[non_exhaustive]
pub struct Rejection<ResB> {
    /// What was wrong with the request.
    pub error: Error,
    /// The response to send instead of the `101`.
    pub response: Response<ResB>,
}

/// Completes once hyper has sent the `101` (or the `200` to an extended
/// CONNECT) and handed over the connection or stream, yielding the sender
/// and the connection future to drive.
#[must_use = "futures do nothing unless polled"]
pub struct Pending<B> {
    inner: Pin<Box<dyn Future<Output = Started<B>> + Send>>,
}

impl<B> Future for Pending<B> {
    type Output = Started<B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B> fmt::Debug for Pending<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}
