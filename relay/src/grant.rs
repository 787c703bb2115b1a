//! Which rule of the operator's policy lets a token claim a name: a pin,
//! an access key, or open registration (docs/relay.md, "Claiming a
//! name"). Pure, so a reload can judge every held name again by the
//! digest it was claimed with.

use crate::settings::Policy;
use crate::token::Digest;

/// The rule a claim passed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The name is pinned, and the token is its pin.
    Pinned,
    /// The token is an access key that allows the name; the key's bound
    /// on names held at once, if any.
    Keyed {
        /// The most names the key may hold.
        max_names: Option<usize>,
    },
    /// Open registration: first come, first served.
    Open,
}

/// Why the policy refuses a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A pinned name without its pin, or a closed relay without keys.
    Forbidden,
    /// Keys are configured, registration is not open, and the claim
    /// presents no key.
    KeyNeeded,
    /// The claim presents a key whose patterns do not cover the name.
    NotThisKey,
}

/// Judges a claim of `name` presenting a token whose digest is
/// `presented` (`None`: no token) against `policy`. A pin decides its
/// name alone; a key decides for the names it covers and refuses the
/// rest, even where registration is open, so a key's holder learns at
/// once that the key does not reach a name.
pub fn judge(policy: &Policy, name: &str, presented: Option<&Digest>) -> Result<Grant, Refusal> {
    if let Some(pin) = policy.pinned.get(name) {
        return match presented {
            Some(digest) if digest == pin => Ok(Grant::Pinned),
            _ => Err(Refusal::Forbidden),
        };
    }
    if let Some(key) = presented.and_then(|digest| policy.keys.find(digest)) {
        return match key.allows(name) {
            true => Ok(Grant::Keyed {
                max_names: key.max_names,
            }),
            false => Err(Refusal::NotThisKey),
        };
    }
    match (policy.registration_open(), policy.keys.is_empty()) {
        (true, _) => Ok(Grant::Open),
        (false, true) => Err(Refusal::Forbidden),
        (false, false) => Err(Refusal::KeyNeeded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, Keys};

    fn policy(pinned: bool, keys: bool, open: bool, closed: bool) -> Policy {
        let mut policy = Policy {
            closed,
            open,
            ..Policy::default()
        };
        if pinned {
            policy.pinned.insert("pin".into(), Digest::of("p"));
        }
        if keys {
            policy.keys = Keys::new(vec![Key {
                label: "alice".into(),
                digest: Digest::of("k"),
                names: vec!["alice-*".parse().unwrap()],
                max_names: Some(3),
                max_connections: None,
            }]);
        }
        policy
    }

    type Judged = Result<Grant, Refusal>;

    #[test]
    fn pins_then_keys_then_open_registration() {
        use Refusal::*;
        let keyed = Ok(Grant::Keyed { max_names: Some(3) });
        let cases: &[(Policy, &str, Option<&str>, Judged)] = &[
            // No keys: as before keys, open unless closed.
            (
                policy(false, false, false, false),
                "lamp",
                None,
                Ok(Grant::Open),
            ),
            (
                policy(false, false, false, false),
                "lamp",
                Some("x"),
                Ok(Grant::Open),
            ),
            (
                policy(false, false, false, true),
                "lamp",
                Some("x"),
                Err(Forbidden),
            ),
            // A pin decides its name, with or without keys.
            (
                policy(true, true, true, false),
                "pin",
                Some("p"),
                Ok(Grant::Pinned),
            ),
            (
                policy(true, true, true, false),
                "pin",
                Some("k"),
                Err(Forbidden),
            ),
            (
                policy(true, false, false, false),
                "pin",
                None,
                Err(Forbidden),
            ),
            // With keys, a key for its names only; others need a key.
            (
                policy(false, true, false, false),
                "alice-lamp",
                Some("k"),
                keyed,
            ),
            (
                policy(false, true, false, false),
                "bob",
                Some("k"),
                Err(NotThisKey),
            ),
            (
                policy(false, true, false, false),
                "bob",
                Some("x"),
                Err(KeyNeeded),
            ),
            (
                policy(false, true, false, false),
                "bob",
                None,
                Err(KeyNeeded),
            ),
            // open = true: claims without a key pass, a key still binds.
            (
                policy(false, true, true, false),
                "bob",
                None,
                Ok(Grant::Open),
            ),
            (
                policy(false, true, true, false),
                "bob",
                Some("k"),
                Err(NotThisKey),
            ),
            // closed wins over open.
            (policy(false, true, true, true), "bob", None, Err(KeyNeeded)),
        ];
        for (policy, name, token, expected) in cases {
            let presented = token.map(Digest::of);
            assert_eq!(
                judge(policy, name, presented.as_ref()),
                *expected,
                "{name} {token:?} keys={} open={} closed={}",
                !policy.keys.is_empty(),
                policy.open,
                policy.closed
            );
        }
    }
}
