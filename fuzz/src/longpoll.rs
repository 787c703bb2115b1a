//! The long-poll wire formats, driven with fuzzer-made bytes: the relay's
//! registration form and capability URL segments, ReverseHttp's
//! `message/http` envelopes, and Second Life's JSON posts. Anyone can run
//! a long-poll client, so all of it is untrusted.
//!
//! Beyond not panicking, each parse is checked against a reading of
//! docs/protocol.md ("The relay on the wire") and the codecs' documented
//! rules, and each parsed message is encoded again and must read back the
//! same: the relay encodes the requests it hands to pollers with these
//! encoders, and a client built on the crate parses them with these
//! parsers.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Response, Uri};
use ptth::longpoll::{json, message};
use ptth_relay::fuzzing::{Params, decode, encode};
use serde_json::Value;

/// Header lines `message::parse_*` read in one message.
const MAX_HEADERS: usize = 100;

/// A registration: `data` is the query string, a newline, then the form
/// body; without a newline there is no query string, as when a client
/// posts only a body. The whole input is also read as a URL path segment,
/// as the relay reads each segment of a long-poll URL.
pub fn longpoll_form(data: &[u8]) {
    let (query, body) = match data.iter().position(|&byte| byte == b'\n') {
        Some(at) => (Some(String::from_utf8_lossy(&data[..at])), &data[at + 1..]),
        None => (None, data),
    };
    let query = query.as_deref();
    let params = Params::parse(query, body);
    let expected = form::pairs(query, body);
    // Every key the model finds, and the three the registration reads even
    // when the model finds none of them.
    let keys = expected
        .iter()
        .map(|(key, _)| key.as_str())
        .chain(["name", "token", "lease"]);
    for key in keys {
        let got = params.get(key);
        assert_ne!(got, Some(""), "an empty value for {key:?}");
        assert_eq!(got, form::last(&expected, key), "the value of {key:?}");
    }
    // What the parse kept, bounded by what came in: decoding only shrinks
    // text, each parameter needs at least one byte, and Debug spends at
    // most 6 bytes on a byte of text and 10 on a pair's quotes and commas.
    let text = query.map_or(0, str::len) + String::from_utf8_lossy(body).len();
    let shown = format!("{params:?}").len();
    assert!(shown <= 16 + 16 * text, "{shown} bytes shown from {text}");

    let segment = String::from_utf8_lossy(data);
    let decoded = decode(&segment);
    assert_eq!(decoded, form::percent_decoded(&segment, false));
    assert!(decoded.len() <= segment.len(), "decoding grew the text");
    round_trip(&segment);
    round_trip(&decoded);
}

/// `encode` writes a path segment that `decode` reads back exactly.
fn round_trip(text: &str) {
    let encoded = encode(text);
    assert!(
        encoded
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte)),
        "{encoded:?} is not one segment"
    );
    assert!(encoded.len() <= 3 * text.len());
    assert_eq!(decode(&encoded), text);
}

/// `application/x-www-form-urlencoded` as the URL Standard reads it, but
/// with the body taken as UTF-8 before it is split, as the relay reads a
/// registration.
mod form {
    /// The pairs of the query string, then the body's, in order.
    pub fn pairs(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
        let body = String::from_utf8_lossy(body);
        let mut pairs = Vec::new();
        for text in query.into_iter().chain([body.as_ref()]) {
            for field in text.split('&').filter(|field| !field.is_empty()) {
                let (key, value) = field.split_once('=').unwrap_or((field, ""));
                pairs.push((percent_decoded(key, true), percent_decoded(value, true)));
            }
        }
        pairs
    }

    /// The value of the last pair named `key`, unless it is empty: a later
    /// empty value hides an earlier one, as a later value wins.
    pub fn last<'p>(pairs: &'p [(String, String)], key: &str) -> Option<&'p str> {
        let (_, value) = pairs.iter().rev().find(|(found, _)| found == key)?;
        Some(value.as_str()).filter(|value| !value.is_empty())
    }

    /// `%` and two hex digits become that byte, `+` a space if
    /// `plus_is_space`; everything else stays, and bytes that are not
    /// UTF-8 become U+FFFD.
    pub fn percent_decoded(text: &str, plus_is_space: bool) -> String {
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            match (first, tail) {
                (b'%', [high, low, after @ ..])
                    if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
                {
                    out.push(digit(*high) << 4 | digit(*low));
                    rest = after;
                }
                (b'+', _) if plus_is_space => {
                    out.push(b' ');
                    rest = tail;
                }
                _ => {
                    out.push(first);
                    rest = tail;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn digit(hex: u8) -> u8 {
        match hex {
            b'0'..=b'9' => hex - b'0',
            _ => (hex | 0x20) - b'a' + 10,
        }
    }
}

/// A `message/http` envelope, read both as a poller's reply and as the
/// request a poll delivers.
pub fn message_http(data: &[u8]) {
    let envelope = Bytes::copy_from_slice(data);
    if let Ok(response) = message::parse_response(&envelope) {
        reply_read(data, &response);
        let encoded = message::encode_response(&response);
        // The encoder adds a Content-Length line; a reply already at the
        // parser's header limit cannot take it, by the limit's design.
        if kept_headers(response.headers()) < MAX_HEADERS {
            let back = message::parse_response(&Bytes::from(encoded.clone()))
                .expect("an encoded reply reads back");
            assert_eq!(back.status(), response.status());
            assert_eq!(
                back.headers(),
                &framed(response.headers(), response.body().len())
            );
            assert_eq!(back.body(), response.body());
            assert_eq!(message::encode_response(&back), encoded, "not stable");
        }
    }
    if let Ok(request) = message::parse_request(&envelope) {
        let encoded = message::encode_request(&request);
        // A request in absolute form names its host in a line of its own.
        let host = request
            .uri()
            .authority()
            .filter(|_| !request.headers().contains_key(HOST));
        if kept_headers(request.headers()) + usize::from(host.is_some()) < MAX_HEADERS {
            let back = message::parse_request(&Bytes::from(encoded.clone()))
                .expect("an encoded request reads back");
            assert_eq!(back.method(), request.method());
            assert_eq!(back.uri(), &origin_form(request.uri()));
            let mut headers = framed(request.headers(), request.body().len());
            if let Some(host) = host {
                let host = HeaderValue::from_str(host.as_str()).expect("an authority");
                headers.insert(HOST, host);
            }
            assert_eq!(back.headers(), &headers);
            assert_eq!(back.body(), request.body());
            assert_eq!(message::encode_request(&back), encoded, "not stable");
        }
    }
}

/// What the lenient reading (docs/protocol.md, "Replies") must give for a
/// reply it accepts: the status line's code, and a body taken from the
/// bytes after the head, never more of them (only the first of several
/// responses counts).
fn reply_read(data: &[u8], response: &Response<Bytes>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = head.parse(data) else {
        panic!("a reply read without a complete head");
    };
    assert_eq!(head.code, Some(response.status().as_u16()));
    assert!((100..=999).contains(&response.status().as_u16()));
    let rest = &data[len..];
    let body = response.body();
    let chunked = response
        .headers()
        .get_all(TRANSFER_ENCODING)
        .iter()
        .any(|coding| coding.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        // Dechunked, the body loses its framing.
        assert!(body.len() <= rest.len());
    } else {
        assert!(rest.starts_with(body), "a body not from the envelope");
    }
}

/// Header lines other than the framing ones, which the encoders replace.
fn kept_headers(headers: &HeaderMap) -> usize {
    headers
        .keys()
        .filter(|name| **name != CONTENT_LENGTH && **name != TRANSFER_ENCODING)
        .map(|name| headers.get_all(name).iter().count())
        .sum()
}

/// `headers` as the encoders frame a whole body of `len` bytes.
fn framed(headers: &HeaderMap, len: usize) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers
}

/// The target a request is sent with: its path, `/` if it has none, and
/// its query.
pub(crate) fn origin_form(uri: &Uri) -> Uri {
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    target.parse().expect("a path and query make a target")
}

/// A Second Life JSON post, read both as a client's response and as the
/// request a poll delivers.
pub fn sl_json(data: &[u8]) {
    // The object as serde_json reads it, to check what the codec took.
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let object = value.as_ref();
    let nothing = Some(Value::Object(Default::default()));
    match json::parse_response(data) {
        Ok(None) => assert_eq!(value, nothing, "only {{}} is nothing"),
        Ok(Some((id, response))) => {
            let status = response.status().as_u16();
            assert!((100..=999).contains(&status));
            assert_eq!(
                Some(u64::from(status)),
                field(object, "status").and_then(Value::as_u64)
            );
            sl_fields(object, &id, response.headers(), response.body());
            let encoded = json::encode_response(&id, &response);
            let (back_id, back) = json::parse_response(&encoded)
                .expect("an encoded response reads back")
                .expect("an encoded response is not {}");
            assert_eq!(back_id, id);
            assert_eq!(back.status(), response.status());
            assert_eq!(back.headers(), response.headers());
            assert_eq!(back.body(), response.body());
            assert_eq!(json::encode_response(&id, &back), encoded, "not stable");
        }
        Err(_) => {}
    }
    match json::parse_request(data) {
        Ok(None) => assert_eq!(value, nothing, "only {{}} is nothing"),
        Ok(Some((id, request))) => {
            assert_eq!(
                Some(request.method().as_str()),
                field(object, "method").and_then(Value::as_str)
            );
            sl_fields(object, &id, request.headers(), request.body());
            let encoded = json::encode_request(&id, &request);
            let (back_id, back) = json::parse_request(&encoded)
                .expect("an encoded request reads back")
                .expect("an encoded request is not {}");
            assert_eq!(back_id, id);
            assert_eq!(back.method(), request.method());
            assert_eq!(back.uri(), &origin_form(request.uri()));
            assert_eq!(back.headers(), request.headers());
            assert_eq!(back.body(), request.body());
            assert_eq!(json::encode_request(&id, &back), encoded, "not stable");
        }
        Err(_) => {}
    }
}

fn field<'v>(object: Option<&'v Value>, key: &str) -> Option<&'v Value> {
    object?.get(key)
}

/// The fields both directions share: the id as written, one header per
/// `[name, value]` pair, and a body that is not base64 as written.
fn sl_fields(object: Option<&Value>, id: &str, headers: &HeaderMap, body: &Bytes) {
    assert_eq!(
        Some(id),
        field(object, "message-id").and_then(Value::as_str)
    );
    let pairs = field(object, "headers").and_then(Value::as_array);
    assert_eq!(headers.len(), pairs.map_or(0, Vec::len));
    if field(object, "body-encoding").and_then(Value::as_str) != Some("base64") {
        let text = field(object, "body").and_then(Value::as_str).unwrap_or("");
        assert_eq!(body.as_ref(), text.as_bytes());
    }
}
