use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO that first yields the bytes read ahead during the handshake, then
/// reads from the wrapped IO. Writes go straight to the wrapped IO.
///
/// A peer may send the first reversed request (or the HTTP/2 preface) in the
/// same segment as the `101`, so the handshake can read past the head it
/// needs; those bytes belong to the transposed connection and are replayed
/// here before anything else. hyper-util has a type like this but keeps it
/// private.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner`, whose reads first yield `prefix`: bytes already read from
    /// it, as a server that looked at a connection's first bytes before
    /// handing it on has them.
    pub fn new(inner: T, mut prefix: Bytes) -> Self {
        // An empty prefix may still hold the handshake's whole read buffer.
        advance_releasing(&mut prefix, 0);
        Rewind { prefix, inner }
    }

    /// The read-ahead bytes not yet replayed.
    pub fn read_ahead(&self) -> &[u8] {
        &self.prefix
    }

    /// A reference to the wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped IO and the read-ahead bytes not yet replayed.
    pub fn into_parts(self) -> (T, Bytes) {
        (self.inner, self.prefix)
    }
}

/// Advances past `n` bytes and, once none are left, lets go of the buffer
/// they came from: a handshake's buffer should not live as long as an idle
/// connection.
pub(crate) fn advance_releasing(bytes: &mut Bytes, n: usize) {
    bytes.advance(n);
    if bytes.is_empty() {
        *bytes = Bytes::new();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        advance_releasing(&mut self.prefix, n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A handshake's read buffer must not live as long as an idle
    /// connection: once its bytes are replayed (or if none were read
    /// ahead), the buffer is let go.
    #[test]
    fn a_consumed_prefix_lets_go_of_its_buffer() {
        let buffer = Bytes::from(vec![b'x'; 4096]);
        let mut prefix = buffer.slice(4000..);
        advance_releasing(&mut prefix, 50);
        assert!(!buffer.is_unique(), "46 bytes are still to replay");
        advance_releasing(&mut prefix, 46);
        assert!(buffer.is_unique());

        let rewind = Rewind::new((), buffer.slice(4096..));
        assert!(buffer.is_unique());
        assert!(rewind.read_ahead().is_empty());
    }

    #[tokio::test]
    async fn replays_prefix_then_reads_inner() {
        let (mut far, near) = tokio::io::duplex(64);
        let mut io = Rewind::new(near, Bytes::from_static(b"early "));
        far.write_all(b"late").await.unwrap();
        drop(far);
        let mut small = [0u8; 3];
        io.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"ear");
        assert_eq!(io.read_ahead(), b"ly ");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"ly late");
    }
}
