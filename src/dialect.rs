use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::head::put_header;

/// Which PTTH wire dialect a handshake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// The IETF ptth working group's draft: `GET` with `Upgrade: ptth` and an
    /// `ALPN` header choosing HTTP/2 or HTTP/1.1 for the transposed
    /// connection.
    #[default]
    Current,
    /// The 2009 draft spoken by Second Life and AirPlay: `POST` with
    /// `Upgrade: PTTH/1.0`; the transposed connection is always HTTP/1.1.
    Legacy,
}

impl Dialect {
    /// The `Upgrade` token this dialect writes.
    pub fn upgrade_token(self) -> &'static str {
        match self {
            Dialect::Current => "ptth",
            Dialect::Legacy => "PTTH/1.0",
        }
    }

    /// The `Connection` value this dialect writes. Some legacy peers compare
    /// it literally, so the case matters on output.
    pub(crate) fn connection_token(self) -> &'static str {
        match self {
            Dialect::Current => "upgrade",
            Dialect::Legacy => "Upgrade",
        }
    }

    /// Writes the dialect's upgrade fields in the order its peers expect:
    /// legacy `Upgrade: PTTH/1.0` then `Connection: Upgrade`; current
    /// `Connection: upgrade`, `Upgrade: ptth`, then `ALPN` listing
    /// `protocols` (an offer, or the one chosen in a `101`).
    pub(crate) fn put_fields(self, out: &mut BytesMut, protocols: &[Protocol]) {
        let upgrade = self.upgrade_token().as_bytes();
        let connection = self.connection_token().as_bytes();
        match self {
            Dialect::Legacy => {
                put_header(out, "Upgrade", upgrade);
                put_header(out, "Connection", connection);
            }
            Dialect::Current => {
                put_header(out, "Connection", connection);
                put_header(out, "Upgrade", upgrade);
                out.put_slice(b"ALPN: ");
                for (i, protocol) in protocols.iter().enumerate() {
                    if i > 0 {
                        out.put_slice(b", ");
                    }
                    out.put_slice(protocol.alpn_field().as_bytes());
                }
                out.put_slice(b"\r\n");
            }
        }
    }

    /// Reads one `Upgrade` list entry. Token names compare case-insensitively,
    /// so only the version tells the dialects apart.
    pub(crate) fn from_token(token: &str) -> Option<Dialect> {
        let (name, version) = match token.split_once('/') {
            Some((name, version)) => (name.trim(), Some(version.trim())),
            None => (token.trim(), None),
        };
        if !name.eq_ignore_ascii_case("ptth") {
            return None;
        }
        match version {
            None => Some(Dialect::Current),
            Some("1.0") => Some(Dialect::Legacy),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upgrade_token())
    }
}

/// The HTTP version spoken on the transposed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1, ALPN id `http/1.1`.
    Http1,
    /// HTTP/2 with prior knowledge, ALPN id `h2`.
    Http2,
}

impl Protocol {
    /// The protocol's ALPN id, before percent-encoding.
    pub fn alpn_id(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
        }
    }

    /// The id as written in an `ALPN` header field (RFC 7639 percent-encodes
    /// `/`).
    pub(crate) fn alpn_field(self) -> &'static str {
        match self {
            Protocol::Http1 => "http%2F1.1",
            Protocol::Http2 => "h2",
        }
    }

    pub(crate) fn from_alpn_id(id: &str) -> Option<Protocol> {
        match id {
            "http/1.1" => Some(Protocol::Http1),
            "h2" => Some(Protocol::Http2),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpn_id())
    }
}

/// How the setup request reaches the acceptor, and so where the
/// transposed channel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Setup {
    /// An HTTP/1.1 request with `Upgrade`, answered `101`: the channel is
    /// the whole connection, and the transposed protocol runs on it
    /// natively.
    #[default]
    Http1,
    /// An HTTP/2 extended CONNECT (RFC 8441) with `:protocol: ptth`,
    /// answered `2xx`: the channel is that one stream, inside its flow
    /// control, and one connection carries as many channels as the
    /// acceptor allows streams. It gets through proxies and load
    /// balancers that speak HTTP/2 and drop `Upgrade`. Current dialect
    /// only.
    Http2,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setup::Http1 => "HTTP/1.1 upgrade",
            Setup::Http2 => "HTTP/2 extended CONNECT",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_tokens_are_told_apart_by_version() {
        assert_eq!(Dialect::from_token("ptth"), Some(Dialect::Current));
        assert_eq!(Dialect::from_token("PTTH"), Some(Dialect::Current));
        assert_eq!(Dialect::from_token("PTTH/1.0"), Some(Dialect::Legacy));
        assert_eq!(Dialect::from_token("ptth/1.0"), Some(Dialect::Legacy));
        assert_eq!(Dialect::from_token("PTTH/2.0"), None);
        assert_eq!(Dialect::from_token("websocket"), None);
        assert_eq!(Dialect::from_token(""), None);
    }
}
