use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::rewind::advance_releasing;

/// Holds bytes back until the first write, and sends them in front of it.
///
/// The acceptor's `101` and hyper's HTTP/2 preface then leave in one write:
/// one system call and one segment fewer per handshake, and the initiator
/// reads both at once.
#[derive(Debug)]
pub(crate) struct Coalesce<T> {
    pending: Bytes,
    inner: T,
}

impl<T> Coalesce<T> {
    pub(crate) fn new(inner: T, pending: Bytes) -> Self {
        Coalesce { pending, inner }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out what is held back, alone.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            advance_releasing(&mut self.pending, n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while !this.pending.is_empty() {
            let slices = [IoSlice::new(&this.pending), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let held = this.pending.len();
            if n > held {
                this.pending = Bytes::new();
                return Poll::Ready(Ok(n - held));
            }
            advance_releasing(&mut this.pending, n);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn held_bytes_lead_the_first_write_or_flush() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = Coalesce::new(near, Bytes::from_static(b"101 "));
        io.write_all(b"preface").await.unwrap();
        io.write_all(b" more").await.unwrap();
        drop(io);
        let mut seen = String::new();
        far.read_to_string(&mut seen).await.unwrap();
        assert_eq!(seen, "101 preface more");

        let (near, mut far) = tokio::io::duplex(2);
        let mut io = Coalesce::new(near, Bytes::from_static(b"held"));
        let reading = tokio::spawn(async move {
            let mut seen = String::new();
            far.read_to_string(&mut seen).await.unwrap();
            seen
        });
        io.flush().await.unwrap();
        drop(io);
        assert_eq!(reading.await.unwrap(), "held");
    }
}
