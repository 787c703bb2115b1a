//! Parsing and writing of the HTTP/1.x message heads exchanged before the
//! switch, shared by both sides.
//!
//! Parsing is incremental: callers hand in everything read so far and get
//! `None` until a whole head is there, so a head split anywhere parses the
//! same. Line ends may be CRLF or bare LF (httparse accepts both, and real
//! receivers send bare LF).

use bytes::{BufMut, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::Error;

/// Size bounds applied while parsing a head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
}

/// A parsed request head, and how many bytes of the input it took.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) len: usize,
}

/// A parsed response head, and how many bytes of the input it took.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) len: usize,
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Header slots up to this count live on the stack: a parse is retried on
/// every read, and the default limit fits.
const STACK_HEADERS: usize = 64;

fn slots<'s, 'h>(
    stack: &'s mut [httparse::Header<'h>; STACK_HEADERS],
    heap: &'s mut Vec<httparse::Header<'h>>,
    limits: Limits,
) -> &'s mut [httparse::Header<'h>] {
    if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize(limits.max_headers, httparse::EMPTY_HEADER);
        heap
    }
}

/// Parses a request head from the start of `buf`; `Ok(None)` means more
/// bytes are needed.
pub(crate) fn parse_request(buf: &[u8], limits: Limits) -> Result<Option<RequestHead>, Error> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut req = httparse::Request::new(slots(&mut stack, &mut heap, limits));
    let Some(len) = head_len(req.parse(buf), buf, limits)? else {
        return Ok(None);
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| Error::Malformed("invalid method"))?;
    let uri = req
        .path
        .unwrap_or_default()
        .parse::<Uri>()
        .map_err(|_| Error::Malformed("invalid request target"))?;
    Ok(Some(RequestHead {
        method,
        uri,
        version: version(req.version),
        headers: header_map(req.headers)?,
        len,
    }))
}

/// What [`parse_response`] calls a TLS record where HTTP was expected.
pub(crate) const TLS_RECORD: &str = "a TLS record, not an HTTP response";

/// Parses a response head from the start of `buf`; `Ok(None)` means more
/// bytes are needed.
pub(crate) fn parse_response(buf: &[u8], limits: Limits) -> Result<Option<ResponseHead>, Error> {
    // A TLS alert or handshake record where a status line should be: the
    // server speaks TLS (RFC 8446 §5.1, content types 21 and 22).
    if let [21 | 22, 3, ..] = buf {
        return Err(Error::Malformed(TLS_RECORD));
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut res = httparse::Response::new(slots(&mut stack, &mut heap, limits));
    let Some(len) = head_len(res.parse(buf), buf, limits)? else {
        return Ok(None);
    };
    let status = StatusCode::from_u16(res.code.unwrap_or_default())
        .map_err(|_| Error::Malformed("invalid status code"))?;
    Ok(Some(ResponseHead {
        status,
        headers: header_map(res.headers)?,
        len,
    }))
}

/// The length of a complete head, `None` while more may come, or the error
/// that ends the parse (including a head past the size bound, complete or
/// not).
fn head_len(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    limits: Limits,
) -> Result<Option<usize>, Error> {
    let len = match parsed.map_err(|e| parse_error(e, limits))? {
        httparse::Status::Complete(len) => Some(len),
        httparse::Status::Partial => None,
    };
    if len.unwrap_or(buf.len()) > limits.max_head {
        return Err(Error::HeadTooLarge {
            limit: limits.max_head,
        });
    }
    Ok(len)
}

fn parse_error(err: httparse::Error, limits: Limits) -> Error {
    match err {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders {
            limit: limits.max_headers,
        },
        httparse::Error::HeaderName => Error::Malformed("invalid header name"),
        httparse::Error::HeaderValue => Error::Malformed("invalid header value"),
        httparse::Error::NewLine => Error::Malformed("invalid line ending"),
        httparse::Error::Status => Error::Malformed("invalid status line"),
        httparse::Error::Token => Error::Malformed("invalid token"),
        httparse::Error::Version => Error::Malformed("invalid HTTP version"),
    }
}

fn version(minor: Option<u8>) -> Version {
    match minor {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    }
}

fn header_map(headers: &[httparse::Header<'_>]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Error::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| Error::Malformed("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Iterates over the comma-separated elements of every field named `name`,
/// trimmed, skipping empty elements.
pub(crate) fn tokens<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether a token list header holds `token`, compared case-insensitively.
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether the `Connection` header holds the `upgrade` token.
pub(crate) fn connection_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &CONNECTION, "upgrade")
}

/// The protocol ids of an `ALPN` header (RFC 7639), percent-decoded, or
/// `None` when the header is absent.
pub(crate) fn alpn_ids(headers: &HeaderMap) -> Result<Option<Vec<String>>, Error> {
    let name = HeaderName::from_static("alpn");
    if !headers.contains_key(&name) {
        return Ok(None);
    }
    tokens(headers, &name)
        .map(percent_decode)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn percent_decode(id: &str) -> Result<String, Error> {
    let bytes = id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Error::Malformed("invalid percent-encoding in ALPN"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Malformed("ALPN id is not UTF-8"))
}

/// How a request's body is delimited. Conflicting or ambiguous framing is
/// refused rather than guessed, since guessing is how request smuggling
/// starts.
pub(crate) fn request_framing(headers: &HeaderMap) -> Result<Framing, Error> {
    let chunked = transfer_chunked(headers)?;
    let length = content_length(headers)?;
    match (chunked, length) {
        (Some(_), Some(_)) => Err(Error::Malformed(
            "both Transfer-Encoding and Content-Length",
        )),
        (Some(true), None) => Ok(Framing::Chunked),
        (Some(false), None) => Err(Error::Malformed(
            "request Transfer-Encoding does not end in chunked",
        )),
        (None, Some(0)) | (None, None) => Ok(Framing::Empty),
        (None, Some(n)) => Ok(Framing::Length(n)),
    }
}

/// How a response's body is delimited (RFC 9112 section 6.3).
pub(crate) fn response_framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, Error> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    match transfer_chunked(headers)? {
        Some(true) => return Ok(Framing::Chunked),
        Some(false) => return Ok(Framing::UntilClose),
        None => {}
    }
    Ok(match content_length(headers)? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// `Some(true)` when `Transfer-Encoding` is present and ends in `chunked`.
fn transfer_chunked(headers: &HeaderMap) -> Result<Option<bool>, Error> {
    if !headers.contains_key(TRANSFER_ENCODING) {
        return Ok(None);
    }
    let last = tokens(headers, &TRANSFER_ENCODING).last();
    Ok(Some(
        last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")),
    ))
}

/// The `Content-Length`, refusing values that are not plain digits or that
/// disagree with each other.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut found = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| Error::Malformed("invalid Content-Length"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Malformed("invalid Content-Length"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| Error::Malformed("invalid Content-Length"))?;
            if found.is_some_and(|prev| prev != n) {
                return Err(Error::Malformed("conflicting Content-Length values"));
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Parses a chunk-size line (`1a;ext=1`), without its line end.
pub(crate) fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = line.split(|&b| b == b';').next().unwrap_or_default();
    let size = std::str::from_utf8(size)
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 16)
        .ok_or(Error::Malformed("invalid chunk size"))?;
    u64::from_str_radix(size, 16).map_err(|_| Error::Malformed("invalid chunk size"))
}

/// Writes one header field line.
pub(crate) fn put_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes a response head with a `Content-Length` matching `body_len`
/// unless the caller's headers already frame the body.
pub(crate) fn put_response_head(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    body_len: usize,
) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        put_header(out, name.as_str(), value.as_bytes());
    }
    if !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING) {
        put_header(out, "Content-Length", body_len.to_string().as_bytes());
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
