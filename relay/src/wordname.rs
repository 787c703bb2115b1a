//! Readable names for claims that bring none (`expose` without
//! `--name`): `quiet-lamp-42`, derived from the claim's token, so every
//! connection and every reconnect of one device, before and after a
//! relay restart, asks for the same name without the relay keeping any
//! state for it.

use sha2::{Digest, Sha256};

const ADJECTIVES: [&str; 64] = [
    "amber", "bold", "brave", "brisk", "calm", "clear", "clever", "cosy", "crisp", "curly",
    "dapper", "deft", "eager", "early", "easy", "fair", "fancy", "fast", "fond", "fresh", "gentle",
    "glad", "golden", "grand", "happy", "hardy", "honest", "jolly", "keen", "kind", "lively",
    "lucky", "mellow", "merry", "mighty", "misty", "modest", "neat", "nimble", "noble", "olive",
    "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready", "rosy", "royal", "rustic",
    "shiny", "silver", "sleek", "smart", "snowy", "steady", "sunny", "swift", "tidy", "upbeat",
    "vivid", "warm", "witty",
];

const NOUNS: [&str; 64] = [
    "acorn", "anchor", "apple", "arrow", "badger", "bell", "berry", "birch", "bison", "breeze",
    "brook", "cactus", "candle", "cedar", "cloud", "comet", "coral", "crane", "daisy", "delta",
    "dune", "ember", "falcon", "fern", "finch", "fjord", "forest", "fox", "garden", "glacier",
    "harbor", "heron", "island", "lamp", "lantern", "lark", "lemon", "lotus", "maple", "meadow",
    "moon", "moss", "nectar", "oak", "orbit", "otter", "panda", "pebble", "pine", "planet",
    "quartz", "raven", "reef", "river", "robin", "sparrow", "spruce", "star", "tiger", "tulip",
    "valley", "willow", "wren", "zephyr",
];

/// The name a claim with `token` asks for at its `attempt`-th try (the
/// next one when another token holds it): `adjective-noun-NNNN`, one of
/// about 41 million, a DNS label.
pub fn derived(token: &str, attempt: u8) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ptth-relay name\0");
    hash.update([attempt]);
    hash.update(token.as_bytes());
    let bytes = hash.finalize();
    let adjective = ADJECTIVES[usize::from(bytes[0] % 64)];
    let noun = NOUNS[usize::from(bytes[1] % 64)];
    let number = u16::from_be_bytes([bytes[2], bytes[3]]) % 10_000;
    format!("{adjective}-{noun}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_always_gets_the_same_readable_dns_label() {
        let name = derived("device-token", 0);
        assert_eq!(name, derived("device-token", 0));
        assert_ne!(name, derived("device-token", 1));
        assert!(crate::names::valid_name(&name), "{name}");
        assert_eq!(name.split('-').count(), 3, "{name}");
        let names: std::collections::HashSet<String> =
            (0..1000).map(|n| derived(&n.to_string(), 0)).collect();
        assert!(names.len() > 990, "{}", names.len());
    }

    #[test]
    fn every_word_fits_a_label() {
        for word in ADJECTIVES.iter().chain(NOUNS.iter()) {
            assert!(word.bytes().all(|b| b.is_ascii_lowercase()), "{word}");
        }
    }
}
