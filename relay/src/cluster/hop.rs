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

/// The connections between nodes: one HTTP/2 connection per owner for
/// requests (h2c, or h2 by ALPN for `https://` nodes), kept and shared,
/// and for upgrades an HTTP/1.1 connection each.
pub(crate) struct Hop {
    tls: Option<Arc<rustls::ClientConfig>>,
    senders: Mutex<HashMap<String, http2::SendRequest<RelayBody>>>,
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
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` on the connection to the node at `uri`, opening it
    /// first if there is none or it closed.
    pub(crate) async fn send(
        &self,
        uri: &Uri,
        request: Request<RelayBody>,
    ) -> Result<Response<Incoming>, String> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let cached = self
            .senders
            .lock()
            .expect("the hop's connections")
            .get(&key)
            .filter(|sender| !sender.is_closed())
            .cloned();
        let mut sender = match cached {
            Some(sender) => sender,
            None => {
                let io = self.connect(uri, b"h2").await?;
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder.timer(TokioTimer::new());
                let (sender, connection) = builder
                    .handshake(io)
                    .await
                    .map_err(|error| error.to_string())?;
                tokio::spawn(connection);
                self.senders
                    .lock()
                    .expect("the hop's connections")
                    .insert(key, sender.clone());
                sender
            }
        };
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
