//! The initiator's side of the handshake on the wire: the upgrade request
//! it writes, and what it accepts as the answer.

use bytes::{BufMut, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{Builder, Transposed};
use crate::head;
use crate::reader::{Excess, Reader};
use crate::rewind::Rewind;
use crate::{Declined, Dialect, Error, Protocol};

impl Builder {
    /// Writes the upgrade request for `uri` and reads the answer up to the
    /// end of the `101`, or the whole of any other final answer.
    pub(super) async fn exchange<T>(&self, mut io: T, uri: &Uri) -> Result<Round<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        io.write_all(&self.request_bytes(uri)).await?;
        io.flush().await?;
        let mut reader = Reader::new(io);
        loop {
            let head = reader.response_head(self.limits).await?;
            if head.status == StatusCode::SWITCHING_PROTOCOLS {
                let protocol = self.check_switch(&head.headers)?;
                let io = Rewind::new(reader.io, reader.buf.freeze());
                let transposed = Transposed::new(io, protocol, self.dialect, head.headers);
                return Ok(Round::Switched(transposed));
            }
            if head.status.is_informational() {
                continue;
            }
            // A 204 has no body, and nothing may follow it before the
            // request is sent again, so the connection is clean for it.
            if head.status == StatusCode::NO_CONTENT && self.resend_on_no_content {
                if !reader.buf.is_empty() {
                    return Err(Error::Malformed("bytes after a 204 answer to the upgrade"));
                }
                return Ok(Round::Again(reader.io));
            }
            let framing = head::response_framing(head.status, &head.headers)?;
            // The status is what matters; a body cut short by the peer
            // closing is still reported with the head.
            let body = reader
                .body(framing, self.max_declined_body, Excess::Truncate)
                .await
                .unwrap_or_default();
            return Err(Error::Declined(Box::new(Declined {
                status: head.status,
                headers: head.headers,
                body,
            })));
        }
    }

    /// Checks that a `101` switched to what was asked for, and returns the
    /// protocol now spoken.
    fn check_switch(&self, headers: &HeaderMap) -> Result<Protocol, Error> {
        // RFC 9110 wants `Upgrade` on a 101, but when it is missing the
        // status alone is unambiguous, and `Connection` is not checked for
        // the same reason.
        if headers.contains_key(UPGRADE)
            && !head::tokens(headers, &UPGRADE)
                .any(|t| Dialect::from_token(t) == Some(self.dialect))
        {
            return Err(Error::UnsupportedProtocol {
                offered: joined(headers, &UPGRADE),
            });
        }
        if self.dialect == Dialect::Legacy {
            return Ok(Protocol::Http1);
        }
        self.chosen_protocol(headers)
    }

    /// The protocol the acceptor's `ALPN` answer chose, which must be one
    /// of those offered.
    pub(super) fn chosen_protocol(&self, headers: &HeaderMap) -> Result<Protocol, Error> {
        let chosen = head::alpn_ids(headers)?.ok_or(Error::MissingAlpn)?;
        match chosen.as_slice() {
            [one] => Protocol::from_alpn_id(one)
                .filter(|p| self.alpn.contains(p))
                .ok_or_else(|| Error::NoCommonProtocol { offered: chosen }),
            _ => Err(Error::NoCommonProtocol { offered: chosen }),
        }
    }

    fn request_bytes(&self, uri: &Uri) -> BytesMut {
        let method = self.method.clone().unwrap_or(match self.dialect {
            Dialect::Current => Method::GET,
            Dialect::Legacy => Method::POST,
        });
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut out = BytesMut::with_capacity(256 + self.body.len());
        out.put_slice(method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(target.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        let host = match self.headers.get(HOST) {
            Some(host) => host.as_bytes(),
            None => uri.authority().map_or(&b""[..], |a| a.as_str().as_bytes()),
        };
        head::put_header(&mut out, "Host", host);
        self.dialect.put_fields(&mut out, &self.alpn);
        let owned = [HOST, UPGRADE, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING];
        for (name, value) in &self.headers {
            if !owned.contains(name) && name.as_str() != "alpn" {
                head::put_header(&mut out, name.as_str(), value.as_bytes());
            }
        }
        head::put_header(
            &mut out,
            "Content-Length",
            self.body.len().to_string().as_bytes(),
        );
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
        out
    }
}

/// How one round of the exchange ended, short of an error.
pub(super) enum Round<T> {
    /// The acceptor switched protocols.
    Switched(Transposed<T>),
    /// The acceptor answered `204` and the builder sends the upgrade again
    /// on the same connection.
    Again(T),
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    head::tokens(headers, name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
impl Builder {
    /// The upgrade request as `handshake` writes it.
    fn written(&self) -> BytesMut {
        self.request_bytes(self.uri.as_ref().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn legacy_request_is_canonical() {
        let builder = Builder::new()
            .dialect(Dialect::Legacy)
            .uri("http://relay.example/message-queue?id=sam");
        assert_eq!(
            &builder.written()[..],
            b"POST /message-queue?id=sam HTTP/1.1\r\nHost: relay.example\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn current_request_is_canonical() {
        let builder = Builder::new()
            .uri("/reverse-endpoint")
            .header(HOST, HeaderValue::from_static("example.com"))
            .header(
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            )
            .header(UPGRADE, HeaderValue::from_static("websocket"))
            .body("id=1");
        assert_eq!(
            &builder.written()[..],
            b"GET /reverse-endpoint HTTP/1.1\r\nHost: example.com\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2, http%2F1.1\r\nauthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nContent-Length: 4\r\n\r\nid=1"
        );
    }

    #[test]
    fn a_101_must_choose_exactly_one_offered_protocol() {
        let builder = Builder::new();
        let answer = |alpn: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(UPGRADE, HeaderValue::from_static("ptth"));
            headers.insert("alpn", HeaderValue::from_static(alpn));
            builder.check_switch(&headers)
        };
        assert!(matches!(answer("h2"), Ok(Protocol::Http2)));
        assert!(matches!(answer("http%2F1.1"), Ok(Protocol::Http1)));
        for several in ["h2, http%2F1.1", "h2, h2"] {
            assert!(
                matches!(answer(several), Err(Error::NoCommonProtocol { .. })),
                "{several}"
            );
        }
        let h1_only = Builder::new().protocols([Protocol::Http1]);
        let mut headers = HeaderMap::new();
        headers.insert("alpn", HeaderValue::from_static("h2"));
        assert!(matches!(
            h1_only.check_switch(&headers),
            Err(Error::NoCommonProtocol { .. })
        ));
    }

    #[test]
    fn alpn_offer_keeps_order_without_duplicates() {
        let builder = Builder::new().protocols([Protocol::Http1, Protocol::Http1]);
        assert!(
            builder
                .written()
                .windows(22)
                .any(|w| w == b"ALPN: http%2F1.1\r\nCont")
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::head::Limits;
    use proptest::prelude::*;

    fn dialect() -> impl Strategy<Value = Dialect> {
        prop_oneof![Just(Dialect::Current), Just(Dialect::Legacy)]
    }

    fn offer() -> impl Strategy<Value = Vec<Protocol>> {
        prop_oneof![
            Just(vec![Protocol::Http2, Protocol::Http1]),
            Just(vec![Protocol::Http1, Protocol::Http2]),
            Just(vec![Protocol::Http1]),
            Just(vec![Protocol::Http2]),
        ]
    }

    proptest! {
        /// What the initiator writes, the acceptor's parser and validation
        /// read back as written, for any target, extra headers and body.
        #[test]
        fn written_requests_parse_and_validate(
            dialect in dialect(),
            alpn in offer(),
            target in "/[a-zA-Z0-9._~/-]{0,40}(\\?[a-z0-9=&]{0,20})?",
            host in "[a-z0-9.-]{1,30}(:[0-9]{1,5})?",
            fields in proptest::collection::vec(("x-[a-z0-9-]{1,12}", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut builder = Builder::new()
                .dialect(dialect)
                .protocols(alpn.clone())
                .uri(format!("http://{host}{target}"))
                .body(body.clone());
            for (name, value) in &fields {
                builder = builder.header(name.parse().unwrap(), value.parse().unwrap());
            }
            let bytes = builder.written();
            let limits = Limits { max_head: 1 << 16, max_headers: 64 };
            let head = head::parse_request(&bytes, limits).unwrap().unwrap();
            prop_assert_eq!(&bytes[head.len..], &body[..]);
            prop_assert_eq!(head.uri.to_string(), target);
            prop_assert_eq!(&head.headers[HOST], host.as_str());
            prop_assert_eq!(&head.headers[CONTENT_LENGTH], &body.len().to_string());
            for (name, value) in &fields {
                prop_assert!(head.headers.get_all(name.as_str()).iter().any(|v| v == value));
            }
            let validated = crate::acceptor::Builder::new()
                .validate(&head.method, head.version, &head.headers)
                .unwrap();
            prop_assert_eq!(validated.dialect, dialect);
            let expected = match dialect {
                Dialect::Legacy => Protocol::Http1,
                _ if alpn.contains(&Protocol::Http2) => Protocol::Http2,
                _ => Protocol::Http1,
            };
            prop_assert_eq!(validated.protocol, expected);
        }
    }
}
