//! HTTP Basic authentication (RFC 7617): the credentials a request
//! carries, and passwords checked in constant time.

use http::HeaderValue;

/// How a [`Guard`](super::Guard) checks a user's password: the password
/// itself (what [`Guard::basic_auth`](super::Guard::basic_auth) keeps),
/// or a hash of it (`ptth-relay expose` checks bcrypt and SHA-256
/// hashes so).
///
/// ```
/// use ptth::guard::{Guard, PasswordCheck};
///
/// /// Any password of the right length (a toy: a real check compares
/// /// a secret in constant time).
/// struct Length(usize);
///
/// impl PasswordCheck for Length {
///     fn matches(&self, password: &[u8]) -> bool {
///         password.len() == self.0
///     }
/// }
///
/// let guard = Guard::new().basic_auth_check("ada", Length(8));
/// # let _ = guard;
/// ```
pub trait PasswordCheck: Send + Sync + 'static {
    /// Whether `password` is the user's. It should take as long whatever
    /// is wrong with `password`, so that timing tells no attacker how
    /// close a guess came: compare secrets in constant time, or compare
    /// hashes.
    fn matches(&self, password: &[u8]) -> bool;

    /// Whether one check costs enough CPU (a bcrypt hash takes tens of
    /// milliseconds) that it should run on tokio's blocking threads, not
    /// on the task of a request, holding up the others. Default is
    /// `false`.
    fn is_costly(&self) -> bool {
        false
    }
}

/// A password kept as itself.
pub(super) struct Plain(pub(super) Vec<u8>);

impl PasswordCheck for Plain {
    fn matches(&self, password: &[u8]) -> bool {
        constant_time_eq(&self.0, password)
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their
/// lengths, not on where they differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut differ = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied(), b.get(i).copied());
        differ |= usize::from(x.unwrap_or(0) ^ y.unwrap_or(0));
    }
    // Keeps the compiler from turning the loop into an early return.
    std::hint::black_box(differ) == 0
}

/// The user and password of an `Authorization: Basic` value, or `None`
/// for another scheme or a value that is not `Basic <base64 of
/// user:password>`. The user is what comes before the first `:`.
pub(super) fn basic_credentials(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.as_bytes();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = rest.trim_ascii();
    let mut decoded = decode_base64(token)?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.split_off(colon + 1);
    decoded.pop();
    Some((decoded, password))
}

/// Decodes standard base64 (RFC 4648, section 4), padded or not.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let body = (text.strip_suffix(b"=="))
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let padded = body.len() != text.len();
    if body.len() % 4 == 1 || (padded && text.len() % 4 != 0) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut bits, mut held) = (0u32, 0u32);
    for &byte in body {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(sextet);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_values_give_the_user_and_the_password() {
        type Expected = Option<(&'static str, &'static str)>;
        let cases: [(&str, Expected); 14] = [
            // "ada:lovelace"
            ("Basic YWRhOmxvdmVsYWNl", Some(("ada", "lovelace"))),
            ("basic YWRhOmxvdmVsYWNl", Some(("ada", "lovelace"))),
            ("BASIC   YWRhOmxvdmVsYWNl  ", Some(("ada", "lovelace"))),
            // "ada:love:lace": the password may hold a colon.
            ("Basic YWRhOmxvdmU6bGFjZQ==", Some(("ada", "love:lace"))),
            ("Basic YWRhOmxvdmU6bGFjZQ", Some(("ada", "love:lace"))),
            // ":" and "ada:"
            ("Basic Og==", Some(("", ""))),
            ("Basic YWRhOg==", Some(("ada", ""))),
            // "ada" has no colon.
            ("Basic YWRh", None),
            ("Bearer YWRhOmxvdmVsYWNl", None),
            ("BasicYWRhOmxvdmVsYWNl", None),
            ("Basic", None),
            ("Basic YWRhOmxvdmVsYWNl!", None),
            ("Basic YWRhOmxvdmU6bGFjZQ=", None),
            ("Basic Y", None),
        ];
        for (value, expected) in cases {
            let got = basic_credentials(&HeaderValue::from_str(value).unwrap());
            let expected = expected.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()));
            assert_eq!(got, expected, "{value}");
        }
    }

    #[test]
    fn base64_decodes_every_length_and_byte() {
        for (text, bytes) in [
            ("", &b""[..]),
            ("AA==", &[0][..]),
            ("AAA=", &[0, 0][..]),
            ("AAAA", &[0, 0, 0][..]),
            ("/+8=", &[0xff, 0xef][..]),
            ("/+8", &[0xff, 0xef][..]),
            ("Zm9vYmFy", &b"foobar"[..]),
        ] {
            assert_eq!(
                decode_base64(text.as_bytes()).as_deref(),
                Some(bytes),
                "{text}"
            );
        }
        for bad in ["A", "A===", "AA=A", "AA-_", "AAA==", "=", "AA=", "AAAAA"] {
            assert_eq!(decode_base64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        for (a, b, equal) in [
            ("", "", true),
            ("lovelace", "lovelace", true),
            ("lovelace", "lovelacE", false),
            ("lovelace", "lovelac", false),
            ("lovelace", "lovelace\0", false),
            ("", "\0", false),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                equal,
                "{a:?} {b:?}"
            );
            assert_eq!(
                constant_time_eq(b.as_bytes(), a.as_bytes()),
                equal,
                "{b:?} {a:?}"
            );
        }
    }
}
