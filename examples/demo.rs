//! Both sides of PTTH in one process on loopback: for each dialect and
//! protocol, an initiator dials an acceptor, the roles reverse, and the
//! acceptor sends `GET /hello` and `POST /echo` to the initiator's echo
//! service.
//!
//! Run with `cargo run --example demo`.

#[path = "common/echo.rs"]
mod common;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request};
use ptth::{Dialect, Protocol};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for (dialect, protocol) in [
        (Dialect::Legacy, Protocol::Http1),
        (Dialect::Current, Protocol::Http1),
        (Dialect::Current, Protocol::Http2),
    ] {
        let name = match dialect {
            Dialect::Legacy => "legacy Upgrade: PTTH/1.0",
            _ => "current Upgrade: ptth",
        };
        println!("== {name}, reversed {protocol} ==");
        run(dialect, protocol).await?;
    }
    Ok(())
}

async fn run(
    dialect: Dialect,
    protocol: Protocol,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    // The initiator: dial out, upgrade, then serve.
    let initiator = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let transposed = ptth::initiator::Builder::new()
            .uri(format!("http://{addr}/reverse"))
            .dialect(dialect)
            .alpn([protocol])
            .handshake(tcp)
            .await?;
        println!(
            "initiator: upgraded, now serving {} on the connection it opened",
            transposed.protocol()
        );
        transposed.serve(service_fn(common::echo)).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });

    // The acceptor: accept, answer 101, then send requests.
    let (tcp, peer) = listener.accept().await?;
    tcp.set_nodelay(true)?;
    let offer = ptth::acceptor::Builder::new()
        .read_request_from(tcp, peer)
        .await?;
    println!(
        "acceptor: {} {} from {peer} asks for {}",
        offer.request().method(),
        offer.request().uri(),
        offer.dialect()
    );
    let (mut sender, connection) = offer.accept::<Full<Bytes>>().await?;
    let driver = tokio::spawn(connection);

    for (method, path, body) in [
        (Method::GET, "/hello", ""),
        (Method::POST, "/echo", "ping from the acceptor"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Full::new(Bytes::from(body)))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        println!("acceptor -> {method} {path} {body:?}");
        println!(
            "initiator <- {status} {:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    // Closing the sending side ends the initiator's server cleanly.
    drop(sender);
    driver.await??;
    initiator.await??;
    println!();
    Ok(())
}
