//! The state the supervisor shares, and the handle that observes and stops
//! a tunnel.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Phase, Status};
use crate::Error;

/// What the supervisor, the handles and the connections share.
pub(super) struct Shared {
    pub(super) status: watch::Sender<Status>,
    pub(super) stop: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Shared {
            status: watch::Sender::new(Status::default()),
            stop: watch::Sender::new(false),
        })
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut Status)) {
        self.status.send_modify(change);
    }
}

/// Observes and stops a [`Tunnel`](super::Tunnel). Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
}

impl Handle {
    /// The tunnel's state now.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Waits until the tunnel's state satisfies `predicate` (checked now,
    /// then at every change) and returns that state:
    /// `handle.wait_for(|s| s.connected == 4).await`.
    pub async fn wait_for(&self, predicate: impl FnMut(&Status) -> bool) -> Status {
        let mut status = self.shared.status.subscribe();
        // The sender lives as long as this handle, so this cannot fail.
        match status.wait_for(predicate).await {
            Ok(seen) => seen.clone(),
            Err(_) => unreachable!("a handle keeps its tunnel's status"),
        }
    }

    /// Stops dialing and drains the connections; the [`Tunnel`](super::Tunnel) future
    /// then resolves with `Ok(())`. Returns at once.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Resolves once the tunnel has begun to stop: after [`shutdown`](Handle::shutdown)
    /// or an error retrying cannot fix. The signal for a server that drains
    /// connections itself, such as axum's `with_graceful_shutdown`.
    pub async fn stopping(&self) {
        self.wait_for(|s| s.phase != Phase::Running).await;
    }

    /// Resolves once the tunnel has stopped and every connection is
    /// closed, whatever stopped it.
    pub async fn stopped(&self) {
        self.wait_for(|s| matches!(s.phase, Phase::Stopped | Phase::Failed))
            .await;
    }

    /// Resolves once the tunnel has stopped, as [`stopped`](Handle::stopped)
    /// does, with what the [`Tunnel`](super::Tunnel) future would have
    /// given: `Ok(())` after [`shutdown`](Handle::shutdown), or the error
    /// retrying cannot fix (a `401`, `403` or `404` from the relay, say).
    /// For a tunnel whose future someone else polls, as
    /// [`Builder::listen`](super::Builder::listen)'s is.
    pub async fn outcome(&self) -> Result<(), Error> {
        let status = self
            .wait_for(|s| matches!(s.phase, Phase::Stopped | Phase::Failed))
            .await;
        match (status.phase, status.last_error) {
            (Phase::Failed, Some(error)) => Err(error),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("status", &*self.shared.status.borrow())
            .finish()
    }
}
