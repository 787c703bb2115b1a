//! Public requests for names whose peers are on another node: one hop over
//! a pooled internal HTTP/2 connection to an owner, which serves them as if
//! they had arrived there.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::header::HeaderName;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::debug;

use crate::headers::{add_forwarded, remove_hop_by_hop};
use crate::pool::{BoxError, PeerBody};
use crate::relay::{Relay, RelayBody, status};

/// Marks a request forwarded by a node, naming it; a request that carries
/// it is served where it lands and never forwarded again (one hop at most).
pub const HOP: HeaderName = HeaderName::from_static("ptth-relay-hop");

/// The owners of `name` on other nodes, when this node should forward:
/// no local peer, a cluster that knows others, and a request that has not
/// hopped yet.
pub(crate) fn owners(relay: &Relay, name: &str, request: &Request<Incoming>) -> Vec<String> {
    let Some(cluster) = relay.cluster.get() else {
        return Vec::new();
    };
    if request.headers().contains_key(HOP) {
        return Vec::new();
    }
    if relay
        .names
        .lookup(name)
        .is_some_and(|pool| !pool.is_empty())
    {
        return Vec::new();
    }
    cluster.owners_elsewhere(name)
}

fn client() -> &'static Client<HttpConnector, PeerBody> {
    static CLIENT: OnceLock<Client<HttpConnector, PeerBody>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // Without TCP_NODELAY, small requests multiplexed on the hop wait
        // out delayed ACKs: p99 went from 3 ms to 30 ms.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector)
    })
}

/// Sends `request` to the first owner that answers; a stale owner (gone
/// since the watch last spoke) costs one more try, for a request without
/// a body, then 502.
pub(crate) async fn forward(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    owners: Vec<String>,
    client_addr: SocketAddr,
) -> Response<RelayBody> {
    let Some(cluster) = relay.cluster.get() else {
        return status(StatusCode::BAD_GATEWAY, "this relay is in no cluster");
    };
    let mut request = request;
    let upgrade = crate::bridge::requested(request.headers());
    let public_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, client_addr, relay.settings.tls);
    if let Ok(node) = HeaderValue::from_str(cluster.node()) {
        parts.headers.insert(HOP, node);
    }
    if let (Some(upgrade), Some(public)) = (upgrade, public_upgrade) {
        crate::bridge::restore(&mut parts.headers, upgrade);
        return forward_upgrade(parts, public, &owners).await;
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .to_owned();
    let bodiless = body.is_end_stream();
    let mut body = Some(body.map_err(BoxError::from).boxed());
    let mut last = String::new();
    for owner in owners.iter().take(2) {
        let Ok(uri) = format!("{}{target}", owner.trim_end_matches('/')).parse::<Uri>() else {
            continue;
        };
        let body = match body.take() {
            Some(body) => body,
            None if bodiless => PeerBody::default(),
            None => break,
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = parts.headers.clone();
        match client().request(request).await {
            Ok(response) => {
                let (mut head, body) = response.into_parts();
                remove_hop_by_hop(&mut head.headers);
                return Response::from_parts(head, body.map_err(BoxError::from).boxed());
            }
            Err(error) => {
                debug!(%owner, %error, "an owner node did not answer");
                last = error.to_string();
            }
        }
    }
    status(
        StatusCode::BAD_GATEWAY,
        &format!("no node that owns this name answered: {last}"),
    )
}

/// An upgrade crosses the hop on a connection of its own, in HTTP/1.1: the
/// owner switches it like any public upgrade, and the two switched streams
/// are joined here.
async fn forward_upgrade(
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
        let Some(authority) = owner
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.authority().cloned())
        else {
            continue;
        };
        let tcp = match tokio::net::TcpStream::connect(authority.as_str()).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                tcp
            }
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        let handshake = hyper::client::conn::http1::handshake::<_, PeerBody>(TokioIo::new(tcp));
        let (mut sender, connection) = match handshake.await {
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
    status(
        StatusCode::BAD_GATEWAY,
        &format!("no node that owns this name took the upgrade: {last}"),
    )
}
