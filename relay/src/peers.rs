//! How a peer claims a name: a PTTH upgrade to `<access>/<name>`, its
//! token in `Authorization: Bearer` or `?token=`.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{AUTHORIZATION, HOST, HeaderValue, LINK, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tracing::{debug, info};

use crate::names::ClaimError;
use crate::pool::PeerBody;
use crate::relay::{Charge, Relay, RelayBody, Routing, status};

/// Whether a request under the access path asks to become a peer: an
/// HTTP/1.1 `Upgrade`, or an HTTP/2 extended CONNECT.
pub(crate) fn is_setup<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(http::header::UPGRADE)
        || (request.method() == http::Method::CONNECT
            && request.extensions().get::<hyper::ext::Protocol>().is_some())
}

/// Handles a request under the access path; `rest` is the path after it.
pub(crate) async fn claim(
    relay: &Relay,
    mut request: Request<Incoming>,
    rest: &str,
    client: SocketAddr,
) -> Response<RelayBody> {
    let name = rest.trim_start_matches('/');
    if name.is_empty() || name.contains('/') {
        return status(StatusCode::NOT_FOUND, "claim a name at <access>/<name>");
    }
    // Validated before the claim, so a request that cannot become a peer
    // never holds a name.
    let accepted = ptth::upgrade::accept::<_, Full<Bytes>, PeerBody>(&relay.acceptor, &mut request);
    let (switching, pending) = match accepted {
        Ok(accepted) => accepted,
        Err(rejection) => {
            return rejection
                .response
                .map(|body| body.map_err(|never| match never {}).boxed());
        }
    };
    let token = token(&request);
    let claimed = relay
        .claim(name, token.as_deref(), None, client.ip(), Charge::Every)
        .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) => return refused(&error),
    };
    let link = public_url(relay, &request, name);
    let pool = claimed.pool;
    let name = name.to_owned();
    let liveness = relay.settings.liveness;
    tokio::spawn(async move {
        match pending.await {
            Ok((sender, connection)) => {
                info!(%name, protocol = %sender.protocol(), "peer joined");
                let driver = tokio::spawn(connection).abort_handle();
                pool.add(sender, driver, liveness);
            }
            Err(error) => debug!(%name, %error, "peer's switch failed"),
        }
    });
    let mut switching = switching.map(|body| body.map_err(|never| match never {}).boxed());
    if let Ok(value) = HeaderValue::from_str(&format!("<{link}>; rel=\"related\"")) {
        switching.headers_mut().append(LINK, value);
    }
    switching
}

/// The answer to a refused claim: `400`, `403`, `429` or `503`, the last
/// two with `Retry-After`. It never names a token.
pub(crate) fn refused(error: &ClaimError) -> Response<RelayBody> {
    let (code, wait) = match error {
        ClaimError::InvalidName(_) => (StatusCode::BAD_REQUEST, None),
        ClaimError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
        ClaimError::RateLimited(wait) => (StatusCode::TOO_MANY_REQUESTS, Some(*wait)),
        ClaimError::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(1)),
        ),
    };
    let mut response = status(code, &error.to_string());
    if let Some(wait) = wait {
        let seconds = wait.as_secs_f64().ceil().max(1.0).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }
    response
}

/// The token from `Authorization: Bearer`, else from `?token=`.
pub(crate) fn token<B>(request: &Request<B>) -> Option<String> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| {
        request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(crate::longpoll::form::decode)
    })
}

/// The scheme and host a client dialled to reach the relay: its `Host`, or
/// on HTTP/2 the URI's authority.
pub(crate) fn dialled<'a, B>(relay: &Relay, request: &'a Request<B>) -> (&'static str, &'a str) {
    let scheme = if relay.settings.tls { "https" } else { "http" };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .unwrap_or("localhost");
    (scheme, host)
}

/// Where the public reaches `name`, built from the `Host` the peer dialled.
pub(crate) fn public_url<B>(relay: &Relay, request: &Request<B>, name: &str) -> String {
    let (scheme, host) = dialled(relay, request);
    match &relay.settings.routing {
        Routing::Path => format!("{scheme}://{host}/{name}/"),
        Routing::Host { domain } => {
            let port = host.rsplit_once(':').map_or("", |(_, port)| port);
            let port = if port.is_empty() {
                String::new()
            } else {
                format!(":{port}")
            };
            format!("{scheme}://{name}.{domain}{port}/")
        }
    }
}
