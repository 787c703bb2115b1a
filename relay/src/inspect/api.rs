//! The inspector's HTTP answers: the page, the exchanges as JSON, and
//! replays.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue, ORIGIN};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::Replay;
use super::history::lock;
use super::record::Inspector;
use crate::http::{RelayBody, full, text};

/// The page, self-contained: no asset from elsewhere.
const PAGE: &str = include_str!("page.html");

/// How long a replay may wait for the origin's response, and then for
/// the rest of its body.
const REPLAY_WAIT: Duration = Duration::from_secs(30);

/// What a request to the inspector asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET /`: the page.
    Page,
    /// `GET /api/requests[?after=ID]`: the exchanges newer than ID,
    /// newest first.
    List { after: Option<u64> },
    /// `GET /api/requests/{id}`: one exchange.
    One(u64),
    /// `POST /api/requests/{id}/replay`.
    Replay(u64),
    /// A known path with another method.
    WrongMethod,
    /// Anything else.
    NotFound,
}

/// The route of `method` on `path` with `query`.
pub(super) fn route(method: &Method, path: &str, query: Option<&str>) -> Route {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let not_found = (Route::NotFound, true);
    let (route, allowed) = match path.strip_prefix("/api/requests") {
        None if path == "/" => (Route::Page, get),
        None => not_found,
        Some("" | "/") => match after(query) {
            Some(after) => (Route::List { after }, get),
            None => not_found,
        },
        Some(rest) => match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["", n] => id(n).map_or(not_found, |id| (Route::One(id), get)),
            ["", n, "replay"] => id(n).map_or(not_found, |id| (Route::Replay(id), post)),
            _ => not_found,
        },
    };
    if allowed { route } else { Route::WrongMethod }
}

/// An exchange's id: digits only, no sign, no leading `+`.
fn id(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// `after` from the query: `Some(None)` when it is not there, `None` when
/// it is not an id.
fn after(query: Option<&str>) -> Option<Option<u64>> {
    let mut after = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair.split_once('=') {
            Some(("after", value)) => after = Some(id(value)?),
            _ => continue,
        }
    }
    Some(after)
}

/// Whether `host` names the inspector by an address or as `localhost`:
/// a page of another site that a DNS name of its own points here (DNS
/// rebinding) names that name, and must not read what passed.
pub(super) fn trusted_host(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        // `[::1]:4040`, `127.0.0.1:4040`, `localhost:4040`.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
        || literal.is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Whether a replay's `Origin` allows it: none (curl, a script) or the
/// inspector's own page. A page of another site may post to loopback,
/// and must not make the origin see a request again.
pub(super) fn trusted_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin.strip_prefix("http://") == Some(host),
        (Some(_), None) => false,
    }
}

/// The answer to `request`.
pub(super) async fn answer<B>(
    request: Request<B>,
    inspector: Inspector,
    replay: Replay,
) -> Response<RelayBody> {
    let host = header(&request, HOST);
    if !trusted_host(host) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "the inspector answers only to its address or localhost",
        );
    }
    let uri = request.uri();
    match route(request.method(), uri.path(), uri.query()) {
        Route::Page => page(),
        Route::List { after } => {
            let list = inspector.read(|history| {
                let exchanges = history.newest_first(after);
                Value::Array(exchanges.map(|exchange| exchange.json()).collect())
            });
            json(StatusCode::OK, &list)
        }
        Route::One(id) => match inspector.read(|history| history.get(id).map(|e| e.json())) {
            Some(exchange) => json(StatusCode::OK, &exchange),
            None => unknown(id),
        },
        Route::Replay(id) => {
            if !trusted_origin(header(&request, ORIGIN), host) {
                return text(
                    StatusCode::FORBIDDEN,
                    "replays only from the inspector's page",
                );
            }
            replayed(inspector, replay, id).await
        }
        Route::WrongMethod => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "GET /, GET /api/requests[?after=ID], GET /api/requests/ID, \
             POST /api/requests/ID/replay",
        ),
    }
}

fn header<B>(request: &Request<B>, name: http::header::HeaderName) -> Option<&str> {
    request.headers().get(name)?.to_str().ok()
}

/// Sends exchange `id`'s request to the origin again, records the new
/// exchange, and answers with its JSON once its body has passed.
async fn replayed(inspector: Inspector, replay: Replay, id: u64) -> Response<RelayBody> {
    let recorded = inspector.read(|history| {
        let exchange = history.get(id)?;
        let body = lock(&exchange.request_body);
        let request = (body.whole()).then(|| {
            let mut request = Request::new(full(Bytes::copy_from_slice(body.kept())));
            *request.method_mut() = exchange.method.clone();
            *request.uri_mut() = exchange.target.parse().unwrap_or_default();
            *request.headers_mut() = exchange.request_headers.clone();
            request
        });
        Some(request)
    });
    let request = match recorded {
        None => return unknown(id),
        Some(None) => {
            return text(
                StatusCode::CONFLICT,
                &format!(
                    "exchange {id} cannot be replayed as it was: only the first 64 KiB \
                     of its request body were kept, or the body did not end"
                ),
            );
        }
        Some(Some(request)) => request,
    };
    let (request, recording) = inspector.begin_replay(request, Some(id));
    let Ok(response) = tokio::time::timeout(REPLAY_WAIT, replay(request)).await else {
        return text(
            StatusCode::GATEWAY_TIMEOUT,
            "the origin did not answer the replay in time",
        );
    };
    let (new, response) = recording.record(response);
    // Read to its end, so the new exchange holds the body; nobody waits
    // for it but this answer, and an endless stream is left at the bound.
    let mut body = response.into_body();
    let drained = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(REPLAY_WAIT, drained).await;
    match inspector.read(|history| history.get(new).map(|e| e.json())) {
        Some(exchange) => json(StatusCode::OK, &exchange),
        // Pushed out already by newer exchanges.
        None => unknown(new),
    }
}

fn unknown(id: u64) -> Response<RelayBody> {
    text(
        StatusCode::NOT_FOUND,
        &format!("no exchange {id} in the history"),
    )
}

fn page() -> Response<RelayBody> {
    let mut response = Response::new(full(PAGE));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page loads nothing from elsewhere, and needs nothing more.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'",
        ),
    );
    response
}

fn json(status: StatusCode, value: &Value) -> Response<RelayBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Secrets pass through here: no cache keeps a copy.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_find_their_routes() {
        let table: &[(&str, &str, Option<&str>, Route)] = &[
            ("GET", "/", None, Route::Page),
            ("POST", "/", None, Route::WrongMethod),
            ("GET", "/api/requests", None, Route::List { after: None }),
            ("GET", "/api/requests/", None, Route::List { after: None }),
            ("HEAD", "/api/requests", None, Route::List { after: None }),
            (
                "GET",
                "/api/requests",
                Some("after=7"),
                Route::List { after: Some(7) },
            ),
            (
                "GET",
                "/api/requests",
                Some("x=1&after=0"),
                Route::List { after: Some(0) },
            ),
            ("GET", "/api/requests", Some("after=-1"), Route::NotFound),
            ("GET", "/api/requests", Some("after="), Route::NotFound),
            ("GET", "/api/requests/12", None, Route::One(12)),
            ("GET", "/api/requests/+12", None, Route::NotFound),
            ("GET", "/api/requests/x", None, Route::NotFound),
            ("POST", "/api/requests/12/replay", None, Route::Replay(12)),
            ("GET", "/api/requests/12/replay", None, Route::WrongMethod),
            ("POST", "/api/requests/12", None, Route::WrongMethod),
            ("POST", "/api/requests//replay", None, Route::NotFound),
            ("POST", "/api/requests/1x/replay", None, Route::NotFound),
            (
                "POST",
                "/api/requests/99999999999999999999/replay",
                None,
                Route::NotFound,
            ),
            ("POST", "/api/requests/1/replay/", None, Route::NotFound),
            ("POST", "/api/requests/1/other", None, Route::NotFound),
            ("GET", "/api/requestsx", None, Route::NotFound),
            ("GET", "/elsewhere", None, Route::NotFound),
        ];
        for &(method, path, query, expected) in table {
            let method: Method = method.parse().unwrap();
            assert_eq!(
                route(&method, path, query),
                expected,
                "{method} {path} {query:?}"
            );
        }
    }

    #[test]
    fn only_addresses_and_localhost_are_trusted_hosts() {
        let table: &[(Option<&str>, bool)] = &[
            (Some("127.0.0.1:4040"), true),
            (Some("127.0.0.1"), true),
            (Some("[::1]:4040"), true),
            (Some("localhost:4040"), true),
            (Some("LOCALHOST"), true),
            (Some("192.0.2.7:4040"), true),
            (Some("evil.example:4040"), false),
            (Some("127.0.0.1.evil.example"), false),
            (Some("::1"), false),
            (Some(""), false),
            (None, false),
        ];
        for &(host, trusted) in table {
            assert_eq!(trusted_host(host), trusted, "{host:?}");
        }
    }

    #[test]
    fn replays_come_from_scripts_or_the_inspectors_own_page() {
        let host = Some("127.0.0.1:4040");
        let table: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, host, true),
            (Some("http://127.0.0.1:4040"), host, true),
            (Some("http://127.0.0.1:4041"), host, false),
            (Some("https://evil.example"), host, false),
            (Some("null"), host, false),
            (Some("http://127.0.0.1:4040"), None, false),
        ];
        for &(origin, host, trusted) in table {
            assert_eq!(trusted_origin(origin, host), trusted, "{origin:?} {host:?}");
        }
    }
}
