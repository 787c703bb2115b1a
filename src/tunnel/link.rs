//! What one tunnel slot runs on: a connection of its own (the HTTP/1.1
//! setup), or a channel on a shared HTTP/2 connection to the relay (the
//! HTTP/2 setup), which is kept per relay URL and dialled again once it
//! closes.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Error;
use crate::initiator::{self, Channel, Channels, Stream, Transposed};

/// The IO of one tunnel slot; a channel keeps this side's address on the
/// connection it runs in, for the axum listener.
#[derive(Debug)]
pub(crate) enum Link {
    Stream(Stream),
    Channel(
        Channel,
        #[cfg_attr(not(feature = "axum"), allow(dead_code))] Option<SocketAddr>,
    ),
}

impl Link {
    /// This side's address on the socket underneath.
    #[cfg(feature = "axum")]
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Link::Stream(stream) => stream.tcp_stream().local_addr().ok(),
            Link::Channel(_, local) => *local,
        }
    }
}

/// The HTTP/2 connections channels are opened on, one per relay URL.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<Uri, Channels>>,
}

impl Sessions {
    /// A channel to `url`: on its connection when one is open, else on a
    /// new one. Returns the relay's address too.
    pub(super) async fn open(
        &self,
        initiator: &initiator::Builder,
        url: &Uri,
    ) -> Result<(Transposed<Link>, SocketAddr), Error> {
        let kept = self
            .open
            .lock()
            .expect("the tunnel's HTTP/2 connections")
            .get(url)
            .filter(|channels| !channels.is_closed())
            .cloned();
        let reused = kept.is_some();
        let channels = match kept {
            Some(channels) => channels,
            None => {
                let channels = initiator.connect_http2(url).await?;
                self.open
                    .lock()
                    .expect("the tunnel's HTTP/2 connections")
                    .insert(url.clone(), channels.clone());
                channels
            }
        };
        let local = channels.local_addr();
        let peer = channels
            .peer_addr()
            .ok_or_else(|| Error::from(io::Error::from(io::ErrorKind::NotConnected)))?;
        let transposed = match channels.open().await {
            Ok(transposed) => transposed,
            Err(error) => {
                // A connection that could not open a channel (frozen, or
                // refused by a relay that changed) is not tried again.
                if reused {
                    self.open
                        .lock()
                        .expect("the tunnel's HTTP/2 connections")
                        .remove(url);
                }
                return Err(error);
            }
        };
        Ok((
            transposed.map_io(|channel| Link::Channel(channel, local)),
            peer,
        ))
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Stream(io) => Pin::new(io).poll_read(cx, buf),
            Link::Channel(io, _) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Stream(io) => Pin::new(io).poll_write(cx, buf),
            Link::Channel(io, _) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Stream(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Link::Channel(io, _) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Link::Stream(io) => io.is_write_vectored(),
            Link::Channel(io, _) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Stream(io) => Pin::new(io).poll_flush(cx),
            Link::Channel(io, _) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Stream(io) => Pin::new(io).poll_shutdown(cx),
            Link::Channel(io, _) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
