//! Long-poll clients at `<access>` (RELAY.md): ReverseHttp's registration,
//! polls and `message/http` replies, and Second Life's JSON posts. They
//! join the name's pool beside PTTH connections, as one member per name.

pub(crate) mod form;
mod poller;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, HeaderValue, RETRY_AFTER,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ptth::longpoll::{Limits, message, random_id};
use tracing::debug;

pub use poller::Poller;
pub(crate) use wire::forward;

use crate::names::{ClaimError, Claimed};
use crate::peers::refused;
use crate::pool::Pool;
use crate::relay::{Charge, Relay, RelayBody, status};

/// How long-poll clients are served.
#[derive(Debug, Clone, Copy)]
pub struct LongPoll {
    /// How long a poll is held before `204`. Default is 30 s, ReverseHttp's.
    pub hold: Duration,
    /// The largest request body sent to, or reply read from, a client.
    /// Default is 1 MiB: bodies cross whole, never streamed.
    pub max_body: usize,
    /// Requests queued or awaiting replies, per name. Default is 64.
    pub requests: usize,
    /// Polls parked per name. Default is 32.
    pub polls: usize,
    /// Polls parked on the whole relay. Default is 10,000.
    pub parked: usize,
    /// Polls parked by one client address (an IPv6 one by its /64), so
    /// one client cannot take every place. Default is none: 1/8 of
    /// `parked`.
    pub parked_per_client: Option<usize>,
}

impl LongPoll {
    /// The bounds on parked polls, per client and in all.
    pub fn parked_bounds(&self) -> crate::slots::Bounds {
        crate::slots::Bounds {
            per_client: self.parked_per_client.unwrap_or(self.parked / 8).max(1),
            total: self.parked,
        }
    }
}

impl Default for LongPoll {
    fn default() -> Self {
        LongPoll {
            hold: Duration::from_secs(30),
            max_body: 1024 * 1024,
            requests: 64,
            polls: 32,
            parked: 10_000,
            parked_per_client: None,
        }
    }
}

/// Handles a request under the access path that is not a PTTH upgrade;
/// `rest` is the path after the access path.
pub(crate) async fn handle(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    rest: &str,
    client: SocketAddr,
) -> Response<RelayBody> {
    let mut response = route(relay, request, rest, client).await;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Link, Requesting-Client, Location, Retry-After"),
    );
    response
}

async fn route(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    rest: &str,
    client: SocketAddr,
) -> Response<RelayBody> {
    let segments: Vec<String> = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(form::decode)
        .collect();
    let json = wire::is_json(request.headers());
    match (request.method(), segments.as_slice(), json) {
        (&Method::OPTIONS, ..) => preflight(),
        (&Method::POST, [], _) => register(relay, request, client).await,
        (&Method::POST, [name], true) => {
            let token = crate::peers::token(&request);
            wire::json(relay, request, name, token, client).await
        }
        (_, [_], _) => status(
            StatusCode::UPGRADE_REQUIRED,
            "a PTTH peer claims its name with an upgrade; a long-poll client registers with POST <access>",
        ),
        (&Method::POST, [name, token] | [name, token, _], true) => {
            let token = Some(token.clone());
            wire::json(relay, request, name, token, client).await
        }
        (&Method::GET, [name, token], _) => match pool(relay, name, Some(token), client).await {
            Ok(_) => polled(relay, &request, name, token, StatusCode::NO_CONTENT, None),
            Err(error) => refused(&error),
        },
        (&Method::GET, [name, token, id], _) => {
            poll(relay, request, (name, token, id), client).await
        }
        (&Method::POST, [name, token, id], false) => {
            reply(relay, request, (name, token, id), client).await
        }
        _ => status(StatusCode::NOT_FOUND, "no such long-poll URL"),
    }
}

fn preflight() -> Response<RelayBody> {
    let mut response = status(StatusCode::NO_CONTENT, "");
    *response.body_mut() = crate::relay::full(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, Accept"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// `POST <access>`: claims a name for long-poll clients.
async fn register(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    client: SocketAddr,
) -> Response<RelayBody> {
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, ());
    let body = match wire::collect(relay, body, 8 * 1024).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let params = form::Params::parse(query.as_deref(), &body);
    let Some(name) = params.get("name") else {
        return status(StatusCode::BAD_REQUEST, "a registration needs a name");
    };
    let lease = match params.get("lease").map(|lease| lease.parse::<u64>()) {
        None => None,
        Some(Ok(seconds)) => Some(Duration::from_secs(seconds)),
        Some(Err(_)) => return status(StatusCode::BAD_REQUEST, "the lease is whole seconds"),
    };
    let token = params.get("token");
    let claimed = relay.claim(name, token, lease, client.ip(), Charge::Every);
    let claimed = match claimed.await {
        Ok(claimed) => claimed,
        Err(error) => return refused(&error),
    };
    poller_of(relay, &claimed.pool);
    let code = if claimed.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    debug!(%name, created = claimed.created, "long-poll registration");
    let mut response = polled(relay, &request, name, &claimed.token, code, None);
    *response.body_mut() = crate::relay::full(Bytes::new());
    response
}

/// `GET <access>/<name>/<token>/<id>`: a poll.
async fn poll(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    (name, token, id): (&str, &str, &str),
    client: SocketAddr,
) -> Response<RelayBody> {
    let pool = match pool(relay, name, Some(token), client).await {
        Ok(claimed) => claimed.pool,
        Err(error) => return refused(&error),
    };
    let poller = poller_of(relay, &pool);
    let Some(_parked) = relay.parked.take(client.ip()) else {
        return parked_full();
    };
    match poller.poll(id, relay.settings.longpoll.hold).await {
        Ok(Some(delivered)) => {
            let body = Bytes::from(message::encode_request(&delivered));
            let mut response = polled(relay, &request, name, token, StatusCode::OK, Some(body));
            wire::delivered(&mut response, &delivered, "message/http");
            response
        }
        Ok(None) => polled(relay, &request, name, token, StatusCode::NO_CONTENT, None),
        Err(error) => wire::refused_poll(&error),
    }
}

/// `POST <access>/<name>/<token>/<id>`: the reply to what `id` delivered.
async fn reply(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    (name, token, id): (&str, &str, &str),
    client: SocketAddr,
) -> Response<RelayBody> {
    let pool = match pool(relay, name, Some(token), client).await {
        Ok(claimed) => claimed.pool,
        Err(error) => return refused(&error),
    };
    let body = match wire::collect(relay, request.into_body(), relay.settings.longpoll.max_body)
        .await
    {
        Ok(body) if body.is_empty() => return status(StatusCode::BAD_REQUEST, "an empty reply"),
        Ok(body) => body,
        Err(refused) => return refused,
    };
    // Unreadable replies are accepted here and answered 502 to the public.
    let parsed = message::parse_response(&body);
    if poller_of(relay, &pool).reply(id, parsed) {
        status(StatusCode::ACCEPTED, "")
    } else {
        status(StatusCode::NOT_FOUND, "no request waits for a reply here")
    }
}

/// The name's pool for `token`, re-creating a name the relay forgot (a
/// restart, or a lease that ran out): RELAY.md's rule for polls. Only a
/// re-creation or a wrong token counts against the client's claim limit.
async fn pool(
    relay: &Relay,
    name: &str,
    token: Option<&str>,
    client: SocketAddr,
) -> Result<Claimed, ClaimError> {
    relay
        .claim(name, token, None, client.ip(), Charge::Creating)
        .await
}

fn poller_of(relay: &Relay, pool: &Arc<Pool>) -> Arc<Poller> {
    let settings = relay.settings.longpoll;
    pool.poller(|| {
        let limits = Limits {
            requests: settings.requests,
            polls: settings.polls,
            reply_wait: relay.settings.head_timeout,
        };
        // A client re-polls at once after each answer; one that has not
        // for a hold and then some has gone.
        Poller::new(limits, settings.hold + Duration::from_secs(10))
    })
}

/// A poll's or registration's answer, with the URLs the client follows:
/// `Link` to the next poll and the public URL, `Location` the private one.
fn polled(
    relay: &Relay,
    request: &Request<impl Sized>,
    name: &str,
    token: &str,
    code: StatusCode,
    body: Option<Bytes>,
) -> Response<RelayBody> {
    let private = format!(
        "{}/{}/{}",
        wire::access_url(relay, request),
        form::encode(name),
        form::encode(token)
    );
    let next = format!("{private}/{}", random_id());
    let rel = if code == StatusCode::OK || request.method() == Method::GET {
        "next"
    } else {
        "first"
    };
    let mut response = status(code, "");
    *response.body_mut() = crate::relay::full(body.unwrap_or_default());
    let headers = response.headers_mut();
    headers.remove(http::header::CONTENT_TYPE);
    let public = crate::peers::public_url(relay, request, name);
    for link in [
        format!("<{next}>; rel=\"{rel}\""),
        format!("<{public}>; rel=\"related\""),
    ] {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(http::header::LINK, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&private) {
        headers.insert(http::header::LOCATION, value);
    }
    response
}

/// `503` for a poll that found the relay, or this client's share of it,
/// full of parked polls.
fn parked_full() -> Response<RelayBody> {
    let mut response = status(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many polls parked on this relay, or from this address",
    );
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
