//! The transposed connection the initiator serves on.

use http::HeaderMap;

use crate::{Dialect, Protocol, Rewind};

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

    /// The IO, for serving it some other way. Read from the returned
    /// [`Rewind`] so the read-ahead bytes are not lost.
    pub fn into_io(self) -> Rewind<T> {
        self.io
    }
}
