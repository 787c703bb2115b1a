//! A device: an axum `Router` served over PTTH to a relay it dials.
//!
//! ```text
//! cargo run --features axum --example axum_device -- URL
//! ```
//!
//! It upgrades on URL (for example the `axum_relay` example's
//! `http://127.0.0.1:3000/connect/lamp`) and serves `GET /hello` and
//! `POST /echo` until the relay closes the connection.

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> Result<(), ptth::Error> {
    let url = std::env::args().nth(1).unwrap_or_default();
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the device\n" }))
        .route("/echo", post(|body: String| async move { body }));
    let transposed = ptth::initiator::connect(url).await?;
    eprintln!("device: serving over {}", transposed.protocol());
    transposed.serve(app).await
}
