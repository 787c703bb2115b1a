//! Property tests: what is written parses back, and no input panics.

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
