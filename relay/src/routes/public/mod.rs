//! The public side, in the phases a proxy's request goes through (as
//! pingora names them): route, owners (the cluster hop), lookup, pick,
//! prepare, send (with one retry, or an upgrade), finish. Each phase
//! hands the request on or answers it with the statuses of
//! docs/relay.md, "Statuses".

mod body;
mod head;
mod send;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use ptth::Protocol;
use tracing::{Instrument, debug, debug_span};

use self::send::Replay;
use self::upgrade::Upgrade;
use crate::http::headers::{Forwarding, remove_hop_by_hop, set_forwarded};
use crate::http::{RelayBody, retry_later, text};
use crate::pool::{Picked, Unavailable};
use crate::route::{Routed, Unrouted, route, without_name};
use crate::routes::access::Client;
use crate::settings::Routing;
use crate::slots::Slot;
use crate::state::Relay;

/// Forwards a public request to a peer of its name.
pub(crate) async fn forward(
    relay: &Arc<Relay>,
    request: Request<Incoming>,
    client: Client,
) -> Response<RelayBody> {
    let settings = &relay.settings;
    let routed = match route(&settings.routing, &request) {
        Ok(routed) => routed,
        Err(unrouted) => return unrouted_response(&unrouted),
    };
    let Routed { name, target, host } = routed;
    let from_node = relay.came_from_node(&request);
    let trusted = (settings.trusted_proxies.iter()).any(|cidr| cidr.contains(client.addr.ip()));
    let forwarding = Forwarding {
        client: client.addr,
        tls: client.tls,
        host: host.as_deref(),
        trusted: from_node || trusted,
    };
    // A node's requests were counted where they entered.
    let in_flight = match from_node {
        true => None,
        false => match relay.in_flight.take(client.addr.ip()) {
            Some(slot) => Some(slot),
            None => return too_many_in_flight(),
        },
    };
    #[cfg(feature = "cluster")]
    if !from_node {
        let owners = super::hop::owners(relay, &name);
        if !owners.is_empty() {
            return super::hop::forward(relay, request, owners, forwarding).await;
        }
    }
    let span = debug_span!("public_request", %name, method = %request.method(), connection = tracing::field::Empty);
    let mut request = request;
    let upgrade = Upgrade::take(&mut request);
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, forwarding);
    parts.uri = target;
    let exchange = Exchange {
        relay,
        name: &name,
        client,
        in_flight,
    };
    exchange.run(parts, body, upgrade).instrument(span).await
}

/// One public request past routing, on its way to a peer of `name`.
struct Exchange<'a> {
    relay: &'a Arc<Relay>,
    name: &'a str,
    client: Client,
    /// The client's place among requests in flight, held until the
    /// response body is done.
    in_flight: Option<Slot>,
}

impl Exchange<'_> {
    async fn run(
        self,
        mut parts: Parts,
        body: Incoming,
        upgrade: Option<Upgrade>,
    ) -> Response<RelayBody> {
        let name = self.name;
        // Lookup.
        let Some(pool) = self.relay.names.lookup(name) else {
            debug!("no such name");
            return text(StatusCode::NOT_FOUND, &format!("no peer named {name}"));
        };
        let settings = &self.relay.settings;
        if settings.routing == Routing::Path && pool.strips_name(settings.strip_prefix) {
            parts.uri = match without_name(&parts.uri, name) {
                Ok(target) => target,
                Err(unrouted) => return unrouted_response(&unrouted),
            };
        }
        // Pick.
        let picked = match pool.pick(self.relay.settings.waits).await {
            Ok(picked) => picked,
            Err(unavailable) => {
                debug!(?unavailable, "no connection for the request");
                return unavailable_response(name, unavailable);
            }
        };
        let Some(mut sender) = picked.sender() else {
            return self
                .to_pollers(&picked, parts, body, upgrade.is_some())
                .await;
        };
        tracing::Span::current().record("connection", tracing::field::debug(sender.id()));
        // Prepare.
        let protocol = sender.protocol();
        let (request, replay) = self.prepare(parts, body, protocol, upgrade.as_ref());
        // Send.
        let timeout = self.relay.settings.response_timeout;
        let head = head::send(&mut sender, request, timeout, upgrade.is_some());
        let (mut response, picked) = match head.await {
            Ok(response) => (response, picked),
            Err(error) => match send::recover(timeout, &pool, picked, replay, error).await {
                Ok(retried) => retried,
                Err(failure) => return failure.answer(name),
            },
        };
        if let Some(upgrade) = upgrade
            && let Some(switching) = upgrade.answer(&mut response, protocol)
        {
            return switching;
        }
        self.finish(response, picked)
    }

    /// The request as the picked connection takes it: its version, a body
    /// that may not stall and is counted, and an upgrade in the peer's
    /// dialect; and what it takes to send it again, if that is safe.
    fn prepare(
        &self,
        mut parts: Parts,
        body: Incoming,
        protocol: Protocol,
        upgrade: Option<&Upgrade>,
    ) -> (Request<RelayBody>, Option<Replay>) {
        parts.version = send::VERSION;
        let replay = Replay::of(&parts, body.is_end_stream(), upgrade.is_some());
        let body = body::to_peer(&self.relay.metrics, self.relay.settings.body_timeout, body);
        let mut request = Request::from_parts(parts, body);
        if let Some(upgrade) = upgrade {
            upgrade.ask(&mut request, protocol);
        }
        (request, replay)
    }

    /// The response for the public: its hop-by-hop fields gone, its body
    /// holding the connection (and the client's place) until it is done.
    fn finish(self, response: Response<Incoming>, picked: Picked) -> Response<RelayBody> {
        let (mut parts, body) = response.into_parts();
        debug!(status = %parts.status, "the peer answered");
        remove_hop_by_hop(&mut parts.headers);
        let body = body::held(&self.relay.metrics, body, picked, self.in_flight);
        Response::from_parts(parts, body)
    }

    /// The send phase when the name's long-poll clients were picked: the
    /// request crosses whole, and no upgrade can.
    async fn to_pollers(
        &self,
        picked: &Picked,
        parts: Parts,
        body: Incoming,
        upgrade: bool,
    ) -> Response<RelayBody> {
        let Some(poller) = picked.poller() else {
            return text(StatusCode::BAD_GATEWAY, "the picked peer is gone");
        };
        if upgrade {
            let name = self.name;
            return text(
                StatusCode::BAD_GATEWAY,
                &format!("the peers of {name} poll for requests and cannot take an upgrade"),
            );
        }
        super::longpoll::forward(self.relay, &poller, parts, body, self.client.addr).await
    }
}

fn too_many_in_flight() -> Response<RelayBody> {
    retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests in flight from this address",
        Duration::from_secs(1),
    )
}

fn unrouted_response(unrouted: &Unrouted) -> Response<RelayBody> {
    match unrouted {
        Unrouted::BadTarget => text(StatusCode::BAD_REQUEST, "invalid request target"),
        Unrouted::NoName => text(StatusCode::NOT_FOUND, "no name in the path"),
        Unrouted::NoHost => text(StatusCode::BAD_REQUEST, "no Host in host routing"),
        Unrouted::HostMismatch => text(
            StatusCode::BAD_REQUEST,
            "the host field and :authority disagree",
        ),
        Unrouted::Elsewhere(host) => {
            text(StatusCode::NOT_FOUND, &format!("{host} is no name here"))
        }
    }
}

fn unavailable_response(name: &str, unavailable: Unavailable) -> Response<RelayBody> {
    let reason = match unavailable {
        Unavailable::NoPeer => format!("no peer of {name} is connected"),
        Unavailable::Busy => format!("every connection of {name} stayed busy"),
    };
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        &reason,
        Duration::from_secs(1),
    )
}
