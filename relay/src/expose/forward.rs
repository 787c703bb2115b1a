//! The service `expose` serves on the tunnel: each visitor's request,
//! past the guard, to the origin on a kept connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ptth::guard::Guard;

use crate::http::headers::remove_hop_by_hop;
use crate::http::{BoxError, RelayBody, text};
use crate::inspect::Inspector;

use super::origin::{Origin, OriginError};

/// The visitor's 502 when the origin failed before its response, saying
/// so in a sentence, and the log line with the whole cause.
fn origin_down(origin: &Uri, error: &OriginError) -> Response<RelayBody> {
    // The I/O error under hyper's or the connector's, if there is one.
    let causes = std::iter::successors(std::error::Error::source(error), |cause| cause.source());
    let refused = causes
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        .next();
    let why = match refused {
        Some(std::io::ErrorKind::ConnectionRefused) => "it refused the connection".to_owned(),
        Some(std::io::ErrorKind::TimedOut) => "it did not accept a connection in time".to_owned(),
        _ if matches!(error, OriginError::Connect(_)) => "it could not be reached".to_owned(),
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

/// Forwards each request the guard admits to the origin on a kept
/// connection, streaming both ways.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    pub(super) origin: Arc<Origin>,
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
                origin = %origin.uri(),
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
        let target = self.target(request.uri());
        let guard = self.guard.clone();
        let origin = self.origin.clone();
        let rewrite_host = self.rewrite_host;
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
            // hyper's bare connection sets no `Host`: the origin's own
            // when asked for, or when the visitor's is missing.
            let host = match rewrite_host {
                true => origin.host().cloned(),
                false => visitor_host.or_else(|| origin.host().cloned()),
            };
            if let Some(host) = host {
                parts.headers.insert(http::header::HOST, host);
            }
            parts.uri = target;
            parts.version = http::Version::HTTP_11;
            let mut response = match origin.send(Request::from_parts(parts, body)).await {
                Ok(response) => response,
                Err(error) => return origin_down(origin.uri(), &error),
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

    /// The origin-form target on the origin's connection: the origin's
    /// path as a prefix, then the request's path and query.
    fn target(&self, uri: &Uri) -> Option<Uri> {
        let prefix = self.origin.uri().path().trim_end_matches('/');
        let rest = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        format!("{prefix}{rest}").parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_join_the_origin_prefix_and_the_request() {
        let forward = Forward {
            origin: Origin::new(Uri::from_static("http://127.0.0.1:3000/app/"), None).unwrap(),
            rewrite_host: false,
            guard: Arc::default(),
            inspector: None,
        };
        let target = forward.target(&Uri::from_static("/lamp/x?y=1")).unwrap();
        assert_eq!(target, "/app/lamp/x?y=1");
    }
}
