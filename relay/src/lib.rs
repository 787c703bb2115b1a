//! A PTTH relay: programs that cannot be dialled claim a name on it, and
//! the public reaches them through it.
//!
//! A peer claims `NAME` with a PTTH upgrade to `<access>/NAME` (default
//! access path `/reversehttp`), its token in `Authorization: Bearer` or
//! `?token=`; the `101` names its public URL in
//! `Link: <URL>; rel="related"`. Public requests for `/NAME/...` (path
//! routing) or `NAME.<domain>` (host routing) are then forwarded to the
//! name's connections. Clients that cannot upgrade (a browser tab, a
//! script with curl) register at `<access>` and long-poll instead
//! ([`longpoll`]); the relay serves a browser client for that at
//! `/_ptth/ptth.js`, and a demo page at `/_ptth/demo.html`.
//! `../shared/RELAY.md` in the project has the rules.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod assets;
pub mod bridge;
pub mod cidr;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod expose;
#[doc(hidden)]
pub mod fuzzing;
mod head;
pub mod headers;
pub mod limit;
pub mod longpoll;
pub mod metrics;
pub mod names;
mod peers;
pub mod pool;
mod public;
pub mod relay;
pub mod route;
pub mod server;
pub mod slots;
mod stall;
pub mod tls;
pub mod token;

pub use relay::{Relay, Settings};
pub use route::Routing;
