//! Which upgrade requests the acceptor takes: the rules both the
//! standalone acceptor and `upgrade::accept` apply to a request head.

use http::header::{HOST, UPGRADE};
use http::{HeaderMap, Method, Version};

use super::Builder;
use crate::head;
use crate::{Dialect, Error, Protocol};

/// What validation found in an acceptable upgrade request.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) dialect: Dialect,
    pub(crate) protocol: Protocol,
    pub(crate) offered: Vec<String>,
}

impl Builder {
    /// Decides whether a request head may be upgraded: never HTTP/1.0, only
    /// to an enabled dialect and with `Connection: upgrade`; the current
    /// dialect also needs `Host` and an ALPN protocol in common.
    pub(crate) fn validate(
        &self,
        method: &Method,
        version: Version,
        headers: &HeaderMap,
    ) -> Result<Validated, Error> {
        if !headers.contains_key(UPGRADE) {
            return Err(Error::NotUpgrade("no Upgrade header"));
        }
        if version != Version::HTTP_11 {
            return Err(Error::NotUpgrade("only HTTP/1.1 requests are upgraded"));
        }
        if method == Method::CONNECT {
            return Err(Error::NotUpgrade("CONNECT is not an upgrade"));
        }
        let offered: Vec<Dialect> = head::tokens(headers, &UPGRADE)
            .filter_map(Dialect::from_token)
            .collect();
        let dialect = if self.config.current && offered.contains(&Dialect::Current) {
            Dialect::Current
        } else if self.config.legacy && offered.contains(&Dialect::Legacy) {
            Dialect::Legacy
        } else {
            return Err(Error::UnsupportedProtocol {
                offered: head::tokens(headers, &UPGRADE)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if !head::connection_upgrade(headers) {
            return Err(Error::MissingConnectionUpgrade);
        }
        if dialect == Dialect::Legacy {
            return Ok(Validated {
                dialect,
                protocol: Protocol::Http1,
                offered: Vec::new(),
            });
        }
        if !headers.contains_key(HOST) {
            return Err(Error::Malformed("HTTP/1.1 request without Host"));
        }
        let offered = head::alpn_ids(headers)?.ok_or(Error::MissingAlpn)?;
        let protocol = self
            .config
            .protocols
            .iter()
            .copied()
            .find(|p| offered.iter().any(|id| id == p.alpn_id()))
            .ok_or_else(|| Error::NoCommonProtocol {
                offered: offered.clone(),
            })?;
        Ok(Validated {
            dialect,
            protocol,
            offered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn preference_decides_between_offered_protocols() {
        let offer = headers(&[
            ("host", "x"),
            ("upgrade", "ptth"),
            ("connection", "upgrade"),
            ("alpn", "http%2F1.1, h2"),
        ]);
        let builder = Builder::new();
        let v = builder
            .validate(&Method::GET, Version::HTTP_11, &offer)
            .unwrap();
        assert_eq!(v.protocol, Protocol::Http2);
        assert_eq!(v.offered, ["http/1.1", "h2"]);
        let h1_first = Builder::new().protocols([Protocol::Http1, Protocol::Http2]);
        let v = h1_first
            .validate(&Method::GET, Version::HTTP_11, &offer)
            .unwrap();
        assert_eq!(v.protocol, Protocol::Http1);
    }

    #[test]
    fn current_dialect_requires_host_which_may_be_empty() {
        let mut offer = headers(&[
            ("upgrade", "ptth"),
            ("connection", "upgrade"),
            ("alpn", "h2"),
        ]);
        let builder = Builder::new();
        assert!(matches!(
            builder.validate(&Method::GET, Version::HTTP_11, &offer),
            Err(Error::Malformed("HTTP/1.1 request without Host"))
        ));
        offer.insert(HOST, HeaderValue::from_static(""));
        assert!(
            builder
                .validate(&Method::GET, Version::HTTP_11, &offer)
                .is_ok()
        );
    }

    #[test]
    fn connect_is_never_upgraded() {
        let offer = headers(&[
            ("host", "x"),
            ("upgrade", "ptth"),
            ("connection", "upgrade"),
            ("alpn", "h2"),
        ]);
        assert!(matches!(
            Builder::new().validate(&Method::CONNECT, Version::HTTP_11, &offer),
            Err(Error::NotUpgrade("CONNECT is not an upgrade"))
        ));
    }

    #[test]
    fn current_dialect_wins_when_both_are_offered() {
        let offer = headers(&[
            ("host", "x"),
            ("upgrade", "PTTH/1.0, ptth"),
            ("connection", "upgrade"),
            ("alpn", "http%2F1.1"),
        ]);
        let validated = Builder::new()
            .validate(&Method::GET, Version::HTTP_11, &offer)
            .unwrap();
        assert_eq!(validated.dialect, Dialect::Current);
        let legacy_only = Builder::new().current(false);
        let validated = legacy_only
            .validate(&Method::GET, Version::HTTP_11, &offer)
            .unwrap();
        assert_eq!(validated.dialect, Dialect::Legacy);
    }

    #[test]
    fn disabled_dialects_are_unsupported() {
        let legacy = headers(&[("upgrade", "PTTH/1.0"), ("connection", "Upgrade")]);
        let builder = Builder::new().legacy(false);
        assert!(matches!(
            builder.validate(&Method::POST, Version::HTTP_11, &legacy),
            Err(Error::UnsupportedProtocol { offered }) if offered == "PTTH/1.0"
        ));
    }
}
