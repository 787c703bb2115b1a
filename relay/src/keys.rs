//! Access keys: the operator's grants of names to the members of a team
//! (docs/relay.md, "Running a relay for others"). A key is presented as a
//! claim's token; the relay keeps its digest only, and a name claimed
//! with a key has the key as its token, so another key cannot join it.

use std::fmt;
use std::str::FromStr;

use crate::token::Digest;

/// One key: who it is for, its secret's digest, the names it may claim
/// and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Who the key is for, for logs and the operator; never secret.
    pub label: String,
    /// The digest of the key's secret.
    pub digest: Digest,
    /// The names it may claim.
    pub names: Vec<Pattern>,
    /// The most names it may hold at once, leases included. `None`: the
    /// relay's bound only.
    pub max_names: Option<usize>,
    /// The most peer connections its names may have at once. `None`: the
    /// relay's bounds only.
    pub max_connections: Option<usize>,
}

impl Key {
    /// Whether the key may claim `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.names.iter().any(|pattern| pattern.matches(name))
    }

    /// The name a claim without one gets from this key, made from `word`
    /// (a readable name derived from the key): under its first pattern,
    /// so `alice-*` gives `alice-quiet-lamp-42`, and a key for one name
    /// gives that name.
    pub fn name_from(&self, word: &str) -> Option<String> {
        self.names.first().map(|pattern| match pattern {
            Pattern::Exact(name) => name.clone(),
            Pattern::Prefix(prefix) => format!("{prefix}{word}"),
            Pattern::Any => word.to_owned(),
        })
    }
}

/// The keys of a relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys(Vec<Key>);

impl Keys {
    /// The keys given, in order.
    pub fn new(keys: Vec<Key>) -> Self {
        Keys(keys)
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key whose digest is `digest`. Every key is compared, each in
    /// constant time, so the time taken says nothing of which one matched.
    pub fn find(&self, digest: &Digest) -> Option<&Key> {
        self.0
            .iter()
            .fold(None, |found, key| match key.digest == *digest {
                true => Some(key),
                false => found,
            })
    }
}

/// Names a key may claim: one name, the names that start with a prefix
/// (`alice-*`), or every name (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Names that start with this and have at least one more character.
    Prefix(String),
    /// Every name.
    Any,
}

impl Pattern {
    /// Whether `name` is one of the pattern's names.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => name == exact,
            Pattern::Prefix(prefix) => name.len() > prefix.len() && name.starts_with(prefix),
            Pattern::Any => true,
        }
    }
}

impl FromStr for Pattern {
    type Err = String;

    /// `*`, `prefix*`, or a name: lower-case letters, digits and `-`,
    /// with a `*` only at the end.
    fn from_str(text: &str) -> Result<Self, String> {
        let (stem, wild) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        let fits = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if !stem.bytes().all(fits) || stem.len() > 63 || (!wild && stem.is_empty()) {
            return Err(format!(
                "{text:?} is not a name pattern: a name, `prefix*` or `*`"
            ));
        }
        Ok(match (stem.is_empty(), wild) {
            (true, _) => Pattern::Any,
            (false, true) => Pattern::Prefix(stem.to_owned()),
            (false, false) => Pattern::Exact(stem.to_owned()),
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
            Pattern::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_without_a_name_gets_one_under_the_key_s_first_pattern() {
        let key = |patterns: &[&str]| Key {
            label: "k".into(),
            digest: Digest::of("k"),
            names: patterns.iter().map(|p| p.parse().unwrap()).collect(),
            max_names: None,
            max_connections: None,
        };
        for (patterns, name) in [
            (&["alice-*"][..], "alice-quiet-lamp-42"),
            (&["alice-*", "*"][..], "alice-quiet-lamp-42"),
            (&["*"][..], "quiet-lamp-42"),
            (&["lamp", "alice-*"][..], "lamp"),
        ] {
            let key = key(patterns);
            let made = key.name_from("quiet-lamp-42").unwrap();
            assert_eq!(made, name, "{patterns:?}");
            assert!(key.allows(&made));
        }
    }

    #[test]
    fn patterns_read_and_match_as_written() {
        for (text, name, matches) in [
            ("lamp", "lamp", true),
            ("lamp", "lamp2", false),
            ("lamp", "lam", false),
            ("alice-*", "alice-lamp", true),
            ("alice-*", "alice-", false),
            ("alice-*", "alicex", false),
            ("alice-*", "bob-lamp", false),
            ("*", "anything", true),
        ] {
            let pattern: Pattern = text.parse().unwrap();
            assert_eq!(pattern.matches(name), matches, "{text} {name}");
            assert_eq!(pattern.to_string(), text);
        }
    }

    #[test]
    fn patterns_that_are_no_names_are_refused() {
        for text in [
            "",
            "Lamp",
            "a*b",
            "**",
            "a b",
            "lamp.example",
            &"a".repeat(64),
        ] {
            assert!(text.parse::<Pattern>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_key_is_found_by_its_digest_and_allows_its_names() {
        let key = |label: &str, secret: &str, names: &[&str]| Key {
            label: label.into(),
            digest: Digest::of(secret),
            names: names.iter().map(|name| name.parse().unwrap()).collect(),
            max_names: None,
            max_connections: None,
        };
        let keys = Keys::new(vec![
            key("alice", "a", &["alice-*"]),
            key("ops", "o", &["*"]),
        ]);
        assert_eq!(keys.find(&Digest::of("a")).unwrap().label, "alice");
        assert_eq!(keys.find(&Digest::of("o")).unwrap().label, "ops");
        assert!(keys.find(&Digest::of("x")).is_none());
        let alice = keys.find(&Digest::of("a")).unwrap();
        assert!(alice.allows("alice-lamp") && !alice.allows("bob"));
    }
}
