//! TCP over PTTH: a byte stream to a device's port (ssh, a database),
//! carried as an HTTP `CONNECT` on the transposed connection.
//!
//! Nothing new goes on the wire. The acceptor (a relay) sends
//! `CONNECT host:port` to the initiator (the device) as it would any
//! request; the device answers `2xx` and from then on the request's
//! stream carries bytes both ways: an HTTP/2 stream of the connection
//! (RFC 9113, section 8.5), or the whole HTTP/1.1 connection, which the
//! `CONNECT` consumes (RFC 9110, section 9.3.6). The rules are in the
//! repository's `docs/protocol.md`, "TCP over PTTH: CONNECT".
//!
//! - On the device, [`Dial`] is a hyper service that answers `CONNECT` by
//!   dialling the one target it was given (never the one the request
//!   names) and splicing.
//! - On the relay, [`open`] sends the `CONNECT` on a sender and returns
//!   the [`Stream`], or an [`OpenError`] that tells a refusal from a
//!   connection that went away.
//! - Between a visitor's TCP connection and that stream, [`Splice`]
//!   copies both ways with half-close, an idle limit and live counts.
//!
//! ```
//! use std::time::Duration;
//!
//! use http_body_util::Empty;
//! use hyper::body::Bytes;
//! use ptth::connect::{self, Dial, Splice};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     // The device's port: here a service that says hello and closes.
//!     let port = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let target = port.local_addr()?;
//!     tokio::spawn(async move {
//!         let (mut tcp, _) = port.accept().await?;
//!         tcp.write_all(b"SSH-2.0-hello\r\n").await
//!     });
//!
//!     // The device serves Dial on a transposed connection (an in-memory
//!     // pipe here; a tunnel to a relay in life).
//!     let (opened, accepted) = tokio::io::duplex(64 * 1024);
//!     tokio::spawn(async move {
//!         let transposed = ptth::initiator::Builder::new().handshake(opened).await?;
//!         transposed.serve(Dial::new(target)).await
//!     });
//!
//!     // The relay opens a stream and splices it with a visitor's socket
//!     // (the other end of a pipe here).
//!     let offer = ptth::acceptor::Builder::new().read_request(accepted).await?;
//!     let (mut sender, connection) = offer.accept::<Empty<Bytes>>().await?;
//!     tokio::spawn(connection);
//!     let stream = connect::open(&mut sender, "lamp:22".parse()?, Duration::from_secs(10)).await?;
//!     let (mut visitor, near) = tokio::io::duplex(64 * 1024);
//!     let splice = tokio::spawn(Splice::new().run(near, stream));
//!
//!     let mut banner = String::new();
//!     visitor.read_to_string(&mut banner).await?;
//!     assert_eq!(banner, "SSH-2.0-hello\r\n");
//!     drop(visitor);
//!     let spliced = splice.await?;
//!     assert_eq!(spliced.b_to_a, 15);
//!     Ok(())
//! }
//! ```

mod body;
mod dial;
mod open;
mod splice;

pub use self::body::DialBody;
pub use self::dial::{Dial, NotAllowed};
pub use self::open::{OpenError, Sender, Stream, open, open_with};
pub use self::splice::{Direction, Ended, Splice, Spliced};
