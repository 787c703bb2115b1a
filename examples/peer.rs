//! The initiator as a command: dial URL, upgrade, then serve an echo
//! service on the connection until the acceptor closes it.
//!
//! ```text
//! cargo run --example peer -- URL [--legacy] [--h1]
//! ```
//!
//! Every request gets `200` with a `text/plain` body: the line
//! `METHOD PATH`, then the request body unchanged.

#[path = "common/echo.rs"]
mod common;

use std::process::ExitCode;

use hyper::Uri;
use hyper::service::service_fn;
use ptth::{Dialect, Protocol};
use tokio::net::TcpStream;

const USAGE: &str = "usage: peer URL [--legacy] [--h1]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peer: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = None;
    let mut builder = ptth::initiator::Builder::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--legacy" => {
                builder.dialect(Dialect::Legacy);
            }
            "--h1" => {
                builder.alpn([Protocol::Http1]);
            }
            _ if url.is_none() && !arg.starts_with("--") => url = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let url: Uri = url.ok_or(USAGE)?.parse()?;
    if url.scheme_str().is_some_and(|s| s != "http") {
        return Err("only http:// URLs are supported".into());
    }
    let host = url.host().ok_or("the URL has no host")?;
    let port = url.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    tcp.set_nodelay(true)?;
    let transposed = builder.uri(url).handshake(tcp).await?;
    eprintln!("peer: upgraded, serving {}", transposed.protocol());
    transposed.serve(service_fn(common::echo)).await?;
    Ok(())
}
