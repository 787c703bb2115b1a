//! Reverse HTTP (PTTH): turn a connection around, then let hyper do HTTP.
//!
//! HTTP is asymmetric: the side that opens a connection asks, the other
//! answers. With PTTH the side that opened the TCP (or TLS) connection, the
//! **initiator**, sends an HTTP/1.1 upgrade request; the other side, the
//! **acceptor**, answers `101 Switching Protocols`; and from the next byte
//! on the initiator is the HTTP *server* and the acceptor the HTTP *client*.
//! A device behind NAT, a backend behind a firewall or a desktop app can so
//! be called like any web server, over a connection it opened itself.
//!
//! This crate performs the handshake from either side and hands the
//! transposed socket to hyper's server or client connection builders. Two
//! wire dialects are spoken (see [`Dialect`]): the IETF ptth working group's
//! `Upgrade: ptth` with an `ALPN` header choosing HTTP/2 or HTTP/1.1, and
//! the 2009 `Upgrade: PTTH/1.0` of Second Life and AirPlay.
//!
//! # The initiator: open a connection, then serve on it
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ptth::Error> {
//!     let tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
//!     let transposed = ptth::initiator::Builder::new()
//!         .uri("http://127.0.0.1:8080/reverse".parse().unwrap())
//!         .handshake(tcp)
//!         .await?;
//!     let hello = service_fn(|_: Request<Incoming>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
//!     });
//!     transposed.serve(hello).await
//! }
//! ```
//!
//! # The acceptor: accept a connection, then send requests on it
//!
//! ```no_run
//! use http_body_util::{BodyExt, Empty};
//! use hyper::body::Bytes;
//! use hyper::Request;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     let acceptor = ptth::acceptor::Builder::new();
//!     let (tcp, peer) = listener.accept().await?;
//!     let offer = acceptor.read_request_from(tcp, peer).await?;
//!     println!("{} wants to be called, on {}", peer, offer.request().uri());
//!     let (mut sender, connection) = offer.accept::<Empty<Bytes>>().await?;
//!     tokio::spawn(connection);
//!     let response = sender.send_request(Request::get("/").body(Empty::new())?).await?;
//!     let body = response.into_body().collect().await?.to_bytes();
//!     println!("{}", String::from_utf8_lossy(&body));
//!     Ok(())
//! }
//! ```
//!
//! # Both sides in one process
//!
//! Any `AsyncRead + AsyncWrite` IO will do; here an in-memory pipe stands in
//! for the network, and this example runs as a test.
//!
//! ```
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let (opened, accepted) = tokio::io::duplex(64 * 1024);
//!
//!     let initiator = tokio::spawn(async move {
//!         let transposed = ptth::initiator::Builder::new().handshake(opened).await?;
//!         let service = service_fn(|req: Request<Incoming>| async move {
//!             let path = req.uri().path().to_owned();
//!             Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(path))))
//!         });
//!         transposed.serve(service).await
//!     });
//!
//!     let offer = ptth::acceptor::Builder::new().read_request(accepted).await?;
//!     assert_eq!(offer.protocol(), ptth::Protocol::Http2);
//!     let (mut sender, connection) = offer.accept::<Empty<Bytes>>().await?;
//!     tokio::spawn(connection);
//!     let response = sender
//!         .send_request(Request::get("/from-the-acceptor").body(Empty::new())?)
//!         .await?;
//!     let body = response.into_body().collect().await?.to_bytes();
//!     assert_eq!(body, "/from-the-acceptor");
//!
//!     drop(sender);
//!     initiator.await??;
//!     Ok(())
//! }
//! ```
//!
//! Inside an existing hyper or axum server, use [`upgrade::accept`]
//! instead of [`acceptor::Builder::read_request`].
//!
//! # Sockets
//!
//! PTTH changes nothing about the socket under hyper, so the usual advice
//! holds: on TCP, `set_nodelay(true)` on both ends before the handshake, or
//! Nagle's algorithm will hold back small requests and streamed chunks by
//! tens of milliseconds. On HTTP/2, turn on keep-alive PING in the builders
//! ([`initiator::Server::http2`], [`acceptor::Builder::http2`]) to notice a
//! peer that went silent; HTTP/1.1 has no such probe.
//!
//! # Bounds
//!
//! Every read in a handshake has a size bound and a time bound (by default
//! a 16 KiB head and 30 seconds), so a silent or hostile peer costs a
//! bounded amount and then a typed [`Error`]. The time bounds use tokio's
//! timer: run the handshakes on a runtime with the time driver enabled.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod acceptor;
mod dialect;
mod error;
mod head;
pub mod initiator;
mod reader;
mod rewind;
pub mod upgrade;

pub use dialect::{Dialect, Protocol};
pub use error::{Declined, Error};
pub use rewind::Rewind;

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
