//! What every handler under the access path and the public side share:
//! who is asking (the client and whether it came over TLS), the token a
//! claim presents, the host a client dialled, the public URL of a name,
//! and the answer to a refused claim.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{AUTHORIZATION, HOST};
use http::{Request, Response, StatusCode};

use crate::http::headers::split_port;
use crate::http::{RelayBody, retry_later, text};
use crate::names::ClaimError;
use crate::settings::{Routing, Settings};

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    /// The client's address (a proxy's, behind one).
    pub addr: SocketAddr,
    /// Whether the connection is TLS: the scheme of the URLs the relay
    /// gives back, and of `X-Forwarded-Proto`.
    pub tls: bool,
}

impl Client {
    /// The scheme this client reached the relay with.
    pub fn scheme(self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// The answer to a refused claim: `400`, `403`, `429` or `503`, the last
/// two with `Retry-After`. It never names a token.
pub(crate) fn refused(error: &ClaimError) -> Response<RelayBody> {
    let reason = error.to_string();
    match error {
        ClaimError::InvalidName(_) => text(StatusCode::BAD_REQUEST, &reason),
        ClaimError::Forbidden(_)
        | ClaimError::KeyNeeded(_)
        | ClaimError::NotThisKey(_)
        | ClaimError::KeyNames(_) => text(StatusCode::FORBIDDEN, &reason),
        // A connection may close soon; a tunnel waits and tries again.
        ClaimError::KeyConnections(_) => retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            &reason,
            Duration::from_secs(5),
        ),
        ClaimError::RateLimited(wait) => retry_later(StatusCode::TOO_MANY_REQUESTS, &reason, *wait),
        ClaimError::Full => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            &reason,
            Duration::from_secs(1),
        ),
    }
}

/// The answer to a claim whose name got no TCP port: `501` on a relay
/// without a port range, `409` for a port not free, `503` with
/// `Retry-After` when every port is held, `429` with `Retry-After` when
/// the client's address holds its share.
pub(crate) fn port_refused(error: &crate::ports::PortError) -> Response<RelayBody> {
    use crate::ports::PortError;
    let reason = error.to_string();
    match error {
        PortError::NoRange => text(StatusCode::NOT_IMPLEMENTED, &reason),
        PortError::NotFree(_) => text(StatusCode::CONFLICT, &reason),
        PortError::Full => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            &reason,
            Duration::from_secs(5),
        ),
        PortError::TooMany(_) => retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            &reason,
            Duration::from_secs(5),
        ),
    }
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
            .map(crate::http::form::decode)
    })
}

/// The host a client dialled to reach the relay: its `Host`, or on
/// HTTP/2 the URI's authority.
pub(crate) fn dialled<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .unwrap_or("localhost")
}

/// Where the public reaches `name`, built from the host the peer dialled.
pub(crate) fn public_url<B>(
    settings: &Settings,
    client: Client,
    request: &Request<B>,
    name: &str,
) -> String {
    let scheme = client.scheme();
    let host = dialled(request);
    match &settings.routing {
        Routing::Path => format!("{scheme}://{host}/{name}/"),
        Routing::Host { domain } => {
            let port = match split_port(host).1 {
                Some(port) => format!(":{port}"),
                None => String::new(),
            };
            format!("{scheme}://{name}.{domain}{port}/")
        }
    }
}
