//! Things in progress, counted by key, each given back when its guard
//! drops: what a bound must count besides what is already done, so that
//! claims checked while others wait (on a bind, on etcd, on a switch)
//! see them (a claim choosing its TCP port, a connection joining its
//! key's pool).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Counts by key. A key is here only while a [`Tallied`] holds it, so
/// the map is bounded by the guards alive.
#[derive(Debug)]
pub struct Tally<K> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            counts: Arc::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Tally<K> {
    /// How many `key` holds now.
    pub fn count(&self, key: &K) -> usize {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// Counts one more for `key` until the guard drops. A caller that
    /// checks a bound with [`count`](Tally::count) first holds its own
    /// lock across both, so no other check comes in between.
    pub fn hold(&self, key: K) -> Tallied<K> {
        *self.lock().entry(key.clone()).or_default() += 1;
        Tallied {
            counts: Arc::clone(&self.counts),
            key,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.counts.lock().expect("the tally")
    }
}

/// One count held for a key of a [`Tally`]; dropping it gives it back.
#[derive(Debug)]
pub struct Tallied<K: Eq + Hash> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Eq + Hash> Drop for Tallied<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("the tally");
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_lasts_as_long_as_its_guard_and_an_empty_key_goes() {
        let tally = Tally::default();
        let first = tally.hold("a");
        let second = tally.hold("a");
        let _other = tally.hold("b");
        assert_eq!((tally.count(&"a"), tally.count(&"b")), (2, 1));
        drop(first);
        assert_eq!(tally.count(&"a"), 1);
        drop(second);
        assert_eq!(tally.count(&"a"), 0);
        assert_eq!(tally.counts.lock().unwrap().len(), 1, "only b is left");
    }
}
