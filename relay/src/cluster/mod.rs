//! Several relay nodes sharing names through etcd (feature `cluster`).
//!
//! The keys, under `/ptth/`:
//! - `nodes/<node>` = the node's advertised URL, under the node's lease;
//! - `names/<name>/digest` = the SHA-256 digest of the name's token in
//!   hex (never the token: [`crate::token`]), under the name's lease;
//! - `names/<name>/owners/<node>` = the owner's URL, under the owner's
//!   node lease;
//! - `names/<name>/port` = a TCP name's public port, and `ports/<port>` =
//!   the name, both under the name's lease: one port per name and one
//!   name per port in the whole cluster.
//!
//! A node's lease is renewed while the node lives, so when it dies its
//! owner entries vanish within the node TTL. A name's lease is renewed by
//! every node that owns it, so the name (and its token) stays reserved
//! until the name TTL after its last owner left: the lease floor of docs/relay.md, "Leases",
//! kept by the cluster. Claims are transactions, so two nodes never
//! disagree about a name's token.

mod hop;
mod mark;
mod ports;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::Notify;
use tracing::{debug, warn};

pub use hop::HOP;
pub(crate) use hop::Hop;
pub use table::{Entry, Table};

use crate::names::ClaimError;
use crate::token::Digest;

const ROOT: &str = "/ptth/";

/// The time bound of each etcd request and of connecting to etcd. Past
/// it a node acts as when etcd is down (a claim is settled by this node
/// alone), so a hung etcd, or one behind a partition that drops packets,
/// does not hold a peer's claim or a TCP name's port forever
/// (docs/relay.md, "Failover and partitions").
const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// etcd's client URLs.
    pub endpoints: Vec<String>,
    /// This node's id, unique in the cluster.
    pub node: String,
    /// The URL other nodes forward requests to this node at.
    pub advertise: String,
    /// How long a dead node's entries outlive it. Default is 10 s.
    pub node_ttl: Duration,
    /// How long a name stays reserved after its last owner left. Default
    /// is 30 s, the lease floor of docs/relay.md, "Leases".
    pub name_ttl: Duration,
    /// What a node trusts in the certificates of nodes that advertise
    /// `https://` URLs. Default is none: nodes are reached over plain
    /// HTTP/2, and an `https://` node cannot be forwarded to.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Settings {
    /// Settings with the default TTLs.
    pub fn new(endpoints: Vec<String>, node: &str, advertise: &str) -> Self {
        Settings {
            endpoints,
            node: node.to_owned(),
            advertise: advertise.to_owned(),
            node_ttl: Duration::from_secs(10),
            name_ttl: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// What failed while talking to etcd.
#[derive(Debug, thiserror::Error)]
#[error("etcd: {0}")]
pub struct Error(#[from] etcd_client::Error);

/// This node's membership of a cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    hop: hop::Hop,
    /// The key of the hop marks, shared by every node through etcd.
    secret: mark::Secret,
    settings: Settings,
    node_lease: i64,
    table: Mutex<Table>,
    changed: Notify,
    /// Names this node owns, and their leases, renewed by [`keep_alive`].
    owned: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.settings.node)
            .field("node_lease", &self.node_lease)
            .finish_non_exhaustive()
    }
}

/// A granted claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Whether the name was free in the whole cluster.
    pub created: bool,
}

impl Cluster {
    /// Connects to etcd, registers this node under a fresh lease and loads
    /// the name table, which a watch then keeps current.
    pub async fn join(settings: Settings) -> Result<Cluster, Error> {
        let options = ConnectOptions::new()
            .with_timeout(ETCD_TIMEOUT)
            .with_connect_timeout(ETCD_TIMEOUT);
        let mut client = Client::connect(&settings.endpoints, Some(options)).await?;
        let ttl = ttl_seconds(settings.node_ttl);
        let node_lease = client.lease_grant(ttl, None).await?.id();
        let node_key = format!("{ROOT}nodes/{}", settings.node);
        let with_lease = PutOptions::new().with_lease(node_lease);
        client
            .put(node_key, settings.advertise.clone(), Some(with_lease))
            .await?;
        let secret = mark::shared_secret(&mut client).await?;
        let inner = Arc::new(Inner {
            client,
            secret,
            hop: hop::Hop::new(settings.tls.clone()),
            settings,
            node_lease,
            table: Mutex::new(Table::default()),
            changed: Notify::new(),
            owned: Mutex::new(HashMap::new()),
        });
        let stream = load(&inner).await?;
        tokio::spawn(watch(Arc::downgrade(&inner), stream));
        tokio::spawn(keep_alive(Arc::downgrade(&inner)));
        Ok(Cluster { inner })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.settings.node
    }

    /// Records this node as an owner of `name` with the token whose
    /// digest is `digest`. A `fresh` token (one the relay just made for a
    /// caller who gave none) only creates a free name. A name held with
    /// another token is refused on every node.
    pub async fn claim(
        &self,
        name: &str,
        digest: &Digest,
        fresh: bool,
    ) -> Result<Claim, ClaimOutcome> {
        let mut client = self.inner.client.clone();
        let token_key = format!("{ROOT}names/{name}/digest");
        let owner_key = format!("{ROOT}names/{name}/owners/{}", self.node());
        let owner = TxnOp::put(
            owner_key.clone(),
            self.inner.settings.advertise.clone(),
            Some(PutOptions::new().with_lease(self.inner.node_lease)),
        );
        let digest = digest.to_hex();
        let ttl = ttl_seconds(self.inner.settings.name_ttl);
        let name_lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(Error::from)?
            .id();
        let create = Txn::new()
            .when([Compare::create_revision(
                token_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put(
                    token_key.clone(),
                    digest.clone(),
                    Some(PutOptions::new().with_lease(name_lease)),
                ),
                owner.clone(),
            ])
            .or_else([TxnOp::get(token_key.clone(), None)]);
        let created = client.txn(create).await.map_err(Error::from)?;
        if created.succeeded() {
            self.own(name, name_lease);
            return Ok(Claim { created: true });
        }
        client.lease_revoke(name_lease).await.map_err(Error::from)?;
        let (held, lease) = first_value(&created).ok_or(ClaimOutcome::Raced)?;
        // As on one node: a held name takes its own token, not a fresh
        // one. Hex digests of equal length compare in constant time.
        let same = bool::from(subtle::ConstantTimeEq::ct_eq(
            held.as_bytes(),
            digest.as_bytes(),
        ));
        if fresh || !same {
            return Err(ClaimOutcome::Refused(ClaimError::Forbidden(
                name.to_owned(),
            )));
        }
        let join = Txn::new()
            .when([Compare::value(token_key, CompareOp::Equal, held.clone())])
            .and_then([owner]);
        if !client.txn(join).await.map_err(Error::from)?.succeeded() {
            return Err(ClaimOutcome::Raced);
        }
        self.own(name, lease);
        Ok(Claim { created: false })
    }

    /// Stops owning `name` here: its last local peer left. The name stays
    /// reserved for the name TTL unless another node owns it too.
    pub async fn release(&self, name: &str) -> Result<(), Error> {
        self.owned().remove(name);
        let owner_key = format!("{ROOT}names/{name}/owners/{}", self.node());
        self.inner.client.clone().delete(owner_key, None).await?;
        Ok(())
    }

    /// Frees `name`, which a claim on this node created and was then
    /// refused: its lease is revoked, so its token's digest (and a port
    /// it may have got) go at once rather than after the name TTL.
    pub(crate) async fn forget(&self, name: &str) {
        let Some(lease) = self.owned().remove(name) else {
            return;
        };
        if let Err(error) = self.inner.client.clone().lease_revoke(lease).await {
            debug!(%error, %name, "a refused claim's name waits out its lease");
        }
        let _ = self.release(name).await;
    }

    /// The name table as this node's watch last saw it.
    pub fn table(&self) -> Table {
        self.inner.table.lock().expect("the cluster table").clone()
    }

    /// Waits until the table satisfies `done`.
    pub async fn wait_until(&self, done: impl Fn(&Table) -> bool) {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.inner.table.lock().expect("the cluster table")) {
                return;
            }
            changed.await;
        }
    }

    /// The connections to other nodes.
    pub(crate) fn hop(&self) -> &hop::Hop {
        &self.inner.hop
    }

    /// How long a dead node's entries outlive it.
    pub(crate) fn node_ttl(&self) -> Duration {
        self.inner.settings.node_ttl
    }

    /// Whether `request` carries a valid hop mark of this cluster: it came
    /// from another node.
    pub(crate) fn marked<B>(&self, request: &http::Request<B>) -> bool {
        let Some(mark) = request.headers().get(HOP) else {
            return false;
        };
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str());
        mark::verify(&self.inner.secret, mark, request.method(), target)
    }

    /// The hop mark for a request this node forwards.
    pub(crate) fn mark(&self, method: &http::Method, target: &str) -> Option<http::HeaderValue> {
        mark::sign(&self.inner.secret, self.node(), method, target)
    }

    /// The names this node owns now.
    pub fn owned_names(&self) -> Vec<String> {
        self.owned().keys().cloned().collect()
    }

    /// Other nodes' URLs for `name`, as the watch last saw them.
    pub fn owners_elsewhere(&self, name: &str) -> Vec<String> {
        let table = self.inner.table.lock().expect("the cluster table");
        table.get(name).map_or_else(Vec::new, |entry| {
            entry
                .owners
                .iter()
                .filter(|(node, _)| *node != self.node())
                .map(|(_, url)| url.clone())
                .collect()
        })
    }

    /// The claim this node already holds for `name` with the token of
    /// `digest`, which needs no round trip to etcd (long-poll clients
    /// claim on every poll).
    fn held(&self, name: &str, digest: &Digest) -> Option<Claim> {
        if !self.owned().contains_key(name) {
            return None;
        }
        let table = self.inner.table.lock().expect("the cluster table");
        let held = table.get(name)?.digest.as_deref()?;
        let digest = digest.to_hex();
        let same = subtle::ConstantTimeEq::ct_eq(held.as_bytes(), digest.as_bytes());
        bool::from(same).then_some(Claim { created: false })
    }

    fn own(&self, name: &str, lease: i64) {
        self.owned().insert(name.to_owned(), lease);
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.inner.owned.lock().expect("the owned names")
    }
}

/// Why a cluster claim was not granted.
#[derive(Debug, thiserror::Error)]
pub enum ClaimOutcome {
    /// The name is held with another token.
    #[error(transparent)]
    Refused(ClaimError),
    /// The name changed hands between the two steps of the claim; trying
    /// again settles it.
    #[error("the name changed during the claim; try again")]
    Raced,
    /// etcd could not be reached.
    #[error(transparent)]
    Etcd(#[from] Error),
}

/// A peer's claim through the cluster: `Ok(None)` when etcd cannot be
/// reached, and the claim is then settled by this node alone (local
/// routing goes on while etcd is down; other nodes cannot see the name).
pub(crate) async fn claim(
    cluster: &Cluster,
    name: &str,
    digest: &Digest,
    fresh: bool,
) -> Result<Option<Claim>, ClaimError> {
    if let Some(held) = cluster.held(name, digest).filter(|_| !fresh) {
        return Ok(Some(held));
    }
    // A race (the name changed hands between the claim's two steps) is
    // settled by one more try.
    for _ in 0..2 {
        match cluster.claim(name, digest, fresh).await {
            Ok(claim) => return Ok(Some(claim)),
            Err(ClaimOutcome::Refused(error)) => return Err(error),
            Err(ClaimOutcome::Raced) => continue,
            Err(ClaimOutcome::Etcd(error)) => {
                warn!(%error, %name, "claiming locally only: etcd is unreachable");
                return Ok(None);
            }
        }
    }
    Err(ClaimError::Forbidden(name.to_owned()))
}

/// The value and lease of the first key a transaction's `get` found.
fn first_value(response: &etcd_client::TxnResponse) -> Option<(String, i64)> {
    response.op_responses().into_iter().find_map(|op| match op {
        etcd_client::TxnOpResponse::Get(get) => get
            .kvs()
            .first()
            .and_then(|kv| Some((kv.value_str().ok()?.to_owned(), kv.lease()))),
        _ => None,
    })
}

fn ttl_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)
}

/// Reads the whole name table and starts a watch just after it.
async fn load(inner: &Inner) -> Result<etcd_client::WatchStream, Error> {
    let names = format!("{ROOT}names/");
    let mut client = inner.client.clone();
    let loaded = client
        .get(names.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = loaded.header().map_or(0, |header| header.revision());
    let mut table = Table::default();
    for kv in loaded.kvs() {
        table.put(kv.key(), kv.value());
    }
    *inner.table.lock().expect("the cluster table") = table;
    inner.changed.notify_waiters();
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    Ok(client.watch(names, Some(options)).await?)
}

/// Applies the watch's events to the table until the node is gone. When
/// etcd goes away the table is kept as it was (routing goes on from it)
/// and reloaded whole once etcd answers again.
async fn watch(inner: std::sync::Weak<Inner>, mut stream: etcd_client::WatchStream) {
    let mut pause = Duration::from_millis(100);
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => {
                warn!("the cluster watch ended; reloading the table when etcd answers");
                loop {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    if let Ok(reloaded) = load(&inner).await {
                        stream = reloaded;
                        break;
                    }
                }
                continue;
            }
        };
        pause = Duration::from_millis(100);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        {
            let mut table = inner.table.lock().expect("the cluster table");
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => table.put(kv.key(), kv.value()),
                    EventType::Delete => table.delete(kv.key()),
                }
            }
        }
        inner.changed.notify_waiters();
    }
}

/// Renews the node's lease and the leases of the names it owns, at a
/// third of their TTLs.
async fn keep_alive(inner: std::sync::Weak<Inner>) {
    loop {
        let (interval, mut client, leases) = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let ttl = inner.settings.node_ttl.min(inner.settings.name_ttl);
            let mut leases: Vec<i64> = inner
                .owned
                .lock()
                .expect("the owned names")
                .values()
                .copied()
                .collect();
            leases.push(inner.node_lease);
            (ttl / 3, inner.client.clone(), leases)
        };
        for lease in leases {
            let renewed = async {
                let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            };
            if let Err(error) = renewed.await {
                debug!(%error, lease, "a lease was not renewed");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
