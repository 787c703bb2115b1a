//! The public side: find the name a request is for, pick a connection of
//! its pool, and forward the request there, answering with RELAY.md's
//! statuses when that cannot be done.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use ptth::Protocol;
use tracing::{Instrument, debug, debug_span};

use crate::head::HeadError;
use crate::headers::{Forwarding, remove_hop_by_hop, set_forwarded};
use crate::pool::{BoxError, PeerBody, Picked, Pool, Unavailable, Waits};
use crate::relay::{Relay, RelayBody, status};
use crate::route::{Routed, Unrouted, route};
use crate::slots::Slot;
use crate::stall::Stalling;

/// Forwards a public request to a peer of its name.
pub(crate) async fn forward(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    client: SocketAddr,
) -> Response<RelayBody> {
    let settings = &relay.settings;
    let routed = match route(&settings.routing, settings.strip_prefix, &request) {
        Ok(routed) => routed,
        Err(unrouted) => return unrouted_response(&unrouted),
    };
    let Routed { name, target, host } = routed;
    let from_node = relay.came_from_node(&request);
    let forwarding = Forwarding {
        client,
        tls: settings.tls,
        host: host.as_deref(),
        trusted: from_node
            || settings
                .trusted_proxies
                .iter()
                .any(|c| c.contains(client.ip())),
    };
    // A node's requests were counted where they entered.
    let in_flight = match from_node {
        true => None,
        false => match relay.in_flight.take(client.ip()) {
            Some(slot) => Some(slot),
            None => return too_many_in_flight(),
        },
    };
    #[cfg(feature = "cluster")]
    if !from_node {
        let owners = crate::cluster::forward::owners(relay, &name);
        if !owners.is_empty() {
            return crate::cluster::forward::forward(relay, request, owners, forwarding).await;
        }
    }
    let mut request = request;
    let upgrade = crate::bridge::requested(request.headers());
    let public_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let span = debug_span!("public_request", %name, method = %request.method(), connection = tracing::field::Empty);
    async move {
        let Some(pool) = relay.names.lookup(&name) else {
            debug!("no such name");
            return status(StatusCode::NOT_FOUND, &format!("no peer named {name}"));
        };
        let picked = match pool.pick(relay.settings.waits).await {
            Ok(picked) => picked,
            Err(unavailable) => {
                debug!(?unavailable, "no connection for the request");
                return unavailable_response(&name, unavailable);
            }
        };
        let (mut parts, body) = request.into_parts();
        let Some(mut sender) = picked.sender() else {
            let Some(poller) = picked.poller() else {
                return status(StatusCode::BAD_GATEWAY, "the picked peer is gone");
            };
            if upgrade.is_some() {
                return status(
                    StatusCode::BAD_GATEWAY,
                    &format!("the peers of {name} poll for requests and cannot take an upgrade"),
                );
            }
            remove_hop_by_hop(&mut parts.headers);
            set_forwarded(&mut parts.headers, forwarding);
            parts.uri = target;
            return crate::longpoll::forward(relay, &poller, parts, body, client).await;
        };
        tracing::Span::current().record("connection", tracing::field::debug(sender.id()));
        let key = parts.headers.get(crate::bridge::SEC_WEBSOCKET_KEY).cloned();
        remove_hop_by_hop(&mut parts.headers);
        set_forwarded(&mut parts.headers, forwarding);
        parts.uri = target;
        parts.version = version_for(sender.protocol());
        let replay =
            (upgrade.is_none() && idempotent(&parts.method) && body.is_end_stream()).then(|| {
                Replay {
                    method: parts.method.clone(),
                    uri: parts.uri.clone(),
                    headers: parts.headers.clone(),
                }
            });
        let counting = relay.clone();
        let body = Stalling::new(body, relay.settings.body_timeout);
        let body = body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counting.metrics.to_peer(data.len());
            }
            frame
        });
        let mut request = Request::from_parts(parts, body.boxed());
        // An upgrade crosses an HTTP/2 peer as an extended CONNECT.
        let h2 = sender.protocol() == Protocol::Http2;
        if let Some(upgrade) = &upgrade {
            if h2 {
                crate::bridge::to_extended_connect(&mut request, upgrade);
            } else {
                crate::bridge::restore(request.headers_mut(), upgrade.clone());
            }
        }
        let head = crate::head::send(
            &mut sender,
            request,
            relay.settings.head_timeout,
            upgrade.is_some(),
        );
        let (mut response, picked) = match head.await {
            Ok(response) => (response, picked),
            Err(HeadError::Timeout) => {
                return status(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("the peer of {name} sent no response in time"),
                );
            }
            Err(breach @ (HeadError::Informational | HeadError::Switched)) => {
                debug!(?breach, "the peer broke HTTP; closing its connection");
                picked.evict();
                return status(
                    StatusCode::BAD_GATEWAY,
                    &format!("the peer of {name} sent no valid response"),
                );
            }
            Err(HeadError::Failed(error)) => {
                drop(picked);
                match retry(relay, &pool, replay, &error).await {
                    Some(retried) => retried,
                    None => {
                        // The error's chain is for the operator's log, not
                        // for the public.
                        debug!(%error, "peer failed before the response head");
                        return status(
                            StatusCode::BAD_GATEWAY,
                            &format!("the peer of {name} failed before its response"),
                        );
                    }
                }
            }
        };
        let switched = match h2 {
            false => response.status() == StatusCode::SWITCHING_PROTOCOLS,
            true => crate::bridge::connect_accepted(response.status()),
        };
        if let (true, Some(public_upgrade), Some(upgrade)) = (switched, public_upgrade, upgrade) {
            let headers = match h2 {
                false => response.headers().clone(),
                true => crate::bridge::switching_from(&response, upgrade, key.as_ref()),
            };
            crate::bridge::spawn(public_upgrade, hyper::upgrade::on(&mut response));
            let mut switching = Response::new(crate::relay::full(Bytes::new()));
            *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *switching.headers_mut() = headers;
            return switching;
        }
        let (mut parts, body) = response.into_parts();
        debug!(status = %parts.status, "the peer answered");
        remove_hop_by_hop(&mut parts.headers);
        let body = Held {
            body,
            _picked: picked,
            _in_flight: in_flight,
            relay: relay.clone(),
        };
        Response::from_parts(parts, body.boxed())
    }
    .instrument(span)
    .await
}

fn too_many_in_flight() -> Response<RelayBody> {
    let mut response = status(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests in flight from this address",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn unrouted_response(unrouted: &Unrouted) -> Response<RelayBody> {
    match unrouted {
        Unrouted::BadTarget => status(StatusCode::BAD_REQUEST, "invalid request target"),
        Unrouted::NoName => status(StatusCode::NOT_FOUND, "no name in the path"),
        Unrouted::NoHost => status(StatusCode::BAD_REQUEST, "no Host in host routing"),
        Unrouted::HostMismatch => status(
            StatusCode::BAD_REQUEST,
            "the host field and :authority disagree",
        ),
        Unrouted::Elsewhere(host) => {
            status(StatusCode::NOT_FOUND, &format!("{host} is no name here"))
        }
    }
}

fn version_for(protocol: Protocol) -> Version {
    if protocol == Protocol::Http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    }
}

/// RFC 9110, section 9.2.2: a client may send these again after a
/// connection closed before the answer.
fn idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// What it takes to send a request without a body again.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// Sends a request again on another free connection when the first closed
/// before answering and the request can be replayed. An HTTP/1.1 peer may
/// close a quiet connection just as a request arrives on it (the tunnel
/// replaces quiet connections); the public should not see that as a 502.
async fn retry(
    relay: &Relay,
    pool: &Arc<Pool>,
    replay: Option<Replay>,
    error: &ptth::Error,
) -> Option<(Response<Incoming>, Picked)> {
    let replay = replay.filter(|_| error.is_closed())?;
    let now = Waits {
        peer: Duration::ZERO,
        queue: Duration::ZERO,
    };
    let again = pool.pick(now).await.ok()?;
    let mut sender = again.sender()?;
    debug!(%error, connection = ?sender.id(), "the connection closed before answering; sending again");
    let mut request = Request::new(PeerBody::default());
    *request.method_mut() = replay.method;
    *request.uri_mut() = replay.uri;
    *request.headers_mut() = replay.headers;
    *request.version_mut() = version_for(sender.protocol());
    let head = crate::head::send(&mut sender, request, relay.settings.head_timeout, false);
    match head.await {
        Ok(response) => Some((response, again)),
        Err(HeadError::Informational | HeadError::Switched) => {
            again.evict();
            None
        }
        Err(_) => None,
    }
}

fn unavailable_response(name: &str, unavailable: Unavailable) -> Response<RelayBody> {
    let text = match unavailable {
        Unavailable::NoPeer => format!("no peer of {name} is connected"),
        Unavailable::Busy => format!("every connection of {name} stayed busy"),
    };
    let mut response = status(StatusCode::SERVICE_UNAVAILABLE, &text);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A peer's response body, holding its connection as in flight until the
/// body is done with: an HTTP/1.1 connection is busy until then.
struct Held {
    body: Incoming,
    _picked: Picked,
    _in_flight: Option<Slot>,
    relay: Arc<Relay>,
}

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            self.relay.metrics.from_peer(data.map_or(0, Bytes::len));
        }
        Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
