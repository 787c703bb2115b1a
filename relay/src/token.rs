//! Tokens as the relay keeps them: a SHA-256 digest, never the token.
//!
//! A token is a secret that proves who holds a name. The relay needs only
//! to tell whether a presented token is the holder's, so it keeps the
//! digest: a memory dump, etcd or a log line then holds nothing a caller
//! could present. The digest is plain SHA-256, not keyed: tokens the relay
//! makes are 128 random bits, which no one reverses from their digest, and
//! the same plain digest is what an operator writes in the config file
//! (`sha256:<hex>`) and what every cluster node can compute without
//! sharing a key. Comparisons run in constant time.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a token.
#[derive(Clone, Copy)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Digest(Sha256::digest(token.as_bytes()).into())
    }

    /// A digest written as 64 hex digits, as [`Digest::to_hex`] writes it.
    pub fn from_hex(hex: &str) -> Option<Self> {
        // from_str_radix alone would take a leading '+'.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Digest(bytes))
    }

    /// A token as the config file gives it: `sha256:<hex>`, or the token
    /// in clear.
    pub fn from_config(text: &str) -> Result<Self, String> {
        match text.strip_prefix("sha256:") {
            Some(hex) => Digest::from_hex(hex)
                .ok_or_else(|| "sha256: must be followed by 64 hex digits".to_owned()),
            None => Ok(Digest::of(text)),
        }
    }

    /// Lower-case hex, 64 digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `token`'s digest is this one, in constant time.
    pub fn matches(&self, token: &str) -> bool {
        *self == Digest::of(token)
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Digest {}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// 128 random bits from the operating system, hex-encoded: tokens and
/// capability ids must not be guessable.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_and_read_back_from_hex() {
        // SHA-256 of "abc", FIPS 180-2's example.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Digest::of("abc").to_hex(), abc);
        assert_eq!(Digest::from_hex(abc), Some(Digest::of("abc")));
        assert!(Digest::of("abc").matches("abc"));
        assert!(!Digest::of("abc").matches("abd"));
        // Printed as the config file takes it, never as the token.
        assert_eq!(format!("{:?}", Digest::of("abc")), format!("sha256:{abc}"));
    }

    #[test]
    fn config_tokens_are_clear_or_sha256() {
        let abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for (text, wanted) in [
            (abc, Ok(Digest::of("abc"))),
            ("abc", Ok(Digest::of("abc"))),
            ("SHA256:abc", Ok(Digest::of("SHA256:abc"))),
            ("sha256:abc", Err(())),
            ("sha256:", Err(())),
            (&abc.replace("ba78", "ga78"), Err(())),
            (&format!("{abc}00"), Err(())),
            (&format!("sha256:+{}", &abc[8..]), Err(())),
        ] {
            assert_eq!(Digest::from_config(text).map_err(|_| ()), wanted, "{text}");
        }
    }

    #[test]
    fn random_tokens_are_128_bits_of_hex_and_differ() {
        let token = random_token();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, random_token());
    }
}
