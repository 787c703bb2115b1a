//! The bodies of an exchange with a peer: the request's, which may not
//! stall and is counted on its way, and the response's, which holds its
//! connection and the client's place until it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::http::stall::Stalling;
use crate::http::{BoxError, RelayBody};
use crate::metrics::Metrics;
use crate::pool::Picked;
use crate::slots::Slot;

/// A public request's body on its way to a peer: cut when it pauses for
/// `timeout`, its bytes counted.
pub(super) fn to_peer(metrics: &Arc<Metrics>, timeout: Duration, body: Incoming) -> RelayBody {
    let metrics = metrics.clone();
    Stalling::new(body, timeout)
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                metrics.to_peer(data.len());
            }
            frame
        })
        .boxed()
}

/// A peer's response body for the public, holding `picked` as in flight
/// (an HTTP/1.1 connection is busy until the body is done) and the
/// client's place among requests in flight.
pub(super) fn held(
    metrics: &Arc<Metrics>,
    body: Incoming,
    picked: Picked,
    in_flight: Option<Slot>,
) -> RelayBody {
    Held {
        body,
        _picked: picked,
        _in_flight: in_flight,
        metrics: metrics.clone(),
    }
    .boxed()
}

struct Held {
    body: Incoming,
    _picked: Picked,
    _in_flight: Option<Slot>,
    metrics: Arc<Metrics>,
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
            self.metrics.from_peer(data.map_or(0, Bytes::len));
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
