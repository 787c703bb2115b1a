use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::body::{Body, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Transposed;
use crate::rewind::Rewind;
use crate::service::IntoHttpService;
use crate::{Error, Protocol};

type Io<T> = TokioIo<Rewind<T>>;

/// Serves a hyper service on transposed connections, with hyper's HTTP/1.1
/// and HTTP/2 server builders inside for tuning.
///
/// The HTTP/1.1 builder starts with keep-alive on and no header-read timeout,
/// because an idle transposed connection is normal: the acceptor may send
/// its next request minutes later. The HTTP/2 builder has tokio's executor
/// and timer, so its keep-alive PING can be turned on.
#[derive(Debug, Clone)]
pub struct Server {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with the defaults described on [`Server`].
    pub fn new() -> Self {
        let mut http1 = http1::Builder::new();
        http1.keep_alive(true).header_read_timeout(None);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        Server { http1, http2 }
    }

    /// Tunes hyper's HTTP/1.1 server builder, used when the handshake chose
    /// HTTP/1.1. Setting a `header_read_timeout` here also limits how long
    /// the connection may sit idle.
    ///
    /// Default is keep-alive on and no header read timeout.
    pub fn http1(mut self, configure: impl FnOnce(&mut http1::Builder)) -> Self {
        configure(&mut self.http1);
        self
    }

    /// Tunes hyper's HTTP/2 server builder, used when the handshake chose
    /// HTTP/2.
    ///
    /// Default is hyper's defaults with tokio's executor and timer.
    pub fn http2(mut self, configure: impl FnOnce(&mut http2::Builder<TokioExecutor>)) -> Self {
        configure(&mut self.http2);
        self
    }

    /// Binds `service` to the transposed connection, with the builder that
    /// matches the negotiated protocol. The returned future must be polled
    /// (awaited or spawned) for requests to be served.
    ///
    /// `service` is a hyper service, or with the `tower` feature a tower
    /// service such as an axum `Router` (see [`IntoHttpService`]).
    pub fn serve_connection<T, K, I, S, B>(
        &self,
        transposed: Transposed<T>,
        service: I,
    ) -> Connection<T, S>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        I: IntoHttpService<K, Service = S>,
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
        TokioExecutor: Http2ServerConnExec<S::Future, B>,
    {
        let service = service.into_http_service();
        let io = TokioIo::new(transposed.io);
        let inner = match transposed.protocol {
            Protocol::Http1 => Inner::Http1(Box::pin(
                self.http1.serve_connection(io, service).with_upgrades(),
            )),
            Protocol::Http2 => Inner::Http2(Box::pin(self.http2.serve_connection(io, service))),
        };
        Connection { inner }
    }
}

impl<T> Transposed<T> {
    /// Serves `service` on this connection with [`Server`]'s defaults: a
    /// hyper service, or with the `tower` feature a tower service such as
    /// an axum `Router`. Use [`Server::serve_connection`] to tune hyper's
    /// builders.
    pub fn serve<K, I, S, B>(self, service: I) -> Connection<T, S>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        I: IntoHttpService<K, Service = S>,
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
        TokioExecutor: Http2ServerConnExec<S::Future, B>,
    {
        Server::new().serve_connection(self, service)
    }
}

/// A future that serves HTTP on a transposed connection until the acceptor
/// closes it, an error occurs, or a graceful shutdown completes.
#[must_use = "futures do nothing unless polled"]
pub struct Connection<T, S>
where
    S: HttpService<Incoming>,
{
    inner: Inner<T, S>,
}

enum Inner<T, S>
where
    S: HttpService<Incoming>,
{
    Http1(Pin<Box<http1::UpgradeableConnection<Io<T>, S>>>),
    Http2(Pin<Box<http2::Connection<Io<T>, S, TokioExecutor>>>),
}

impl<T, S, B> Connection<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    /// Starts a graceful shutdown: no new requests are taken (HTTP/2 sends
    /// `GOAWAY`; HTTP/1.1 closes after the response in flight), requests in
    /// flight finish. Keep polling the connection until it completes.
    pub fn graceful_shutdown(&mut self) {
        match &mut self.inner {
            Inner::Http1(conn) => conn.as_mut().graceful_shutdown(),
            Inner::Http2(conn) => conn.as_mut().graceful_shutdown(),
        }
    }
}

impl<T, S> Connection<T, S>
where
    S: HttpService<Incoming>,
{
    /// The protocol this connection serves.
    pub fn protocol(&self) -> Protocol {
        match self.inner {
            Inner::Http1(_) => Protocol::Http1,
            Inner::Http2(_) => Protocol::Http2,
        }
    }
}

impl<T, S, B> Future for Connection<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match &mut self.get_mut().inner {
            Inner::Http1(conn) => ready!(conn.as_mut().poll(cx)),
            Inner::Http2(conn) => ready!(conn.as_mut().poll(cx)),
        };
        Poll::Ready(result.map_err(Error::from))
    }
}

impl<T, S> fmt::Debug for Connection<T, S>
where
    S: HttpService<Incoming>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}
