//! What the acceptor writes before the switch: the `101`, or a refusal.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::Validated;
use crate::head;
use crate::{Dialect, Error, Setup};

/// The status that accepts a setup: `101` for an upgrade, `200` for an
/// extended CONNECT (a `101` does not exist past HTTP/1.1).
pub(crate) fn accepting_status(validated: &Validated) -> StatusCode {
    match validated.setup {
        Setup::Http1 => StatusCode::SWITCHING_PROTOCOLS,
        _ => StatusCode::OK,
    }
}

/// The canonical `101` fields for a dialect and protocol; after an extended
/// CONNECT only `ALPN`, as HTTP/2 forbids the connection-specific ones.
pub(crate) fn switching_headers(validated: &Validated) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if validated.setup != Setup::Http1 {
        headers.insert(
            "alpn",
            HeaderValue::from_static(validated.protocol.alpn_field()),
        );
        return headers;
    }
    let dialect = validated.dialect;
    let upgrade = HeaderValue::from_static(dialect.upgrade_token());
    let connection = HeaderValue::from_static(dialect.connection_token());
    headers.insert(UPGRADE, upgrade);
    headers.insert(CONNECTION, connection);
    if dialect == Dialect::Current {
        headers.insert(
            "alpn",
            HeaderValue::from_static(validated.protocol.alpn_field()),
        );
    }
    headers
}

pub(super) fn switching_bytes(validated: &Validated, extra: &HeaderMap) -> BytesMut {
    let dialect = validated.dialect;
    let mut out = BytesMut::with_capacity(128);
    out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    dialect.put_fields(&mut out, &[validated.protocol]);
    for (name, value) in extra {
        if name != UPGRADE && name != CONNECTION && name.as_str() != "alpn" {
            head::put_header(&mut out, name.as_str(), value.as_bytes());
        }
    }
    out.put_slice(b"\r\n");
    out
}

/// The answer to a request that cannot be upgraded, when the error leaves a
/// way to answer at all. `426` needs `Upgrade`, which HTTP/2 forbids, so
/// past HTTP/1.1 its place is taken by `400`, and no connection-specific
/// field is written.
pub(crate) fn refusal(error: &Error, version: Version) -> Option<Response<Bytes>> {
    let (status, reason) = match error {
        Error::HeadTooLarge { .. } | Error::TooManyHeaders { .. } => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ),
        Error::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "upgrade body too large"),
        Error::Malformed(_) | Error::MissingAlpn | Error::EarlyData => {
            (StatusCode::BAD_REQUEST, "bad upgrade request")
        }
        Error::NotUpgrade(_)
        | Error::UnsupportedProtocol { .. }
        | Error::MissingConnectionUpgrade
        | Error::NoCommonProtocol { .. } => (StatusCode::UPGRADE_REQUIRED, "PTTH upgrade required"),
        _ => return None,
    };
    let body = Bytes::from(format!("{reason}: {error}\n"));
    let mut response = Response::new(body);
    let http1 = version <= Version::HTTP_11;
    *response.status_mut() = match status {
        StatusCode::UPGRADE_REQUIRED if !http1 => StatusCode::BAD_REQUEST,
        status => status,
    };
    let headers = response.headers_mut();
    if http1 {
        if status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(UPGRADE, HeaderValue::from_static("ptth, PTTH/1.0"));
        }
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}

/// Answers a refused request where possible, then closes. Write errors are
/// ignored: the peer is already in the wrong and the caller gets the
/// original error.
pub(super) async fn refuse<T: AsyncWrite + Unpin>(io: &mut T, error: &Error) {
    if let Some(response) = refusal(error, Version::HTTP_11) {
        let _ = write_response(io, &response).await;
    }
    let _ = io.shutdown().await;
}

pub(super) async fn write_response<T: AsyncWrite + Unpin>(
    io: &mut T,
    response: &Response<Bytes>,
) -> Result<(), Error> {
    let body = response.body();
    let mut out = BytesMut::with_capacity(128 + body.len());
    head::put_response_head(&mut out, response.status(), response.headers(), body.len());
    out.put_slice(body);
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn switching_bytes_are_canonical() {
        let legacy = Validated {
            dialect: Dialect::Legacy,
            protocol: Protocol::Http1,
            offered: Vec::new(),
            setup: Setup::Http1,
        };
        assert_eq!(
            &switching_bytes(&legacy, &HeaderMap::new())[..],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n"
        );
        let current = Validated {
            dialect: Dialect::Current,
            protocol: Protocol::Http2,
            offered: vec!["h2".into()],
            setup: Setup::Http1,
        };
        assert_eq!(
            &switching_bytes(&current, &HeaderMap::new())[..],
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n"
        );
        let mut extra = HeaderMap::new();
        extra.insert(
            "link",
            HeaderValue::from_static("<http://r/x/>; rel=related"),
        );
        extra.insert("alpn", HeaderValue::from_static("http%2F1.1"));
        extra.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(
            &switching_bytes(&current, &extra)[..],
            &b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\nlink: <http://r/x/>; rel=related\r\n\r\n"[..]
        );
    }
}
