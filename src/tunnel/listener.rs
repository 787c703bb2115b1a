//! The tunnel as an `axum::serve::Listener`: each connection it opens is
//! "accepted", so `axum::serve(listener, router)` serves through the relay
//! with the tunnel's reconnects and liveness.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::link::Link;
use super::pool::{Dialed, Runner};
use super::watched::Watched;
use super::{Builder, Handle, Tunnel};
use crate::rewind::Rewind;

impl Builder {
    /// The tunnel as a listener for `axum::serve`; serve it with
    /// [`ptth::axum::serve`](crate::axum::serve) to learn how the tunnel
    /// ended, which `axum::serve` cannot return:
    ///
    /// ```no_run
    /// # async fn run() {
    /// let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
    /// let listener = ptth::tunnel::Builder::new("http://relay.example/reversehttp/lamp").listen();
    /// let handle = listener.handle();
    /// axum::serve(listener, router)
    ///     .with_graceful_shutdown(async move { handle.stopping().await })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    ///
    /// axum serves the connections, so the tunnel cannot see their
    /// requests or set hyper's HTTP/2 PINGs: the idle limit
    /// ([`idle_timeout`](Builder::idle_timeout)) applies to every
    /// connection, HTTP/2 ones included, and counts only bytes. A handler
    /// that stays silent for longer than that loses its connection; serve
    /// the router with [`Builder::serve`] instead, which tracks requests.
    ///
    /// The tunnel starts on the first `accept`, inside the runtime. When it
    /// stops (after [`Handle::shutdown`] or an error retrying cannot fix,
    /// found in [`Handle::status`] and [`Handle::outcome`]) `accept` waits
    /// forever, so pass [`Handle::stopping`] to axum's graceful shutdown
    /// as above (`ptth::axum::serve` does): axum then drains the
    /// connections, and the tunnel waits for them up to its
    /// [`grace_period`](Builder::grace_period).
    pub fn listen(self) -> Listener {
        let (sender, accepted) = mpsc::channel(1);
        let (config, shared) = match self.config(true) {
            Ok(parts) => parts,
            Err(error) => {
                return Listener::new(Tunnel::failed(error), accepted);
            }
        };
        let grace = config.grace_period;
        let runner: Runner = Box::new(move |dialed: Dialed, mut stop| {
            let sender = sender.clone();
            Box::pin(async move {
                let (closed, mut dropped) = oneshot::channel();
                let io = TunnelIo {
                    io: dialed.transposed.into_rewind(),
                    _closed: closed,
                };
                if sender.send((io, dialed.peer)).await.is_err() {
                    return Ok(());
                }
                tokio::select! {
                    _ = &mut dropped => return Ok(()),
                    _ = stop.wait_for(|stop| *stop) => {}
                }
                // axum drains the connection; the tunnel only waits for it.
                let _ = tokio::time::timeout(grace, dropped).await;
                Ok(())
            })
        });
        Listener::new(Tunnel::start(config, shared, runner), accepted)
    }
}

/// A tunnel that hands its connections to `axum::serve`; made by
/// [`Builder::listen`].
#[derive(Debug)]
pub struct Listener {
    handle: Handle,
    tunnel: Option<Tunnel>,
    accepted: mpsc::Receiver<(TunnelIo, SocketAddr)>,
    local: Option<SocketAddr>,
}

impl Listener {
    fn new(tunnel: Tunnel, accepted: mpsc::Receiver<(TunnelIo, SocketAddr)>) -> Self {
        Listener {
            handle: tunnel.handle(),
            tunnel: Some(tunnel),
            accepted,
            local: None,
        }
    }

    /// A handle to observe and stop the tunnel.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

/// axum drops its listener when a graceful shutdown begins, while the
/// connections it accepted still drain; so dropping stops the tunnel
/// gently instead of aborting it.
impl Drop for Listener {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl axum::serve::Listener for Listener {
    type Io = TunnelIo;
    /// The relay's address on the connection.
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TunnelIo, SocketAddr) {
        if let Some(tunnel) = self.tunnel.take() {
            // Its outcome is in the handle's status.
            tokio::spawn(tunnel);
        }
        match self.accepted.recv().await {
            Some((io, peer)) => {
                self.local = io.io.get_ref().get_ref().local_addr();
                (io, peer)
            }
            None => std::future::pending().await,
        }
    }

    /// The local address of the connection accepted last.
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local.ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

/// One tunnel connection as axum serves it; the tunnel replaces it once it
/// is dropped.
#[derive(Debug)]
pub struct TunnelIo {
    io: Rewind<Watched<Link>>,
    _closed: oneshot::Sender<()>,
}

impl AsyncRead for TunnelIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
