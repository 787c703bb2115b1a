//! What the attacker saw: outcomes counted by label, and the places it
//! holds on the relay (connections, parked polls) at any moment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts shared by every task of one flood.
#[derive(Clone, Default)]
pub struct Tally {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    largest: Arc<Mutex<BTreeMap<String, u64>>>,
    held: Arc<AtomicUsize>,
}

impl Tally {
    /// Counts one `outcome`.
    pub fn add(&self, outcome: impl Into<String>) {
        *self.counts().entry(outcome.into()).or_default() += 1;
    }

    /// Counts one answer with `status`.
    pub fn status(&self, status: u16) {
        self.add(status.to_string());
    }

    /// Keeps the largest `value` seen for `label`.
    pub fn largest(&self, label: &str, value: u64) {
        let mut largest = self.largest.lock().expect("the tally");
        let entry = largest.entry(label.to_owned()).or_default();
        *entry = (*entry).max(value);
    }

    /// A place held on the relay until the guard drops: a connection it
    /// has not closed, or a poll it parked.
    pub fn hold(&self) -> Held {
        self.held.fetch_add(1, Ordering::AcqRel);
        Held(self.held.clone())
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// One line for the table: the outcomes, most frequent first, then the
    /// places held at the end (`held_label` says what they are) and the
    /// largest values.
    pub fn summary(&self, held_label: Option<&str>, held: usize) -> String {
        let mut counts: Vec<(String, u64)> = self.counts().clone().into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut parts: Vec<String> = counts
            .into_iter()
            .map(|(outcome, count)| format!("{outcome} ×{count}"))
            .collect();
        if let Some(label) = held_label {
            parts.push(format!("{label} at the end: {held}"));
        }
        for (label, value) in self.largest.lock().expect("the tally").iter() {
            parts.push(format!("{label}: {value}"));
        }
        if parts.is_empty() {
            return "–".to_owned();
        }
        parts.join(", ")
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.counts.lock().expect("the tally")
    }
}

/// See [`Tally::hold`].
pub struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
