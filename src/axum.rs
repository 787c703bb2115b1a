//! axum and PTTH (feature `axum`): accepting PTTH peers in an axum
//! handler, and [`serve`] for a router served through a tunnel.
//!
//! [`PtthUpgrade`] is to PTTH what axum's `WebSocketUpgrade` is to
//! WebSocket: take it as a handler argument, look at the upgrade request
//! to authenticate and route, and answer with
//! [`on_upgrade`](PtthUpgrade::on_upgrade), whose callback receives the
//! sender once the connection has switched. A request that is no PTTH
//! upgrade never reaches the handler: the extractor answers it with the
//! same `400`/`426` as [`acceptor::Builder`].
//!
//! ```no_run
//! use axum::{Router, routing::any};
//! use axum::body::Body;
//! use axum::response::Response;
//! use ptth::axum::PtthUpgrade;
//!
//! async fn connect(upgrade: PtthUpgrade) -> Response {
//!     upgrade.on_upgrade(|mut sender| async move {
//!         let request = axum::http::Request::get("/hello").body(Body::empty()).unwrap();
//!         if let Ok(response) = sender.send_request(request).await {
//!             println!("the peer answered {}", response.status());
//!         }
//!     })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new().route("/connect", any(connect));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Request, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;
use tracing::debug;

use crate::acceptor::{self, SendRequest};
use crate::{Dialect, Error, Protocol, upgrade};

/// An axum extractor for a PTTH upgrade request; see the
/// [module docs](self).
///
/// The request is checked with a default [`acceptor::Builder`] when it is
/// extracted; [`acceptor`](PtthUpgrade::acceptor) sets another one, which
/// checks it again when [`on_upgrade`](PtthUpgrade::on_upgrade) answers.
#[derive(Debug)]
pub struct PtthUpgrade {
    request: Request<()>,
    dialect: Dialect,
    protocol: Protocol,
    peer: Option<SocketAddr>,
    acceptor: acceptor::Builder,
}

impl PtthUpgrade {
    /// The upgrade request: method, target, version and headers. Its body,
    /// if any, is not read.
    pub fn request(&self) -> &Request<()> {
        &self.request
    }

    /// The upgrade request's target.
    pub fn uri(&self) -> &Uri {
        self.request.uri()
    }

    /// The upgrade request's headers, where credentials travel.
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// The dialect the initiator asked for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The protocol the connection will switch to with the default
    /// acceptor settings.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The initiator's address, when the app is served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The acceptor settings to switch with: dialects, protocols,
    /// authority, and hyper's client builders (keep-alive).
    ///
    /// Default is [`acceptor::Builder::new`].
    pub fn acceptor(mut self, acceptor: acceptor::Builder) -> Self {
        self.acceptor = acceptor;
        self
    }

    /// Answers `101 Switching Protocols` and, once hyper has handed over
    /// the connection, calls `callback` with the sender on a task of its
    /// own. The connection is driven on another task; `callback` learns
    /// of its end from [`SendRequest::closed`].
    ///
    /// When the settings given to [`acceptor`](PtthUpgrade::acceptor)
    /// refuse the request, this returns the refusal (`426`, `400`) instead.
    /// A switch that fails after the `101` (the peer went away) is logged
    /// at debug level and `callback` is not called.
    pub fn on_upgrade<F, Fut>(mut self, callback: F) -> Response
    where
        F: FnOnce(SendRequest<Body>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accepted = upgrade::accept::<Body, Body>(&self.acceptor, &mut self.request);
        let (switching, pending) = match accepted {
            Ok(accepted) => accepted,
            Err(rejection) => return rejection.response,
        };
        tokio::spawn(async move {
            let (sender, connection) = match pending.await {
                Ok(started) => started,
                Err(error) => {
                    debug!(
                        error = &error as &dyn std::error::Error,
                        "the PTTH switch failed"
                    );
                    return;
                }
            };
            let id = connection.id();
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    debug!(error = &error as &dyn std::error::Error, connection = %id, "PTTH connection ended");
                }
            });
            callback(sender).await;
        });
        switching
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PtthUpgrade {
    type Rejection = PtthUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let acceptor = acceptor::Builder::new();
        let validated = acceptor
            .validate_any(
                &parts.method,
                parts.version,
                &parts.headers,
                &parts.extensions,
            )
            .map_err(|error| PtthUpgradeRejection::refused(error, parts.version))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(PtthUpgradeRejection {
                error: Error::NotUpgrade("the connection cannot be upgraded"),
                response: None,
            })?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let mut request = Request::new(());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        request.extensions_mut().insert(on_upgrade);
        if let Some(protocol) = parts.extensions.get::<hyper::ext::Protocol>() {
            request.extensions_mut().insert(protocol.clone());
        }
        Ok(PtthUpgrade {
            request,
            dialect: validated.dialect,
            protocol: validated.protocol,
            peer,
            acceptor,
        })
    }
}

/// Why [`PtthUpgrade`] could not be extracted; it answers with the status
/// the [`acceptor`] would (`400`, `426`, ...), or `426`
/// when the server gave no way to take the connection over (a server
/// without upgrades, or HTTP/2 without extended CONNECT).
#[derive(Debug)]
pub struct PtthUpgradeRejection {
    error: Error,
    response: Option<http::Response<bytes::Bytes>>,
}

impl PtthUpgradeRejection {
    fn refused(error: Error, version: http::Version) -> Self {
        let response = acceptor::refusal(&error, version);
        PtthUpgradeRejection { error, response }
    }

    /// What was wrong with the request.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl IntoResponse for PtthUpgradeRejection {
    fn into_response(self) -> Response {
        match self.response {
            Some(response) => response.map(Body::from),
            None => (StatusCode::UPGRADE_REQUIRED, self.error.to_string()).into_response(),
        }
    }
}

/// Serves `app` on the connections of `listener` (from
/// [`tunnel::Builder::listen`](crate::tunnel::Builder::listen)) as
/// `axum::serve` does, until the tunnel stops; then returns how it ended:
/// `Ok(())` after [`Handle::shutdown`](crate::tunnel::Handle::shutdown),
/// or the error that ended it, such as the relay's `403` with its reason.
///
/// `axum::serve` itself cannot say: its listener's `accept` has no error
/// to give, and with a graceful shutdown it always returns `Ok(())`, so
/// a tunnel the relay refused would look like a clean stop.
///
/// ```no_run
/// # async fn run() -> Result<(), ptth::Error> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let listener = ptth::tunnel::Builder::new("https://relay.example/reversehttp/lamp").listen();
/// ptth::axum::serve(listener, app).await
/// # }
/// ```
pub async fn serve(listener: crate::tunnel::Listener, app: axum::Router) -> Result<(), Error> {
    let handle = listener.handle();
    let stopping = handle.clone();
    // Always `Ok(())` with a graceful shutdown (axum 0.8); the tunnel's
    // outcome is the answer.
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stopping.stopping().await })
        .await;
    handle.outcome().await
}
