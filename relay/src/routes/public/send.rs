//! The send phase's second chance: a request without a body that met a
//! connection closing under it goes once more on another, and every other
//! failure becomes the public's answer.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tracing::debug;

use super::head::{self, HeadError};
use crate::http::{RelayBody, text};
use crate::pool::{Picked, Pool};
use crate::settings::Waits;

/// What it takes to send a request without a body again.
pub(super) struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    /// A copy of `parts` when the request may be sent twice: no body, no
    /// upgrade, and a method RFC 9110 (section 9.2.2) lets a client repeat
    /// after a connection closed before the answer.
    pub(super) fn of(parts: &Parts, bodiless: bool, upgrade: bool) -> Option<Replay> {
        (bodiless && !upgrade && idempotent(&parts.method)).then(|| Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

fn idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// The version every request crosses to a peer with: an HTTP/1.0
/// client's too, so that an HTTP/1.1 peer keeps its connection for the
/// next request. hyper's HTTP/2 client does not read the field.
pub(super) const VERSION: Version = Version::HTTP_11;

/// Why a request got no response from its peer.
pub(super) enum Failure {
    Timeout,
    /// The peer broke HTTP; its connection was closed.
    Breach,
    Failed,
}

impl Failure {
    /// The public's answer, which never carries the error's own chain:
    /// that is for the operator's log.
    pub(super) fn answer(self, name: &str) -> Response<RelayBody> {
        match self {
            Failure::Timeout => text(
                StatusCode::GATEWAY_TIMEOUT,
                &format!("the peer of {name} sent no response in time"),
            ),
            Failure::Breach => text(
                StatusCode::BAD_GATEWAY,
                &format!("the peer of {name} sent no valid response"),
            ),
            Failure::Failed => text(
                StatusCode::BAD_GATEWAY,
                &format!("the peer of {name} failed before its response"),
            ),
        }
    }
}

/// After `error` on the `picked` connection: a peer that broke HTTP loses
/// its connection; a connection that closed before answering a request
/// that can be replayed gets it sent once more on another free one. An
/// HTTP/1.1 peer may close a quiet connection just as a request arrives
/// on it (the tunnel replaces quiet connections); the public should not
/// see that as a 502.
pub(super) async fn recover(
    timeout: Duration,
    pool: &Arc<Pool>,
    picked: Picked,
    replay: Option<Replay>,
    error: HeadError,
) -> Result<(Response<Incoming>, Picked), Failure> {
    let error = match error {
        HeadError::Timeout => return Err(Failure::Timeout),
        breach @ (HeadError::Informational | HeadError::Switched) => {
            debug!(?breach, "the peer broke HTTP; closing its connection");
            picked.evict();
            return Err(Failure::Breach);
        }
        HeadError::Failed(error) => error,
    };
    drop(picked);
    let retried = match replay.filter(|_| error.is_closed()) {
        Some(replay) => retry(timeout, pool, replay, &error).await,
        None => None,
    };
    retried.ok_or_else(|| {
        debug!(
            error = &error as &dyn std::error::Error,
            "peer failed before the response head"
        );
        Failure::Failed
    })
}

async fn retry(
    timeout: Duration,
    pool: &Arc<Pool>,
    replay: Replay,
    error: &ptth::Error,
) -> Option<(Response<Incoming>, Picked)> {
    let now = Waits {
        peer: Duration::ZERO,
        queue: Duration::ZERO,
    };
    let again = pool.pick(now).await.ok()?;
    let mut sender = again.sender()?;
    debug!(error = error as &dyn std::error::Error, connection = ?sender.id(), "the connection closed before answering; sending again");
    let mut request = Request::new(RelayBody::default());
    *request.method_mut() = replay.method;
    *request.uri_mut() = replay.uri;
    *request.headers_mut() = replay.headers;
    *request.version_mut() = VERSION;
    match head::send(&mut sender, request, timeout, false).await {
        Ok(response) => Some((response, again)),
        Err(HeadError::Informational | HeadError::Switched) => {
            again.evict();
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_idempotent_requests_without_upgrades_are_replayed() {
        for (method, bodiless, upgrade, replayed) in [
            (Method::GET, true, false, true),
            (Method::HEAD, true, false, true),
            (Method::PUT, true, false, true),
            (Method::DELETE, true, false, true),
            (Method::OPTIONS, true, false, true),
            (Method::TRACE, true, false, true),
            (Method::POST, true, false, false),
            (Method::PATCH, true, false, false),
            (Method::CONNECT, true, false, false),
            (Method::GET, false, false, false),
            (Method::PUT, false, false, false),
            (Method::GET, true, true, false),
        ] {
            let (parts, ()) = Request::builder()
                .method(method.clone())
                .uri("/lamp/x")
                .body(())
                .unwrap()
                .into_parts();
            let replay = Replay::of(&parts, bodiless, upgrade);
            assert_eq!(replay.is_some(), replayed, "{method} {bodiless} {upgrade}");
        }
    }
}
