//! Which upgrade requests the acceptor takes: the rules both the
//! standalone acceptor and `upgrade::accept` apply to a request head.

use http::header::{HOST, UPGRADE};
use http::{Extensions, HeaderMap, Method, Version};

use super::Builder;
use crate::head;
use crate::{Dialect, Error, Protocol, Setup};

/// What validation found in an acceptable upgrade request.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) dialect: Dialect,
    pub(crate) protocol: Protocol,
    pub(crate) offered: Vec<String>,
    pub(crate) setup: Setup,
}

impl Builder {
    /// Decides whether a request hyper has read may become a channel: an
    /// HTTP/2 extended CONNECT (its `:protocol` is in `extensions`) or an
    /// HTTP/1.1 upgrade.
    pub(crate) fn validate_any(
        &self,
        method: &Method,
        version: Version,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Validated, Error> {
        if version == Version::HTTP_11 || version == Version::HTTP_10 {
            return self.validate(method, version, headers);
        }
        if method != Method::CONNECT {
            return Err(Error::NotUpgrade(
                "past HTTP/1.1 a channel is set up by extended CONNECT, not Upgrade",
            ));
        }
        let protocol = extensions.get::<hyper::ext::Protocol>();
        let protocol = protocol.ok_or(Error::NotUpgrade(
            "a CONNECT without :protocol is a tunnel, not a PTTH setup",
        ))?;
        let protocol = String::from_utf8_lossy(protocol.as_ref());
        if !self.config.current || Dialect::from_token(&protocol) != Some(Dialect::Current) {
            return Err(Error::UnsupportedProtocol {
                offered: protocol.into_owned(),
            });
        }
        let (protocol, offered) = self.choose(headers)?;
        Ok(Validated {
            dialect: Dialect::Current,
            protocol,
            offered,
            setup: Setup::Http2,
        })
    }

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
                setup: Setup::Http1,
            });
        }
        if !headers.contains_key(HOST) {
            return Err(Error::Malformed("HTTP/1.1 request without Host"));
        }
        let (protocol, offered) = self.choose(headers)?;
        Ok(Validated {
            dialect,
            protocol,
            offered,
            setup: Setup::Http1,
        })
    }

    /// The protocol to transpose to: the first of this side's that the
    /// `ALPN` header offers; and the offer.
    fn choose(&self, headers: &HeaderMap) -> Result<(Protocol, Vec<String>), Error> {
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
        Ok((protocol, offered))
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
        let legacy_only = Builder::new().dialects([Dialect::Legacy]);
        let validated = legacy_only
            .validate(&Method::GET, Version::HTTP_11, &offer)
            .unwrap();
        assert_eq!(validated.dialect, Dialect::Legacy);
    }

    fn extended_connect(protocol: &'static str) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(hyper::ext::Protocol::from_static(protocol));
        extensions
    }

    #[test]
    fn an_extended_connect_with_ptth_sets_up_over_http2() {
        let offer = headers(&[("alpn", "http%2F1.1")]);
        let validated = Builder::new()
            .validate_any(
                &Method::CONNECT,
                Version::HTTP_2,
                &offer,
                &extended_connect("PTTH"),
            )
            .unwrap();
        assert_eq!(validated.setup, Setup::Http2);
        assert_eq!(validated.dialect, Dialect::Current);
        assert_eq!(validated.protocol, Protocol::Http1);
        // The legacy dialect has no HTTP/2 setup, nor has a builder
        // without the current one.
        for (builder, protocol) in [
            (Builder::new(), "PTTH/1.0"),
            (Builder::new().dialects([Dialect::Legacy]), "ptth"),
        ] {
            assert!(matches!(
                builder.validate_any(
                    &Method::CONNECT,
                    Version::HTTP_2,
                    &offer,
                    &extended_connect(protocol),
                ),
                Err(Error::UnsupportedProtocol { offered }) if offered == protocol
            ));
        }
    }

    #[test]
    fn an_http1_request_with_a_protocol_extension_is_still_an_upgrade() {
        let offer = headers(&[
            ("host", "x"),
            ("upgrade", "ptth"),
            ("connection", "upgrade"),
            ("alpn", "h2"),
        ]);
        let validated = Builder::new()
            .validate_any(
                &Method::GET,
                Version::HTTP_11,
                &offer,
                &extended_connect("ptth"),
            )
            .unwrap();
        assert_eq!(validated.setup, Setup::Http1);
    }

    #[test]
    fn disabled_dialects_are_unsupported() {
        let legacy = headers(&[("upgrade", "PTTH/1.0"), ("connection", "Upgrade")]);
        let builder = Builder::new().dialects([Dialect::Current]);
        assert!(matches!(
            builder.validate(&Method::POST, Version::HTTP_11, &legacy),
            Err(Error::UnsupportedProtocol { offered }) if offered == "PTTH/1.0"
        ));
    }
}
