//! The one hyper service that takes both the public's requests and the
//! peers' claims, and the only place that names every handler: the
//! relay's own files, PTTH claims and long-poll clients under the access
//! path, and everything else for a name's peers.

mod access;
mod assets;
mod claim;
#[cfg(feature = "cluster")]
mod hop;
mod longpoll;
mod public;
mod tcp;
#[cfg(feature = "cluster")]
mod tcp_hop;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

pub(crate) use access::Client;
#[cfg(feature = "cluster")]
pub(crate) use tcp_hop::forward_ports;

use crate::http::RelayBody;
use crate::state::Relay;

/// The relay's hyper service for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    relay: Arc<Relay>,
    client: Client,
}

impl Service {
    /// The service for a connection from `addr`, over TLS or not.
    pub(crate) fn new(relay: Arc<Relay>, addr: SocketAddr, tls: bool) -> Self {
        Service {
            relay,
            client: Client { addr, tls },
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<RelayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RelayBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let relay = self.relay.clone();
        let client = self.client;
        Box::pin(async move { Ok(dispatch(relay, request, client).await) })
    }
}

async fn dispatch(
    relay: Arc<Relay>,
    request: Request<Incoming>,
    client: Client,
) -> Response<RelayBody> {
    // A TCP visitor another node carried here (docs/relay.md, "TCP
    // tunnels"); a public client's CONNECT has no mark and goes on below.
    #[cfg(feature = "cluster")]
    if request.method() == http::Method::CONNECT && relay.came_from_node(&request) {
        return tcp_hop::hopped(&relay, request, client.addr).await;
    }
    // A plain CONNECT (no `:protocol`) asks for a proxy's tunnel: TCP
    // names are reached on their own ports, whose bounds a CONNECT here
    // would pass by, and a device would dial its target for it.
    if request.method() == http::Method::CONNECT
        && request.extensions().get::<hyper::ext::Protocol>().is_none()
    {
        return crate::http::text(
            http::StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not carried here: a TCP name has a port of its own",
        );
    }
    if assets::wanted(&relay.settings.routing, &request) {
        return assets::serve(&request);
    }
    match under_access(&relay.settings.access, request.uri().path()) {
        Some(rest) => {
            let rest = rest.to_owned();
            if claim::is_setup(&request) {
                claim::claim(&relay, request, &rest, client).await
            } else {
                longpoll::handle(&relay, request, &rest, client).await
            }
        }
        None => {
            let started = tokio::time::Instant::now();
            let method = request.method().clone();
            // Shares the request's bytes: no copy for the log line.
            let target = request.uri().path_and_query().cloned();
            let response = public::forward(&relay, request, client).await;
            let elapsed = started.elapsed();
            relay.metrics.answered(response.status(), elapsed);
            log_request(client, &method, target.as_ref(), &response, elapsed);
            response
        }
    }
}

/// One line per public request, when its response head is ready: who
/// asked what, the status, how long the head took, and the body's length
/// when it is known (`-` for a stream).
fn log_request(
    client: Client,
    method: &http::Method,
    target: Option<&http::uri::PathAndQuery>,
    response: &Response<RelayBody>,
    elapsed: std::time::Duration,
) {
    use hyper::body::Body;
    let bytes = response.body().size_hint().exact();
    tracing::info!(
        client = %client.addr,
        %method,
        target = %target.map_or("/", http::uri::PathAndQuery::as_str),
        status = response.status().as_u16(),
        ms = elapsed.as_millis() as u64,
        bytes = %Length(bytes),
        "request"
    );
}

/// A body's length for the log: the number, or `-` for a stream.
struct Length(Option<u64>);

impl std::fmt::Display for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(bytes) => write!(f, "{bytes}"),
            None => f.write_str("-"),
        }
    }
}

/// Whether `path` is under the peers' `access` path, and the rest of it.
fn under_access<'a>(access: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(access.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_path_is_a_whole_segment() {
        for (access, path, rest) in [
            ("/reversehttp", "/reversehttp", Some("")),
            ("/reversehttp", "/reversehttp/", Some("/")),
            ("/reversehttp", "/reversehttp/lamp", Some("/lamp")),
            ("/reversehttp/", "/reversehttp/lamp", Some("/lamp")),
            ("/reversehttp", "/reversehttpx", None),
            ("/reversehttp", "/lamp/reversehttp", None),
            ("/", "/lamp", Some("/lamp")),
        ] {
            assert_eq!(under_access(access, path), rest, "{access} {path}");
        }
    }
}
