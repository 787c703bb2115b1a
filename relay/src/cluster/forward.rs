//! Public requests for names whose peers are on another node: one hop over
//! a kept internal HTTP/2 connection to an owner, which serves them as if
//! they had arrived there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::HeaderName;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tracing::debug;

use crate::headers::{Forwarding, remove_hop_by_hop, set_forwarded};
use crate::pool::{BoxError, PeerBody};
use crate::relay::{Relay, RelayBody, status};

/// Marks a request forwarded by a node, with an HMAC under the cluster's
/// secret; a request that carries a valid mark is served where it lands
/// and never forwarded again (one hop at most). A public client's is
/// removed.
pub const HOP: HeaderName = HeaderName::from_static("ptth-relay-hop");

/// Whether `request` carries a valid hop mark of this cluster.
pub(crate) fn from_node<B>(cluster: &super::Cluster, request: &Request<B>) -> bool {
    let Some(mark) = request.headers().get(HOP) else {
        return false;
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    super::mark::verify(&cluster.inner.secret, mark, request.method(), target)
}

/// The owners of `name` on other nodes, when this node should forward:
/// no local peer, and a cluster that knows others. The caller checks that
/// the request has not hopped yet.
pub(crate) fn owners(relay: &Relay, name: &str) -> Vec<String> {
    let Some(cluster) = relay.cluster.get() else {
        return Vec::new();
    };
    if relay
        .names
        .lookup(name)
        .is_some_and(|pool| !pool.is_empty())
    {
        return Vec::new();
    }
    cluster.owners_elsewhere(name)
}

/// The connections between nodes: one HTTP/2 connection per owner for
/// requests (h2c, or h2 by ALPN for `https://` nodes), kept and shared,
/// and for upgrades an HTTP/1.1 connection each.
pub(crate) struct Hop {
    tls: Option<Arc<rustls::ClientConfig>>,
    senders: Mutex<HashMap<String, http2::SendRequest<PeerBody>>>,
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
    async fn send(
        &self,
        uri: &Uri,
        request: Request<PeerBody>,
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
                let io = connect(self, uri, b"h2").await?;
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
}

/// Sends `request` to the first owner that answers; a stale owner (gone
/// since the watch last spoke) costs one more try, for a request without
/// a body, then 503 as for a name with no peer.
pub(crate) async fn forward(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    owners: Vec<String>,
    forwarding: Forwarding<'_>,
) -> Response<RelayBody> {
    let Some(cluster) = relay.cluster.get() else {
        return status(StatusCode::BAD_GATEWAY, "this relay is in no cluster");
    };
    let mut request = request;
    let upgrade = crate::bridge::requested(request.headers());
    let public_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, forwarding);
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .to_owned();
    let secret = &cluster.inner.secret;
    if let Some(mark) = super::mark::sign(secret, cluster.node(), &parts.method, &target) {
        parts.headers.insert(HOP, mark);
    }
    if let (Some(upgrade), Some(public)) = (upgrade, public_upgrade) {
        crate::bridge::restore(&mut parts.headers, upgrade);
        return forward_upgrade(cluster.hop(), parts, public, &owners).await;
    }
    // The owner routes by :authority, so it is the host the public named;
    // the connection goes to the owner all the same.
    let authority = forwarding.host.unwrap_or("localhost").to_owned();
    parts.headers.remove(http::header::HOST);
    let bodiless = body.is_end_stream();
    let body = crate::stall::Stalling::new(body, relay.settings.body_timeout);
    let mut body = Some(body.boxed());
    let mut last = String::new();
    let tries = owners.len().min(2);
    for (tried, owner) in owners.iter().take(tries).enumerate() {
        let Ok(node) = owner.parse::<Uri>() else {
            continue;
        };
        let scheme = node.scheme_str().unwrap_or("http");
        let Ok(uri) = format!("{scheme}://{authority}{target}").parse::<Uri>() else {
            continue;
        };
        let body = match body.take() {
            Some(body) => body,
            None if bodiless => PeerBody::default(),
            None => break,
        };
        // Copied only when a second owner may need them.
        let headers = if tried + 1 < tries && bodiless {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        match cluster.hop().send(&node, request).await {
            Ok(response) => {
                let (mut head, body) = response.into_parts();
                remove_hop_by_hop(&mut head.headers);
                return Response::from_parts(head, body.map_err(BoxError::from).boxed());
            }
            Err(error) => {
                debug!(%owner, %error, "an owner node did not answer");
                last = error;
            }
        }
    }
    // The owners the table named are gone: for the public that is a name
    // with no peer (RELAY.md), which a reconnecting device will fix.
    debug!(error = %last, "no owner node answered");
    let mut response = status(
        StatusCode::SERVICE_UNAVAILABLE,
        "no node that owns this name answered",
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// An upgrade crosses the hop on a connection of its own, in HTTP/1.1: the
/// owner switches it like any public upgrade, and the two switched streams
/// are joined here.
async fn forward_upgrade(
    hop: &Hop,
    parts: http::request::Parts,
    public: hyper::upgrade::OnUpgrade,
    owners: &[String],
) -> Response<RelayBody> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .to_owned();
    let mut last = String::new();
    for owner in owners.iter().take(2) {
        let Ok(uri) = owner.parse::<Uri>() else {
            continue;
        };
        let handshake = match connect(hop, &uri, b"http/1.1").await {
            Ok(io) => hyper::client::conn::http1::handshake::<_, PeerBody>(io).await,
            Err(error) => {
                last = error;
                continue;
            }
        };
        let (mut sender, connection) = match handshake {
            Ok(both) => both,
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        tokio::spawn(connection.with_upgrades());
        let mut request = Request::new(PeerBody::default());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = target.parse().unwrap_or_default();
        *request.headers_mut() = parts.headers.clone();
        let mut response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (head, body) = response.into_parts();
            return Response::from_parts(head, body.map_err(BoxError::from).boxed());
        }
        crate::bridge::spawn(public, hyper::upgrade::on(&mut response));
        let mut switching = Response::new(crate::relay::full(bytes::Bytes::new()));
        *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *switching.headers_mut() = response.headers().clone();
        return switching;
    }
    debug!(error = %last, "no owner node took the upgrade");
    status(
        StatusCode::BAD_GATEWAY,
        "no node that owns this name took the upgrade",
    )
}

/// A connection of its own to the node at `uri`, over TLS for `https`.
async fn connect(hop: &Hop, uri: &Uri, alpn: &[u8]) -> Result<TokioIo<Box<dyn Stream>>, String> {
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
    let mut config = hop
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

/// A byte stream to another node, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}
