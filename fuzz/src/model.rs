//! Independent models of what each side must do with the bytes it reads,
//! written from docs/protocol.md's rules rather than from the crate's
//! code, so the fuzz targets can check answers, not only the absence of
//! crashes.

/// Where the transposed connection starts in an acceptor's answer: just
/// past the blank line of the first `101` head, after any other `1xx`.
/// `None` when the answer holds no complete `101` first.
pub fn after_101(answer: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(&answer[at..]) else {
            return None;
        };
        let code = response.code?;
        at += len;
        match code {
            101 => return Some(at),
            100..=199 => continue,
            _ => return None,
        }
    }
}

/// What the acceptor must write first for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Expected {
    /// Nothing: the request never completes, so the handshake times out.
    Nothing,
    /// `101 Switching Protocols`, or the application's refusal.
    Switch,
    /// A refusal with this status, before any application sees it.
    Status(u16),
    /// A valid request with bytes behind it, which it must not switch on:
    /// `400` when they arrived with the request or before the `101`; an
    /// application's refusal may also go out first, since after a refusal
    /// the bytes are the connection's next request.
    EarlyData,
    /// Outside what this small model decides (chunked bodies,
    /// `Expect: 100-continue`, repeated or odd framing headers).
    Unknown,
}

/// The acceptor's settings the fuzz target varies.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub legacy: bool,
    pub h2: bool,
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
}

fn values<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Vec<&'h [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

/// Whether `http::HeaderValue::to_str` reads the value: visible ASCII,
/// space and tab only.
fn visible(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The comma-separated, trimmed, non-empty entries of every `name` field
/// that is text (fields with other bytes are not read as lists).
fn tokens(headers: &[httparse::Header<'_>], name: &str) -> Vec<String> {
    values(headers, name)
        .into_iter()
        .filter(|value| visible(value))
        .flat_map(|value| value.split(|&b| b == b','))
        .map(|token| String::from_utf8_lossy(token.trim_ascii()).into_owned())
        .filter(|token| !token.is_empty())
        .collect()
}

/// Decides the first answer to `request` from the rules: never HTTP/1.0,
/// never CONNECT; an `Upgrade` naming an enabled dialect (the current one
/// preferred) and `Connection: upgrade`; in the current dialect a `Host`
/// and an `ALPN` with a protocol in common; a body within its bound; and
/// nothing after it.
pub fn acceptor(request: &[u8], settings: Settings) -> Expected {
    // As many slots as headers allowed: past them, "too many" is what a
    // reader finds first, whatever follows.
    let mut slots = vec![httparse::EMPTY_HEADER; settings.max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(request) {
        Ok(httparse::Status::Complete(len)) if len > settings.max_head => {
            return Expected::Status(431);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if request.len() > settings.max_head => {
            return Expected::Status(431);
        }
        Ok(httparse::Status::Partial) => return Expected::Nothing,
        Err(httparse::Error::TooManyHeaders) => return Expected::Status(431),
        Err(_) if request.len() > settings.max_head => return Expected::Unknown,
        Err(_) => return Expected::Status(400),
    };
    let headers = &*parsed.headers;
    // A target that is no URI (httparse takes any visible bytes) is a bad
    // request before it is anything else.
    if parsed
        .path
        .is_none_or(|path| http::Uri::try_from(path).is_err())
    {
        return Expected::Status(400);
    }
    // Bytes `http` refuses in a value are the crate's own test's business.
    if headers.iter().any(|h| {
        h.value
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    }) {
        return Expected::Unknown;
    }
    let odd_framing = values(headers, "content-length").len() > 1
        || values(headers, "content-length")
            .iter()
            .any(|v| v.contains(&b','))
        || !values(headers, "transfer-encoding").is_empty()
        || !values(headers, "expect").is_empty();
    if odd_framing {
        return Expected::Unknown;
    }
    if values(headers, "upgrade").is_empty()
        || parsed.version != Some(1)
        || parsed.method == Some("CONNECT")
    {
        return Expected::Status(426);
    }
    let offered = tokens(headers, "upgrade");
    let current = offered.iter().any(|t| t.eq_ignore_ascii_case("ptth"));
    let legacy = offered.iter().any(|t| {
        t.split_once('/').is_some_and(|(name, version)| {
            name.trim().eq_ignore_ascii_case("ptth") && version.trim() == "1.0"
        })
    });
    if !current && !(legacy && settings.legacy) {
        return Expected::Status(426);
    }
    let connection = tokens(headers, "connection");
    if !connection.iter().any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return Expected::Status(426);
    }
    if current {
        if values(headers, "host").is_empty() {
            return Expected::Status(400);
        }
        if values(headers, "alpn").is_empty() {
            return Expected::Status(400);
        }
        let mut alpn = Vec::new();
        for id in tokens(headers, "alpn") {
            match percent_decoded(&id) {
                Some(id) => alpn.push(id),
                None => return Expected::Unknown,
            }
        }
        let common = alpn
            .iter()
            .any(|id| id == "http/1.1" || (settings.h2 && id == "h2"));
        if !common {
            return Expected::Status(426);
        }
    }
    let body = match values(headers, "content-length").first() {
        None => 0,
        Some(value) => {
            let digits = value.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Expected::Status(400);
            }
            match std::str::from_utf8(digits)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(length) => usize::try_from(length).unwrap_or(usize::MAX),
                None => return Expected::Status(400),
            }
        }
    };
    if body > settings.max_body {
        return Expected::Status(413);
    }
    match (request.len() - len).cmp(&body) {
        std::cmp::Ordering::Less => Expected::Nothing,
        std::cmp::Ordering::Equal => Expected::Switch,
        std::cmp::Ordering::Greater => Expected::EarlyData,
    }
}

/// RFC 7639's percent-decoding, strictly: `%` and two hex digits; `None`
/// for anything else or a result that is not UTF-8.
fn percent_decoded(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
