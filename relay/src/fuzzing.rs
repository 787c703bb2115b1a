//! For the fuzz targets in `fuzz/` only: not an API, hidden from the docs
//! and free to change in any release. The long-poll form parsing reads a
//! registration's untrusted bytes but is private to the relay, so this
//! lends the targets exactly what they drive and nothing else.

pub use crate::longpoll::form::{Params, decode, encode};
