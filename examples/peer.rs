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
#[path = "common/report.rs"]
mod report;

use std::process::ExitCode;

use hyper::service::service_fn;
use ptth::{Dialect, Protocol};

const USAGE: &str = "usage: peer URL [--legacy] [--h1]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peer: {}", report::Report(&*error));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = None;
    let mut builder = ptth::initiator::Builder::new();
    for arg in std::env::args().skip(1) {
        builder = match arg.as_str() {
            "--legacy" => builder.dialect(Dialect::Legacy),
            "--h1" => builder.protocols([Protocol::Http1]),
            _ if url.is_none() && !arg.starts_with("--") => {
                url = Some(arg);
                builder
            }
            _ => return Err(USAGE.into()),
        };
    }
    let transposed = builder.connect(url.ok_or(USAGE)?).await?;
    eprintln!("peer: upgraded, serving {}", transposed.protocol());
    transposed.serve(service_fn(common::echo)).await?;
    Ok(())
}
