//! The name table: who holds each name, with which token, and the pool of
//! connections that serve it (RELAY.md, "Claiming a name").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::pool::Pool;

/// How long a name stays reserved after its last connection left, at the
/// least: long enough for a peer to reconnect and get it back.
pub const LEASE_FLOOR: Duration = Duration::from_secs(30);

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not a DNS label.
    #[error("invalid name {0:?}: a name is a lower-case DNS label")]
    InvalidName(String),
    /// Held with another token, or not pinned on a closed relay.
    #[error("the name {0:?} is taken or closed to this token")]
    Forbidden(String),
}

/// A successful claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The pool to join.
    pub pool: Arc<Pool>,
    /// The name's token: the one given, or a new random one.
    pub token: String,
    /// Whether the name was free before this claim.
    pub created: bool,
}

/// Who may claim which names.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Names pinned to tokens by the operator.
    pub pinned: HashMap<String, String>,
    /// Whether names that are not pinned are refused.
    pub closed: bool,
}

#[derive(Debug)]
struct Entry {
    token: String,
    pool: Arc<Pool>,
    lease: Duration,
}

/// The names claimed on this relay. Cheap to share.
#[derive(Debug)]
pub struct Names {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Names {
    /// An empty table that grants claims by `policy`.
    pub fn new(policy: Policy) -> Self {
        Names {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Claims `name` with `token` (or none, for a random one) and a lease
    /// of at least [`LEASE_FLOOR`]. The same token joins the live pool;
    /// another token is refused, so a name is never taken over.
    pub fn claim(
        &self,
        name: &str,
        token: Option<&str>,
        lease: Option<Duration>,
    ) -> Result<Claimed, ClaimError> {
        self.permits(name, token)?;
        let forbidden = || ClaimError::Forbidden(name.to_owned());
        let lease = lease.unwrap_or(LEASE_FLOOR).max(LEASE_FLOOR);
        let mut entries = self.entries.lock().expect("the name table lock");
        if let Some(entry) = entries.get_mut(name)
            && entry.live()
        {
            if token.is_some_and(|token| token != entry.token) {
                return Err(forbidden());
            }
            entry.lease = entry.lease.max(lease);
            return Ok(Claimed {
                pool: entry.pool.clone(),
                token: entry.token.clone(),
                created: false,
            });
        }
        let token = token.map_or_else(random_token, str::to_owned);
        let pool = Arc::new(Pool::new(name));
        entries.insert(
            name.to_owned(),
            Entry {
                token: token.clone(),
                pool: pool.clone(),
                lease,
            },
        );
        Ok(Claimed {
            pool,
            token,
            created: true,
        })
    }

    /// Whether the operator's policy lets `token` claim `name`: a valid
    /// name, the pinned token if the name is pinned, and open
    /// registration otherwise.
    pub fn permits(&self, name: &str, token: Option<&str>) -> Result<(), ClaimError> {
        if !valid_name(name) {
            return Err(ClaimError::InvalidName(name.to_owned()));
        }
        let forbidden = || ClaimError::Forbidden(name.to_owned());
        match (self.policy.pinned.get(name), token) {
            (Some(pinned), Some(token)) if pinned != token => Err(forbidden()),
            (Some(_), None) => Err(forbidden()),
            (None, _) if self.policy.closed => Err(forbidden()),
            _ => Ok(()),
        }
    }

    /// The pool serving `name`, while the name is held.
    pub fn lookup(&self, name: &str) -> Option<Arc<Pool>> {
        let mut entries = self.entries.lock().expect("the name table lock");
        match entries.get(name) {
            Some(entry) if entry.live() => Some(entry.pool.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    /// The names with members now, and their tokens.
    pub fn served(&self) -> Vec<(String, String)> {
        let entries = self.entries.lock().expect("the name table lock");
        entries
            .iter()
            .filter(|(_, entry)| !entry.pool.is_empty())
            .map(|(name, entry)| (name.clone(), entry.token.clone()))
            .collect()
    }

    /// How many names are held now.
    pub fn len(&self) -> usize {
        let entries = self.entries.lock().expect("the name table lock");
        entries.values().filter(|entry| entry.live()).count()
    }

    /// Names held, and their HTTP/1.1 and HTTP/2 connections.
    pub fn census(&self) -> (usize, usize, usize) {
        let entries = self.entries.lock().expect("the name table lock");
        let live = entries.values().filter(|entry| entry.live());
        live.fold((0, 0, 0), |(names, h1, h2), entry| {
            let (more_h1, more_h2) = entry.pool.connections();
            (names + 1, h1 + more_h1, h2 + more_h2)
        })
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entry {
    /// Whether the name is still held: it has connections, or its lease
    /// has not run out since the last one left.
    fn live(&self) -> bool {
        match self.pool.empty_since() {
            None => true,
            Some(since) => Instant::now() < since + self.lease,
        }
    }
}

/// A DNS label, lower-cased: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match bytes {
        [] => false,
        [one] => inner(one),
        [first, middle @ .., last] => {
            bytes.len() <= 63
                && inner(first)
                && inner(last)
                && middle.iter().all(|b| inner(b) || *b == b'-')
        }
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

    fn open() -> Names {
        Names::new(Policy::default())
    }

    #[test]
    fn names_are_dns_labels() {
        for good in ["a", "lamp", "my-lamp-2", "0", &"a".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Lamp", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(
            open().claim("Lamp", Some("t"), None).unwrap_err(),
            ClaimError::InvalidName("Lamp".into())
        );
    }

    #[test]
    fn the_same_token_joins_and_another_is_refused() {
        let names = open();
        let first = names.claim("lamp", Some("t1"), None).unwrap();
        assert!(first.created);
        let again = names.claim("lamp", Some("t1"), None).unwrap();
        assert!(!again.created);
        assert!(Arc::ptr_eq(&first.pool, &again.pool));
        assert_eq!(
            names.claim("lamp", Some("t2"), None).unwrap_err(),
            ClaimError::Forbidden("lamp".into())
        );
    }

    #[test]
    fn no_token_gets_a_random_one_that_then_holds_the_name() {
        let names = open();
        let claimed = names.claim("lamp", None, None).unwrap();
        assert_eq!(claimed.token.len(), 32);
        assert_ne!(claimed.token, random_token());
        assert!(names.claim("lamp", Some("guess"), None).is_err());
        assert!(names.claim("lamp", Some(&claimed.token), None).is_ok());
    }

    #[test]
    fn pinned_names_need_their_token_and_closed_relays_refuse_others() {
        let mut policy = Policy::default();
        policy.pinned.insert("lamp".into(), "secret".into());
        policy.closed = true;
        let names = Names::new(policy);
        assert!(names.claim("lamp", Some("secret"), None).is_ok());
        assert!(names.claim("lamp", Some("wrong"), None).is_err());
        assert!(names.claim("lamp", None, None).is_err());
        assert!(names.claim("other", Some("any"), None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_name_is_kept_for_its_lease_then_freed() {
        let names = open();
        names
            .claim("lamp", Some("t1"), Some(Duration::from_secs(45)))
            .unwrap();
        assert!(names.lookup("lamp").is_some());
        tokio::time::sleep(Duration::from_secs(44)).await;
        assert!(names.claim("lamp", Some("t2"), None).is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(names.lookup("lamp").is_none());
        assert!(names.claim("lamp", Some("t2"), None).unwrap().created);
    }

    #[tokio::test(start_paused = true)]
    async fn leases_never_go_below_the_floor() {
        let names = open();
        names
            .claim("lamp", Some("t1"), Some(Duration::from_secs(1)))
            .unwrap();
        tokio::time::sleep(LEASE_FLOOR - Duration::from_millis(1)).await;
        assert!(names.lookup("lamp").is_some());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(names.lookup("lamp").is_none());
    }
}
