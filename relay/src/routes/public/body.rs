//! The bodies of an exchange with a peer: the request's, which may not
//! stall and is counted on its way, and the response's, which holds its
//! connection and the client's place until it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::http::stall::Stalling;
use crate::http::{BoxError, RelayBody};
use crate::pool::Picked;
use crate::slots::Slot;
use crate::state::Relay;

/// A public request's body on its way to a peer: cut when it pauses for
/// the body timeout, its bytes counted.
pub(super) fn to_peer(relay: &Arc<Relay>, body: Incoming) -> RelayBody {
    let counting = relay.clone();
    Stalling::new(body, relay.settings.body_timeout)
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counting.metrics.to_peer(data.len());
            }
            frame
        })
        .boxed()
}

/// A peer's response body for the public, holding `picked` as in flight
/// (an HTTP/1.1 connection is busy until the body is done) and the
/// client's place among requests in flight.
pub(super) fn held(
    relay: &Arc<Relay>,
    body: Incoming,
    picked: Picked,
    in_flight: Option<Slot>,
) -> RelayBody {
    Held {
        body,
        _picked: picked,
        _in_flight: in_flight,
        relay: relay.clone(),
    }
    .boxed()
}

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
