//! The connections that serve one name: pick the least loaded, queue for a
//! busy HTTP/1.1 pool, and drop connections that died.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ptth::Protocol;
use ptth::acceptor::SendRequest;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::debug;

mod poller;
mod probe;

pub use poller::Poller;

use crate::http::RelayBody;
use crate::settings::{Liveness, Waits};

/// Why no connection was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The name had no connection for the whole wait.
    NoPeer,
    /// Every connection stayed busy for the whole wait.
    Busy,
}

/// One member of a pool: a PTTH connection, or the name's long-poll
/// clients.
#[derive(Debug)]
struct Conn {
    link: Link,
    in_flight: AtomicUsize,
    /// Byte streams open on it (TCP visitors' CONNECTs): they weigh in
    /// the pick as requests do, but a drain does not wait for them.
    streams: AtomicUsize,
    /// The task driving a PTTH connection: aborting it closes the
    /// connection, for a peer that misbehaves.
    driver: Option<AbortHandle>,
}

#[derive(Debug)]
enum Link {
    Ptth(SendRequest<RelayBody>),
    Polls(Arc<Poller>),
}

impl Conn {
    /// An HTTP/1.1 connection carries one request at a time; HTTP/2 ones
    /// take more, and the least loaded is picked among them. Long-poll
    /// clients take requests while their queue has room.
    fn free(&self) -> bool {
        match &self.link {
            Link::Ptth(sender) => {
                !sender.is_closed()
                    && (sender.protocol() == Protocol::Http2
                        || self.in_flight.load(Ordering::Acquire) == 0)
            }
            Link::Polls(poller) => poller.has_room(),
        }
    }

    /// What the pick weighs: requests in flight and streams open.
    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Acquire) + self.streams.load(Ordering::Acquire)
    }

    fn close(&self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        match &self.link {
            Link::Ptth(sender) => Some(sender.protocol()),
            Link::Polls(_) => None,
        }
    }
}

#[derive(Debug)]
struct State {
    conns: Vec<Arc<Conn>>,
    empty_since: Option<Instant>,
}

impl State {
    fn join(&mut self, link: Link, driver: Option<AbortHandle>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            link,
            in_flight: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            driver,
        });
        self.conns.push(conn.clone());
        self.empty_since = None;
        conn
    }
}

/// The connections of one name.
#[derive(Debug)]
pub struct Pool {
    state: Mutex<State>,
    changed: Notify,
    /// Set when the relay shuts down: connections close once idle.
    draining: AtomicBool,
    /// Whether path routing takes `/<name>` off the targets this name's
    /// peers get, as the latest claim that said so asked: `UNSAID`,
    /// `KEEP` or `STRIP`.
    strip_name: AtomicU8,
}

/// No claim of the name said whether to strip it: the relay's default.
const UNSAID: u8 = 0;
const KEEP: u8 = 1;
const STRIP: u8 = 2;

impl Default for Pool {
    /// An empty pool, empty since now.
    fn default() -> Self {
        Pool {
            state: Mutex::new(State {
                conns: Vec::new(),
                empty_since: Some(Instant::now()),
            }),
            changed: Notify::new(),
            draining: AtomicBool::new(false),
            strip_name: AtomicU8::new(UNSAID),
        }
    }
}

impl Pool {
    /// Records a claim's choice of whether the name is taken off the
    /// targets its peers get (docs/relay.md, "Stripping the name").
    pub fn set_strip_name(&self, strip: bool) {
        let choice = if strip { STRIP } else { KEEP };
        self.strip_name.store(choice, Ordering::Relaxed);
    }

    /// Whether the name is taken off the targets its peers get: as its
    /// claims asked, else `default`.
    pub fn strips_name(&self, default: bool) -> bool {
        match self.strip_name.load(Ordering::Relaxed) {
            UNSAID => default,
            choice => choice == STRIP,
        }
    }

    /// Closes the members with no request in flight, and each other one
    /// as its last request ends, so a shutdown waits for requests and not
    /// for idle peers (an idle channel set up over HTTP/2 would hold its
    /// connection open) or parked polls.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let conns = self.state().conns.clone();
        for conn in conns {
            match &conn.link {
                Link::Polls(poller) => poller.close(),
                Link::Ptth(_) if conn.in_flight.load(Ordering::Acquire) == 0 => conn.close(),
                Link::Ptth(_) => {}
            }
        }
    }

    /// Adds a connection, whose driving task is `driver`. It leaves the
    /// pool by itself when it closes; an HTTP/1.1 connection that fails a
    /// liveness check is closed (its driver aborted) and leaves too.
    pub fn add(
        self: &Arc<Self>,
        sender: SendRequest<RelayBody>,
        driver: AbortHandle,
        liveness: Liveness,
    ) {
        let closed = sender.closed();
        let protocol = sender.protocol();
        let conn = self.join(Link::Ptth(sender.clone()), Some(driver.clone()));
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if protocol == Protocol::Http2 {
                closed.await;
            } else {
                tokio::select! {
                    () = closed => {}
                    () = probe::probe(&sender, &conn, &pool, liveness) => {
                        debug!("evicting an HTTP/1.1 peer that failed its liveness check");
                        driver.abort();
                    }
                }
            }
            if let Some(pool) = pool.upgrade() {
                pool.remove(&conn);
            }
        });
    }

    /// The name's long-poll clients, joining the pool as one member on
    /// their first call; `make` builds them. They leave when the poller's
    /// [`Poller::idle`] ends.
    pub fn poller(self: &Arc<Self>, make: impl FnOnce() -> Poller) -> Arc<Poller> {
        let (poller, conn) = {
            let mut state = self.state();
            let found = state.conns.iter().find_map(|conn| match &conn.link {
                Link::Polls(poller) => Some(poller.clone()),
                Link::Ptth(_) => None,
            });
            if let Some(poller) = found {
                return poller;
            }
            // Found and joined under one lock, so two first polls make one
            // member.
            let poller = Arc::new(make());
            (poller.clone(), state.join(Link::Polls(poller), None))
        };
        self.changed.notify_waiters();
        let pool = Arc::downgrade(self);
        let leaving = poller.clone();
        tokio::spawn(async move {
            leaving.idle().await;
            if let Some(pool) = pool.upgrade() {
                pool.remove(&conn);
            }
            leaving.close();
        });
        poller
    }

    fn join(&self, link: Link, driver: Option<AbortHandle>) -> Arc<Conn> {
        let conn = self.state().join(link, driver);
        self.changed.notify_waiters();
        conn
    }

    fn remove(&self, gone: &Arc<Conn>) {
        {
            let mut state = self.state();
            state.conns.retain(|conn| !Arc::ptr_eq(conn, gone));
            if state.conns.is_empty() {
                state.empty_since = Some(Instant::now());
            }
        }
        self.changed.notify_waiters();
    }

    /// PTTH connections now in the pool, by protocol: `(h1, h2)`.
    pub fn connections(&self) -> (usize, usize) {
        let state = self.state();
        state
            .conns
            .iter()
            .fold((0, 0), |(h1, h2), conn| match conn.protocol() {
                Some(Protocol::Http2) => (h1, h2 + 1),
                Some(_) => (h1 + 1, h2),
                None => (h1, h2),
            })
    }

    /// Whether the pool has no member now.
    pub fn is_empty(&self) -> bool {
        self.state().conns.is_empty()
    }

    /// Waits until the connection counts `(h1, h2)` satisfy `done`.
    pub async fn wait_until(&self, done: impl Fn((usize, usize)) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self.connections()) {
                return;
            }
            changed.await;
        }
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
                if let Some(conn) = free.min_by_key(|conn| conn.load()) {
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
    /// The connection's sender, when a PTTH connection was picked.
    pub fn sender(&self) -> Option<SendRequest<RelayBody>> {
        match &self.conn.link {
            Link::Ptth(sender) => Some(sender.clone()),
            Link::Polls(_) => None,
        }
    }

    /// Closes the picked PTTH connection, whose peer broke the protocol;
    /// it then leaves the pool.
    pub fn evict(&self) {
        self.conn.close();
    }

    /// Turns the pick into a byte stream's (a `CONNECT` answered `2xx`):
    /// it stops counting as a request in flight, so a drain closes the
    /// connection without waiting for the stream to end, but it still
    /// weighs in the pick until the returned guard drops.
    pub fn into_stream(self) -> Stream {
        self.conn.streams.fetch_add(1, Ordering::AcqRel);
        Stream(self.conn.clone())
    }

    /// The long-poll clients, when they were picked.
    pub fn poller(&self) -> Option<Arc<Poller>> {
        match &self.conn.link {
            Link::Polls(poller) => Some(poller.clone()),
            Link::Ptth(_) => None,
        }
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        let before = self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && self.pool.draining.load(Ordering::Acquire) {
            self.conn.close();
        }
        self.pool.changed.notify_waiters();
    }
}

/// A byte stream open on a connection of the pool; see
/// [`Picked::into_stream`].
#[derive(Debug)]
pub struct Stream(Arc<Conn>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WAITS: Waits = Waits {
        peer: Duration::from_secs(1),
        queue: Duration::from_secs(2),
    };

    fn poller() -> Poller {
        let limits = ptth::longpoll::Limits {
            requests: 1,
            polls: 1,
            reply_wait: Duration::from_secs(1),
        };
        Poller::new(limits, Duration::from_secs(600))
    }

    #[tokio::test(start_paused = true)]
    async fn a_pick_waits_the_peer_wait_for_a_member_to_join() {
        let pool = Arc::new(Pool::default());
        let pick = pool.pick(WAITS);
        tokio::pin!(pick);
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut pick)
                .await
                .is_err()
        );
        pool.poller(poller);
        assert!(pick.await.unwrap().poller().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn no_member_for_the_peer_wait_is_no_peer_and_none_free_is_busy() {
        let pool = Arc::new(Pool::default());
        let start = Instant::now();
        assert_eq!(pool.pick(WAITS).await.unwrap_err(), Unavailable::NoPeer);
        assert_eq!(start.elapsed(), WAITS.peer);
        // A member that takes no request: the pick waits the queue wait.
        pool.poller(poller).close();
        let start = Instant::now();
        assert_eq!(pool.pick(WAITS).await.unwrap_err(), Unavailable::Busy);
        assert_eq!(start.elapsed(), WAITS.queue);
    }
}
