//! The cluster's name table as one node sees it through its etcd watch.

use std::collections::BTreeMap;

/// A name in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The SHA-256 digest of the name's token in hex, while the name is
    /// reserved: etcd never holds a token in clear.
    pub digest: Option<String>,
    /// The nodes that have a peer for the name, with their URLs.
    pub owners: BTreeMap<String, String>,
    /// The public TCP port of a TCP name, the same on every node
    /// (docs/relay.md, "TCP tunnels").
    pub port: Option<u16>,
}

/// Every name in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    names: BTreeMap<String, Entry>,
}

impl Table {
    /// The entry of `name`, if the cluster knows it.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.names.get(name)
    }

    /// Every name and its entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.names
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The ports names other than `name` have.
    pub fn ports_of_others(&self, name: &str) -> std::collections::HashSet<u16> {
        (self.names.iter())
            .filter(|(other, _)| *other != name)
            .filter_map(|(_, entry)| entry.port)
            .collect()
    }

    /// Applies a put of `key` (under `/ptth/names/`) to `value`.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        let value = String::from_utf8_lossy(value).into_owned();
        match parse(key) {
            Some((name, Field::Digest)) => self.entry(name).digest = Some(value),
            Some((name, Field::Owner(node))) => {
                self.entry(name).owners.insert(node.to_owned(), value);
            }
            Some((name, Field::Port)) => self.entry(name).port = value.parse().ok(),
            None => {}
        }
    }

    /// Applies a delete of `key`.
    pub(crate) fn delete(&mut self, key: &[u8]) {
        let Some((name, field)) = parse(key) else {
            return;
        };
        let Some(entry) = self.names.get_mut(name) else {
            return;
        };
        match field {
            Field::Digest => entry.digest = None,
            Field::Owner(node) => {
                entry.owners.remove(node);
            }
            Field::Port => entry.port = None,
        }
        if entry.digest.is_none() && entry.owners.is_empty() && entry.port.is_none() {
            self.names.remove(name);
        }
    }

    fn entry(&mut self, name: &str) -> &mut Entry {
        self.names.entry(name.to_owned()).or_default()
    }
}

enum Field<'a> {
    Digest,
    Port,
    Owner(&'a str),
}

fn parse(key: &[u8]) -> Option<(&str, Field<'_>)> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix(super::ROOT)?.strip_prefix("names/")?;
    let (name, field) = rest.split_once('/')?;
    match field.split_once('/') {
        None if field == "digest" => Some((name, Field::Digest)),
        None if field == "port" => Some((name, Field::Port)),
        Some(("owners", node)) if !node.is_empty() => Some((name, Field::Owner(node))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_and_deletes_build_the_table() {
        let mut table = Table::default();
        table.put(b"/ptth/names/lamp/digest", b"t");
        table.put(b"/ptth/names/lamp/owners/a", b"http://a");
        table.put(b"/ptth/names/lamp/owners/b", b"http://b");
        table.put(b"/ptth/names/lamp/elsewhere", b"?");
        table.put(b"/other/names/fan/digest", b"?");
        let lamp = table.get("lamp").unwrap();
        assert_eq!(lamp.digest.as_deref(), Some("t"));
        assert_eq!(lamp.owners.len(), 2);
        assert!(table.get("fan").is_none());
        table.delete(b"/ptth/names/lamp/owners/a");
        table.delete(b"/ptth/names/lamp/digest");
        assert_eq!(table.get("lamp").unwrap().owners.len(), 1);
        table.delete(b"/ptth/names/lamp/owners/b");
        assert!(table.get("lamp").is_none(), "gone with its last key");
        table.put(b"/ptth/names/ssh/port", b"20022");
        assert_eq!(table.get("ssh").unwrap().port, Some(20022));
        assert!(table.ports_of_others("other").contains(&20022));
        assert!(table.ports_of_others("ssh").is_empty());
        table.delete(b"/ptth/names/ssh/port");
        assert!(table.get("ssh").is_none());
    }
}
