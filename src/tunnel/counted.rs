//! The device's service, wrapped so the tunnel knows when requests are in
//! flight: a connection is never retired for quiet while one is handled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
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

impl<S> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Counting<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        Counting {
            _in_flight: self.activity.request(),
            inner: Box::pin(self.inner.call(request)),
        }
    }
}

/// A response future that holds its request's [`InFlight`] mark.
pub(super) struct Counting<F> {
    // Boxed so the wrapper is Unpin without a pin projection.
    inner: Pin<Box<F>>,
    _in_flight: InFlight,
}

impl<F: Future> Future for Counting<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}
