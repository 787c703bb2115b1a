//! What a failed dial means for the next one: the relays' conventions for
//! answers to the upgrade (`docs/protocol.md`, "Rule 5" and "The tunnel"),
//! and the public URL a relay announces in its `101`.

use std::time::Duration;

use http::header::{LINK, LOCATION, RETRY_AFTER};
use http::{HeaderMap, StatusCode, Uri};

use crate::Error;

/// The longest `Retry-After` honoured: a relay asking for more is more
/// likely confused than right, and a device must come back eventually.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What to do after a dial failed.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Dial again after the backoff delay, and not before `at_least`.
    Retry { at_least: Option<Duration> },
    /// Upgrade at `to` instead; a permanent redirect also replaces the URL
    /// for later dials.
    Redirect { to: Uri, permanent: bool },
    /// Retrying cannot help: the tunnel ends with this error.
    Fatal,
}

/// Judges a failed dial to `url`.
pub(super) fn judge(error: &Error, url: &Uri, retry_not_found: bool) -> Verdict {
    let declined = match error {
        Error::Declined(declined) => declined,
        Error::InvalidUrl { .. }
        | Error::TlsNotEnabled { .. }
        | Error::TooManyRedirects { .. }
        | Error::UnsupportedProtocol { .. }
        | Error::MissingAlpn
        | Error::NoHttp2Setup(_)
        | Error::WrongScheme { .. }
        | Error::NoCommonProtocol { .. } => return Verdict::Fatal,
        // Named one by one, without a wildcard, so a new variant must be
        // judged here before the crate builds.
        Error::TimedOut(_)
        | Error::Closed
        | Error::HeadTooLarge { .. }
        | Error::TooManyHeaders { .. }
        | Error::BodyTooLarge { .. }
        | Error::Malformed(_)
        | Error::NotUpgrade(_)
        | Error::MissingConnectionUpgrade
        | Error::EarlyData
        | Error::Connect { .. }
        | Error::NotHandedOver(_)
        | Error::Io(_)
        | Error::Http(_) => return Verdict::Retry { at_least: None },
    };
    let status = declined.status;
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Verdict::Retry {
            at_least: retry_after(&declined.headers),
        },
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
            match location(&declined.headers, url) {
                Some(to) => Verdict::Redirect {
                    to,
                    permanent: status == StatusCode::PERMANENT_REDIRECT,
                },
                None => Verdict::Fatal,
            }
        }
        StatusCode::NOT_FOUND if retry_not_found => Verdict::Retry { at_least: None },
        StatusCode::NO_CONTENT | StatusCode::REQUEST_TIMEOUT => Verdict::Retry { at_least: None },
        // The relay lacks what the claim asks for (a TCP port from one
        // without a range): asking again will not change it.
        StatusCode::NOT_IMPLEMENTED => Verdict::Fatal,
        _ if status.is_server_error() => Verdict::Retry { at_least: None },
        _ => Verdict::Fatal,
    }
}

/// `Retry-After` in delta-seconds. An HTTP-date is rare from relays and
/// leaves the delay to the backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// `Location` resolved against the URL that answered: absolute, or an
/// absolute path on the same origin.
fn location(headers: &HeaderMap, base: &Uri) -> Option<Uri> {
    let location = headers.get(LOCATION)?.to_str().ok()?.trim();
    let uri: Uri = location.parse().ok()?;
    if uri.scheme().is_some() {
        return Some(uri);
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(location.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The public URL a relay announces in its `101` with
/// `Link: <URL>; rel="related"` (RFC 8288).
pub(super) fn public_url(headers: &HeaderMap) -> Option<Uri> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(links)
        .find(|(_, rel)| {
            rel.split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("related"))
        })
        .and_then(|(target, _)| target.parse().ok())
}

/// The `(target, rel)` pairs of one `Link` field value. Commas split links
/// only outside `<...>` and quoted strings, since both may hold commas.
fn links(value: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let end = link_end(rest);
        let rel = rest[..end]
            .split(';')
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("rel"))
            .map_or("", |(_, value)| value.trim().trim_matches('"'));
        found.push((target, rel));
        rest = &rest[end..];
    }
    found
}

/// Where the parameters of a link end: at the first comma outside quotes.
fn link_end(params: &str) -> usize {
    let mut quoted = false;
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => return i,
            _ => {}
        }
    }
    params.len()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderValue;

    use super::*;
    use crate::Declined;

    fn declined(status: u16, headers: &[(&str, &str)]) -> Error {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Error::Declined(Box::new(Declined {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::new(),
        }))
    }

    fn url() -> Uri {
        Uri::from_static("https://relay.example:8443/reversehttp/lamp?token=t")
    }

    #[test]
    fn credentials_and_missing_endpoints_are_fatal() {
        for status in [401, 403, 404, 400, 200, 426, 501] {
            assert_eq!(judge(&declined(status, &[]), &url(), false), Verdict::Fatal);
        }
        assert_eq!(
            judge(&declined(404, &[]), &url(), true),
            Verdict::Retry { at_least: None }
        );
    }

    #[test]
    fn a_url_with_the_wrong_scheme_is_fatal() {
        for url_tls in [true, false] {
            let error = Error::WrongScheme {
                authority: "relay.example:8443".into(),
                url_tls,
            };
            assert_eq!(judge(&error, &url(), false), Verdict::Fatal);
        }
    }

    #[test]
    fn busy_relays_are_retried_after_what_they_ask() {
        let wait = |s| Verdict::Retry {
            at_least: Some(Duration::from_secs(s)),
        };
        let error = declined(429, &[("retry-after", "1")]);
        assert_eq!(judge(&error, &url(), false), wait(1));
        let error = declined(503, &[("retry-after", " 120 ")]);
        assert_eq!(judge(&error, &url(), false), wait(120));
        let error = declined(503, &[("retry-after", "99999999")]);
        assert_eq!(judge(&error, &url(), false), wait(3600));
        let dated = declined(429, &[("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")]);
        assert_eq!(
            judge(&dated, &url(), false),
            Verdict::Retry { at_least: None }
        );
        for status in [500, 502, 504, 408, 204] {
            assert_eq!(
                judge(&declined(status, &[]), &url(), false),
                Verdict::Retry { at_least: None }
            );
        }
    }

    #[test]
    fn network_errors_are_retried_and_bad_setups_are_not() {
        let refused = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            judge(&refused, &url(), false),
            Verdict::Retry { at_least: None }
        );
        assert_eq!(
            judge(&Error::TimedOut(Duration::from_secs(1)), &url(), false),
            Verdict::Retry { at_least: None }
        );
        assert_eq!(judge(&Error::MissingAlpn, &url(), false), Verdict::Fatal);
        let looped = Error::TooManyRedirects {
            limit: 5,
            last: "http://relay.example/".into(),
        };
        assert_eq!(judge(&looped, &url(), false), Verdict::Fatal);
    }

    #[test]
    fn redirects_resolve_against_the_url_that_answered() {
        let moved = |status, to: &str| judge(&declined(status, &[("location", to)]), &url(), false);
        assert_eq!(
            moved(307, "/r/lamp"),
            Verdict::Redirect {
                to: Uri::from_static("https://relay.example:8443/r/lamp"),
                permanent: false
            }
        );
        assert_eq!(
            moved(308, "http://other.example/x?y=1"),
            Verdict::Redirect {
                to: Uri::from_static("http://other.example/x?y=1"),
                permanent: true
            }
        );
        assert_eq!(moved(307, "relative"), Verdict::Fatal);
        assert_eq!(moved(307, "//host/x"), Verdict::Fatal);
        assert_eq!(judge(&declined(308, &[]), &url(), false), Verdict::Fatal);
    }

    #[test]
    fn the_related_link_is_the_public_url() {
        let mut headers = HeaderMap::new();
        assert_eq!(public_url(&headers), None);
        headers.append(
            LINK,
            HeaderValue::from_static(r#"<http://r.example/a,b>; rel="first", <http://r.example/lamp/>; title="x, y"; REL="alternate related""#),
        );
        assert_eq!(
            public_url(&headers),
            Some(Uri::from_static("http://r.example/lamp/"))
        );
        let mut headers = HeaderMap::new();
        headers.append(
            LINK,
            HeaderValue::from_static("<http://r.example/n>; rel=next"),
        );
        headers.append(
            LINK,
            HeaderValue::from_static("<https://lamp.r.example/>;rel=related"),
        );
        assert_eq!(
            public_url(&headers),
            Some(Uri::from_static("https://lamp.r.example/"))
        );
        let mut headers = HeaderMap::new();
        headers.append(
            LINK,
            HeaderValue::from_static("<http://r.example/unclosed; rel=related"),
        );
        assert_eq!(public_url(&headers), None);
    }
}
