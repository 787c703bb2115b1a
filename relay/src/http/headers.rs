//! Header rules at the relay's edge: hop-by-hop fields stay on their hop,
//! and the peer learns who really asked.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{
    CONNECTION, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `X-Forwarded-For`: the public client's address.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: `http` or `https`, as the public client spoke.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the public request was routed by.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Forwarded` (RFC 7239).
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// `X-Real-IP`: the one address the relay judges the public client's,
/// which a device can check an allow list against.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The fields that are hop-by-hop whether or not `Connection` names them.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes the hop-by-hop fields (RFC 9110, section 7.6.1): the fixed list
/// and every field `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over their few names costs less
    // than a lookup of each of the nine (this runs twice per request on
    // each side).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.into_iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Fields only the relay may set toward a peer: a client's own would
/// pass for the relay's word (who asked, from where, which node).
const CLIENT_MAY_NOT_SET: [HeaderName; 3] = [
    X_REAL_IP,
    HeaderName::from_static("requesting-client"),
    HeaderName::from_static("ptth-relay-hop"),
];

/// Who sent a request to the relay, as the peer is told.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The address the request came from.
    pub client: SocketAddr,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The host it was routed by (`Host`, or the target's authority).
    pub host: Option<&'a str>,
    /// Whether `client` is a proxy the operator trusts (or a cluster
    /// node), whose forwarding fields are kept and appended to.
    pub trusted: bool,
}

/// Sets `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
/// `Forwarded` (RFC 7239) and `X-Real-IP` for `from`, replacing what an
/// untrusted client wrote, and removes the other fields only the relay
/// may set.
pub fn set_forwarded(headers: &mut HeaderMap, from: Forwarding<'_>) {
    // Built with pushes, not `format!`: this runs for every request, and
    // the formatting machinery was a tenth of the relay's instructions.
    let real_ip = real_ip(headers, from);
    // The first, X-Real-IP, is replaced just below.
    for name in &CLIENT_MAY_NOT_SET[1..] {
        headers.remove(name);
    }
    headers.insert(X_REAL_IP, real_ip);
    let ip = address(from.client.ip());
    let mut element = String::with_capacity(64);
    element.push_str("for=");
    match from.client.ip() {
        std::net::IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(&ip);
            element.push_str("]\"");
        }
        std::net::IpAddr::V4(_) => element.push_str(&ip),
    }
    let scheme = if from.tls { "https" } else { "http" };
    element.push_str(";proto=");
    element.push_str(scheme);
    if let Some(host) = from.host {
        push_forwarded_host(&mut element, host);
    }
    let chain = appended(headers, &X_FORWARDED_FOR, from.trusted, ip);
    let forwarded = appended(headers, &FORWARDED, from.trusted, element);
    let kept = |name: &HeaderName| from.trusted.then(|| headers.get(name).cloned()).flatten();
    let proto = kept(&X_FORWARDED_PROTO).unwrap_or(HeaderValue::from_static(scheme));
    let host = kept(&X_FORWARDED_HOST)
        .or_else(|| from.host.and_then(|host| HeaderValue::from_str(host).ok()));
    // `insert` replaces every value a client gave.
    for (name, value) in [(X_FORWARDED_FOR, chain), (FORWARDED, forwarded)] {
        match HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            Ok(value) => headers.insert(name, value),
            Err(_) => headers.remove(name),
        };
    }
    headers.insert(X_FORWARDED_PROTO, proto);
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

/// `own` after the values of `name` a trusted hop wrote, `, `-separated;
/// `own` alone from anyone else.
fn appended(headers: &HeaderMap, name: &HeaderName, trusted: bool, own: String) -> String {
    if !trusted {
        return own;
    }
    let mut earlier = String::new();
    for value in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        earlier.push_str(value);
        earlier.push_str(", ");
    }
    earlier.push_str(&own);
    earlier
}

/// An address as text: IPv4 by hand, the common case, since `Display`
/// goes through the formatting machinery for each octet.
fn address(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The public client's address: the one the request came from, unless
/// that is a trusted proxy or a cluster node, whose word is taken: its
/// `X-Real-IP` (a node's, or a proxy's that sets it), else the last
/// address it appended to `X-Forwarded-For` (the one it saw). A trusted
/// hop that names no address is judged the client itself.
fn real_ip(headers: &HeaderMap, from: Forwarding<'_>) -> HeaderValue {
    let said = |value: &str| value.trim().parse::<std::net::IpAddr>().ok();
    let trusted = from.trusted.then(|| {
        let real = headers.get(X_REAL_IP).and_then(|v| v.to_str().ok());
        let last_forwarded = || {
            let chain = headers.get_all(X_FORWARDED_FOR).iter().next_back()?;
            chain.to_str().ok()?.rsplit(',').next()
        };
        real.and_then(said)
            .or_else(|| last_forwarded().and_then(said))
    });
    let ip = trusted.flatten().unwrap_or(from.client.ip());
    HeaderValue::from_maybe_shared(bytes::Bytes::from(address(ip)))
        .expect("an address is a header value")
}

/// `;host=` and `host` as a `Forwarded` value (RFC 7239, section 4):
/// bare when it is a token, quoted when it has other visible characters
/// (a host's `:port`, an IPv6 literal's brackets), and nothing when it
/// has characters a quoted string would need escaped or cannot hold.
fn push_forwarded_host(element: &mut String, host: &str) {
    let token = |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
    let quotable = |byte: u8| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\';
    let bytes = host.as_bytes();
    if bytes.is_empty() {
        return;
    }
    element.push_str(";host=");
    if bytes.iter().all(|&byte| token(byte)) {
        element.push_str(host);
    } else if bytes.iter().all(|&byte| quotable(byte)) {
        element.push('"');
        element.push_str(host);
        element.push('"');
    } else {
        element.truncate(element.len() - ";host=".len());
    }
}

/// A `Host` value split into its host and port, if it has one: a colon
/// inside an IPv6 literal (`[::1]`) is not a port's.
pub(crate) fn split_port(host: &str) -> (&str, Option<&str>) {
    let end = match host.strip_prefix('[') {
        Some(literal) => literal.find(']').map_or(host.len(), |close| close + 2),
        None => host.rfind(':').unwrap_or(host.len()),
    };
    let (host, rest) = host.split_at(end);
    (host, rest.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_go() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "text/plain"),
            ("authorization", "Bearer y"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept", "authorization"]);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn forwarding_fields_are_the_relay_s_unless_the_client_is_trusted() {
        let spoofed: &[(&str, &str)] = &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "bank.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("requesting-client", "6.6.6.6:1"),
            ("ptth-relay-hop", "a"),
            ("accept", "*/*"),
        ];
        for (client, trusted, host, wanted) in [
            (
                "192.0.2.1:5",
                false,
                Some("lamp.relay.example"),
                [
                    "192.0.2.1",
                    "http",
                    "lamp.relay.example",
                    "for=192.0.2.1;proto=http;host=lamp.relay.example",
                    "192.0.2.1",
                ],
            ),
            (
                "[2001:db8::1]:5",
                false,
                None,
                [
                    "2001:db8::1",
                    "http",
                    "",
                    "for=\"[2001:db8::1]\";proto=http",
                    "2001:db8::1",
                ],
            ),
            (
                "10.0.0.2:5",
                true,
                Some("lamp.relay.example"),
                [
                    "6.6.6.6, 10.0.0.2",
                    "https",
                    "bank.example",
                    "for=6.6.6.6, for=10.0.0.2;proto=http;host=lamp.relay.example",
                    "6.6.6.6",
                ],
            ),
        ] {
            let mut map = headers(spoofed);
            let from = Forwarding {
                client: client.parse().unwrap(),
                tls: false,
                host,
                trusted,
            };
            set_forwarded(&mut map, from);
            let got = [
                X_FORWARDED_FOR,
                X_FORWARDED_PROTO,
                X_FORWARDED_HOST,
                FORWARDED,
                X_REAL_IP,
            ]
            .map(|name| map.get(name).map_or("", |v| v.to_str().unwrap()).to_owned());
            assert_eq!(got, wanted, "{client} trusted={trusted}");
            for gone in ["requesting-client", "ptth-relay-hop"] {
                assert!(!map.contains_key(gone), "{gone} kept for {client}");
            }
            assert_eq!(map["accept"], "*/*");
        }
    }

    #[test]
    fn the_real_ip_is_a_trusted_hop_s_word_and_no_one_else_s() {
        for (trusted, pairs, wanted) in [
            (false, &[("x-real-ip", "6.6.6.6")][..], "192.0.2.1"),
            (false, &[("x-forwarded-for", "6.6.6.6")][..], "192.0.2.1"),
            (true, &[("x-real-ip", " 203.0.113.5 ")][..], "203.0.113.5"),
            (
                true,
                &[
                    ("x-real-ip", "unknown"),
                    ("x-forwarded-for", "1.1.1.1, 6.6.6.6"),
                ][..],
                "6.6.6.6",
            ),
            (
                true,
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "2001:db8::7"),
                ][..],
                "2001:db8::7",
            ),
            (true, &[("x-forwarded-for", "_hidden")][..], "192.0.2.1"),
            (true, &[][..], "192.0.2.1"),
        ] {
            let mut map = headers(pairs);
            let from = Forwarding {
                client: "192.0.2.1:5".parse().unwrap(),
                tls: false,
                host: None,
                trusted,
            };
            set_forwarded(&mut map, from);
            let got: Vec<_> = map.get_all(X_REAL_IP).iter().collect();
            assert_eq!(got, [wanted], "{pairs:?} trusted={trusted}");
        }
    }

    #[test]
    fn a_port_is_split_off_and_an_ipv6_literal_kept_whole() {
        for (host, split) in [
            ("relay.example", ("relay.example", None)),
            ("relay.example:8080", ("relay.example", Some("8080"))),
            ("127.0.0.1:80", ("127.0.0.1", Some("80"))),
            ("[::1]", ("[::1]", None)),
            ("[::1]:8080", ("[::1]", Some("8080"))),
            ("[2001:db8::1]:443", ("[2001:db8::1]", Some("443"))),
            ("[::1", ("[::1", None)),
            ("", ("", None)),
        ] {
            assert_eq!(split_port(host), split, "{host}");
        }
    }

    #[test]
    fn a_forwarded_host_is_a_token_or_quoted() {
        for (host, value) in [
            ("lamp.relay.example", Some("lamp.relay.example")),
            (
                "lamp.relay.example:8080",
                Some("\"lamp.relay.example:8080\""),
            ),
            ("[::1]:8080", Some("\"[::1]:8080\"")),
            ("a\"b", None),
            ("a\\b", None),
            ("a b", None),
            ("", None),
        ] {
            let mut element = "for=a".to_owned();
            push_forwarded_host(&mut element, host);
            let expected = value.map_or("for=a".to_owned(), |value| format!("for=a;host={value}"));
            assert_eq!(element, expected, "{host}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(address(ip), ip.to_string());
        }
    }
}
