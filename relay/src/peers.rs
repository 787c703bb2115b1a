//! How a peer claims a name: a PTTH upgrade to `<access>/<name>`, its
//! token in `Authorization: Bearer` or `?token=`.

use std::net::SocketAddr;

use http::header::{AUTHORIZATION, HOST, HeaderValue, LINK, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tracing::{debug, info};

use crate::names::ClaimError;
use crate::pool::PeerBody;
use crate::relay::{Relay, RelayBody, Routing, status};

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
    if !request.headers().contains_key(http::header::UPGRADE) {
        return status(
            StatusCode::UPGRADE_REQUIRED,
            "a peer claims its name with a PTTH upgrade",
        );
    }
    if let Err(wait) = relay.limiter.take(client.ip()) {
        let mut response = status(
            StatusCode::TOO_MANY_REQUESTS,
            "too many claims from this address; retry later",
        );
        let seconds = wait.as_secs_f64().ceil().max(1.0).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return response;
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
    let claimed = match relay.names.claim(name, token.as_deref(), None) {
        Ok(claimed) => claimed,
        Err(error @ ClaimError::InvalidName(_)) => {
            return status(StatusCode::BAD_REQUEST, &error.to_string());
        }
        Err(error @ ClaimError::Forbidden(_)) => {
            return status(StatusCode::FORBIDDEN, &error.to_string());
        }
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

/// The token from `Authorization: Bearer`, else from `?token=`.
fn token(request: &Request<Incoming>) -> Option<String> {
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
            .map(percent_decode)
    })
}

/// `%XX` sequences decoded; anything else is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the public reaches `name`, built from the `Host` the peer dialled.
fn public_url(relay: &Relay, request: &Request<Incoming>, name: &str) -> String {
    let scheme = if relay.settings.tls { "https" } else { "http" };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_queries_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Fb%3d"), "a/b=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz-"), "%zz-");
    }
}
