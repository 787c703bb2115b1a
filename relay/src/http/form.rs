//! Form parameters and URL path segments: the percent-encoding that the
//! registration's body and the capability URLs carry.

/// The parameters of a registration: the query string's, then the form
/// body's, the later winning.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `query` and a `application/x-www-form-urlencoded` `body`.
    pub fn parse(query: Option<&str>, body: &[u8]) -> Params {
        let body = String::from_utf8_lossy(body);
        let pairs = query
            .into_iter()
            .chain([body.as_ref()])
            .flat_map(|text| text.split('&'))
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    decode(&key.replace('+', " ")),
                    decode(&value.replace('+', " ")),
                )
            });
        Params(pairs.collect())
    }

    /// The last value of `key`, if it is there and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(found, _)| found == key)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// `%XX` sequences decoded; anything else is kept as written.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits, checked first: `from_str_radix` also takes a
        // leading `+`, which would read `%+A` as a newline.
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` as one path segment: everything but RFC 3986's unreserved
/// characters percent-encoded.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_wins_over_the_query_and_plus_is_a_space() {
        let params = Params::parse(Some("name=lamp&lease=5"), b"token=a+b%2Fc&name=fan&empty=");
        assert_eq!(params.get("name"), Some("fan"));
        assert_eq!(params.get("token"), Some("a b/c"));
        assert_eq!(params.get("lease"), Some("5"));
        assert_eq!(params.get("empty"), None);
        assert_eq!(params.get("missing"), None);
    }

    #[test]
    fn segments_round_trip() {
        for text in ["-", "s3cret", "a b/c?d%", "ünï"] {
            assert_eq!(decode(&encode(text)), text);
        }
        assert_eq!(encode("a b/-"), "a%20b%2F-");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%+A"), "%+A");
    }
}
