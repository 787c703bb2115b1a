//! TCP names across a cluster (docs/relay.md, "TCP tunnels"): a node
//! without a peer of a TCP name listens on its port all the same and
//! carries each visitor to an owner node as a marked `CONNECT` over the
//! hop, where the owner opens a stream to its peer as for its own
//! visitors.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use super::tcp::{ACCEPT_PAUSE, Visit, admit, visitor_fields};
use crate::cluster::HOP;
use crate::http::headers::X_REAL_IP;
use crate::http::{RelayBody, text};
use crate::state::Relay;

/// How often the forwarded ports are checked against the table when it
/// does not change: a port a local listener was still closing is bound
/// at the next check.
const RECHECK: Duration = Duration::from_secs(1);

/// How many owners a visitor is offered to before it is closed: a stale
/// one (gone since the watch last spoke) costs one more try.
const OWNER_TRIES: usize = 2;

/// Keeps a listener on the port of every TCP name whose peers are all on
/// other nodes, and none on the others, while the relay lives.
pub(crate) async fn forward_ports(relay: Weak<Relay>) {
    loop {
        let Some(strong) = relay.upgrade() else {
            return;
        };
        let Some(cluster) = strong.cluster.get().cloned() else {
            return;
        };
        let range = strong.settings.tcp.ports;
        let wanted: Vec<(u16, String)> = (cluster.ports_elsewhere().into_iter())
            .filter(|(port, _)| range.is_some_and(|range| range.contains(*port)))
            .collect();
        strong
            .ports
            .retain_forwarded(|port, name| wanted.iter().any(|(p, n)| *p == port && n == name));
        for (port, name) in wanted {
            if strong.ports.is_held(port) || strong.ports.is_forwarded(port) {
                continue;
            }
            let address = (strong.settings.tcp.address, port);
            let Ok(listener) = TcpListener::bind(address).await else {
                debug!(port, %name, "a forwarded TCP port is not free yet");
                continue;
            };
            let open = Arc::default();
            let accepting = accept(relay.clone(), name.clone(), port, listener, open);
            strong.ports.forward(port, &name, tokio::spawn(accepting));
        }
        drop(strong);
        cluster.changed_within(RECHECK).await;
    }
}

/// Takes the visitors of `name`'s port on this node, each bounded per
/// client address and per name, and carries each to an owner node.
async fn accept(
    relay: Weak<Relay>,
    name: String,
    port: u16,
    listener: TcpListener,
    open: Arc<AtomicUsize>,
) {
    loop {
        let Ok((visitor, client)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_PAUSE).await;
            continue;
        };
        let Some(relay) = relay.upgrade() else { return };
        let Some(held) = admit(&relay, client, &open) else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let _held = held;
            hop(&relay, &name, port, visitor, client).await;
        });
    }
}

/// Carries one visitor to the first owner node that opens a stream for
/// it; closes it when none does.
async fn hop(relay: &Relay, name: &str, port: u16, visitor: TcpStream, client: SocketAddr) {
    let _ = visitor.set_nodelay(true);
    let Some(cluster) = relay.cluster.get() else {
        return;
    };
    for owner in cluster.owners_elsewhere(name).iter().take(OWNER_TRIES) {
        let Ok(node) = owner.parse::<Uri>() else {
            continue;
        };
        let mut request = Request::new(Empty::new().map_err(|never| match never {}).boxed());
        *request.method_mut() = Method::CONNECT;
        let Ok(authority) = format!("{name}:{port}").parse::<Uri>() else {
            return;
        };
        *request.uri_mut() = authority;
        // A CONNECT has no path: the mark signs "/" as its target. The
        // owner takes a marked request's word for the visitor's address.
        if let Some(mark) = cluster.mark(&Method::CONNECT, "/") {
            request.headers_mut().insert(HOP, mark);
        }
        request.headers_mut().extend(visitor_fields(client.ip()));
        // An owner that stopped answering (frozen, or its streams all
        // taken) has the open timeout to hand the stream over, as a
        // device has.
        let opened = async {
            let (response, carried) = cluster.hop().send_long(&node, request).await?;
            if !response.status().is_success() {
                return Err(format!("{}", response.status()));
            }
            let upgraded = hyper::upgrade::on(response)
                .await
                .map_err(|error| error.to_string())?;
            Ok((upgraded, carried))
        };
        let (upgraded, _carried) =
            match tokio::time::timeout(relay.settings.tcp.open_timeout, opened).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(error)) => {
                    debug!(%name, %owner, %error, "an owner did not take a TCP visitor");
                    continue;
                }
                Err(_) => {
                    debug!(%name, %owner, "an owner did not open a TCP visitor's stream in time");
                    continue;
                }
            };
        let spliced = ptth::connect::Splice::new()
            .run(visitor, TokioIo::new(upgraded))
            .await;
        info!(%name, %client, %owner, up = spliced.a_to_b, down = spliced.b_to_a, "tcp hop");
        return;
    }
    relay.metrics.tcp_visitor("no-peer");
}

/// Serves a visitor another node carried here (`CONNECT NAME:PORT` with a
/// valid hop mark): a stream to a local peer of the name, then `200`
/// and the bytes both ways; `503` when no local peer takes it.
pub(crate) async fn hopped(
    relay: &Arc<Relay>,
    mut request: Request<Incoming>,
    client: SocketAddr,
) -> Response<RelayBody> {
    let Some(authority) = request.uri().authority() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT NAME:PORT");
    };
    let (name, Some(port)) = (authority.host().to_owned(), authority.port_u16()) else {
        return text(StatusCode::BAD_REQUEST, "CONNECT NAME:PORT");
    };
    let Some(pool) = relay.names.lookup(&name).filter(|pool| !pool.is_empty()) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no peer of this name here");
    };
    // The forwarding node's word, which its mark vouches for.
    let visitor = (request.headers().get(X_REAL_IP))
        .and_then(|address| address.to_str().ok()?.parse().ok())
        .unwrap_or(client.ip());
    let visit = Visit {
        relay: relay.clone(),
        pool,
        name,
        port,
        client: visitor,
        _slot: None,
        _counted: None,
    };
    let Some(opened) = visit.open().await else {
        return text(StatusCode::BAD_GATEWAY, "the peer did not open a stream");
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            visit.splice(TokioIo::new(upgraded), opened).await;
        }
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}
