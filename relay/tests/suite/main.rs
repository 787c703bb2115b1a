//! The integration tests of `ptth-relay`, one binary so tokio, hyper and
//! rustls are linked once: each module is one subject, tried against a
//! relay on `127.0.0.1:0` (in-process, or the binary where the command
//! line or the process is the subject) with real peers, public clients,
//! Chromium and etcd. `support` holds what the modules share.

mod support;

mod acme;
mod browser;
mod bulk;
mod chromium_smoke;
mod claims;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "cluster")]
mod cluster_failover;
#[cfg(feature = "cluster")]
mod cluster_tls;
mod connections;
mod descriptors;
mod drain;
mod forwarded;
mod header_case;
mod hostile;
mod hostile_peers;
mod http2_setup;
mod inspect;
mod keys;
mod liveness;
mod logs;
mod longpoll;
mod longpoll_pools;
mod metrics;
mod pools;
mod readme;
mod reload;
mod request_logs;
mod routing;
mod short_commands;
mod statuses;
mod storm;
mod streaming;
mod systemd;
mod takeover;
mod tcp;
#[cfg(feature = "cluster")]
mod tcp_cluster;
mod tls;
mod tls_files;
mod visitors;
mod websocket;
