//! What the initiator can serve: a hyper service, or with the `tower`
//! feature a tower service such as an axum `Router`.
//!
//! [`Transposed::serve`](crate::initiator::Transposed::serve) and
//! [`Server::serve_connection`](crate::initiator::Server::serve_connection)
//! take either kind; this module holds the trait that lets them, which
//! callers never name.

use hyper::body::Incoming;
use hyper::service::HttpService;

/// A service that can serve a transposed connection: any hyper service
/// (such as `hyper::service::service_fn`), and with the `tower` feature any
/// cloneable tower service on `Request<Incoming>` (an axum `Router`,
/// `tower::service_fn`, a `tower::ServiceBuilder` stack).
///
/// The `Kind` parameter only keeps the two blanket implementations apart;
/// it is inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot serve a transposed connection",
    label = "not a hyper service, nor a tower service on `Request<Incoming>`",
    note = "axum Routers and other tower services need ptth's `tower` (or `axum`) feature"
)]
pub trait IntoHttpService<Kind> {
    /// The hyper service it becomes.
    type Service: HttpService<Incoming>;

    /// Converts it.
    fn into_http_service(self) -> Self::Service;
}

/// Marks a hyper service for [`IntoHttpService`].
#[derive(Debug)]
pub enum Hyper {}

impl<S> IntoHttpService<Hyper> for S
where
    S: HttpService<Incoming>,
{
    type Service = S;

    fn into_http_service(self) -> S {
        self
    }
}

/// Marks a tower service for [`IntoHttpService`].
#[cfg(feature = "tower")]
#[derive(Debug)]
pub enum Tower {}

#[cfg(feature = "tower")]
impl<S, B> IntoHttpService<Tower> for S
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>> + Clone,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body,
{
    type Service = hyper_util::service::TowerToHyperService<S>;

    fn into_http_service(self) -> Self::Service {
        hyper_util::service::TowerToHyperService::new(self)
    }
}
