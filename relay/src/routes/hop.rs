//! Public requests for names whose peers are on another node: one hop over
//! a kept internal HTTP/2 connection to an owner, which serves them as if
//! they had arrived there.

use std::sync::Arc;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tracing::debug;

use crate::cluster::{HOP, Hop};
use crate::http::headers::{Forwarding, remove_hop_by_hop, set_forwarded};
use crate::http::stall::Stalling;
use crate::http::upgrade;
use crate::http::{BoxError, RelayBody, retry_later, switching, text};
use crate::state::Relay;

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
        return text(StatusCode::BAD_GATEWAY, "this relay is in no cluster");
    };
    let mut request = request;
    let upgrade = upgrade::requested(request.headers());
    let public_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, forwarding);
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .to_owned();
    if let Some(mark) = cluster.mark(&parts.method, &target) {
        parts.headers.insert(HOP, mark);
    }
    if let (Some(upgrade), Some(public)) = (upgrade, public_upgrade) {
        upgrade::restore(&mut parts.headers, upgrade);
        return forward_upgrade(cluster.hop(), parts, public, &owners).await;
    }
    // The owner routes by :authority, so it is the host the public named;
    // the connection goes to the owner all the same.
    let authority = forwarding.host.unwrap_or("localhost").to_owned();
    parts.headers.remove(http::header::HOST);
    let bodiless = body.is_end_stream();
    let body = Stalling::new(body, relay.settings.body_timeout);
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
            None if bodiless => RelayBody::default(),
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
    // with no peer (docs/relay.md, "Statuses"), which a reconnecting device will fix.
    debug!(error = %last, "no owner node answered");
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        "no node that owns this name answered",
        std::time::Duration::from_secs(1),
    )
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
        let handshake = match hop.connect(&uri, b"http/1.1").await {
            Ok(io) => hyper::client::conn::http1::handshake::<_, RelayBody>(io).await,
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
        let mut request = Request::new(RelayBody::default());
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
        upgrade::spawn(public, hyper::upgrade::on(&mut response));
        return switching(response.headers().clone());
    }
    debug!(error = %last, "no owner node took the upgrade");
    text(
        StatusCode::BAD_GATEWAY,
        "no node that owns this name took the upgrade",
    )
}
