//! Waiting for the acceptor's HTTP/2 SETTINGS before the first extended
//! CONNECT: RFC 8441 lets a client send `:protocol` only once the server
//! has said `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`, and hyper tells the
//! setting but not whether the server's SETTINGS have arrived at all. h2
//! applies the server's SETTINGS as it queues their ACK, so once this
//! side's first SETTINGS ACK goes out, the setting hyper reports is the
//! server's.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The client connection preface (RFC 9113, 3.4), which precedes frames.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;

/// An IO that notifies when this side first writes a SETTINGS ACK.
#[derive(Debug)]
pub(crate) struct AckWatch<T> {
    io: T,
    frames: Frames,
    acked: Arc<Notify>,
}

impl<T> AckWatch<T> {
    pub(crate) fn new(io: T) -> (AckWatch<T>, Arc<Notify>) {
        let acked = Arc::new(Notify::new());
        let io = AckWatch {
            io,
            frames: Frames::default(),
            acked: acked.clone(),
        };
        (io, acked)
    }

    fn written<'a>(&mut self, slices: impl IntoIterator<Item = &'a [u8]>, mut count: usize) {
        for slice in slices {
            if count == 0 || self.frames.acked {
                return;
            }
            let taken = slice.len().min(count);
            count -= taken;
            if self.frames.feed(&slice[..taken]) {
                // A stored permit: the waiter may not be waiting yet.
                self.acked.notify_one();
            }
        }
    }
}

/// Where the written bytes are in the frame sequence.
#[derive(Debug)]
struct Frames {
    preface_left: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
    acked: bool,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            preface_left: PREFACE_LEN,
            header: [0; FRAME_HEADER],
            header_len: 0,
            payload_left: 0,
            acked: false,
        }
    }
}

impl Frames {
    /// Follows `bytes`; true when they complete the first SETTINGS ACK.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() && !self.acked {
            let skip = if self.preface_left > 0 {
                &mut self.preface_left
            } else {
                &mut self.payload_left
            };
            if *skip > 0 {
                let n = (*skip).min(bytes.len());
                *skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == FRAME_HEADER {
                self.header_len = 0;
                let [a, b, c, kind, flags, ..] = self.header;
                self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.acked = kind == SETTINGS && flags & ACK != 0;
                if self.acked {
                    return true;
                }
            }
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AckWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AckWatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.written([buf], n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.written(bufs.iter().map(|slice| &slice[..]), n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /// SETTINGS with one entry, ENABLE_PUSH = 0.
    const SETTINGS_FRAME: [u8; 15] = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    const WINDOW_UPDATE: [u8; 13] = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 4, 1, 0, 0, 0, 0];

    fn stream() -> Vec<u8> {
        [PREFACE, &SETTINGS_FRAME, &WINDOW_UPDATE, &SETTINGS_ACK].concat()
    }

    #[test]
    fn the_ack_is_found_behind_the_preface_and_other_frames() {
        let bytes = stream();
        assert_eq!(PREFACE.len(), PREFACE_LEN);
        let mut frames = Frames::default();
        assert!(!frames.feed(&bytes[..bytes.len() - 1]));
        assert!(frames.feed(&bytes[bytes.len() - 1..]));
    }

    #[test]
    fn the_ack_is_found_whatever_the_write_boundaries() {
        let bytes = stream();
        for size in 1..bytes.len() {
            let mut frames = Frames::default();
            let found = bytes
                .chunks(size)
                .filter(|chunk| frames.feed(chunk))
                .count();
            assert_eq!(found, 1, "chunks of {size}");
        }
    }

    #[test]
    fn a_settings_frame_without_ack_or_a_payload_that_looks_like_one_is_not_it() {
        // A PING whose payload holds the bytes of a SETTINGS ACK.
        let ping = [
            [0, 0, 8, 6, 0, 0, 0, 0, 0].as_slice(),
            &[0, 0, 0, 4, 1, 0, 0, 0],
        ]
        .concat();
        let bytes = [PREFACE, &SETTINGS_FRAME, &ping].concat();
        assert!(!Frames::default().feed(&bytes));
    }

    #[test]
    fn only_the_bytes_accepted_count() {
        let (mut io, acked) = AckWatch::new(());
        let bytes = stream();
        // The IO took all but the last byte of a vectored write.
        let (head, tail) = bytes.split_at(30);
        io.written([head, tail], bytes.len() - 1);
        assert!(!io.frames.acked);
        io.written([&bytes[bytes.len() - 1..]], 1);
        assert!(io.frames.acked);
        drop(acked);
    }
}
