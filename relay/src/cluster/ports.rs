//! TCP names' public ports in the cluster (docs/relay.md, "TCP tunnels"):
//! one port per name and one name per port on every node.

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tracing::warn;

use super::{Cluster, ROOT};

impl Cluster {
    /// The public TCP port the cluster records for `name`, if any.
    pub fn port_of(&self, name: &str) -> Option<u16> {
        let table = self.inner.table.lock().expect("the cluster table");
        table.get(name).and_then(|entry| entry.port)
    }

    /// The ports the cluster records for names other than `name`.
    pub fn ports_of_others(&self, name: &str) -> std::collections::HashSet<u16> {
        let table = self.inner.table.lock().expect("the cluster table");
        table.ports_of_others(name)
    }

    /// Records `port` as the public TCP port of `name`, which this node
    /// owns, under the name's lease. Returns the port the name has: this
    /// one, or the one another node recorded first; `None` when another
    /// name holds `port`. Without etcd, or for a name claimed while etcd
    /// was away, the port is this node's alone and is returned as it is.
    pub async fn hold_port(&self, name: &str, port: u16) -> Option<u16> {
        let Some(lease) = self.owned().get(name).copied() else {
            return Some(port);
        };
        let name_key = format!("{ROOT}names/{name}/port");
        let port_key = format!("{ROOT}ports/{port}");
        let with_lease = || Some(PutOptions::new().with_lease(lease));
        let hold = Txn::new()
            .when([
                Compare::create_revision(name_key.clone(), CompareOp::Equal, 0),
                Compare::create_revision(port_key.clone(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(name_key.clone(), port.to_string(), with_lease()),
                TxnOp::put(port_key, name, with_lease()),
            ])
            .or_else([TxnOp::get(name_key, None)]);
        match self.inner.client.clone().txn(hold).await {
            Ok(held) if held.succeeded() => Some(port),
            Ok(held) => super::first_value(&held).and_then(|(port, _)| port.parse().ok()),
            Err(error) => {
                warn!(%error, %name, port, "holding a TCP port locally only: etcd is unreachable");
                Some(port)
            }
        }
    }

    /// The TCP names whose peers are all on other nodes, with their
    /// ports: the ones this node forwards visitors of.
    pub(crate) fn ports_elsewhere(&self) -> Vec<(u16, String)> {
        let table = self.inner.table.lock().expect("the cluster table");
        (table.entries())
            .filter(|(_, entry)| {
                !entry.owners.is_empty() && !entry.owners.contains_key(self.node())
            })
            .filter_map(|(name, entry)| Some((entry.port?, name.to_owned())))
            .collect()
    }

    /// Waits for the next change of the table, or at most `limit`.
    pub(crate) async fn changed_within(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.inner.changed.notified()).await;
    }
}
