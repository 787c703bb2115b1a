//! The integration tests of `ptth`, one binary so tokio, hyper and rustls
//! are linked once: each module is one subject, tried over real sockets
//! with peers that write bytes as real ones do. `support` holds what the
//! modules share.

mod support;

mod authority;
mod connect;
mod examples;
mod faults;
mod guard;
mod hostile;
mod http2_setup;
mod hyper_server;
#[cfg(feature = "longpoll")]
mod longpoll;
mod roundtrip;
mod spans;
mod tls;
#[cfg(feature = "axum")]
mod tower_axum;
mod tunnel;
mod wire;
