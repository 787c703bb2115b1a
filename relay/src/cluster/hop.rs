//! The connections between nodes, which carry public requests for names
//! whose peers are on another node (the handler is `routes::hop`), and
//! the field that marks a request as forwarded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::HeaderName;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;

use crate::http::RelayBody;

/// Marks a request forwarded by a node, with an HMAC under the cluster's
/// secret; a request that carries a valid mark is served where it lands
/// and never forwarded again (one hop at most). A public client's is
/// removed.
pub const HOP: HeaderName = HeaderName::from_static("ptth-relay-hop");

/// How many long streams (TCP visitors) a hop connection carries before
/// the next one opens another: an owner's HTTP/2 server takes 200
/// streams at once on a connection (hyper's default), and requests need
/// some of them.
const LONG_STREAMS: usize = 100;

/// The connections between nodes: HTTP/2 connections to each owner for
/// requests and TCP visitors (h2c, or h2 by ALPN for `https://` nodes),
/// kept and shared, as many as the visitors need; and for upgrades an
/// HTTP/1.1 connection each.
pub(crate) struct Hop {
    tls: Option<Arc<rustls::ClientConfig>>,
    connections: Mutex<HashMap<String, Vec<Connection>>>,
}

/// A kept HTTP/2 connection to a node, and the long streams it carries:
/// each holds a clone of `long`.
struct Connection {
    sender: http2::SendRequest<RelayBody>,
    long: Arc<()>,
}

/// A long stream's place on a hop connection, given back when dropped.
pub(crate) struct Carried {
    _place: Arc<()>,
}

impl std::fmt::Debug for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hop")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Hop {
    pub(crate) fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Hop {
        Hop {
            tls,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` on a connection to the node at `uri`, opening one
    /// first if there is none or they all closed.
    pub(crate) async fn send(
        &self,
        uri: &Uri,
        request: Request<RelayBody>,
    ) -> Result<Response<Incoming>, String> {
        let (sender, _) = self.pick(uri, usize::MAX).await?;
        Self::send_on(sender, request).await
    }

    /// Sends `request`, whose stream stays open long (a TCP visitor's
    /// `CONNECT`), on a connection to the node at `uri` that carries
    /// fewer than [`LONG_STREAMS`] such streams, opening one if none
    /// does. The stream's place is held until the [`Carried`] drops.
    pub(crate) async fn send_long(
        &self,
        uri: &Uri,
        request: Request<RelayBody>,
    ) -> Result<(Response<Incoming>, Carried), String> {
        let (sender, place) = self.pick(uri, LONG_STREAMS).await?;
        let response = Self::send_on(sender, request).await?;
        Ok((response, Carried { _place: place }))
    }

    /// An open connection to the node at `uri` with fewer than `long`
    /// long streams, and a place on it; a new one when there is none.
    async fn pick(
        &self,
        uri: &Uri,
        long: usize,
    ) -> Result<(http2::SendRequest<RelayBody>, Arc<()>), String> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        {
            let mut connections = self.connections.lock().expect("the hop's connections");
            let open = connections.entry(key.clone()).or_default();
            open.retain(|connection| !connection.sender.is_closed());
            // The count is the clones that places hold, besides `long`.
            let roomy = open
                .iter()
                .find(|connection| Arc::strong_count(&connection.long) <= long);
            if let Some(connection) = roomy {
                return Ok((connection.sender.clone(), Arc::clone(&connection.long)));
            }
        }
        let io = self.connect(uri, b"h2").await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        let (sender, connection) = builder
            .handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        let long = Arc::new(());
        let place = Arc::clone(&long);
        (self.connections.lock().expect("the hop's connections"))
            .entry(key)
            .or_default()
            .push(Connection {
                sender: sender.clone(),
                long,
            });
        Ok((sender, place))
    }

    async fn send_on(
        mut sender: http2::SendRequest<RelayBody>,
        request: Request<RelayBody>,
    ) -> Result<Response<Incoming>, String> {
        sender.ready().await.map_err(|error| error.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())
    }

    /// A connection of its own to the node at `uri`, over TLS for `https`.
    pub(crate) async fn connect(
        &self,
        uri: &Uri,
        alpn: &[u8],
    ) -> Result<TokioIo<Box<dyn Stream>>, String> {
        let authority = uri.authority().ok_or("a node URL without a host")?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let tcp = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|error| error.to_string())?;
        let _ = tcp.set_nodelay(true);
        if uri.scheme_str() != Some("https") {
            return Ok(TokioIo::new(Box::new(tcp)));
        }
        let mut config = self
            .tls
            .as_deref()
            .cloned()
            .ok_or("an https node, and no TLS roots for the cluster")?;
        config.alpn_protocols = vec![alpn.to_vec()];
        let name =
            ServerName::try_from(authority.host().to_owned()).map_err(|error| error.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|error| error.to_string())?;
        Ok(TokioIo::new(Box::new(tls)))
    }
}

/// A byte stream to another node, plain or TLS.
pub(crate) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}
