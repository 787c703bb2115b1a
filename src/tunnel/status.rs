//! What a tunnel tells its handles: where it is in its life, and what it
//! has seen.

use http::Uri;

use crate::{Error, Protocol};

/// Where a tunnel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Phase {
    /// Dialing and serving.
    #[default]
    Running,
    /// Draining after a shutdown or an error retrying cannot fix.
    Stopping,
    /// Stopped after [`Handle::shutdown`](super::Handle::shutdown); every connection is closed.
    Stopped,
    /// Stopped by an error retrying cannot fix, which is in
    /// [`Status::last_error`]; every connection is closed.
    Failed,
}

/// A snapshot of a tunnel's state, from [`Handle::status`](super::Handle::status).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// Where the tunnel is in its life.
    pub phase: Phase,
    /// Connections open and serving.
    pub connected: usize,
    /// Upgrade requests sent so far, redirects and failures included.
    pub attempts: u64,
    /// The protocol the relay chose on the latest connection.
    pub protocol: Option<Protocol>,
    /// Why the latest dial or connection failed, or the error that ended
    /// the tunnel.
    pub last_error: Option<Error>,
    /// The public URL the relay announced (`Link: <URL>; rel="related"`).
    pub public_url: Option<Uri>,
}
