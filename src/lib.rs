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
//! the 2009 `Upgrade: PTTH/1.0` of Second Life and AirPlay. The current
//! dialect can also be set up over an HTTP/2 connection (see [`Setup`]):
//! an extended CONNECT with `:protocol: ptth` opens one channel inside one
//! stream, [`initiator::Builder::connect_http2`] on one side and
//! [`upgrade::accept`] on the other. The rules on the wire are written out
//! in the repository's `docs/protocol.md`.
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
//!     let transposed = ptth::initiator::connect("http://127.0.0.1:8080/reverse").await?;
//!     let hello = service_fn(|_: Request<Incoming>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
//!     });
//!     transposed.serve(hello).await
//! }
//! ```
//!
//! [`initiator::connect`] dials TCP from the URL (and TLS for `https`, with
//! the `tls` feature); [`initiator::Builder`] sets options, and its
//! [`handshake`](initiator::Builder::handshake) upgrades over any IO.
//! With the `tower` (or `axum`) feature, `serve` takes tower services too,
//! such as an axum `Router`.
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
//! Inside an existing hyper server, use [`upgrade::accept`] instead of
//! [`acceptor::Builder::read_request`]; in an axum handler, the `axum`
//! feature's `ptth::axum::PtthUpgrade` extractor.
//!
//! # Senders and connections
//!
//! The acceptor gets an [`acceptor::SendRequest`] and an
//! [`acceptor::Connection`]. The sender is a client: clone it and send
//! from any task (on HTTP/1.1 requests wait their turn). The connection
//! future must be polled, usually spawned, for anything to move; it ends
//! when every sender is dropped, when the initiator goes away, or when
//! keep-alive finds it silent, and [`acceptor::SendRequest::closed`] tells
//! the senders' owners. Both carry the same [`acceptor::ConnectionId`].
//!
//! On the initiator, [`initiator::Connection`] serves until the acceptor
//! closes the connection, an error occurs, or a
//! [graceful shutdown](initiator::Connection::graceful_shutdown) completes.
//!
//! # TLS
//!
//! TLS roles never swap: the initiator stays the TLS client. The upgrade
//! request is HTTP/1.1 whatever the transposed connection speaks, so at the
//! TLS layer offer (or accept) ALPN `http/1.1`, or none: a TLS server that
//! picked `h2` would expect an HTTP/2 preface, not the upgrade. The `ALPN`
//! header of the upgrade then chooses h2 or HTTP/1.1 for what follows.
//! [`initiator::Builder::connect`] does this for `https` URLs with the `tls`
//! feature. The setup over HTTP/2 is the exception: there TLS negotiates
//! `h2`, as [`initiator::Builder::connect_http2`] asks.
//!
//! # Sockets and liveness
//!
//! PTTH changes nothing about the socket under hyper, so the usual advice
//! holds: on TCP, `set_nodelay(true)` on both ends before the handshake
//! ([`initiator::connect`] does), or Nagle's algorithm will hold back small
//! requests and streamed chunks by tens of milliseconds. An idle
//! transposed connection is normal, so nothing times it out by default. To
//! notice a peer that went silent (a frozen relay, a dead Wi-Fi link) on
//! HTTP/2, turn on keep-alive PING in the builders
//! ([`initiator::Server::http2`], [`acceptor::Builder::http2`]):
//! `keep_alive_interval(Duration::from_secs(20))` and
//! `keep_alive_timeout(Duration::from_secs(10))` end the connection with an
//! error ([`Error::is_timeout`]) about 30 seconds after the peer froze.
//! HTTP/1.1 has no such probe: only a request proves the peer alive. The
//! [`tunnel`] runs checks of its own on both.
//!
//! # TCP over PTTH
//!
//! [`connect`] carries a device's TCP port (ssh, a database) through the
//! transposed connection as an HTTP `CONNECT`: [`connect::Dial`] on the
//! device answers it by dialling the one target it was given, and
//! [`connect::open`] on the relay sends it and returns the byte stream.
//!
//! ```no_run
//! use ptth::connect::Dial;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ptth::Error> {
//!     // Each CONNECT the relay sends reaches 127.0.0.1:22, whatever
//!     // host it names: the device chooses what it exposes.
//!     let ssh = Dial::new("127.0.0.1:22".parse().unwrap());
//!     ptth::tunnel::Builder::new("https://relay.example/reversehttp/lamp")
//!         .serve(ssh)
//!         .await
//! }
//! ```
//!
//! # Who may call
//!
//! A service reachable through a relay is public. A [`guard::Guard`] in
//! front of it admits only requests with HTTP Basic credentials of its
//! users, or from client addresses in its ranges, as the relay reports
//! them; the others are answered `401` or `403` before the service sees
//! them.
//!
//! # Cargo features
//!
//! None is on by default; the default build depends on tokio, hyper,
//! hyper-util, http, bytes, httparse, thiserror and tracing only.
//!
//! - `tls`: `https://` URLs in [`initiator::Builder::connect`] (rustls with
//!   the ring provider, Mozilla's roots from `webpki-roots`).
//! - `tower`: serve tower services (an axum `Router`) on transposed
//!   connections, use [`acceptor::SendRequest`] as a tower `Service`, and
//!   [`guard::Guard`] as a tower `Layer`; adds `tower-service` and
//!   `tower-layer`.
//! - `axum`: the `ptth::axum::PtthUpgrade` extractor; implies `tower` and
//!   `http-body-util`.
//! - `longpoll`: [`longpoll`], serving clients that can only poll (a
//!   browser tab): the `message/http` and JSON codecs and a hub; adds
//!   `serde_json`, `base64` and `getrandom`, and implies `http-body-util`.
//! - `http-body-util`: re-exports that crate (`Full`, `Empty`, `BodyExt`)
//!   as `ptth::http_body_util`, at the version hyper's bodies match.
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
#[cfg(feature = "axum")]
pub mod axum;
mod channel;
pub mod connect;
mod dialect;
mod error;
pub mod guard;
mod head;
pub mod initiator;
#[cfg(feature = "longpoll")]
pub mod longpoll;
mod reader;
mod rewind;
pub mod service;
pub mod tunnel;
pub mod upgrade;

pub use dialect::{Dialect, Protocol, Setup};
pub use error::{Declined, Error};

/// hyper, whose types this crate's signatures use (`hyper::Error`, the
/// connection builders, `hyper::body::Incoming`); `hyper::http` and
/// `hyper::body::Bytes` come with it.
pub use hyper;

/// `http-body-util`, for request and response bodies such as `Full`,
/// `Empty` and `BodyExt::collect` (feature `http-body-util`, or `axum`).
#[cfg(feature = "http-body-util")]
pub use http_body_util;

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// `docs/protocol.md`'s examples, compiled as doc tests so they stay true.
#[doc = include_str!("../docs/protocol.md")]
#[cfg(doctest)]
pub struct DocsProtocolDoctests;
