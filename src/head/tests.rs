//! Byte-level edges of the head parser and writer.

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
