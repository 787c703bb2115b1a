//! How a peer claims a name: a PTTH upgrade to `<access>/<name>`, its
//! token in `Authorization: Bearer` or `?token=`.

use http::header::{HeaderValue, LINK};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tracing::{debug, info};

use std::sync::Arc;

use super::access::{Client, dialled, port_refused, public_url, refused, token};
use crate::http::{RelayBody, text};
use crate::state::{Charge, Relay};

/// Whether a request under the access path asks to become a peer: an
/// HTTP/1.1 `Upgrade`, or an HTTP/2 extended CONNECT.
pub(crate) fn is_setup<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(http::header::UPGRADE)
        || (request.method() == http::Method::CONNECT
            && request.extensions().get::<hyper::ext::Protocol>().is_some())
}

/// A claim that names no name is sent, with a permanent redirect (which a
/// tunnel keeps for its later dials), to the first name derived from its
/// token that is free or already its own: the same for every connection
/// and reconnect of a device (docs/relay.md, "Claiming a name").
fn to_a_name_of_its_own<B>(relay: &Relay, request: &Request<B>) -> Response<RelayBody> {
    let Some(token) = token(request) else {
        return text(
            StatusCode::BAD_REQUEST,
            "a claim without a name needs a token, which keeps its name",
        );
    };
    // A key's holder gets a name its key may claim (`alice-*` gives
    // `alice-quiet-lamp-42`); a token the policy refuses hears why.
    let mut refusal = None;
    let free = (0..8)
        .filter_map(|attempt| {
            let word = crate::wordname::derived(&token, attempt);
            relay.names.name_for(&token, word)
        })
        .find(|name| match relay.names.permits(name, Some(&token)) {
            Ok(_) => relay.names.lookup(name).is_none() || relay.names.held_with(name, &token),
            Err(error) => {
                refusal.get_or_insert(error);
                false
            }
        });
    let Some(name) = free else {
        if let Some(error) = refusal {
            return refused(&error);
        }
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no free name; claim one by name",
        );
    };
    let path = request.uri().path().trim_end_matches('/');
    let location = match request.uri().query() {
        Some(query) => format!("{path}/{name}?{query}"),
        None => format!("{path}/{name}"),
    };
    let mut response = text(
        StatusCode::PERMANENT_REDIRECT,
        &format!("your name is {name}"),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

/// Handles a request under the access path; `rest` is the path after it.
pub(crate) async fn claim(
    relay: &Arc<Relay>,
    mut request: Request<Incoming>,
    rest: &str,
    client: Client,
) -> Response<RelayBody> {
    let name = rest.trim_start_matches('/');
    if name.is_empty() {
        return to_a_name_of_its_own(relay, &request);
    }
    if name.contains('/') {
        return text(StatusCode::NOT_FOUND, "claim a name at <access>/<name>");
    }
    // Validated before the claim, so a request that cannot become a peer
    // never holds a name.
    let accepted = ptth::upgrade::accept::<RelayBody, Full<Bytes>>(&relay.acceptor, &mut request);
    let (switching, pending) = match accepted {
        Ok(accepted) => accepted,
        Err(rejection) => {
            return rejection
                .response
                .map(|body| body.map_err(|never| match never {}).boxed());
        }
    };
    let Ok(strip_prefix) = crate::http::claim_fields::strip_prefix(request.headers()) else {
        return text(StatusCode::BAD_REQUEST, "Ptth-Strip-Prefix is ?1 or ?0");
    };
    let Ok(tcp_port) = crate::http::claim_fields::tcp_port(request.headers()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Ptth-Tcp-Port is a port, or 0 for any",
        );
    };
    let token = token(&request);
    let joining = match relay.names.admits_connection(token.as_deref()) {
        Ok(joining) => joining,
        Err(error) => return refused(&error),
    };
    let claimed = relay
        .claim(
            name,
            token.as_deref(),
            None,
            client.addr.ip(),
            Charge::Every,
        )
        .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) => return refused(&error),
    };
    let link = public_url(&relay.settings, client, &request, name);
    let pool = claimed.pool;
    // A TCP name's address comes first: it is what the claim asked for.
    let mut links = Vec::new();
    if let Some(asked) = tcp_port {
        match super::tcp::port_for(relay, (name, client.addr.ip()), &pool, asked).await {
            Ok(port) => {
                let (host, _) = crate::http::headers::split_port(dialled(&request));
                links.push(format!("<tcp://{host}:{port}>; rel=\"related\""));
            }
            Err(error) => {
                // A name this claim created must not stay held by a
                // claim that was refused: a retry with another port and
                // a token of its own would get 403 for the lease.
                if claimed.created {
                    relay.unclaim(name, &pool).await;
                }
                return port_refused(&error);
            }
        }
    }
    links.push(format!("<{link}>; rel=\"related\""));
    if let Some(strip) = strip_prefix {
        pool.set_strip_name(strip);
    }
    let name = name.to_owned();
    let liveness = relay.settings.liveness;
    tokio::spawn(async move {
        match pending.await {
            Ok((sender, connection)) => {
                info!(%name, protocol = %sender.protocol(), "peer joined");
                let driver = tokio::spawn(connection).abort_handle();
                pool.add(sender, driver, liveness);
            }
            Err(error) => {
                debug!(%name, error = &error as &dyn std::error::Error, "peer's switch failed")
            }
        }
        // In the pool now, or never: the pool counts it from here.
        drop(joining);
    });
    let mut switching = switching.map(|body| body.map_err(|never| match never {}).boxed());
    for link in links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            switching.headers_mut().append(LINK, value);
        }
    }
    switching
}
