//! Second Life's long-poll encoding: one JSON post carries the reply to
//! the last request (or `{}`) and is answered with the next request as
//! JSON, or `{}` when the hold ends.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ptth::longpoll::json;

use super::wire::{collect_message, delivered, refused_poll};
use super::{parked_full, polled, poller_of, pool};
use crate::http::{RelayBody, text};
use crate::routes::access::{Client, refused};
use crate::state::Relay;
use crate::token::random_token;

/// A Second Life post: the reply it carries (or `{}`), then a poll
/// answered with the next request as JSON, or `{}` when the hold ends.
pub(super) async fn post(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    name: &str,
    token: Option<String>,
    client: Client,
) -> Response<RelayBody> {
    let claimed = match pool(relay, name, token.as_deref(), client).await {
        Ok(claimed) => claimed,
        Err(error) => return refused(&error),
    };
    let poller = poller_of(&relay.settings, &claimed.pool);
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, ());
    let body = match collect_message(&relay.settings, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        match json::parse_response(&body) {
            Ok(Some((id, response))) => {
                poller.reply(&id, Ok(response));
            }
            Ok(None) => {}
            Err(error) => return text(StatusCode::BAD_REQUEST, &error.to_string()),
        }
    }
    let Some(_parked) = relay.parked.take(client.addr.ip()) else {
        return parked_full();
    };
    let id = random_token();
    let (body, next) = match poller.poll(&id, relay.settings.longpoll.hold).await {
        Ok(Some(delivered)) => (json::encode_request(&id, &delivered), Some(delivered)),
        Ok(None) => (b"{}".to_vec(), None),
        Err(error) => return refused_poll(&error),
    };
    let mut response = polled(
        &relay.settings,
        client,
        &request,
        name,
        &claimed.token,
        StatusCode::OK,
        Some(Bytes::from(body)),
    );
    match next {
        Some(request) => delivered(&mut response, &request, "application/json"),
        None => {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    response
}
