//! The service `expose` serves on the tunnel: each visitor's request,
//! past the guard, to the origin with a pooled hyper client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ptth::guard::Guard;

use crate::http::headers::remove_hop_by_hop;
use crate::http::{BoxError, RelayBody, text};
use crate::inspect::Inspector;

/// The pooled client for the origin: plain HTTP, or TLS trusting the
/// Mozilla roots and `ca`; each connect bounded, Nagle off.
pub(super) fn origin_client(ca: Option<&std::path::Path>) -> Result<OriginClient, String> {
    let tls = crate::pem::client_config(true, ca)?;
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(ORIGIN_CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// hyper's client for the origin, over TCP or TLS. Boxed bodies: a
/// visitor's streams in, an inspector's replay is bytes kept.
pub(super) type OriginClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, RelayBody>;

/// How long the origin may take to accept a connection.
const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The visitor's 502 when the origin failed before its response, saying
/// so in a sentence, and the log line with the whole cause.
fn origin_down(origin: &Uri, error: &hyper_util::client::legacy::Error) -> Response<RelayBody> {
    // The I/O error under hyper's, if there is one.
    let causes = std::iter::successors(std::error::Error::source(error), |cause| cause.source());
    let refused = causes
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        .next();
    let why = match refused {
        Some(std::io::ErrorKind::ConnectionRefused) => "it refused the connection".to_owned(),
        Some(std::io::ErrorKind::TimedOut) => "it did not accept a connection in time".to_owned(),
        _ if error.is_connect() => "it could not be reached".to_owned(),
        _ => "it closed the connection before its response".to_owned(),
    };
    tracing::warn!(%origin, cause = report(error), "the origin is down: {why}");
    text(
        StatusCode::BAD_GATEWAY,
        &format!("the origin behind this name is down: {why}"),
    )
}

/// `error` and each of its causes, `: `-separated: `ptth::Error` names
/// only its own level ("cannot connect to relay:80") and leaves the cause
/// ("connection refused") to `source()`.
pub(super) fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(": ");
        line.push_str(&error.to_string());
        cause = error.source();
    }
    line
}

/// Forwards each request the guard admits to the origin with a pooled
/// hyper client, streaming both ways.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    pub(super) client: OriginClient,
    pub(super) origin: Uri,
    /// Whether the origin sees its own authority as `Host`.
    pub(super) rewrite_host: bool,
    pub(super) guard: Arc<Guard>,
    /// Records each exchange, with `--inspect`.
    pub(super) inspector: Option<Inspector>,
}

impl hyper::service::Service<Request<Incoming>> for Forward {
    type Response = Response<RelayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RelayBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // The relay's liveness check on HTTP/1.1: answered here, since it
        // is for the tunnel, not the origin.
        if request.method() == http::Method::OPTIONS && request.uri() == "*" {
            let mut response = text(StatusCode::NO_CONTENT, "");
            *response.body_mut() = crate::http::full(Bytes::new());
            return Box::pin(async move { Ok(response) });
        }
        let request = request.map(|body| body.map_err(BoxError::from).boxed());
        // With --inspect, the exchange is recorded as it passes: its
        // bodies are teed, nothing waits for them.
        let (request, recording) = match &self.inspector {
            Some(inspector) => {
                let (request, recording) = inspector.begin(request);
                (request, Some(recording))
            }
            None => (request, None),
        };
        let forwarded = self.forward(request);
        Box::pin(async move {
            let response = forwarded.await;
            Ok(match recording {
                Some(recording) => recording.finish(response),
                None => response,
            })
        })
    }
}

impl Forward {
    /// The answer to `request` and its log line: the path of a visitor's
    /// request, and of the inspector's replay of one.
    pub(super) fn forward(
        &self,
        request: Request<RelayBody>,
    ) -> impl Future<Output = Response<RelayBody>> + Send + 'static {
        let started = tokio::time::Instant::now();
        let method = request.method().clone();
        // Shares the request's bytes: no copy for the log line.
        let path = request.uri().path_and_query().cloned();
        let origin = self.origin.clone();
        let answered = self.answer(request);
        async move {
            let response = answered.await;
            tracing::info!(
                %method,
                target = %path.as_ref().map_or("/", http::uri::PathAndQuery::as_str),
                status = response.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                %origin,
                "request"
            );
            response
        }
    }

    /// The answer to a visitor's request: the guard's refusal, the
    /// origin's response, or a 502 that says the origin is down.
    fn answer(
        &self,
        request: Request<RelayBody>,
    ) -> impl Future<Output = Response<RelayBody>> + Send + 'static {
        let client = self.client.clone();
        let target = self.target(request.uri());
        let guard = self.guard.clone();
        let origin = self.origin.clone();
        let origin_host = (self.rewrite_host)
            .then(|| {
                origin
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            })
            .flatten();
        async move {
            // Before anything of the request reaches the origin; the
            // liveness check above is the relay's, not a visitor's.
            let mut request = match guard.check(request).await {
                Ok(request) => request,
                Err(refusal) => return refusal.into_response(),
            };
            let Some(target) = target else {
                return text(StatusCode::BAD_REQUEST, "invalid request target");
            };
            // From an HTTP/2 relay an upgrade comes as an extended CONNECT.
            let connect = crate::http::upgrade::from_extended_connect(&mut request);
            let upgrade = connect
                .clone()
                .or_else(|| crate::http::upgrade::requested(request.headers()));
            let relay_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
            let (mut parts, body) = request.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            if let Some(upgrade) = upgrade {
                crate::http::upgrade::restore(&mut parts.headers, upgrade);
            }
            // The visitor's host comes as `Host` from an HTTP/1.1 relay
            // and as the authority from an HTTP/2 one; hyper would put the
            // origin's in its place.
            let visitor_host = (parts.headers.get(http::header::HOST).cloned()).or_else(|| {
                let authority = parts.uri.authority()?;
                HeaderValue::from_str(authority.as_str()).ok()
            });
            if let Some(host) = origin_host.or(visitor_host) {
                parts.headers.insert(http::header::HOST, host);
            }
            parts.uri = target;
            parts.version = http::Version::HTTP_11;
            let mut response = match client.request(Request::from_parts(parts, body)).await {
                Ok(response) => response,
                Err(error) => return origin_down(&origin, &error),
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(relay_upgrade) = relay_upgrade
            {
                crate::http::upgrade::spawn(relay_upgrade, hyper::upgrade::on(&mut response));
                let (mut parts, _) = response.into_parts();
                if connect.is_some() {
                    parts.status = StatusCode::OK;
                    parts.headers = crate::http::upgrade::accepted_from(&parts.headers);
                }
                return Response::from_parts(parts, crate::http::full(Bytes::new()));
            }
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(BoxError::from).boxed())
        }
    }

    /// The origin's scheme and authority, its path as a prefix, then the
    /// request's path and query.
    fn target(&self, uri: &Uri) -> Option<Uri> {
        let prefix = self.origin.path().trim_end_matches('/');
        let rest = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let mut parts = self.origin.clone().into_parts();
        parts.path_and_query = Some(format!("{prefix}{rest}").parse().ok()?);
        Uri::from_parts(parts).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_join_the_origin_prefix_and_the_request() {
        let forward = Forward {
            client: origin_client(None).unwrap(),
            rewrite_host: false,
            origin: Uri::from_static("http://127.0.0.1:3000/app/"),
            guard: Arc::default(),
            inspector: None,
        };
        let target = forward.target(&Uri::from_static("/lamp/x?y=1")).unwrap();
        assert_eq!(target, "http://127.0.0.1:3000/app/lamp/x?y=1");
    }
}
