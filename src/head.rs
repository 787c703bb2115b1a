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

/// Parses a response head from the start of `buf`; `Ok(None)` means more
/// bytes are needed.
pub(crate) fn parse_response(buf: &[u8], limits: Limits) -> Result<Option<ResponseHead>, Error> {
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
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 1024,
        max_headers: 16,
    };

    const LEGACY_101: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\n\r\n";

    const AIRPLAY: &[u8] = b"POST /reverse HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nX-Apple-Purpose: event\r\nContent-Length: 0\r\nUser-Agent: MediaControl/1.0\r\nX-Apple-Session-ID: 1bd6ceeb-fffd-456c-a09c-996053a7a08c\r\n\r\n";

    #[test]
    fn response_split_at_every_offset_parses_the_same() {
        let mut input = LEGACY_101.to_vec();
        input.extend_from_slice(b"GET /early HTTP/1.1\r\n\r\n");
        for split in 0..LEGACY_101.len() {
            assert!(
                parse_response(&input[..split], LIMITS).unwrap().is_none(),
                "complete after only {split} bytes"
            );
        }
        let head = parse_response(&input, LIMITS).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(head.len, LEGACY_101.len());
        assert_eq!(head.headers["upgrade"], "PTTH/1.0");
    }

    #[test]
    fn request_split_at_every_offset_parses_the_same() {
        for split in 0..AIRPLAY.len() {
            assert!(parse_request(&AIRPLAY[..split], LIMITS).unwrap().is_none());
        }
        let head = parse_request(AIRPLAY, LIMITS).unwrap().unwrap();
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri, "/reverse");
        assert_eq!(head.len, AIRPLAY.len());
        assert_eq!(
            head.headers["x-apple-session-id"],
            "1bd6ceeb-fffd-456c-a09c-996053a7a08c"
        );
    }

    #[test]
    fn bare_lf_is_tolerated() {
        let head = parse_response(
            b"HTTP/1.1 101 Switching Protocols\nUpgrade: PTTH/1.0\nContent-Length: 0\n\nrest",
            LIMITS,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.status, 101);
        assert_eq!(head.len, 70);
        let req = parse_request(b"POST /event HTTP/1.1\ncontent-length: 0\n\n", LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!(req.headers[CONTENT_LENGTH], "0");
    }

    #[test]
    fn oversized_heads_are_refused_before_and_after_completion() {
        let mut long = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ".to_vec();
        long.resize(LIMITS.max_head + 1, b'a');
        assert!(matches!(
            parse_response(&long, LIMITS),
            Err(Error::HeadTooLarge { limit: 1024 })
        ));
        long.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(
            parse_response(&long, LIMITS),
            Err(Error::HeadTooLarge { limit: 1024 })
        ));
    }

    /// The bound is inclusive: a head of exactly `max_head` bytes, whole
    /// or still arriving, is taken.
    #[test]
    fn a_head_of_exactly_the_limit_is_taken() {
        let mut head = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ".to_vec();
        head.resize(LIMITS.max_head - 4, b'a');
        assert!(matches!(parse_response(&head, LIMITS), Ok(None)));
        let mut partial = head.clone();
        partial.resize(LIMITS.max_head, b'a');
        assert!(matches!(parse_response(&partial, LIMITS), Ok(None)));
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), LIMITS.max_head);
        let parsed = parse_response(&head, LIMITS).unwrap().unwrap();
        assert_eq!(parsed.len, LIMITS.max_head);
    }

    #[test]
    fn too_many_headers_is_its_own_error() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..17 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_request(&head, LIMITS),
            Err(Error::TooManyHeaders { limit: 16 })
        ));
    }

    #[test]
    fn header_limits_above_the_stack_slots_work() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..80 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let roomy = Limits {
            max_head: 4096,
            max_headers: 100,
        };
        assert_eq!(
            parse_request(&head, roomy).unwrap().unwrap().headers.len(),
            80
        );
    }

    #[test]
    fn garbage_requests_are_malformed() {
        for input in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(input, LIMITS), Err(Error::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn garbage_responses_are_malformed() {
        for input in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\nX: a\x00b\r\n\r\n",
            b"HTTP/9.9 101 Switching\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response(input, LIMITS), Err(Error::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn connection_is_a_token_list() {
        let mut headers = HeaderMap::new();
        headers.append(CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!connection_upgrade(&headers));
        headers.append(CONNECTION, HeaderValue::from_static("close ,  UPGRADE"));
        assert!(connection_upgrade(&headers));
        let mut headers = HeaderMap::new();
        headers.append(CONNECTION, HeaderValue::from_static("upgrades"));
        assert!(!connection_upgrade(&headers));
    }

    /// Decoding runs on a thread of its own so that a loop that stops
    /// advancing fails this test in two seconds instead of hanging the suite.
    #[test]
    fn percent_decoding_advances_past_every_byte() {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let decoded = ["", "h2", "%2F", "a%2Fb%2dc", "%41%42"].map(percent_decode);
            let _ = done.send(decoded.map(Result::unwrap));
        });
        let decoded = result
            .recv_timeout(std::time::Duration::from_secs(2))
            .expect("percent decoding did not finish");
        assert_eq!(decoded, ["", "h2", "/", "a/b-c", "AB"]);
    }

    #[test]
    fn alpn_ids_are_percent_decoded_in_order() {
        let mut headers = HeaderMap::new();
        assert_eq!(alpn_ids(&headers).unwrap(), None);
        headers.append("alpn", HeaderValue::from_static("h2, http%2F1.1"));
        headers.append("alpn", HeaderValue::from_static("x%2dy"));
        assert_eq!(
            alpn_ids(&headers).unwrap().unwrap(),
            ["h2", "http/1.1", "x-y"]
        );
        headers.insert("alpn", HeaderValue::from_static("bad%2"));
        assert!(alpn_ids(&headers).is_err());
    }

    #[test]
    fn request_framing_refuses_ambiguity() {
        let framing = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            request_framing(&headers)
        };
        assert_eq!(framing(&[]).unwrap(), Framing::Empty);
        assert_eq!(framing(&[("content-length", "0")]).unwrap(), Framing::Empty);
        assert_eq!(
            framing(&[("content-length", "12")]).unwrap(),
            Framing::Length(12)
        );
        assert_eq!(
            framing(&[("content-length", "12"), ("content-length", "12")]).unwrap(),
            Framing::Length(12)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "gzip, Chunked")]).unwrap(),
            Framing::Chunked
        );
        for bad in [
            &[("content-length", "-1")][..],
            &[("content-length", "+5")],
            &[("content-length", "1"), ("content-length", "2")],
            &[("content-length", "3, 4")],
            &[("content-length", "99999999999999999999999")],
            &[("transfer-encoding", "chunked"), ("content-length", "3")],
            &[("transfer-encoding", "gzip")],
        ] {
            assert!(matches!(framing(bad), Err(Error::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn response_framing_follows_status_and_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            response_framing(StatusCode::UNAUTHORIZED, &headers).unwrap(),
            Framing::UntilClose
        );
        assert_eq!(
            response_framing(StatusCode::NO_CONTENT, &headers).unwrap(),
            Framing::Empty
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("7"));
        assert_eq!(
            response_framing(StatusCode::FORBIDDEN, &headers).unwrap(),
            Framing::Length(7)
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0\r").unwrap(), 0);
        assert_eq!(chunk_size(b"FF;name=value").unwrap(), 255);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"xyz").is_err());
        assert!(chunk_size(b"11111111111111111").is_err());
    }

    #[test]
    fn response_head_is_written_canonically() {
        let mut out = BytesMut::new();
        let mut headers = HeaderMap::new();
        headers.insert("www-authenticate", HeaderValue::from_static("Basic"));
        put_response_head(&mut out, StatusCode::UNAUTHORIZED, &headers, 5);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic\r\nContent-Length: 5\r\n\r\n"
        );
        let parsed = parse_response(&out, LIMITS).unwrap().unwrap();
        assert_eq!(parsed.status, StatusCode::UNAUTHORIZED);
        assert_eq!(parsed.headers["content-length"], "5");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_head: 4096,
        max_headers: 32,
    };

    /// Every prefix of the input parses to "need more", a head no longer
    /// than the prefix, or an error; and a head found in a prefix is the
    /// head found in the whole.
    fn check_prefixes<H>(
        data: &[u8],
        parse: impl Fn(&[u8], Limits) -> Result<Option<H>, Error>,
        len: impl Fn(&H) -> usize,
    ) {
        let whole = parse(data, LIMITS).ok().flatten().map(|h| len(&h));
        for end in 0..=data.len() {
            if let Ok(Some(head)) = parse(&data[..end], LIMITS) {
                assert!(len(&head) <= end);
                assert_eq!(Some(len(&head)), whole);
            }
        }
    }

    fn header_name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,15}".prop_filter("framing headers are written by us", |n| {
            n != "content-length" && n != "transfer-encoding"
        })
    }

    fn header_value() -> impl Strategy<Value = String> {
        "[!-~]([ -~]{0,30}[!-~])?"
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_prefixes(&data, parse_request, |h| h.len);
            check_prefixes(&data, parse_response, |h| h.len);
        }

        #[test]
        fn mutated_heads_never_panic(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            legacy in any::<bool>(),
        ) {
            let mut data = if legacy {
                b"POST /r HTTP/1.1\r\nUpgrade: PTTH/1.0\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else {
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n".to_vec()
            };
            let at = index.index(data.len());
            data[at] = byte;
            check_prefixes(&data, parse_request, |h| h.len);
            check_prefixes(&data, parse_response, |h| h.len);
        }

        #[test]
        fn written_response_heads_round_trip(
            status in 100u16..600,
            fields in proptest::collection::vec((header_name(), header_value()), 0..12),
            body_len in 0usize..100_000,
        ) {
            let status = StatusCode::from_u16(status).unwrap();
            let mut headers = HeaderMap::new();
            for (name, value) in &fields {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let mut out = BytesMut::new();
            put_response_head(&mut out, status, &headers, body_len);
            let parsed = parse_response(&out, LIMITS).unwrap().unwrap();
            prop_assert_eq!(parsed.len, out.len());
            prop_assert_eq!(parsed.status, status);
            let mut expected = headers.clone();
            expected.append(CONTENT_LENGTH, HeaderValue::from(body_len));
            prop_assert_eq!(parsed.headers, expected);
        }
    }
}
