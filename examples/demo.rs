//! Both sides of PTTH in one process on loopback: for each dialect and
//! protocol, an initiator dials an acceptor, the roles reverse, and the
//! acceptor sends `GET /hello` and `POST /echo` to the initiator's echo
//! service; then the same over a channel set up by HTTP/2 extended
//! CONNECT, the acceptor being a hyper HTTP/2 server.
//!
//! Run with `cargo run --example demo`.

#[path = "common/echo.rs"]
mod common;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    println!("== current :protocol: ptth (HTTP/2 extended CONNECT), reversed h2 ==");
    run_over_http2().await
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
            .protocols([protocol])
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
    let (sender, connection) = offer.accept::<Full<Bytes>>().await?;
    let driver = tokio::spawn(connection);
    exchange(sender).await?;
    driver.await??;
    initiator.await??;
    println!();
    Ok(())
}

/// The acceptor's side after the switch: two requests, then it closes.
async fn exchange(
    mut sender: ptth::acceptor::SendRequest<Full<Bytes>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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
    Ok(())
}

async fn run_over_http2() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    // The acceptor: an HTTP/2 server whose service accepts the CONNECT.
    let (accepted, switched) = tokio::sync::oneshot::channel();
    let accepted = std::sync::Mutex::new(Some(accepted));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let service = service_fn(move |mut request: Request<Incoming>| {
            println!(
                "acceptor: {} {} with :protocol {:?}",
                request.method(),
                request.uri(),
                request.extensions().get::<hyper::ext::Protocol>()
            );
            let acceptor = ptth::acceptor::Builder::new();
            let answer = match ptth::upgrade::accept::<_, Full<Bytes>>(&acceptor, &mut request) {
                Ok((answer, pending)) => {
                    if let Some(accepted) = accepted.lock().unwrap().take() {
                        let _ = accepted.send(pending);
                    }
                    answer
                }
                Err(rejection) => rejection.response,
            };
            async move { Ok::<_, std::convert::Infallible>(answer) }
        });
        http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(tcp), service)
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });

    // The initiator: HTTP/2 out, one channel, then serve inside it.
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (channels, connection) = ptth::initiator::Builder::new()
        .uri(format!("http://{addr}/reverse"))
        .handshake_http2(tcp)
        .await?;
    tokio::spawn(connection);
    let transposed = channels.open().await?;
    println!(
        "initiator: channel open, now serving {} inside one HTTP/2 stream",
        transposed.protocol()
    );
    let initiator = tokio::spawn(transposed.serve(service_fn(common::echo)));

    let (sender, connection) = switched.await?.await?;
    let driver = tokio::spawn(connection);
    exchange(sender).await?;
    driver.await??;
    initiator.await??;
    Ok(())
}
