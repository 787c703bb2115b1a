//! What crosses to and from long-poll clients: bodies read whole and
//! bounded, Second Life's JSON posts, and public requests handed over.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ptth::longpoll::{Error, json, random_id};
use tracing::debug;

use super::{polled, poller_of, pool};
use crate::headers::remove_hop_by_hop;
use crate::longpoll::Poller;
use crate::relay::{Relay, RelayBody, full, status};
use crate::stall::{Stalled, Stalling};

/// The public client a delivered request came from, for the poll's
/// `Requesting-Client`.
#[derive(Debug, Clone, Copy)]
struct Requester(SocketAddr);

/// Whether a post is Second Life's JSON encoding.
pub fn is_json(headers: &HeaderMap) -> bool {
    [CONTENT_TYPE, ACCEPT].iter().any(|name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"))
    })
}

/// The body, whole, if it is at most `max` bytes and never stalls for
/// the relay's body timeout.
pub async fn collect(
    relay: &Relay,
    body: Incoming,
    max: usize,
) -> Result<Bytes, Response<RelayBody>> {
    let body = Stalling::new(body, relay.settings.body_timeout);
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a long-poll body is at most {max} bytes"),
        )),
        Err(error) if error.is::<Stalled>() => Err(status(
            StatusCode::REQUEST_TIMEOUT,
            "the body stalled; send it without pauses",
        )),
        Err(error) => {
            debug!(%error, "a long-poll body broke off");
            Err(status(StatusCode::BAD_REQUEST, "the body broke off"))
        }
    }
}

/// `<scheme>://<host><access>`, as the client reached it.
pub fn access_url(relay: &Relay, request: &Request<impl Sized>) -> String {
    let (scheme, host) = crate::peers::dialled(relay, request);
    let access = relay.settings.access.trim_end_matches('/');
    format!("{scheme}://{host}{access}")
}

/// Marks a poll's answer as carrying `delivered`.
pub fn delivered(
    response: &mut Response<RelayBody>,
    delivered: &Request<Bytes>,
    kind: &'static str,
) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(Requester(client)) = delivered.extensions().get::<Requester>()
        && let Ok(value) = HeaderValue::from_str(&client.to_string())
    {
        headers.insert("requesting-client", value);
    }
}

/// A poll that could not be parked.
pub fn refused_poll(error: &Error) -> Response<RelayBody> {
    let code = if error.is_conflict() {
        StatusCode::CONFLICT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    status(code, &error.to_string())
}

/// A Second Life post: the reply it carries (or `{}`), then a poll
/// answered with the next request as JSON, or `{}` when the hold ends.
pub async fn json(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    name: &str,
    token: Option<String>,
    client: SocketAddr,
) -> Response<RelayBody> {
    let claimed = match pool(relay, name, token.as_deref(), client).await {
        Ok(claimed) => claimed,
        Err(error) => return super::refused(&error),
    };
    let poller = poller_of(relay, &claimed.pool);
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, ());
    let body = match collect(relay, body, relay.settings.longpoll.max_body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        match json::parse_response(&body) {
            Ok(Some((id, response))) => {
                poller.reply(&id, Ok(response));
            }
            Ok(None) => {}
            Err(error) => return status(StatusCode::BAD_REQUEST, &error.to_string()),
        }
    }
    let Some(_parked) = relay.parked.take(client.ip()) else {
        return super::parked_full();
    };
    let id = random_id();
    let (body, delivered) = match poller.poll(&id, relay.settings.longpoll.hold).await {
        Ok(Some(delivered)) => (json::encode_request(&id, &delivered), Some(delivered)),
        Ok(None) => (b"{}".to_vec(), None),
        Err(error) => return refused_poll(&error),
    };
    let mut response = polled(
        relay,
        &request,
        name,
        &claimed.token,
        StatusCode::OK,
        Some(Bytes::from(body)),
    );
    match delivered {
        Some(delivered) => self::delivered(&mut response, &delivered, "application/json"),
        None => {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    response
}

/// Hands a public request to the name's long-poll clients and answers
/// with their reply. Upgrades cannot cross a poll; bodies cross whole.
pub async fn forward(
    relay: &Arc<Relay>,
    poller: &Poller,
    parts: Parts,
    body: Incoming,
    client: SocketAddr,
) -> Response<RelayBody> {
    let body = match collect(relay, body, relay.settings.longpoll.max_body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    relay.metrics.to_peer(body.len());
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(Requester(client));
    let Some(sent) = poller.send(request, relay.settings.waits.peer).await else {
        let mut response = status(
            StatusCode::SERVICE_UNAVAILABLE,
            "no long-poll client took the request; it may be reconnecting",
        );
        let headers = response.headers_mut();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match sent {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            relay.metrics.from_peer(body.len());
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, full(body))
        }
        Err(error) if error.is_timeout() => status(
            StatusCode::GATEWAY_TIMEOUT,
            "the long-poll client sent no reply in time",
        ),
        Err(error) if error.is_busy() => {
            let mut response = status(StatusCode::SERVICE_UNAVAILABLE, &error.to_string());
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(error) if error.is_malformed() => {
            debug!(%error, "the long-poll client's reply is no HTTP response");
            status(
                StatusCode::BAD_GATEWAY,
                "the long-poll client's reply was malformed: not an HTTP response",
            )
        }
        Err(error) => {
            debug!(%error, "the long-poll client failed");
            status(
                StatusCode::BAD_GATEWAY,
                "the long-poll client failed before its reply",
            )
        }
    }
}
