//! The name table: who holds each name, with which token, and the pool of
//! connections that serve it (docs/relay.md, "Claiming a name").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::grant::{Grant, Refusal, judge};
use crate::pool::Pool;
use crate::settings::Policy;
use crate::tally::{Tallied, Tally};
use crate::token::{Digest, random_token};

/// How long a name stays reserved after its last connection left, at the
/// least: long enough for a peer to reconnect and get it back.
pub const LEASE_FLOOR: Duration = Duration::from_secs(30);

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not a DNS label.
    #[error("invalid name {0:?}: a name is a lower-case DNS label")]
    InvalidName(String),
    /// Held with another token or none, or not pinned on a closed relay.
    #[error("the name {0:?} is taken or closed to this token")]
    Forbidden(String),
    /// The relay has access keys and the claim presented none.
    #[error("claiming {0:?} here needs an access key")]
    KeyNeeded(String),
    /// The claim's access key does not cover the name.
    #[error("this key may not claim the name {0:?}")]
    NotThisKey(String),
    /// The claim's access key holds as many names as it may.
    #[error("this key holds as many names as it may ({0})")]
    KeyNames(usize),
    /// The names of the claim's access key have as many connections as
    /// the key allows; one may close.
    #[error("this key's names have as many connections as it allows ({0}); retry later")]
    KeyConnections(usize),
    /// The client address claimed too often; it may try again after this.
    #[error("too many claims from this address; retry later")]
    RateLimited(Duration),
    /// The relay holds as many names as it may.
    #[error("this relay holds as many names as it may; retry later")]
    Full,
}

/// A successful claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The pool to join.
    pub pool: Arc<Pool>,
    /// The token the caller presented, or the new random one it is given
    /// for a free name: never another holder's.
    pub token: String,
    /// Whether the name was free before this claim.
    pub created: bool,
}

#[derive(Debug)]
struct Entry {
    digest: Digest,
    pool: Arc<Pool>,
    lease: Duration,
    /// The rule the name was claimed by, judged again on a reload.
    grant: Grant,
}

/// The names claimed on this relay. Cheap to share.
#[derive(Debug)]
pub struct Names {
    /// Replaced whole on a reload; read once per claim.
    policy: RwLock<Policy>,
    max: AtomicUsize,
    entries: Mutex<HashMap<String, Entry>>,
    /// Peer connections a key's `max-connections` admitted that are not
    /// in their pool yet, by the key's label: between the check and the
    /// join (the `101`, the switch) the key's other claims are checked
    /// too, and must count them.
    joining: Tally<String>,
}

/// A peer connection admitted by its key's bound and not yet in its
/// pool ([`Names::admits_connection`]); it stops counting when dropped.
/// `None` for a connection no key's bound counts.
pub type Joining = Option<Tallied<String>>;

impl Names {
    /// An empty table that grants claims by `policy`, holding at most
    /// `max` names.
    pub fn new(policy: Policy, max: usize) -> Self {
        Names {
            policy: RwLock::new(policy),
            max: AtomicUsize::new(max),
            entries: Mutex::new(HashMap::new()),
            joining: Tally::default(),
        }
    }

    /// Claims `name` with `token` and a lease of at least [`LEASE_FLOOR`].
    /// The holder's token joins the live pool; another token, or none, is
    /// refused, so a name is never taken over. A free name is created
    /// with `token`, or with a new random one when none is given, once
    /// `admit` lets it: the claim limits are charged there.
    pub fn claim(
        &self,
        name: &str,
        token: Option<&str>,
        lease: Option<Duration>,
        admit: impl FnOnce() -> Result<(), ClaimError>,
    ) -> Result<Claimed, ClaimError> {
        let grant = self.permits(name, token)?;
        let forbidden = || ClaimError::Forbidden(name.to_owned());
        let lease = lease.unwrap_or(LEASE_FLOOR).max(LEASE_FLOOR);
        let mut entries = self.entries.lock().expect("the name table lock");
        if let Some(entry) = entries.get_mut(name)
            && entry.live()
        {
            let token = token.filter(|token| entry.digest.matches(token));
            let token = token.ok_or_else(forbidden)?;
            entry.lease = entry.lease.max(lease);
            return Ok(Claimed {
                pool: entry.pool.clone(),
                token: token.to_owned(),
                created: false,
            });
        }
        let token = token.map_or_else(random_token, str::to_owned);
        let digest = Digest::of(&token);
        if let Grant::Keyed {
            max_names: Some(max),
        } = grant
            && keyed(&entries, &digest).count() >= max
        {
            return Err(ClaimError::KeyNames(max));
        }
        admit()?;
        let max = self.max.load(Ordering::Relaxed);
        if entries.len() >= max {
            entries.retain(|_, entry| entry.live());
            if entries.len() >= max {
                return Err(ClaimError::Full);
            }
        }
        let pool = Arc::new(Pool::default());
        entries.insert(
            name.to_owned(),
            Entry {
                digest,
                pool: pool.clone(),
                lease,
                grant,
            },
        );
        Ok(Claimed {
            pool,
            token,
            created: true,
        })
    }

    /// Whether the operator's policy lets `token` claim `name`, and by
    /// which rule: a valid name, then [`judge`].
    pub fn permits(&self, name: &str, token: Option<&str>) -> Result<Grant, ClaimError> {
        if !valid_name(name) {
            return Err(ClaimError::InvalidName(name.to_owned()));
        }
        let presented = token.map(Digest::of);
        let policy = self.policy.read().expect("the policy lock");
        judge(&policy, name, presented.as_ref()).map_err(|refusal| match refusal {
            Refusal::Forbidden => ClaimError::Forbidden(name.to_owned()),
            Refusal::KeyNeeded => ClaimError::KeyNeeded(name.to_owned()),
            Refusal::NotThisKey => ClaimError::NotThisKey(name.to_owned()),
        })
    }

    /// The name a claim without one and `token` is offered, from `word`:
    /// under the patterns of the access key `token` is, if it is one
    /// ([`Key::name_from`](crate::keys::Key::name_from)), else `word`.
    pub fn name_for(&self, token: &str, word: String) -> Option<String> {
        let policy = self.policy.read().expect("the policy lock");
        match policy.keys.find(&Digest::of(token)) {
            Some(key) => key.name_from(&word),
            None => Some(word),
        }
    }

    /// Whether one more peer connection may join a name claimed with
    /// `token`: when it is an access key with a bound on connections, its
    /// names' connections are counted, with those admitted and still
    /// joining. The connection counts as joining until the [`Joining`]
    /// returned drops: drop it once the connection is in its pool, or
    /// will not be.
    pub fn admits_connection(&self, token: Option<&str>) -> Result<Joining, ClaimError> {
        let Some(digest) = token.map(Digest::of) else {
            return Ok(None);
        };
        let bounded = {
            let policy = self.policy.read().expect("the policy lock");
            (policy.keys.find(&digest))
                .and_then(|key| Some((key.max_connections?, key.label.clone())))
        };
        let Some((max, label)) = bounded else {
            return Ok(None);
        };
        // Held across the count and the hold below, so that two claims
        // with one key cannot both pass its bound.
        let entries = self.entries.lock().expect("the name table lock");
        let connections: usize = keyed(&entries, &digest)
            .map(|entry| {
                let (h1, h2) = entry.pool.connections();
                h1 + h2
            })
            .sum::<usize>()
            + self.joining.count(&label);
        if connections >= max {
            return Err(ClaimError::KeyConnections(max));
        }
        Ok(Some(self.joining.hold(label)))
    }

    /// Takes `policy` and the bound of `max` names from now on, and
    /// releases every held name the new policy no longer grants by the
    /// digest it was claimed with: a removed key, a pattern that no longer
    /// covers the name, a changed pin, registration closed. Returns the
    /// pools of the released names, for the caller to close.
    pub fn reload(&self, policy: Policy, max: usize) -> Vec<Arc<Pool>> {
        let mut entries = self.entries.lock().expect("the name table lock");
        let mut released = Vec::new();
        entries.retain(
            |name, entry| match judge(&policy, name, Some(&entry.digest)) {
                Ok(grant) => {
                    entry.grant = grant;
                    true
                }
                Err(_) => {
                    released.push(entry.pool.clone());
                    false
                }
            },
        );
        *self.policy.write().expect("the policy lock") = policy;
        self.max.store(max, Ordering::Relaxed);
        released
    }

    /// Whether `name` is held with `token`.
    pub fn held_with(&self, name: &str, token: &str) -> bool {
        let entries = self.entries.lock().expect("the name table lock");
        entries
            .get(name)
            .is_some_and(|entry| entry.live() && entry.digest.matches(token))
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

    /// Forgets `name` if `pool` is still its pool and has no member: a
    /// claim that created it was refused after all (a TCP port it could
    /// not have), and must not hold the name for the lease.
    pub fn forget_unused(&self, name: &str, pool: &Arc<Pool>) {
        let mut entries = self.entries.lock().expect("the name table lock");
        if entries
            .get(name)
            .is_some_and(|entry| Arc::ptr_eq(&entry.pool, pool) && pool.is_empty())
        {
            entries.remove(name);
        }
    }

    /// Forgets the names whose lease ran out with no member, which no
    /// lookup may ever come for.
    pub fn sweep(&self) {
        let mut entries = self.entries.lock().expect("the name table lock");
        entries.retain(|_, entry| entry.live());
    }

    /// The pools of every name in the table.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let entries = self.entries.lock().expect("the name table lock");
        entries.values().map(|entry| entry.pool.clone()).collect()
    }

    /// The names with members now, and their tokens' digests.
    pub fn served(&self) -> Vec<(String, Digest)> {
        let entries = self.entries.lock().expect("the name table lock");
        entries
            .iter()
            .filter(|(_, entry)| !entry.pool.is_empty())
            .map(|(name, entry)| (name.clone(), entry.digest))
            .collect()
    }

    /// How many names are held now.
    pub fn len(&self) -> usize {
        let entries = self.entries.lock().expect("the name table lock");
        entries.values().filter(|entry| entry.live()).count()
    }

    /// How many names the table keeps in memory, held or not yet swept.
    pub fn stored(&self) -> usize {
        self.entries.lock().expect("the name table lock").len()
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

/// The live names claimed with the access key whose digest is `digest`.
fn keyed<'a>(
    entries: &'a HashMap<String, Entry>,
    digest: &'a Digest,
) -> impl Iterator<Item = &'a Entry> {
    entries.values().filter(move |entry| {
        matches!(entry.grant, Grant::Keyed { .. }) && entry.digest == *digest && entry.live()
    })
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

#[cfg(test)]
mod tests;
