//! The transposed connection the initiator serves on.

use bytes::Bytes;
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::rewind::Rewind;
use crate::{Dialect, Protocol};

/// A connection whose roles have been reversed: this side now serves HTTP.
///
/// Bytes the acceptor sent right behind its `101` (often the first reversed
/// request, or the HTTP/2 preface) are held in the IO and replayed to the
/// server first.
#[derive(Debug)]
pub struct Transposed<T> {
    pub(super) io: Rewind<T>,
    pub(super) protocol: Protocol,
    dialect: Dialect,
    headers: HeaderMap,
}

impl<T> Transposed<T> {
    pub(super) fn new(
        io: Rewind<T>,
        protocol: Protocol,
        dialect: Dialect,
        headers: HeaderMap,
    ) -> Self {
        Transposed {
            io,
            protocol,
            dialect,
            headers,
        }
    }

    /// The same connection with its IO wrapped by `wrap`, read-ahead kept.
    pub(crate) fn map_io<U>(self, wrap: impl FnOnce(T) -> U) -> Transposed<U> {
        let (io, prefix) = self.io.into_parts();
        Transposed {
            io: Rewind::new(wrap(io), prefix),
            protocol: self.protocol,
            dialect: self.dialect,
            headers: self.headers,
        }
    }

    /// The HTTP version to serve.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The dialect the handshake spoke.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The header fields of the `101` answer.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The bytes already read past the `101`, not yet served.
    pub fn read_ahead(&self) -> &[u8] {
        self.io.read_ahead()
    }

    /// The IO underneath, for its addresses or socket options.
    pub fn io(&self) -> &T {
        self.io.get_ref()
    }

    /// The IO as this crate keeps it, read-ahead first.
    pub(crate) fn into_rewind(self) -> Rewind<T> {
        self.io
    }

    /// The IO and the bytes read ahead, for serving the connection some
    /// other way: those bytes come first.
    pub fn into_parts(self) -> Parts<T> {
        let (io, read_buf) = self.io.into_parts();
        Parts { io, read_buf }
    }

    /// The IO, for serving the connection some other way (the `h2` crate's
    /// server, say): its reads yield the bytes read ahead first.
    pub fn into_io(self) -> impl AsyncRead + AsyncWrite + Unpin
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        self.into_rewind()
    }
}

/// A transposed connection taken apart, as hyper's `upgrade::Parts` is.
#[derive(Debug)]
#[non_exhaustive]
pub struct Parts<T> {
    /// The IO the handshake ran on.
    pub io: T,
    /// Bytes already read from `io` past the `101`: the start of the
    /// transposed connection, to be served before anything read from `io`.
    pub read_buf: Bytes,
}
