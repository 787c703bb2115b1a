//! A PTTH relay: programs that cannot be dialled claim a name on it, and
//! the public reaches them through it.
//!
//! A peer claims `NAME` with a PTTH upgrade to `<access>/NAME` (default
//! access path `/reversehttp`), its token in `Authorization: Bearer` or
//! `?token=`; the `101` names its public URL in
//! `Link: <URL>; rel="related"`. Public requests for `/NAME/...` (path
//! routing) or `NAME.<domain>` (host routing) are then forwarded to the
//! name's connections. Clients that cannot upgrade (a browser tab, a
//! script with curl) register at `<access>` and long-poll instead; the
//! relay serves a browser client for that at `/_ptth/ptth.js`, and a demo
//! page at `/_ptth/demo.html`. `docs/relay.md` in the project has the
//! rules.
//!
//! The modules in dependency order: each names only modules before it
//! in this list. `token`, `keys`, `cidr`, `settings` (plain data), `grant` and `http` (the
//! body type, answers and header rules); `route`, `limit`, `slots`,
//! `pool`, `names`, `metrics`, `cluster`; `state` (the shared state and
//! what changes it); `routes` (one file per handler, and the service that
//! names them all); `server`. Beside them: `tls`, and the command line
//! (`cli`, `config`, `expose`, and `visitors`, who may call an exposed
//! name), and `inspect`, `expose`'s inspector, which names only `http`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod acme;
mod cidr;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod expose;
#[doc(hidden)]
pub mod fuzzing;
pub mod grant;
mod http;
pub mod inspect;
pub mod keys;
mod limit;
pub mod logging;
pub mod metrics;
pub mod names;
mod pem;
pub mod pool;
pub mod ports;
mod route;
mod routes;
pub mod server;
pub mod settings;
mod slots;
mod state;
mod tally;
pub mod tls;
pub mod token;
pub mod visitors;
mod wordname;

pub use settings::{Bounds, ClaimRate, Liveness, LongPoll, Policy, Routing, Settings, Waits};
pub use state::Relay;
