//! A public request's upgrade (WebSocket and the like) on its way through:
//! asked of the peer in its own dialect (an extended CONNECT on HTTP/2,
//! the two fields on HTTP/1.1), and once the peer switched, both sides
//! joined and the public given its `101`.

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use ptth::Protocol;

use crate::http::upgrade::{
    SEC_WEBSOCKET_KEY, connect_accepted, requested, restore, spawn, switching_from,
    to_extended_connect,
};
use crate::http::{RelayBody, switching};

/// The upgrade a public request asks for.
pub(super) struct Upgrade {
    /// The `Upgrade` value: the protocol asked for.
    protocol: HeaderValue,
    /// A WebSocket client's key, for the accept key an HTTP/2 peer does
    /// not send.
    key: Option<HeaderValue>,
    /// The public side's half of the switch.
    public: OnUpgrade,
}

impl Upgrade {
    /// The upgrade `request` asks for, taken before its hop-by-hop fields
    /// go.
    pub(super) fn take(request: &mut Request<Incoming>) -> Option<Upgrade> {
        let protocol = requested(request.headers())?;
        Some(Upgrade {
            protocol,
            key: request.headers().get(SEC_WEBSOCKET_KEY).cloned(),
            public: hyper::upgrade::on(request),
        })
    }

    /// Asks the peer, on a connection of `protocol`, for the upgrade.
    pub(super) fn ask(&self, request: &mut Request<RelayBody>, protocol: Protocol) {
        match protocol {
            Protocol::Http2 => to_extended_connect(request, &self.protocol),
            _ => restore(request.headers_mut(), self.protocol.clone()),
        }
    }

    /// The public's `101` when the peer switched (`101` on HTTP/1.1, `2xx`
    /// to an extended CONNECT), with both sides joined; `None` when it
    /// answered otherwise, and the answer goes to the public as it is.
    pub(super) fn answer(
        self,
        response: &mut Response<Incoming>,
        protocol: Protocol,
    ) -> Option<Response<RelayBody>> {
        // HTTP/2 has no `101` (RFC 9113 §8.6), so the second arm sees
        // only HTTP/1.1 answers.
        let headers = match protocol {
            Protocol::Http2 if connect_accepted(response.status()) => {
                switching_from(response, self.protocol, self.key.as_ref())
            }
            _ if response.status() == StatusCode::SWITCHING_PROTOCOLS => response.headers().clone(),
            _ => return None,
        };
        spawn(self.public, hyper::upgrade::on(response));
        Some(switching(headers))
    }
}
