//! The acceptor as a command: listen, accept PTTH upgrades of either
//! dialect on any path, and call each initiator back.
//!
//! ```text
//! cargo run --example acceptor -- [ADDR]      (default 127.0.0.1:8080)
//! ```
//!
//! For each peer it sends `GET /hello`, then `POST /echo` with body `ping`,
//! prints each response's status code and body, and closes the connection.

#[path = "common/report.rs"]
mod report;

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("acceptor: listening on {}", listener.local_addr()?);
    let acceptor = Arc::new(ptth::acceptor::Builder::new());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("acceptor: accept failed: {error}");
                continue;
            }
        };
        // Requests and answers are small; do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let acceptor = Arc::clone(&acceptor);
        tokio::spawn(async move {
            if let Err(error) = call_back(&acceptor, tcp, peer).await {
                eprintln!("acceptor: {peer}: {}", report::Report(&*error));
            }
        });
    }
}

async fn call_back(
    acceptor: &ptth::acceptor::Builder,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let offer = acceptor.read_request_from(tcp, peer).await?;
    eprintln!(
        "acceptor: {peer} upgraded on {} ({}, {})",
        offer.request().uri(),
        offer.dialect(),
        offer.protocol()
    );
    let (mut sender, connection) = offer.accept::<Full<Bytes>>().await?;
    let driver = tokio::spawn(connection);
    for (method, path, body) in [(Method::GET, "/hello", ""), (Method::POST, "/echo", "ping")] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body)))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body);
        let newline = if body.ends_with('\n') { "" } else { "\n" };
        print!("{status} {body}{newline}");
    }
    drop(sender);
    driver.await??;
    Ok(())
}
