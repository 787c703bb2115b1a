//! A transposed channel's IO: the stream of an HTTP/2 extended CONNECT,
//! on either side, read and written like a connection of its own.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One transposed channel: the stream of an extended CONNECT.
///
/// Once the peer has ended the stream, a failed write is taken as written,
/// as a TCP socket takes writes after the peer's FIN: the peer ends a
/// channel with `END_STREAM` and a reset (`NO_ERROR` or `CANCEL`), which
/// hyper reads as a clean end but reports to the writer as an error, so a
/// server closing its side after the peer's would otherwise fail. A write
/// can fail before the end has been read (a server writes its GOAWAY
/// before reading on); the channel then reads ahead to see whether the
/// stream has ended, and keeps what it read for the next read.
pub struct Channel {
    io: TokioIo<Upgraded>,
    ended: bool,
    /// Bytes read ahead after a failed write, not yet handed to a reader;
    /// no more than the stream's flow-control window lets the peer send.
    ahead: BytesMut,
}

impl Channel {
    pub(crate) fn new(upgraded: Upgraded) -> Channel {
        Channel {
            io: TokioIo::new(upgraded),
            ended: false,
            ahead: BytesMut::new(),
        }
    }

    fn after_end<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        taken: T,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Err(_)) if self.ended || self.read_ahead_to_end(cx) => {
                Poll::Ready(Ok(taken))
            }
            other => other,
        }
    }

    /// Reads what the peer has sent so far into `ahead`, and says whether
    /// its end came with it. A read that would wait, or fails, is no end.
    fn read_ahead_to_end(&mut self, cx: &mut Context<'_>) -> bool {
        let mut space = [0; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut space);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    self.ended = true;
                    return true;
                }
                Poll::Ready(Ok(())) => self.ahead.extend_from_slice(buf.filled()),
                Poll::Ready(Err(_)) | Poll::Pending => return false,
            }
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Channel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ahead.is_empty() {
            let taken = self.ahead.len().min(buf.remaining());
            buf.put_slice(&self.ahead.split_to(taken));
            return Poll::Ready(Ok(()));
        }
        if self.ended {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if buf.filled().len() == before && buf.remaining() > 0 {
                self.ended = true;
            }
        }
        polled
    }
}

impl AsyncWrite for Channel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.after_end(cx, polled, buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        let all = bufs.iter().map(|buf| buf.len()).sum();
        self.after_end(cx, polled, all)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.after_end(cx, polled, ())
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.after_end(cx, polled, ())
    }
}
