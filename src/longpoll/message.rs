//! `message/http`: a request or response as HTTP/1.1 writes it, the
//! envelope ReverseHttp's polls and replies carry.
//!
//! Parsing is lenient the way the shipped clients need: `HTTP/1.0` and
//! `HTTP/1.1` status lines, a body without `Content-Length` that runs to
//! the end of the envelope (the Python client's replies), and only the
//! first message of an envelope that holds several (the Java client's).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};

use super::Error;

/// Header lines one message may have.
const MAX_HEADERS: usize = 100;

/// The request as `message/http`: the request line with the target as
/// sent (origin form), the headers, and the body with a `Content-Length`
/// in place of any transfer coding, since the whole body is here.
pub fn encode_request(request: &Request<Bytes>) -> Vec<u8> {
    let target = target(request.uri());
    let mut out = Vec::with_capacity(256 + request.body().len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A request that came over HTTP/2 names its host in the URI only.
    if !request.headers().contains_key(HOST)
        && let Some(authority) = request.uri().authority()
    {
        line(&mut out, HOST.as_str(), authority.as_str().as_bytes());
    }
    fields(&mut out, request.headers(), request.body());
    out
}

/// The request's target in origin form. An absolute URI with a query and
/// no path (`http://host?x`) keeps its path empty, and `?x` alone is no
/// target a client can read.
pub(super) fn target(uri: &Uri) -> Cow<'_, str> {
    match uri.path_and_query().map(PathAndQuery::as_str) {
        None => Cow::Borrowed("/"),
        Some(target) if target.starts_with('?') => Cow::Owned(format!("/{target}")),
        Some(target) => Cow::Borrowed(target),
    }
}

/// The response as `message/http`, in the same shape.
pub fn encode_response(response: &Response<Bytes>) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(128 + response.body().len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    fields(&mut out, response.headers(), response.body());
    out
}

fn fields(out: &mut Vec<u8>, headers: &HeaderMap, body: &Bytes) {
    for (name, value) in headers {
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            line(out, name.as_str(), value.as_bytes());
        }
    }
    line(
        out,
        CONTENT_LENGTH.as_str(),
        body.len().to_string().as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Reads a `message/http` request.
pub fn parse_request(envelope: &Bytes) -> Result<Request<Bytes>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = complete(head.parse(envelope))?;
    let method = Method::from_bytes(head.method.unwrap_or("").as_bytes())
        .map_err(|_| Error::malformed("the request method"))?;
    let uri: Uri = head
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| Error::malformed("the request target"))?;
    let headers = header_map(head.headers)?;
    let body = body(envelope, len, &headers)?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Reads a `message/http` response.
pub fn parse_response(envelope: &Bytes) -> Result<Response<Bytes>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let len = complete(head.parse(envelope))?;
    let status = StatusCode::from_u16(head.code.unwrap_or(0))
        .map_err(|_| Error::malformed("the status code"))?;
    let headers = header_map(head.headers)?;
    let body = body(envelope, len, &headers)?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn complete(parsed: httparse::Result<usize>) -> Result<usize, Error> {
    match parsed {
        Ok(httparse::Status::Complete(len)) => Ok(len),
        Ok(httparse::Status::Partial) => Err(Error::malformed("a head without its blank line")),
        Err(error) => Err(Error::malformed_because("the head", error)),
    }
}

fn header_map(parsed: &[httparse::Header<'_>]) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for header in parsed {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Error::malformed("a header name"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| Error::malformed("a header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The body after the head: chunked, `Content-Length` long, or the rest
/// of the envelope.
fn body(envelope: &Bytes, head: usize, headers: &HeaderMap) -> Result<Bytes, Error> {
    let rest = envelope.slice(head..);
    let chunked = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        return dechunk(&rest);
    }
    let Some(length) = headers.get(CONTENT_LENGTH) else {
        return Ok(rest);
    };
    let length: usize = length
        .to_str()
        .ok()
        .and_then(|length| length.trim().parse().ok())
        .ok_or(Error::malformed("Content-Length"))?;
    if length > rest.len() {
        return Err(Error::malformed("a body shorter than its Content-Length"));
    }
    Ok(rest.slice(..length))
}

fn dechunk(mut rest: &[u8]) -> Result<Bytes, Error> {
    let mut body = BytesMut::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            _ => return Err(Error::malformed("a chunk size")),
        };
        let size = usize::try_from(size).map_err(|_| Error::malformed("a chunk size"))?;
        rest = &rest[start..];
        if size == 0 {
            return Ok(body.freeze());
        }
        // Sizes run to 16 hex digits, so `size + 2` could overflow.
        if !rest.get(size..).is_some_and(|end| end.starts_with(b"\r\n")) {
            return Err(Error::malformed("a chunk shorter than its size"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &'static [u8]) -> Result<Response<Bytes>, Error> {
        parse_response(&Bytes::from_static(text))
    }

    #[test]
    fn a_request_crosses_with_its_body_and_a_length() {
        let request = Request::post("/lamp/on?level=3")
            .header("host", "relay.example")
            .header("transfer-encoding", "chunked")
            .body(Bytes::from_static(b"\x00\xffhi"))
            .unwrap();
        let bytes = encode_request(&request);
        assert_eq!(
            bytes,
            b"POST /lamp/on?level=3 HTTP/1.1\r\nhost: relay.example\r\ncontent-length: 4\r\n\r\n\x00\xffhi"
        );
        let back = parse_request(&Bytes::from(bytes)).unwrap();
        assert_eq!(back.method(), Method::POST);
        assert_eq!(back.uri(), "/lamp/on?level=3");
        assert_eq!(back.body().as_ref(), b"\x00\xffhi");
    }

    #[test]
    fn an_http2_request_gets_a_host_line() {
        let request = Request::get("https://relay.example/x")
            .body(Bytes::new())
            .unwrap();
        let bytes = encode_request(&request);
        assert!(bytes.starts_with(b"GET /x HTTP/1.1\r\nhost: relay.example\r\n"));
        let request = Request::get("https://relay.example?x")
            .body(Bytes::new())
            .unwrap();
        let bytes = encode_request(&request);
        assert!(bytes.starts_with(b"GET /?x HTTP/1.1\r\nhost: relay.example\r\n"));
    }

    #[test]
    fn replies_are_read_leniently() {
        let old = parse(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end").unwrap();
        assert_eq!(old.status(), 200);
        assert_eq!(old.body().as_ref(), b"to the end");
        let two =
            parse(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 No\r\n\r\n")
                .unwrap();
        assert_eq!(two.status(), 201);
        assert_eq!(two.body().as_ref(), b"ok");
        let chunked = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body().as_ref(), b"abcd");
        let encoded = encode_response(&chunked);
        assert!(encoded.starts_with(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd"));
    }

    #[test]
    fn broken_replies_say_what_is_wrong() {
        for (text, named) in [
            (&b""[..], "blank line"),
            (b"HTTP/1.1 200 OK\r\n", "blank line"),
            (b"garbage\r\n\r\n", "head"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                "shorter",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\nab",
                "chunk",
            ),
            (b"HTTP/1.1 99 Odd\r\n\r\n", "status"),
        ] {
            let error = parse_response(&Bytes::from_static(text)).unwrap_err();
            assert!(error.is_malformed());
            assert!(error.to_string().contains(named), "{text:?}: {error}");
        }
    }
}
