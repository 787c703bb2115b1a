//! Second Life's COMET encoding: one request or response as a JSON object,
//! `{}` for "nothing this time".
//!
//! ```json
//! {"message-id": "7f3a", "method": "GET", "request-uri": "/lamp/",
//!  "http-version": "PTTH/1.0", "headers": [["Host", "relay.example"]],
//!  "body": ""}
//! ```
//!
//! Headers are ordered `[name, value]` pairs, repeats allowed. A body that
//! is UTF-8 travels as a string; any other body is base64 (standard
//! alphabet, padded) with `"body-encoding": "base64"` beside it. Readers
//! take either, so binary bodies cross both ways.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::Error;

/// The version string Second Life's messages carry.
const VERSION: &str = "PTTH/1.0";

/// The request as JSON, under `id`.
pub fn encode_request(id: &str, request: &Request<Bytes>) -> Vec<u8> {
    let target = super::message::target(request.uri());
    let mut object = json!({
        "message-id": id,
        "method": request.method().as_str(),
        "request-uri": target,
        "http-version": VERSION,
        "headers": pairs(request.headers()),
    });
    put_body(&mut object, request.body());
    object.to_string().into_bytes()
}

/// The response as JSON, answering `id`.
pub fn encode_response(id: &str, response: &Response<Bytes>) -> Vec<u8> {
    let status = response.status();
    let mut object = json!({
        "message-id": id,
        "http-version": VERSION,
        "status": status.as_u16(),
        "reason": status.canonical_reason().unwrap_or(""),
        "headers": pairs(response.headers()),
    });
    put_body(&mut object, response.body());
    object.to_string().into_bytes()
}

/// A request and its id, or `None` for `{}`.
pub fn parse_request(bytes: &[u8]) -> Result<Option<(String, Request<Bytes>)>, Error> {
    let Some(object) = object(bytes)? else {
        return Ok(None);
    };
    let id = string(&object, "message-id")?;
    let method = Method::from_bytes(string(&object, "method")?.as_bytes())
        .map_err(|_| Error::malformed("\"method\""))?;
    let target = string(&object, "request-uri")?;
    let mut request = Request::new(body(&object)?);
    *request.method_mut() = method;
    *request.uri_mut() = target
        .parse()
        .map_err(|_| Error::malformed("\"request-uri\""))?;
    *request.headers_mut() = headers(&object)?;
    Ok(Some((id, request)))
}

/// A response and the id it answers, or `None` for `{}`.
pub fn parse_response(bytes: &[u8]) -> Result<Option<(String, Response<Bytes>)>, Error> {
    let Some(object) = object(bytes)? else {
        return Ok(None);
    };
    let id = string(&object, "message-id")?;
    let status = object
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Error::malformed("\"status\""))?;
    let mut response = Response::new(body(&object)?);
    *response.status_mut() = status;
    *response.headers_mut() = headers(&object)?;
    Ok(Some((id, response)))
}

fn pairs(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect()
}

fn put_body(object: &mut Value, body: &Bytes) {
    match std::str::from_utf8(body) {
        Ok(text) => object["body"] = Value::from(text),
        Err(_) => {
            object["body"] = Value::from(STANDARD.encode(body));
            object["body-encoding"] = Value::from("base64");
        }
    }
}

fn object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, Error> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) if object.is_empty() => Ok(None),
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(Error::malformed("JSON that is not an object")),
        Err(error) => Err(Error::malformed_because("the JSON", error)),
    }
}

fn string(object: &Map<String, Value>, key: &'static str) -> Result<String, Error> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(Error::missing(key))
}

fn headers(object: &Map<String, Value>) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    let Some(pairs) = object.get("headers") else {
        return Ok(headers);
    };
    let pairs = pairs.as_array().ok_or(Error::malformed("\"headers\""))?;
    for pair in pairs {
        let (Some(name), Some(value)) = (
            pair.get(0).and_then(Value::as_str),
            pair.get(1).and_then(Value::as_str),
        ) else {
            return Err(Error::malformed("a header pair"));
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::malformed("a header name"))?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::malformed("a header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn body(object: &Map<String, Value>) -> Result<Bytes, Error> {
    let text = match object.get("body") {
        None | Some(Value::Null) => return Ok(Bytes::new()),
        Some(Value::String(text)) => text,
        Some(_) => return Err(Error::malformed("\"body\"")),
    };
    match object.get("body-encoding").and_then(Value::as_str) {
        None => Ok(Bytes::from(text.clone())),
        Some("base64") => STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|error| Error::malformed_because("the base64 body", error)),
        Some(_) => Err(Error::malformed("\"body-encoding\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cross_with_text_and_binary_bodies() {
        for body in [&b"{\"on\": true}"[..], b"\x00\xff\x10"] {
            let request = Request::put("/lamp/state?x=1")
                .header("Accept", "text/plain")
                .header("X-Twice", "a")
                .header("X-Twice", "b")
                .body(Bytes::copy_from_slice(body))
                .unwrap();
            let encoded = encode_request("m1", &request);
            let text = String::from_utf8(encoded.clone()).unwrap();
            assert_eq!(text.contains("\"body-encoding\""), body[0] == 0, "{text}");
            let (id, back) = parse_request(&encoded).unwrap().unwrap();
            assert_eq!(id, "m1");
            assert_eq!(back.method(), Method::PUT);
            assert_eq!(back.uri(), "/lamp/state?x=1");
            assert_eq!(back.headers().get_all("x-twice").iter().count(), 2);
            assert_eq!(back.body().as_ref(), body);
        }
    }

    #[test]
    fn responses_cross_and_an_empty_object_is_nothing() {
        let response = Response::builder()
            .status(404)
            .header("Content-Type", "text/plain")
            .body(Bytes::from_static(b"no"))
            .unwrap();
        let encoded = encode_response("m2", &response);
        let (id, back) = parse_response(&encoded).unwrap().unwrap();
        assert_eq!((id.as_str(), back.status().as_u16()), ("m2", 404));
        assert_eq!(back.body().as_ref(), b"no");
        assert!(parse_response(b"{}").unwrap().is_none());
        assert!(parse_request(b" {} ").unwrap().is_none());
    }

    #[test]
    fn broken_objects_name_the_field() {
        for (text, named) in [
            (&b"[1]"[..], "not an object"),
            (b"{\"status\": 200}", "message-id"),
            (b"{\"message-id\": \"a\", \"status\": 1000}", "status"),
            (b"{\"message-id\": \"a\", \"status\": 200, \"headers\": [[1]]}", "header pair"),
            (b"{\"message-id\": \"a\", \"status\": 200, \"body\": \"*\", \"body-encoding\": \"base64\"}", "base64"),
            (b"{\"message-id\": ", "JSON"),
        ] {
            let error = parse_response(text).unwrap_err();
            assert!(error.is_malformed());
            assert!(error.to_string().contains(named), "{text:?}: {error}");
        }
    }
}
