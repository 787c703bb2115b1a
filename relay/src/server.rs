//! The listener: one address for the public and the peers, plain or TLS,
//! every connection served by hyper with upgrades on, and a drain on
//! shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::relay::Relay;

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    relay: Arc<Relay>,
    tls: Option<TlsAcceptor>,
    grace: Duration,
    head_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("grace", &self.grace)
            .field("head_timeout", &self.head_timeout)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` for `relay`.
    pub async fn bind(addr: SocketAddr, relay: Arc<Relay>) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr).await?,
            relay,
            tls: None,
            grace: Duration::from_secs(30),
            head_timeout: Duration::from_secs(30),
        })
    }

    /// Serves over TLS with `acceptor`. Default is plain TCP.
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// How long a shutdown waits for requests in flight. Default is 30 s.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a client may take to send a request head (or finish a TLS
    /// handshake): slow clients cannot hold a connection for free. Default
    /// is 30 s.
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// The address bound, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets
    /// connections finish their requests within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.head_timeout);
        // Peers may set up their channels over HTTP/2 (extended CONNECT).
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let builder = Arc::new(builder);
        let sweeper = tokio::spawn(Relay::sweep_names(
            Arc::downgrade(&self.relay),
            crate::names::LEASE_FLOOR / 3,
        ));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, client) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Running out of descriptors must not end the relay.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let service = self.relay.service(client);
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            let head_timeout = self.head_timeout;
            tokio::spawn(async move {
                let served = match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(head_timeout, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    return debug!(%client, %error, "TLS handshake failed");
                                }
                                Err(_) => return debug!(%client, "TLS handshake timed out"),
                            };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                };
                if let Err(error) = served {
                    debug!(%client, %error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        sweeper.abort();
        info!("draining connections");
        if tokio::time::timeout(self.grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(grace = ?self.grace, "connections still open after the grace period");
        }
    }
}
