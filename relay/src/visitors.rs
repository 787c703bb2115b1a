//! Who may call an exposed name: `expose --basic-auth`,
//! `--basic-auth-file` and `--allow-ip`, made into a `ptth::guard::Guard`.
//! The guard is the library's; the password hashes a file holds (bcrypt,
//! SHA-256) are checked here, as the library has no hash of its own.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use ptth::guard::{Guard, PasswordCheck};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cli::ExposeArgs;

/// A password as a `--basic-auth-file` line holds it: hashed.
#[derive(Clone, PartialEq, Eq)]
enum Hashed {
    /// A bcrypt hash, `$2b$...` (or `$2y$`, `$2a$`, as htpasswd writes).
    Bcrypt(String),
    /// `sha256:<hex>`: a SHA-256 of the password.
    Sha256([u8; 32]),
}

impl fmt::Debug for Hashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hashed::Bcrypt(_) => "Bcrypt(..)",
            Hashed::Sha256(_) => "Sha256(..)",
        })
    }
}

impl PasswordCheck for Hashed {
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            // bcrypt compares its hashes in constant time.
            Hashed::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hashed::Sha256(hash) => Sha256::digest(password).ct_eq(hash).into(),
        }
    }

    /// bcrypt costs tens of milliseconds a check, by design.
    fn is_costly(&self) -> bool {
        matches!(self, Hashed::Bcrypt(_))
    }
}

/// The guard `args` ask for: their users and ranges; a guard that lets
/// everyone through when they name none.
pub fn guard(args: &ExposeArgs) -> Result<Guard, String> {
    let mut guard = Guard::new();
    let mut seen = HashSet::new();
    let mut named = |user: &str| match seen.insert(user.to_owned()) {
        true => Ok(()),
        false => Err(format!("user {user:?} is named twice")),
    };
    for secret in &args.basic_auth {
        let (user, password) = user_and_password(secret.expose())?;
        named(user)?;
        guard = guard.basic_auth(user, password);
    }
    if let Some(path) = &args.basic_auth_file {
        for (user, hashed) in read_users(path)? {
            named(&user)?;
            guard = guard.basic_auth_check(user, hashed);
        }
    }
    for range in &args.allow_ip {
        guard = guard.allow_ip(*range);
    }
    Ok(guard)
}

/// `USER:PASS` split at its first `:`; the error names neither.
fn user_and_password(text: &str) -> Result<(&str, &str), String> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok((user, password)),
        _ => Err("--basic-auth needs USER:PASS, both not empty".to_owned()),
    }
}

/// The users of a `--basic-auth-file`.
fn read_users(path: &Path) -> Result<Vec<(String, Hashed)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("--basic-auth-file {}: {error}", path.display()))?;
    users(&text).map_err(|error| format!("--basic-auth-file {}: {error}", path.display()))
}

/// `user:HASH` lines; blank lines and `#` comments are skipped. An error
/// names the line by number only: a line may hold a password by mistake.
fn users(text: &str) -> Result<Vec<(String, Hashed)>, String> {
    let mut users = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let wrong = |what: &str| format!("line {}: {what}", index + 1);
        let (user, hash) = line
            .split_once(':')
            .filter(|(user, _)| !user.is_empty())
            .ok_or_else(|| wrong("not user:HASH"))?;
        users.push((user.to_owned(), hashed(hash).map_err(wrong)?));
    }
    Ok(users)
}

/// A hash as a file line writes it.
fn hashed(hash: &str) -> Result<Hashed, &'static str> {
    if let Some(hex) = hash.strip_prefix("sha256:") {
        return sha256_hex(hex)
            .map(Hashed::Sha256)
            .ok_or("sha256: needs 64 hex digits");
    }
    let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|v| hash.starts_with(v));
    if bcrypt && hash.parse::<bcrypt::HashParts>().is_ok() {
        return Ok(Hashed::Bcrypt(hash.to_owned()));
    }
    Err("the hash is neither bcrypt ($2b$..., $2y$...) nor sha256:<hex>")
}

/// 64 hex digits as 32 bytes.
fn sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Secret;

    // SHA-256 of "lovelace".
    const LOVELACE: &str = "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f";

    #[test]
    fn user_and_password_split_at_the_first_colon() {
        for (text, split) in [
            ("ada:lovelace", Some(("ada", "lovelace"))),
            ("ada:love:lace", Some(("ada", "love:lace"))),
            ("ada", None),
            (":lovelace", None),
            ("ada:", None),
            ("", None),
        ] {
            let got = user_and_password(text);
            assert_eq!(got.as_ref().ok().copied(), split, "{text:?}");
            if let Err(error) = got {
                assert!(text.is_empty() || !error.contains(text), "{error}");
            }
        }
    }

    #[test]
    fn file_lines_name_a_user_and_a_hash() {
        let bcrypt = &bcrypt::hash("lovelace", 4).unwrap();
        let bcrypt_y = &bcrypt.replacen("$2b$", "$2y$", 1);
        let upper = LOVELACE.to_uppercase();
        let mut sha = [0; 32];
        sha.copy_from_slice(&Sha256::digest(b"lovelace"));
        for (text, users) in [
            (
                format!("ada:{bcrypt}"),
                vec![("ada", Hashed::Bcrypt(bcrypt.clone()))],
            ),
            (
                format!("ada:{bcrypt_y}"),
                vec![("ada", Hashed::Bcrypt(bcrypt_y.clone()))],
            ),
            (
                format!("ada:sha256:{LOVELACE}"),
                vec![("ada", Hashed::Sha256(sha))],
            ),
            (
                format!("ada:sha256:{upper}"),
                vec![("ada", Hashed::Sha256(sha))],
            ),
            (
                format!("# users\n\n  ada:sha256:{LOVELACE}  \r\ngrace:{bcrypt}\n"),
                vec![
                    ("ada", Hashed::Sha256(sha)),
                    ("grace", Hashed::Bcrypt(bcrypt.clone())),
                ],
            ),
            (String::new(), vec![]),
        ] {
            let users: Vec<_> = users.into_iter().map(|(u, h)| (u.to_owned(), h)).collect();
            assert_eq!(super::users(&text), Ok(users), "{text:?}");
        }
    }

    #[test]
    fn bad_file_lines_are_named_by_number_not_content() {
        let short = &LOVELACE[..63];
        for (text, line) in [
            ("ada".to_owned(), 1),
            ("\n:sha256:00".to_owned(), 2),
            ("ada:lovelace".to_owned(), 1),
            (format!("ada:sha256:{short}"), 1),
            (format!("ada:sha256:{short}g"), 1),
            (format!("ada:sha256:{short}é"), 1),
            ("# ok\nada:$2b$04$short".to_owned(), 2),
            ("ada:$1$md5crypt$xyz".to_owned(), 1),
        ] {
            let error = users(&text).unwrap_err();
            assert!(
                error.starts_with(&format!("line {line}: ")),
                "{text:?}: {error}"
            );
            assert!(
                !error.contains("lovelace") && !error.contains(short),
                "{error}"
            );
        }
    }

    #[test]
    fn hashes_match_their_password_only() {
        let sha = hashed(&format!("sha256:{LOVELACE}")).unwrap();
        let bcrypt = Hashed::Bcrypt(bcrypt::hash("lovelace", 4).unwrap());
        for check in [&sha, &bcrypt] {
            assert!(check.matches(b"lovelace"), "{check:?}");
            for wrong in [&b"lovelacE"[..], b"lovelac", b"", b"lovelace\0"] {
                assert!(!check.matches(wrong), "{check:?} took {wrong:?}");
            }
        }
        assert!(bcrypt.is_costly() && !sha.is_costly());
    }

    #[test]
    fn a_secret_shows_in_no_debug_output() {
        assert_eq!(format!("{:?}", Secret::from("ada:lovelace")), "Secret(..)");
    }
}
