//! Long-poll clients at `<access>` (docs/protocol.md, "The relay on the wire"): ReverseHttp's registration,
//! polls and `message/http` replies, and Second Life's JSON posts. They
//! join the name's pool beside PTTH connections, as one member per name.

mod json;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, HeaderValue, LINK, LOCATION,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ptth::longpoll::{Limits, message};
use tracing::debug;

pub(crate) use wire::forward;

use super::access::{Client, dialled, public_url, refused, token};
use crate::http::form;
use crate::http::{RelayBody, empty, full, retry_later, text};
use crate::names::{ClaimError, Claimed};
use crate::pool::{Poller, Pool};
use crate::settings::Settings;
use crate::state::{Charge, Relay};
use crate::token::random_token;

/// Handles a request under the access path that is not a PTTH upgrade;
/// `rest` is the path after the access path.
pub(crate) async fn handle(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    rest: &str,
    client: Client,
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

/// What a URL under the access path asks, read from the method, the
/// path after the access path and whether the body is JSON: ReverseHttp's
/// URLs and Second Life's.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// A browser's CORS preflight.
    Preflight,
    /// `POST <access>`: a registration.
    Register,
    /// A Second Life post, with the token in its URL, or `None` for the
    /// request's `Authorization` or `?token=`.
    Json {
        name: String,
        token: Option<String>,
    },
    /// `<access>/<name>` without an upgrade.
    UpgradeRequired,
    /// `GET <access>/<name>/<token>`: a poll before the first id.
    Check {
        name: String,
        token: String,
    },
    /// `GET <access>/<name>/<token>/<id>`.
    Poll {
        name: String,
        token: String,
        id: String,
    },
    /// `POST <access>/<name>/<token>/<id>`, not JSON.
    Reply {
        name: String,
        token: String,
        id: String,
    },
    NotFound,
}

/// Reads `rest`, the path after the access path, its segments
/// percent-decoded.
fn ask(method: &Method, rest: &str, json: bool) -> Ask {
    let segments: Vec<String> = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(form::decode)
        .collect();
    match (method, segments.as_slice(), json) {
        (&Method::OPTIONS, ..) => Ask::Preflight,
        (&Method::POST, [], _) => Ask::Register,
        (&Method::POST, [name], true) => Ask::Json {
            name: name.clone(),
            token: None,
        },
        (_, [_], _) => Ask::UpgradeRequired,
        (&Method::POST, [name, token] | [name, token, _], true) => Ask::Json {
            name: name.clone(),
            token: Some(token.clone()),
        },
        (&Method::GET, [name, token], _) => Ask::Check {
            name: name.clone(),
            token: token.clone(),
        },
        (&Method::GET, [name, token, id], _) => Ask::Poll {
            name: name.clone(),
            token: token.clone(),
            id: id.clone(),
        },
        (&Method::POST, [name, token, id], false) => Ask::Reply {
            name: name.clone(),
            token: token.clone(),
            id: id.clone(),
        },
        _ => Ask::NotFound,
    }
}

async fn route(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    rest: &str,
    client: Client,
) -> Response<RelayBody> {
    let json = wire::is_json(request.headers());
    match ask(request.method(), rest, json) {
        Ask::Preflight => preflight(),
        Ask::Register => register(relay, request, client).await,
        Ask::Json { name, token } => {
            let token = token.or_else(|| self::token(&request));
            json::post(relay, request, &name, token, client).await
        }
        Ask::UpgradeRequired => text(
            StatusCode::UPGRADE_REQUIRED,
            "a PTTH peer claims its name with an upgrade; a long-poll client registers with POST <access>",
        ),
        Ask::Check { name, token } => match pool(relay, &name, Some(&token), client).await {
            Ok(_) => polled(
                &relay.settings,
                client,
                &request,
                &name,
                &token,
                StatusCode::NO_CONTENT,
                None,
            ),
            Err(error) => refused(&error),
        },
        Ask::Poll { name, token, id } => poll(relay, request, (&name, &token, &id), client).await,
        Ask::Reply { name, token, id } => reply(relay, request, (&name, &token, &id), client).await,
        Ask::NotFound => text(StatusCode::NOT_FOUND, "no such long-poll URL"),
    }
}

fn preflight() -> Response<RelayBody> {
    let mut response = empty(StatusCode::NO_CONTENT);
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
    client: Client,
) -> Response<RelayBody> {
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, ());
    let body = match wire::collect(relay.settings.body_timeout, body, 8 * 1024).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let params = form::Params::parse(query.as_deref(), &body);
    let Some(name) = params.get("name") else {
        return text(StatusCode::BAD_REQUEST, "a registration needs a name");
    };
    let lease = match params.get("lease").map(|lease| lease.parse::<u64>()) {
        None => None,
        Some(Ok(seconds)) => Some(Duration::from_secs(seconds)),
        Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "the lease is whole seconds"),
    };
    let token = params.get("token");
    let claimed = relay.claim(name, token, lease, client.addr.ip(), Charge::Every);
    let claimed = match claimed.await {
        Ok(claimed) => claimed,
        Err(error) => return refused(&error),
    };
    poller_of(&relay.settings, &claimed.pool);
    let code = if claimed.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    debug!(%name, created = claimed.created, "long-poll registration");
    polled(
        &relay.settings,
        client,
        &request,
        name,
        &claimed.token,
        code,
        None,
    )
}

/// `GET <access>/<name>/<token>/<id>`: a poll.
async fn poll(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    (name, token, id): (&str, &str, &str),
    client: Client,
) -> Response<RelayBody> {
    let pool = match private_pool(relay, name, token, client).await {
        Ok(pool) => pool,
        Err(refused) => return refused,
    };
    let poller = poller_of(&relay.settings, &pool);
    let Some(_parked) = relay.parked.take(client.addr.ip()) else {
        return parked_full();
    };
    match poller.poll(id, relay.settings.longpoll.hold).await {
        Ok(Some(delivered)) => {
            let body = Bytes::from(message::encode_request(&delivered));
            let mut response = polled(
                &relay.settings,
                client,
                &request,
                name,
                token,
                StatusCode::OK,
                Some(body),
            );
            wire::delivered(&mut response, &delivered, "message/http");
            response
        }
        Ok(None) => polled(
            &relay.settings,
            client,
            &request,
            name,
            token,
            StatusCode::NO_CONTENT,
            None,
        ),
        Err(error) => wire::refused_poll(&error),
    }
}

/// `POST <access>/<name>/<token>/<id>`: the reply to what `id` delivered.
async fn reply(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    (name, token, id): (&str, &str, &str),
    client: Client,
) -> Response<RelayBody> {
    let pool = match private_pool(relay, name, token, client).await {
        Ok(pool) => pool,
        Err(refused) => return refused,
    };
    let body = match wire::collect_message(&relay.settings, request.into_body()).await {
        Ok(body) if body.is_empty() => return text(StatusCode::BAD_REQUEST, "an empty reply"),
        Ok(body) => body,
        Err(refused) => return refused,
    };
    // Unreadable replies are accepted here and answered 502 to the public.
    let parsed = message::parse_response(&body);
    if poller_of(&relay.settings, &pool).reply(id, parsed) {
        text(StatusCode::ACCEPTED, "")
    } else {
        text(StatusCode::NOT_FOUND, "no request waits for a reply here")
    }
}

/// The name's pool for `token`, re-creating a name the relay forgot (a
/// restart, or a lease that ran out): docs/relay.md, "Long-polling". Only a
/// re-creation or a wrong token counts against the client's claim limit.
async fn pool(
    relay: &Relay,
    name: &str,
    token: Option<&str>,
    client: Client,
) -> Result<Claimed, ClaimError> {
    relay
        .claim(name, token, None, client.addr.ip(), Charge::Creating)
        .await
}

/// The pool behind a private URL, for a poll or a reply, or the refusal.
async fn private_pool(
    relay: &Relay,
    name: &str,
    token: &str,
    client: Client,
) -> Result<Arc<Pool>, Response<RelayBody>> {
    match pool(relay, name, Some(token), client).await {
        Ok(claimed) => Ok(claimed.pool),
        Err(error) => Err(refused(&error)),
    }
}

fn poller_of(settings: &Settings, pool: &Arc<Pool>) -> Arc<Poller> {
    let longpoll = settings.longpoll;
    pool.poller(|| {
        let limits = Limits {
            requests: longpoll.requests,
            polls: longpoll.polls,
            reply_wait: settings.response_timeout,
        };
        // A client re-polls at once after each answer; one that has not
        // for a hold and then some has gone.
        Poller::new(limits, longpoll.hold + Duration::from_secs(10))
    })
}

/// A poll's or registration's answer, with the URLs the client follows:
/// `Link` to the next poll and the public URL, `Location` the private one.
fn polled(
    settings: &Settings,
    client: Client,
    request: &Request<impl Sized>,
    name: &str,
    token: &str,
    code: StatusCode,
    body: Option<Bytes>,
) -> Response<RelayBody> {
    let access = settings.access.trim_end_matches('/');
    let private = format!(
        "{}://{}{access}/{}/{}",
        client.scheme(),
        dialled(request),
        form::encode(name),
        form::encode(token)
    );
    let next = format!("{private}/{}", random_token());
    let rel = if code == StatusCode::OK || request.method() == Method::GET {
        "next"
    } else {
        "first"
    };
    let mut response = empty(code);
    *response.body_mut() = full(body.unwrap_or_default());
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let public = public_url(settings, client, request, name);
    for link in [
        format!("<{next}>; rel=\"{rel}\""),
        format!("<{public}>; rel=\"related\""),
    ] {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(LINK, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&private) {
        headers.insert(LOCATION, value);
    }
    response
}

/// `503` for a poll that found the relay, or this client's share of it,
/// full of parked polls.
pub(super) fn parked_full() -> Response<RelayBody> {
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many polls parked on this relay, or from this address",
        Duration::from_secs(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(token: Option<&str>) -> Ask {
        let token = token.map(str::to_owned);
        Ask::Json {
            name: "lamp".into(),
            token,
        }
    }

    fn check() -> Ask {
        Ask::Check {
            name: "lamp".into(),
            token: "s3cret".into(),
        }
    }

    fn poll() -> Ask {
        Ask::Poll {
            name: "lamp".into(),
            token: "s3cret".into(),
            id: "7".into(),
        }
    }

    fn reply() -> Ask {
        Ask::Reply {
            name: "lamp".into(),
            token: "s3cret".into(),
            id: "7".into(),
        }
    }

    #[test]
    fn the_long_poll_urls_read_as_reverse_http_and_second_life_write_them() {
        let (get, post, put) = (Method::GET, Method::POST, Method::PUT);
        for (method, rest, json_body, asked) in [
            (&Method::OPTIONS, "/lamp/x/y/z", false, Ask::Preflight),
            (&post, "", false, Ask::Register),
            (&post, "/", true, Ask::Register),
            (&post, "/lamp", true, json(None)),
            (&post, "/lamp", false, Ask::UpgradeRequired),
            (&get, "/lamp", false, Ask::UpgradeRequired),
            (&post, "/lamp/s3cret", true, json(Some("s3cret"))),
            (&post, "/lamp/s3cret/7", true, json(Some("s3cret"))),
            (&get, "/lamp/s3cret", false, check()),
            (&get, "//lamp//s3cret/", false, check()),
            (&get, "/lamp/s3cret/7", false, poll()),
            (&get, "/lamp/s3%63ret/7", false, poll()),
            (&post, "/lamp/s3cret/7", false, reply()),
            (&post, "/lamp/s3cret", false, Ask::NotFound),
            (&put, "/lamp/s3cret/7", false, Ask::NotFound),
            (&get, "/lamp/s3cret/7/8", false, Ask::NotFound),
            (&get, "", false, Ask::NotFound),
        ] {
            let read = ask(method, rest, json_body);
            assert_eq!(read, asked, "{method} {rest:?} json={json_body}");
        }
    }
}
