//! The device's service, wrapped so the tunnel knows when requests are in
//! flight: a connection is never retired for quiet while one is handled,
//! nor once a request has taken it over.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::Service;

use super::watched::{Activity, InFlight};

/// A service that marks each request in flight on the connection's
/// [`Activity`] until its response future is done.
#[derive(Debug, Clone)]
pub(super) struct Counted<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
}

impl<S, B> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Counting<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // Only on HTTP/1.1 does a CONNECT or an upgrade take the whole
        // connection; on HTTP/2 it is one stream among others.
        let on_http1 = request.version() == Version::HTTP_11;
        Counting {
            in_flight: self.activity.request(),
            connect: on_http1 && request.method() == Method::CONNECT,
            upgrade: on_http1,
            inner: Box::pin(self.inner.call(request)),
        }
    }
}

/// A response future that holds its request's [`InFlight`] mark.
pub(super) struct Counting<F> {
    // Boxed so the wrapper is Unpin without a pin projection.
    inner: Pin<Box<F>>,
    in_flight: InFlight,
    /// A `2xx` to this request hands the connection over.
    connect: bool,
    /// A `101` to this request hands the connection over.
    upgrade: bool,
}

impl<F, B, E> Future for Counting<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let output = ready!(this.inner.as_mut().poll(cx));
        if let Ok(response) = &output {
            let status = response.status();
            let taken = (this.connect && status.is_success())
                || (this.upgrade && status == StatusCode::SWITCHING_PROTOCOLS);
            if taken {
                // The bytes are a tunnel's or a WebSocket's now, and
                // quiet is theirs to judge: docs/protocol.md, "TCP over
                // PTTH: CONNECT".
                this.in_flight.hand_over();
            }
        }
        Poll::Ready(output)
    }
}
