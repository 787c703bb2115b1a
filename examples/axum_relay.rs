//! A relay in a few lines of axum: devices connect with PTTH, the public
//! calls them through it.
//!
//! ```text
//! cargo run --features axum --example axum_relay -- [ADDR]   (default 127.0.0.1:3000)
//! ```
//!
//! A device upgrades on `/connect/{name}`; `/call/{name}/{*rest}` then
//! forwards the request to that device as `/{rest}` and returns its answer
//! (`404` for a name with no device, `502` when the device fails).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use ptth::acceptor::SendRequest;
use ptth::axum::PtthUpgrade;

type Devices = Arc<Mutex<HashMap<String, SendRequest<Body>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener =
        tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:3000")).await?;
    println!("relay: listening on http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/connect/{name}", any(connect))
        .route("/call/{name}/{*rest}", any(call))
        .with_state(Devices::default());
    axum::serve(listener, app).await
}

async fn connect(
    Path(name): Path<String>,
    State(devices): State<Devices>,
    upgrade: PtthUpgrade,
) -> Response {
    upgrade.on_upgrade(move |sender| async move {
        let id = sender.id();
        devices.lock().unwrap().insert(name.clone(), sender.clone());
        sender.closed().await;
        // A device that reconnected under this name has replaced the entry.
        devices.lock().unwrap().retain(|_, entry| entry.id() != id);
    })
}

async fn call(
    Path((name, _)): Path<(String, String)>,
    State(devices): State<Devices>,
    mut request: Request,
) -> Response {
    let Some(mut sender) = devices.lock().unwrap().get(&name).cloned() else {
        return (StatusCode::NOT_FOUND, format!("no device named {name}\n")).into_response();
    };
    // "/call/{name}/rest?query" goes to the device as "/rest?query", as sent.
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let rest = target
        .match_indices('/')
        .nth(2)
        .map_or("/", |(at, _)| &target[at..]);
    *request.uri_mut() = rest.parse().unwrap_or_default();
    match sender.send_request(request).await {
        Ok(answer) => answer.map(Body::new),
        Err(error) => (StatusCode::BAD_GATEWAY, format!("{error}\n")).into_response(),
    }
}
