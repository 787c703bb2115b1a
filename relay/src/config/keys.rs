//! `[[keys]]` in the config file, and the block `key new` prints for it.

use serde::{Deserialize, Serialize};

use crate::cli::KeyNewArgs;
use crate::keys::{Key, Keys, Pattern};
use crate::token::{Digest, random_token};

/// One `[[keys]]` entry.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct KeyFile {
    label: String,
    /// `sha256:<hex>`, or the key in clear.
    secret: String,
    names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_names: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
}

/// The `[[keys]]`, checked: a secret as a pin takes it, at least one
/// name pattern, and no secret twice (a claim would not know its key).
pub(super) fn keys(file: &[KeyFile]) -> Result<Keys, String> {
    let mut keys: Vec<Key> = Vec::with_capacity(file.len());
    for entry in file {
        let label = &entry.label;
        let digest = Digest::from_config(&entry.secret)
            .map_err(|error| format!("key {label:?}: {error}"))?;
        let names = (entry.names.iter())
            .map(|pattern| pattern.parse::<Pattern>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("key {label:?}: {error}"))?;
        if names.is_empty() {
            return Err(format!("key {label:?}: names = [..] is empty"));
        }
        if keys.iter().any(|key| key.digest == digest) {
            return Err(format!("key {label:?} has the secret of another key"));
        }
        keys.push(Key {
            label: label.clone(),
            digest,
            names,
            max_names: entry.max_names,
            max_connections: entry.max_connections,
        });
    }
    Ok(Keys::new(keys))
}

/// `ptth-relay key new`: a fresh key, and the `[[keys]]` block with its
/// digest, the one place the key is ever shown.
pub fn new_key(args: &KeyNewArgs) -> Result<(String, String), String> {
    if args.label.trim().is_empty() {
        return Err("--label may not be empty".to_owned());
    }
    for pattern in &args.names {
        pattern.parse::<Pattern>()?;
    }
    let secret = random_token();
    let block = KeyBlock {
        keys: [KeyFile {
            label: args.label.clone(),
            secret: format!("sha256:{}", Digest::of(&secret).to_hex()),
            names: args.names.clone(),
            max_names: args.max_names,
            max_connections: args.max_connections,
        }],
    };
    let block = toml::to_string(&block).map_err(|error| error.to_string())?;
    Ok((secret, block))
}

/// What `key new` prints: one `[[keys]]` table.
#[derive(Serialize)]
struct KeyBlock {
    keys: [KeyFile; 1],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(text: &str) -> Result<Keys, String> {
        let file: super::super::File = toml::from_str(text).map_err(|error| error.to_string())?;
        keys(&file.keys)
    }

    #[test]
    fn a_new_key_s_block_reads_back_as_that_key() {
        let args = KeyNewArgs {
            label: "alice \"A\"".into(),
            names: vec!["alice-*".into(), "lamp".into()],
            max_names: Some(3),
            max_connections: None,
        };
        let (secret, block) = new_key(&args).unwrap();
        assert!(secret.len() >= 32, "{secret}");
        assert!(!block.contains(&secret), "{block}");
        let keys = keys_of(&block).unwrap();
        let key = keys.find(&Digest::of(&secret)).expect("the key's digest");
        assert_eq!(key.label, "alice \"A\"");
        assert_eq!((key.max_names, key.max_connections), (Some(3), None));
        assert!(key.allows("alice-x") && key.allows("lamp") && !key.allows("bob"));
        assert_ne!(new_key(&args).unwrap().0, secret);
    }

    #[test]
    fn keys_that_cannot_work_are_refused_with_their_label() {
        let one = |label: &str, secret: &str, names: &str| {
            format!("[[keys]]\nlabel = \"{label}\"\nsecret = \"{secret}\"\nnames = {names}\n")
        };
        for (text, reason) in [
            (
                one("a", "s", "[\"Alice\"]"),
                "key \"a\": \"Alice\" is not a name pattern",
            ),
            (one("a", "s", "[]"), "key \"a\": names = [..] is empty"),
            (
                one("a", "sha256:beef", "[\"*\"]"),
                "key \"a\": sha256: must be",
            ),
            (
                one("a", "s", "[\"*\"]") + &one("b", "s", "[\"*\"]"),
                "key \"b\" has the secret of another key",
            ),
            (one("a", "s", "[\"*\"]") + "colour = 1\n", "unknown field"),
        ] {
            let error = keys_of(&text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
