//! What crosses to and from long-poll clients: bodies read whole and
//! bounded, and public requests handed over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ptth::longpoll::Error;
use tracing::debug;

use crate::http::headers::remove_hop_by_hop;
use crate::http::stall::{Stalled, Stalling};
use crate::http::{RelayBody, full, retry_later, text};
use crate::pool::Poller;
use crate::settings::Settings;
use crate::state::Relay;

/// The public client a delivered request came from, for the poll's
/// `Requesting-Client`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Requester(SocketAddr);

/// Whether a post is Second Life's JSON encoding.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    [CONTENT_TYPE, ACCEPT].iter().any(|name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"))
    })
}

/// The body, whole, if it is at most `max` bytes and never stalls for
/// `timeout`.
pub(super) async fn collect(
    timeout: Duration,
    body: Incoming,
    max: usize,
) -> Result<Bytes, Response<RelayBody>> {
    let body = Stalling::new(body, timeout);
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a long-poll body is at most {max} bytes"),
        )),
        Err(error) if error.is::<Stalled>() => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "the body stalled; send it without pauses",
        )),
        Err(error) => {
            debug!(%error, "a long-poll body broke off");
            Err(text(StatusCode::BAD_REQUEST, "the body broke off"))
        }
    }
}

/// A long-poll message's body, whole: a reply, a JSON post or a public
/// request on its way to a poller.
pub(super) async fn collect_message(
    settings: &Settings,
    body: Incoming,
) -> Result<Bytes, Response<RelayBody>> {
    collect(settings.body_timeout, body, settings.longpoll.max_body).await
}

/// Marks a poll's answer as carrying `delivered`.
pub(super) fn delivered(
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
pub(super) fn refused_poll(error: &Error) -> Response<RelayBody> {
    let code = if error.is_conflict() {
        StatusCode::CONFLICT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(code, &error.to_string())
}

/// Hands a public request to the name's long-poll clients and answers
/// with their reply. Upgrades cannot cross a poll; bodies cross whole.
pub(crate) async fn forward(
    relay: &Arc<Relay>,
    poller: &Poller,
    parts: Parts,
    body: Incoming,
    client: SocketAddr,
) -> Response<RelayBody> {
    let body = match collect_message(&relay.settings, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    relay.metrics.to_peer(body.len());
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(Requester(client));
    let Some(sent) = poller.send(request, relay.settings.waits.peer).await else {
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "no long-poll client took the request; it may be reconnecting",
            Duration::from_secs(1),
        );
    };
    match sent {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            relay.metrics.from_peer(body.len());
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, full(body))
        }
        Err(error) if error.is_timeout() => text(
            StatusCode::GATEWAY_TIMEOUT,
            "the long-poll client sent no reply in time",
        ),
        Err(error) if error.is_busy() => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            &error.to_string(),
            Duration::from_secs(1),
        ),
        Err(error) if error.is_malformed() => {
            debug!(%error, "the long-poll client's reply is no HTTP response");
            text(
                StatusCode::BAD_GATEWAY,
                "the long-poll client's reply was malformed: not an HTTP response",
            )
        }
        Err(error) => {
            debug!(%error, "the long-poll client failed");
            text(
                StatusCode::BAD_GATEWAY,
                "the long-poll client failed before its reply",
            )
        }
    }
}
