//! A [`Guard`] in front of a service: as a hyper service, and with the
//! `tower` feature as a tower service and layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};

use super::Guard;

/// The future of a [`Guarded`] service's answer.
type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// A service behind a [`Guard`]: requests the guard admits reach it, the
/// others are answered with the guard's [`Refusal`](super::Refusal)
/// (and an empty body of the service's body type, which so must be
/// `Default`, as `Full`, `Empty` and axum's `Body` are).
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S> Guarded<S> {
    /// `inner` behind `guard`; [`Guard::service`] says the same.
    pub fn new(guard: Guard, inner: S) -> Self {
        Guarded {
            guard: Arc::new(guard),
            inner,
        }
    }

    /// The guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The service behind the guard.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The service behind the guard, without it.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> hyper::service::Service<Request<B>> for Guarded<S>
where
    S: hyper::service::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Answer<Response<R>, S::Error>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let guard = self.guard.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            match guard.check(request).await {
                Ok(request) => {
                    let answer = inner.call(request);
                    answer.await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// With the `tower` feature a guarded tower service (an axum `Router`) is
/// a tower service.
#[cfg(feature = "tower")]
impl<S, B, R> tower_service::Service<Request<B>> for Guarded<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Answer<Response<R>, S::Error>;

    /// Ready when the service behind is: a refusal needs nothing, but an
    /// admitted request goes on to it.
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service made ready goes with this request; the clone left
        // behind is made ready for the next (as tower's docs advise).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.check(request).await {
                Ok(request) => inner.call(request).await,
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// With the `tower` feature a guard is a tower layer:
/// `ServiceBuilder::new().layer(guard)`, or axum's `Router::layer`.
#[cfg(feature = "tower")]
impl<S> tower_layer::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        self.service(inner)
    }
}
