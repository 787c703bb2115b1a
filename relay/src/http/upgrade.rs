//! Upgrades through the relay (WebSocket and the like): once both hops
//! have switched, their bytes are copied both ways.

use base64::Engine;
use http::header::{CONNECTION, HeaderName, HeaderValue, UPGRADE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tracing::debug;

/// The `Upgrade` value of a request that asks to switch protocols: both
/// `Upgrade` and the `upgrade` token in `Connection`.
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

/// Puts back the two fields that ask the next hop to switch, after the
/// hop-by-hop fields were removed.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

/// Waits for both hops to switch, then copies bytes between them until
/// either side closes.
pub fn spawn(near: OnUpgrade, far: OnUpgrade) {
    tokio::spawn(async move {
        let (near, far) = match tokio::try_join!(near, far) {
            Ok(both) => both,
            Err(error) => return debug!(%error, "an upgrade through the relay failed"),
        };
        let (mut near, mut far) = (TokioIo::new(near), TokioIo::new(far));
        if let Err(error) = tokio::io::copy_bidirectional(&mut near, &mut far).await {
            debug!(%error, "an upgraded stream ended with an error");
        }
    });
}

/// `Sec-WebSocket-Key`, which RFC 8441 leaves out of HTTP/2 and which the
/// relay answers itself.
pub const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
/// `Sec-WebSocket-Accept`.
pub const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
/// `Sec-WebSocket-Version`.
pub const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// RFC 6455's answer to a `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Turns an HTTP/1.1 upgrade request into RFC 8441's extended CONNECT,
/// for an HTTP/2 hop: `CONNECT` with `:protocol` set to the upgrade token.
pub fn to_extended_connect<B>(request: &mut Request<B>, upgrade: &HeaderValue) {
    let protocol = upgrade
        .to_str()
        .unwrap_or("")
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    *request.method_mut() = Method::CONNECT;
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from(protocol.as_str()));
}

/// Turns an extended CONNECT from an HTTP/2 hop back into an HTTP/1.1
/// upgrade request, when it is one; returns the protocol asked for.
pub fn from_extended_connect<B>(request: &mut Request<B>) -> Option<HeaderValue> {
    if request.method() != Method::CONNECT {
        return None;
    }
    let protocol = request.extensions_mut().remove::<hyper::ext::Protocol>()?;
    let upgrade = HeaderValue::from_str(protocol.as_str()).ok()?;
    *request.method_mut() = Method::GET;
    let headers = request.headers_mut();
    if upgrade == "websocket" {
        if !headers.contains_key(SEC_WEBSOCKET_KEY) {
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce).expect("the operating system's random source");
            let key = base64::engine::general_purpose::STANDARD.encode(nonce);
            headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).ok()?);
        }
        headers
            .entry(SEC_WEBSOCKET_VERSION)
            .or_insert(HeaderValue::from_static("13"));
    }
    Some(upgrade)
}

/// The `101` for an HTTP/1.1 client whose upgrade an HTTP/2 hop accepted
/// with `2xx`: the switch fields, the WebSocket accept key when there is
/// one, and the hop's other fields.
pub fn switching_from<B>(
    accepted: &Response<B>,
    upgrade: HeaderValue,
    key: Option<&HeaderValue>,
) -> HeaderMap {
    let mut headers = accepted.headers().clone();
    crate::http::headers::remove_hop_by_hop(&mut headers);
    restore(&mut headers, upgrade);
    if let Some(key) = key
        && let Ok(accept) = HeaderValue::from_str(&websocket_accept(key.as_bytes()))
    {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers
}

/// The `2xx` an HTTP/2 hop gets when the HTTP/1.1 side switched with
/// `101`: its fields, less those that only make sense on HTTP/1.1.
pub fn accepted_from(switched: &HeaderMap) -> HeaderMap {
    let mut headers = switched.clone();
    crate::http::headers::remove_hop_by_hop(&mut headers);
    headers.remove(SEC_WEBSOCKET_ACCEPT);
    headers
}

/// Whether an HTTP/2 hop accepted an extended CONNECT.
pub fn connect_accepted(status: StatusCode) -> bool {
    status.is_success()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // RFC 6455, section 1.3.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrades_and_extended_connects_turn_into_each_other() {
        let mut request = Request::get("/ws").body(()).unwrap();
        to_extended_connect(&mut request, &HeaderValue::from_static("WebSocket"));
        assert_eq!(request.method(), Method::CONNECT);
        let upgrade = from_extended_connect(&mut request).unwrap();
        assert_eq!(upgrade, "websocket");
        assert_eq!(request.method(), Method::GET);
        assert!(request.headers().contains_key(SEC_WEBSOCKET_KEY));
        assert_eq!(request.headers()[SEC_WEBSOCKET_VERSION], "13");
        let mut plain = Request::get("/").body(()).unwrap();
        assert!(from_extended_connect(&mut plain).is_none());
    }
}
