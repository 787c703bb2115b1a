//! The relay's HTTP toolkit: its one body type, the answers it writes
//! itself, header rules, upgrades, form decoding, bodies that may not
//! stall, and connections whose first bytes were read ahead. A leaf: nothing here knows the relay's state, so the client side
//! (`expose`) uses it as well.

pub(crate) mod claim_fields;
pub(crate) mod form;
pub(crate) mod headers;
pub(crate) mod replay;
pub(crate) mod stall;
pub(crate) mod upgrade;

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors of the bodies the relay passes on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the relay passes on or writes: toward the public, toward
/// a peer, toward an origin.
pub type RelayBody = BoxBody<Bytes, BoxError>;

/// A whole body of `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> RelayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response with no body and no fields: the caller adds what it means.
pub(crate) fn empty(code: StatusCode) -> Response<RelayBody> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = code;
    response
}

/// A short plain-text answer of the relay's own.
pub(crate) fn text(code: StatusCode, text: &str) -> Response<RelayBody> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The text may hold what a client sent (a host); a browser must not
    // read it as anything but text.
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A plain-text `429` or `503` that says when to come back: in whole
/// seconds, at least one (RFC 9110, section 10.2.3).
pub(crate) fn retry_later(code: StatusCode, reason: &str, wait: Duration) -> Response<RelayBody> {
    let mut response = text(code, reason);
    let seconds = wait.as_secs_f64().ceil().max(1.0);
    // A float of whole seconds prints without a fraction.
    if let Ok(value) = HeaderValue::from_str(&format!("{seconds}")) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// The `101` the relay gives a public client once the far side switched,
/// with the fields that say to what.
pub(crate) fn switching(headers: HeaderMap) -> Response<RelayBody> {
    let mut response = empty(StatusCode::SWITCHING_PROTOCOLS);
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        for (wait, header) in [
            (Duration::ZERO, "1"),
            (Duration::from_millis(1), "1"),
            (Duration::from_millis(1000), "1"),
            (Duration::from_millis(1001), "2"),
            (Duration::from_secs(30), "30"),
        ] {
            let response = retry_later(StatusCode::TOO_MANY_REQUESTS, "later", wait);
            assert_eq!(response.headers()[RETRY_AFTER], header, "{wait:?}");
            assert_eq!(response.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }
}
