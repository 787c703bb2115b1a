//! The relay's routing of public requests, driven with fuzzer-made request
//! heads. Anyone may send the relay a request, and the name and host it is
//! routed by decide which peer sees it and what that peer is told of it
//! (`X-Forwarded-Host`, `Forwarded`).
//!
//! Each input is read as the relay's HTTP/1.1 server reads a head, and
//! again as the same request arriving over HTTP/2, and each is routed by
//! path (the name's prefix kept and stripped) and by host. What must come
//! of it is decided from docs/relay.md ("Routing public requests") and the
//! rules the router cites, never from the router: RFC 9112 section 3.2
//! (Host) and 3.2.2 (absolute form), RFC 9113 section 8.3.1
//! (`:authority`), and RFC 3986's authority grammar.

use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, Parts, Scheme};
use http::{Method, Request, Uri, Version};
use ptth_relay::Routing;
use ptth_relay::fuzzing::{Route, route as relay_route};

use crate::longpoll::origin_form;

/// The domain names live under in host routing.
const DOMAIN: &str = "relay.example";

/// Header lines hyper's HTTP/1 server reads in one head by default.
const MAX_HEADERS: usize = 100;

/// A request head, routed in every mode over both versions.
pub fn route(data: &[u8]) {
    let Some(request) = http1(data) else {
        return;
    };
    check(&request);
    if let Some(request) = http2(&request) {
        check(&request);
    }
}

/// `data` as hyper's HTTP/1 server reads a request head, or `None` where
/// it refuses one: httparse must find a whole head, and its method,
/// target and fields must make an `http::Request`.
fn http1(data: &[u8]) -> Option<Request<()>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = head.parse(data) else {
        return None;
    };
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(head.method?.as_bytes()).ok()?;
    *request.uri_mut() = head.path?.parse().ok()?;
    *request.version_mut() = Version::HTTP_11;
    for field in head.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(field.value).ok()?;
        request.headers_mut().append(name, value);
    }
    Some(request)
}

/// The same request as an HTTP/2 client sends it and h2 hands it on: the
/// absolute-form target's authority, else the Host's, as `:authority`,
/// which makes the URI absolute, and the path and query as `:path`. The
/// `host` field stays when there is one, so the input also makes requests
/// whose `host` and `:authority` disagree. `None` where h2 would refuse
/// the request as malformed.
fn http2(request: &Request<()>) -> Option<Request<()>> {
    let uri = request.uri();
    let authority = match (uri.authority(), request.headers().get(HOST)) {
        (Some(authority), _) => Some(authority.clone()),
        (None, Some(host)) => Some(Authority::try_from(host.as_bytes()).ok()?),
        (None, None) => None,
    };
    // `:path` must not be empty (RFC 9113 section 8.3.1), so a target with
    // no path gives none, and an authority-form target none at all.
    if uri.path().is_empty() {
        return None;
    }
    let mut parts = Parts::default();
    // h2 drops `:scheme` when there is no `:authority`: a URI cannot have
    // one without the other.
    parts.scheme = authority.as_ref().map(|_| Scheme::HTTP);
    parts.authority = authority;
    parts.path_and_query = origin_form(uri).path_and_query().cloned();
    let mut h2 = Request::new(());
    *h2.method_mut() = request.method().clone();
    *h2.uri_mut() = Uri::from_parts(parts).ok()?;
    *h2.version_mut() = Version::HTTP_2;
    *h2.headers_mut() = request.headers().clone();
    Some(h2)
}

/// Routes `request` each way and checks each outcome against [`Rules`].
fn check(request: &Request<()>) {
    let rules = Rules::of(request);
    let by_host = Routing::Host {
        domain: DOMAIN.to_owned(),
    };
    for (routing, strip) in [
        (&Routing::Path, false),
        (&Routing::Path, true),
        // Stripping is a path-routing option: host routing ignores it.
        (&by_host, false),
        (&by_host, true),
    ] {
        let routed = relay_route(routing, strip, request);
        let context = format!(
            "{routing:?} strip={strip} {:?} {} {:?}: {routed:?}",
            request.version(),
            request.uri(),
            request.headers()
        );
        match (routing, routed) {
            (_, Ok(_)) if rules.refused => panic!("routed a request to refuse, {context}"),
            (Routing::Path, Ok(route)) => rules.path_routed(&route, strip, &context),
            (Routing::Host { .. }, Ok(route)) => rules.host_routed(&route, &context),
            (Routing::Path, Err(_)) => assert!(!rules.path_routable(), "unrouted, {context}"),
            (Routing::Host { .. }, Err(_)) => {
                assert!(!rules.host_routable(), "unrouted, {context}")
            }
        }
    }
}

/// What the rules make of a request, whatever the routing mode.
struct Rules<'r> {
    /// Whether it must be refused in every mode. Host is a singleton field
    /// and RFC 9112 section 3.2 answers more than one Host line with 400:
    /// which line names the host is anyone's guess, and a proxy in front
    /// may have read another. RFC 9113 section 8.3.1 refuses an HTTP/2
    /// `host` field that is not the `:authority`.
    refused: bool,
    /// The host it names as written: an absolute-form target's authority
    /// (on HTTP/2, `:authority`), else Host (RFC 9112 section 3.2.2).
    named: Option<&'r [u8]>,
    /// Whether `named` came from Host rather than an authority.
    from_field: bool,
    /// Whether every Host line is a valid Host field, as a request must
    /// have to be served (RFC 9112 section 3.2).
    fields_valid: bool,
    /// The path and query it asks for, as an origin-form target.
    path_and_query: String,
}

impl<'r> Rules<'r> {
    fn of(request: &'r Request<()>) -> Self {
        let fields: Vec<&[u8]> = request
            .headers()
            .get_all(HOST)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let authority = request.uri().authority().map(Authority::as_str);
        let mismatch = match authority {
            Some(authority) if request.version() == Version::HTTP_2 => fields
                .iter()
                .any(|field| !field.eq_ignore_ascii_case(authority.as_bytes())),
            _ => false,
        };
        let target = origin_form(request.uri());
        Rules {
            refused: fields.len() > 1 || mismatch,
            named: authority.map(str::as_bytes).or(fields.first().copied()),
            from_field: authority.is_none(),
            fields_valid: fields.iter().all(|field| host_part(field, false).is_some()),
            path_and_query: target
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
        }
    }

    /// The name path routing finds: the first segment of a path that starts
    /// with `/` (docs/relay.md's `/NAME/...`), if it is not empty.
    fn path_name(&self) -> Option<&str> {
        let rest = self.path_and_query.strip_prefix('/')?;
        let name = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        Some(name).filter(|name| !name.is_empty())
    }

    /// The host part of the named host, lower-cased: userinfo is allowed in
    /// an authority, not in Host.
    fn host_part(&self) -> Option<String> {
        host_part(self.named?, !self.from_field)
    }

    /// The name host routing finds: what comes before `.<domain>` in the
    /// host, if anything does.
    fn host_name(&self) -> Option<String> {
        let host = self.host_part()?;
        let name = host.strip_suffix(DOMAIN)?.strip_suffix('.')?;
        Some(name.to_owned()).filter(|name| !name.is_empty())
    }

    /// Checks what every route shares: a name, an origin-form target, and
    /// the host the request named, exactly as written.
    fn routed<'t>(&self, route: &'t Route, context: &str) -> &'t str {
        assert!(!route.name.is_empty(), "an empty name, {context}");
        assert_eq!(
            route.host.as_deref().map(str::as_bytes),
            self.named,
            "the host, {context}"
        );
        assert!(
            route.target.scheme().is_none() && route.target.authority().is_none(),
            "a target not in origin form, {context}"
        );
        route.target.path_and_query().map_or("", |pq| pq.as_str())
    }

    fn path_routed(&self, route: &Route, strip: bool, context: &str) {
        let target = self.routed(route, context);
        assert_eq!(
            Some(route.name.as_str()),
            self.path_name(),
            "the name, {context}"
        );
        let original = self.path_and_query.as_str();
        if !strip {
            // docs/relay.md, "Routing public requests": path routing
            // forwards the target unaltered.
            assert_eq!(target, original, "the target, {context}");
            return;
        }
        // Stripping removes `/<name>` and nothing else; what is left is
        // sent with a `/` in front if it lacks one (`/lamp?x` is `/?x`).
        let prefix = format!("/{}", route.name);
        let rest = original
            .strip_prefix(&prefix)
            .expect("the name is in the path");
        let wanted = if rest.starts_with('/') {
            rest.to_owned()
        } else {
            format!("/{rest}")
        };
        assert_eq!(target, wanted, "the stripped target, {context}");
    }

    fn host_routed(&self, route: &Route, context: &str) {
        let target = self.routed(route, context);
        assert_eq!(
            Some(&route.name),
            self.host_name().as_ref(),
            "the name, {context}"
        );
        assert_eq!(target, self.path_and_query, "the target, {context}");
    }

    /// Whether nothing the rules name lets path routing refuse the request:
    /// a name in the path, and no Host a server must refuse.
    fn path_routable(&self) -> bool {
        !self.refused && self.fields_valid && self.path_name().is_some()
    }

    /// Whether nothing the rules name lets host routing refuse the request:
    /// a name before the domain in a host of DNS characters only, with no
    /// userinfo (RFC 9110 section 4.2.4 lets a recipient treat it as an
    /// error), and no Host a server must refuse.
    fn host_routable(&self) -> bool {
        let plain = self.named.is_some_and(|named| !named.contains(&b'@'))
            && self.host_part().is_some_and(|host| {
                host.bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.')
            });
        !self.refused && self.fields_valid && plain && self.host_name().is_some()
    }
}

/// The host of `text`, lower-cased, if `text` is a valid Host field value,
/// `uri-host [":" port]` (RFC 9112 section 3.2), or with `userinfo` an
/// authority, which may start with `userinfo "@"` (RFC 3986 section 3.2).
fn host_part(text: &[u8], userinfo: bool) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let text = match text.split_once('@') {
        None => text,
        Some((info, rest)) if userinfo && grammar(info, b":") => rest,
        Some(_) => return None,
    };
    let (host, port) = if text.starts_with('[') {
        // An IP literal; never a name under the domain, so its inside
        // need not be checked.
        text.split_at(text.find(']')? + 1)
    } else {
        let (host, port) = text.split_at(text.find(':').unwrap_or(text.len()));
        if !grammar(host, b"") {
            return None;
        }
        (host, port)
    };
    // port = *DIGIT (RFC 3986 section 3.2.3), even none after the colon.
    let digits = if port.is_empty() {
        ""
    } else {
        port.strip_prefix(':')?
    };
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Whether `text` is unreserved characters, percent escapes, sub-delims
/// and `extra` only: RFC 3986's reg-name, or with `:` its userinfo.
fn grammar(text: &str, extra: &[u8]) -> bool {
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        let ok = match byte {
            b'%' => {
                let mut escape = bytes.by_ref().take(2);
                escape.next().is_some_and(|digit| digit.is_ascii_hexdigit())
                    && escape.next().is_some_and(|digit| digit.is_ascii_hexdigit())
            }
            _ => {
                byte.is_ascii_alphanumeric()
                    || b"-._~!$&'()*+,;=".contains(&byte)
                    || extra.contains(&byte)
            }
        };
        if !ok {
            return false;
        }
    }
    true
}
