//! The connections that serve one name: pick the least loaded, queue for a
//! busy HTTP/1.1 pool, and drop connections that died.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use ptth::Protocol;
use ptth::acceptor::{ConnectionId, SendRequest};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Errors of request bodies on their way to a peer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request sent to a peer.
pub type PeerBody = BoxBody<Bytes, BoxError>;

/// How long a public request may wait for a connection of its name.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For a name with no connection at all: a peer may be reconnecting.
    pub peer: Duration,
    /// For a name whose HTTP/1.1 connections are all busy.
    pub queue: Duration,
}

impl Default for Waits {
    /// RELAY.md: 1 s for a peer (ReverseHttp's request timeout), 10 s in
    /// the queue (frp's `userConnTimeout`).
    fn default() -> Self {
        Waits {
            peer: Duration::from_secs(1),
            queue: Duration::from_secs(10),
        }
    }
}

/// Why no connection was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The name had no connection for the whole wait.
    NoPeer,
    /// Every connection stayed busy for the whole wait.
    Busy,
}

/// One connection in a pool.
#[derive(Debug)]
struct Conn {
    sender: SendRequest<PeerBody>,
    in_flight: AtomicUsize,
}

impl Conn {
    /// An HTTP/1.1 connection carries one request at a time; HTTP/2 ones
    /// take more, and the least loaded is picked among them.
    fn free(&self) -> bool {
        !self.sender.is_closed()
            && (self.sender.protocol() == Protocol::Http2
                || self.in_flight.load(Ordering::Acquire) == 0)
    }
}

#[derive(Debug)]
struct State {
    conns: Vec<Arc<Conn>>,
    empty_since: Option<Instant>,
}

/// The connections of one name.
#[derive(Debug)]
pub struct Pool {
    name: String,
    state: Mutex<State>,
    changed: Notify,
}

impl Pool {
    /// An empty pool for `name`, empty since now.
    pub fn new(name: &str) -> Self {
        Pool {
            name: name.to_owned(),
            state: Mutex::new(State {
                conns: Vec::new(),
                empty_since: Some(Instant::now()),
            }),
            changed: Notify::new(),
        }
    }

    /// The name this pool serves.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a connection; it leaves the pool by itself when it closes.
    pub fn add(self: &Arc<Self>, sender: SendRequest<PeerBody>) {
        let id = sender.id();
        let closed = sender.closed();
        {
            let mut state = self.state();
            state.conns.push(Arc::new(Conn {
                sender,
                in_flight: AtomicUsize::new(0),
            }));
            state.empty_since = None;
        }
        self.changed.notify_waiters();
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            closed.await;
            if let Some(pool) = pool.upgrade() {
                pool.remove(id);
            }
        });
    }

    fn remove(&self, id: ConnectionId) {
        {
            let mut state = self.state();
            state.conns.retain(|conn| conn.sender.id() != id);
            if state.conns.is_empty() {
                state.empty_since = Some(Instant::now());
            }
        }
        self.changed.notify_waiters();
    }

    /// Connections now in the pool, by protocol: `(h1, h2)`.
    pub fn connections(&self) -> (usize, usize) {
        let state = self.state();
        let h2 = state
            .conns
            .iter()
            .filter(|c| c.sender.protocol() == Protocol::Http2)
            .count();
        (state.conns.len() - h2, h2)
    }

    /// Since when the pool has had no connection, if it has none.
    pub fn empty_since(&self) -> Option<Instant> {
        self.state().empty_since
    }

    /// Picks the least-loaded free connection, waiting within `waits` for
    /// one to join or to free up.
    pub async fn pick(self: &Arc<Self>, waits: Waits) -> Result<Picked, Unavailable> {
        let start = Instant::now();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change in between still wakes.
            changed.as_mut().enable();
            let deadline = {
                let state = self.state();
                let free = state.conns.iter().filter(|conn| conn.free());
                if let Some(conn) = free.min_by_key(|conn| conn.in_flight.load(Ordering::Acquire)) {
                    conn.in_flight.fetch_add(1, Ordering::AcqRel);
                    return Ok(Picked {
                        conn: conn.clone(),
                        pool: self.clone(),
                    });
                }
                if state.conns.is_empty() {
                    (start + waits.peer, Unavailable::NoPeer)
                } else {
                    (start + waits.queue, Unavailable::Busy)
                }
            };
            if Instant::now() >= deadline.0 {
                return Err(deadline.1);
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline.0) => {}
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the pool lock")
    }
}

/// A connection picked for one request; it counts as in flight until this
/// is dropped.
#[derive(Debug)]
pub struct Picked {
    conn: Arc<Conn>,
    pool: Arc<Pool>,
}

impl Picked {
    /// The connection's sender.
    pub fn sender(&self) -> SendRequest<PeerBody> {
        self.conn.sender.clone()
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.pool.changed.notify_waiters();
    }
}
