//! Which name a public request is for, the target its peer gets, and the
//! host it was routed by (docs/relay.md, "Routing public requests").

use std::borrow::Cow;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Request, Uri, Version};

use crate::settings::Routing;

/// A routed request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Routed {
    /// The name it is for.
    pub name: String,
    /// The target its peer gets.
    pub target: Uri,
    /// The host it named, as written (with any port).
    pub host: Option<String>,
}

/// Why a public request names no peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unrouted {
    BadTarget,
    NoName,
    NoHost,
    /// An HTTP/2 request whose `host` is not its `:authority`.
    HostMismatch,
    Elsewhere(String),
}

/// Routes `request` by `routing`. The target is the request's own; in
/// path routing, a name whose claim asked for it has `/<name>` taken off
/// later by [`without_name`], once the name is looked up.
pub(crate) fn route<B>(routing: &Routing, request: &Request<B>) -> Result<Routed, Unrouted> {
    let host = host(request.version(), request.uri(), request.headers())?;
    let path_and_query = match request.uri().path_and_query().map(PathAndQuery::as_str) {
        // `http::Uri` reads `http://a.b?x` as the path and query `?x`, which
        // is no target; its path is `/` all the same (RFC 9110, section
        // 4.2.3).
        Some(query) if query.starts_with('?') => Cow::Owned(format!("/{query}")),
        Some(path_and_query) => Cow::Borrowed(path_and_query),
        None => Cow::Borrowed("/"),
    };
    let target = |text: &str| text.parse::<Uri>().map_err(|_| Unrouted::BadTarget);
    let (name, target) = match routing {
        Routing::Path => {
            // The name is the first segment (`/<name>/...`): `//lamp` has
            // an empty one, and `*` none, so neither names a peer; taking
            // `lamp` would route a path that readers in front see as not
            // under `/lamp`.
            let rest = path_and_query.strip_prefix('/').ok_or(Unrouted::NoName)?;
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Err(Unrouted::NoName);
            }
            (name.to_owned(), target(&path_and_query)?)
        }
        Routing::Host { domain } => {
            let authority = host.ok_or(Unrouted::NoHost)?;
            let authority = authority
                .parse::<Authority>()
                .ok()
                .filter(plain)
                .ok_or(Unrouted::BadTarget)?;
            let host = authority.host().to_ascii_lowercase();
            let name = host
                .strip_suffix(domain.as_str())
                .and_then(|name| name.strip_suffix('.'))
                // `.relay.example` has an empty label where the name goes.
                .filter(|name| !name.is_empty())
                .ok_or_else(|| Unrouted::Elsewhere(host.clone()))?;
            (name.to_owned(), target(&path_and_query)?)
        }
    };
    Ok(Routed {
        name,
        target,
        host: host.map(str::to_owned),
    })
}

/// A path-routed `target` (`/<name>...`) without `/<name>`, for a name
/// whose claim asked for it (docs/relay.md, "Stripping the name"): the
/// origin sees `/hello.txt` for `/lamp/hello.txt`, and `/` for `/lamp`.
pub(crate) fn without_name(target: &Uri, name: &str) -> Result<Uri, Unrouted> {
    let path_and_query = target.path_and_query().map_or("/", PathAndQuery::as_str);
    let rest = (path_and_query.strip_prefix('/'))
        .and_then(|rest| rest.strip_prefix(name))
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        .ok_or(Unrouted::NoName)?;
    let stripped = match rest.strip_prefix('?') {
        Some(query) => Cow::Owned(format!("/?{query}")),
        None if rest.is_empty() => Cow::Borrowed("/"),
        None => Cow::Borrowed(rest),
    };
    stripped.parse::<Uri>().map_err(|_| Unrouted::BadTarget)
}

/// Whether `authority` is only `host [":" port]` with a port of digits, as
/// a Host field must be (RFC 9112, section 3.2; RFC 3986, section 3.2.3).
/// `Authority` also takes userinfo, which RFC 9110 section 4.2.4 has a
/// recipient treat as an error, and any text after the colon: routing by
/// the host it finds among those would pick a name that other readers of
/// the same request may not.
fn plain(authority: &Authority) -> bool {
    // With userinfo the text does not start with the host.
    match authority.as_str().strip_prefix(authority.host()) {
        Some(port) => {
            port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|digits| digits.bytes().all(|byte| byte.is_ascii_digit()))
        }
        None => false,
    }
}

/// The host a request names (RFC 9112, section 3.2.2): an absolute-form
/// target's authority, else `Host`. On HTTP/2 the authority is
/// `:authority`, and a `host` field that disagrees with it is refused
/// (RFC 9113, section 8.3.1). More than one Host line is refused (RFC 9112,
/// section 3.2).
pub(crate) fn host<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<&'a str>, Unrouted> {
    let mut fields = headers.get_all(HOST).iter();
    let field = match fields.next() {
        Some(value) => Some(value.to_str().map_err(|_| Unrouted::BadTarget)?),
        None => None,
    };
    // RFC 9112 section 3.2 answers more than one Host line with 400: which
    // line names the host is a guess, and a proxy in front may have guessed
    // the other one.
    if fields.next().is_some() {
        return Err(Unrouted::BadTarget);
    }
    match (uri.authority(), field) {
        (Some(authority), Some(field))
            if version == Version::HTTP_2 && !authority.as_str().eq_ignore_ascii_case(field) =>
        {
            Err(Unrouted::HostMismatch)
        }
        (Some(authority), _) => Ok(Some(authority.as_str())),
        (None, field) => Ok(field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, target: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::get(target).version(version);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap()
    }

    fn domain() -> Routing {
        Routing::Host {
            domain: "relay.example".into(),
        }
    }

    #[test]
    fn host_routing_follows_the_authority_the_rfcs_name() {
        use Version as V;
        for (version, target, host, routed) in [
            (V::HTTP_11, "/a", Some("lamp.relay.example"), Ok("lamp")),
            (
                V::HTTP_11,
                "/a",
                Some("LAMP.Relay.Example:8080"),
                Ok("lamp"),
            ),
            // An absolute-form target's authority decides, not Host.
            (
                V::HTTP_11,
                "http://fan.relay.example/a",
                Some("lamp.relay.example"),
                Ok("fan"),
            ),
            (
                V::HTTP_11,
                "http://bank.example/a",
                Some("lamp.relay.example"),
                Err(Unrouted::Elsewhere("bank.example".into())),
            ),
            (V::HTTP_2, "http://lamp.relay.example/a", None, Ok("lamp")),
            (
                V::HTTP_2,
                "http://lamp.relay.example/a",
                Some("lamp.relay.example"),
                Ok("lamp"),
            ),
            (
                V::HTTP_2,
                "http://lamp.relay.example/a",
                Some("fan.relay.example"),
                Err(Unrouted::HostMismatch),
            ),
            (V::HTTP_11, "/a", None, Err(Unrouted::NoHost)),
            (
                V::HTTP_11,
                "/a",
                Some("relay.example"),
                Err(Unrouted::Elsewhere("relay.example".into())),
            ),
            (V::HTTP_11, "/a", Some("a b"), Err(Unrouted::BadTarget)),
            // Userinfo is an error (RFC 9110, section 4.2.4), not a way
            // to name one host to the relay and another to readers.
            (
                V::HTTP_11,
                "http://bank.example@lamp.relay.example/a",
                None,
                Err(Unrouted::BadTarget),
            ),
            (
                V::HTTP_11,
                "/a",
                Some("bank.example@lamp.relay.example"),
                Err(Unrouted::BadTarget),
            ),
            (
                V::HTTP_11,
                "/a",
                Some("[::1]:80"),
                Err(Unrouted::Elsewhere("[::1]".into())),
            ),
        ] {
            let got = route(&domain(), &request(version, target, host));
            let got = got.map(|routed| routed.name);
            let wanted = routed.map(str::to_owned);
            assert_eq!(got, wanted, "{version:?} {target} {host:?}");
        }
    }

    #[test]
    fn an_absolute_target_with_a_query_and_no_path_has_the_path_slash() {
        // RFC 9110, section 4.2.3: `http://lamp.relay.example?x` is `/?x`.
        let request = request(Version::HTTP_11, "http://lamp.relay.example?x", None);
        let routed = route(&domain(), &request).unwrap();
        assert_eq!(
            (routed.name.as_str(), routed.target.to_string().as_str()),
            ("lamp", "/?x")
        );
    }

    #[test]
    fn path_routing_forwards_the_target_unaltered_or_stripped() {
        for (target, strip, routed) in [
            ("/lamp/a?b=1", false, Ok(("lamp", "/lamp/a?b=1"))),
            ("/lamp/a?b=1", true, Ok(("lamp", "/a?b=1"))),
            ("/lamp", true, Ok(("lamp", "/"))),
            ("/lamp?x", true, Ok(("lamp", "/?x"))),
            ("/lamp/", true, Ok(("lamp", "/"))),
            ("/lamp//x", true, Ok(("lamp", "//x"))),
            ("/", false, Err(Unrouted::NoName)),
            ("/?x", false, Err(Unrouted::NoName)),
        ] {
            let request = request(Version::HTTP_11, target, Some("relay.example:8080"));
            let got = route(&Routing::Path, &request).and_then(|routed| match strip {
                true => Ok(Routed {
                    target: without_name(&routed.target, &routed.name)?,
                    ..routed
                }),
                false => Ok(routed),
            });
            let got = got.map(|routed| {
                assert_eq!(routed.host.as_deref(), Some("relay.example:8080"));
                (routed.name, routed.target.to_string())
            });
            let wanted = routed.map(|(name, target)| (name.to_owned(), target.to_owned()));
            assert_eq!(got, wanted, "{target} strip={strip}");
        }
    }
}
