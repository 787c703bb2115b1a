//! The listener: one address for the public and the peers, plain or TLS,
//! every connection served by hyper with upgrades on, and a drain on
//! shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::http::replay::Replay;
use crate::routes::Service;
use crate::state::Relay;
use crate::tls::Certificates;

/// What every connection is served with.
struct Serving {
    builder: auto::Builder<TokioExecutor>,
    tls: Option<Certificates>,
    head_timeout: Duration,
}

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    relay: Arc<Relay>,
    tls: Option<Certificates>,
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

    /// Serves over TLS with `certificates` (or a `TlsAcceptor`). Default
    /// is plain TCP.
    pub fn tls(mut self, certificates: impl Into<Certificates>) -> Self {
        self.tls = Some(certificates.into());
        self
    }

    /// How long a shutdown waits for requests in flight. Default is 30 s.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a client may take to send a request head (or finish a TLS
    /// handshake), counted from when it connects: slow or silent clients
    /// cannot hold a connection for free. Default is 30 s.
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
            .header_read_timeout(self.head_timeout)
            // Names are case-insensitive, but clients that exist are not:
            // ReverseHttp's Java client finds `Link` only spelt so
            // (docs/relay.md, "Long-polling: browsers and plain HTTP
            // clients"). A peer's own spelling is not kept either: most
            // peers write lower case, and HTTP/2 and long-poll replies
            // carry none.
            .title_case_headers(true);
        // Peers may set up their channels over HTTP/2 (extended CONNECT).
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let serving = Arc::new(Serving {
            builder,
            tls: self.tls.clone(),
            head_timeout: self.head_timeout,
        });
        let conns = self.relay.connections.clone();
        let sweeper = tokio::spawn(Relay::sweep_names(
            Arc::downgrade(&self.relay),
            crate::names::LEASE_FLOOR / 3,
        ));
        // In a cluster, TCP names with peers on other nodes are listened
        // for here too (docs/relay.md, "TCP tunnels").
        #[cfg(feature = "cluster")]
        let forwarder = tokio::spawn(crate::routes::forward_ports(Arc::downgrade(&self.relay)));
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
            let Some(admitted) = conns.take(client.ip()) else {
                debug!(%client, "connection refused: too many from this client or in all");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let service = Service::new(self.relay.clone(), client, self.tls.is_some());
            let serving = serving.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                serve(&serving, tcp, client, service, watcher).await;
                drop(admitted);
            });
        }
        drop(self.listener);
        sweeper.abort();
        #[cfg(feature = "cluster")]
        forwarder.abort();
        info!("draining connections");
        self.relay.drain();
        if tokio::time::timeout(self.grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(grace = ?self.grace, "connections still open after the grace period");
        }
    }
}

/// Serves one connection: its TLS handshake, then hyper, once its first
/// bytes came within the head timeout.
async fn serve(
    serving: &Serving,
    tcp: TcpStream,
    client: SocketAddr,
    service: Service,
    watcher: Watcher,
) {
    let served = match &serving.tls {
        None => serve_io(serving, tcp, service, watcher).await,
        Some(certificates) => {
            let handshake = tokio::time::timeout(serving.head_timeout, certificates.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => serve_io(serving, stream, service, watcher).await,
                Ok(Err(error)) => return debug!(%client, %error, "TLS handshake failed"),
                Err(_) => return debug!(%client, "TLS handshake timed out"),
            }
        }
    };
    if let Err(error) = served {
        debug!(%client, %error, "connection ended with an error");
    }
}

async fn serve_io<I>(
    serving: &Serving,
    mut io: I,
    service: Service,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper-util reads the first bytes to tell HTTP/2 from HTTP/1.1 with
    // no time bound, and hyper's head timeout starts only after: a client
    // that connects and sends nothing would hold the connection for ever.
    let first = tokio::time::timeout(serving.head_timeout, first_bytes(&mut io));
    let first = match first.await {
        Ok(first) => first?,
        Err(_) => return Err("no request in time".into()),
    };
    let io = TokioIo::new(Replay::new(io, first));
    let conn = serving.builder.serve_connection_with_upgrades(io, service);
    watcher.watch(conn.into_owned()).await
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a connection's first bytes: the preface's length, or up to the
/// first byte that departs from it, which is enough to tell the versions
/// apart.
async fn first_bytes(io: &mut (impl AsyncRead + Unpin)) -> io::Result<Bytes> {
    let mut read = [0u8; PREFACE.len()];
    let mut len = 0;
    while len < read.len() && PREFACE.starts_with(&read[..len]) {
        let n = io.read(&mut read[len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
    }
    Ok(Bytes::copy_from_slice(&read[..len]))
}
