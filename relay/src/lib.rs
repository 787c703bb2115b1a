//! A PTTH relay: programs that cannot be dialled claim a name on it, and
//! the public reaches them through it.
//!
//! A peer claims `NAME` with a PTTH upgrade to `<access>/NAME` (default
//! access path `/reversehttp`), its token in `Authorization: Bearer` or
//! `?token=`; the `101` names its public URL in
//! `Link: <URL>; rel="related"`. Public requests for `/NAME/...` (path
//! routing) or `NAME.<domain>` (host routing) are then forwarded to the
//! name's connections. `../shared/RELAY.md` in the project has the rules.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bridge;
pub mod cli;
pub mod config;
pub mod expose;
pub mod headers;
pub mod limit;
pub mod longpoll;
pub mod metrics;
pub mod names;
mod peers;
pub mod pool;
mod public;
pub mod relay;
pub mod server;
pub mod tls;

pub use relay::{Relay, Routing, Settings};
