//! A device: an axum `Router` kept reachable through a relay by the tunnel.
//!
//! ```text
//! cargo run --features axum --example axum_device -- URL
//! ```
//!
//! It upgrades on URL (for example the `axum_relay` example's
//! `http://127.0.0.1:3000/connect/lamp`) and serves `GET /hello` and
//! `POST /echo`, reconnecting whenever the relay goes away, until an
//! answer that retrying cannot fix (such as `401`).

use axum::Router;
use axum::routing::{get, post};
use ptth::tunnel::Phase;

#[tokio::main]
async fn main() -> Result<(), String> {
    let url = std::env::args().nth(1).unwrap_or_default();
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the device\n" }))
        .route("/echo", post(|body: String| async move { body }));
    let listener = ptth::tunnel::Builder::new(url).listen();
    let handle = listener.handle();
    let watching = handle.clone();
    tokio::spawn(async move {
        loop {
            let up = watching
                .wait_for(|s| s.connected > 0 || s.phase != Phase::Running)
                .await;
            if up.phase != Phase::Running {
                break;
            }
            let protocol = up.protocol.map(|p| p.to_string()).unwrap_or_default();
            eprintln!("device: serving over {protocol}");
            watching
                .wait_for(|s| s.connected == 0 || s.phase != Phase::Running)
                .await;
        }
    });
    // Unlike `axum::serve`, returns the answer that ended the tunnel.
    ptth::axum::serve(listener, app)
        .await
        .map_err(|error| error.to_string())
}
