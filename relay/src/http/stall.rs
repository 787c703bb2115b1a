//! A request body whose bytes must keep coming: a client that stops
//! sending mid-body is cut after a bound, instead of holding a peer's
//! request (and the relay's memory for it) open for ever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// What a body's error becomes: any error, as hyper takes it.
use super::BoxError;

/// `B`, failing with [`Stalled`] when no frame comes for `bound`.
#[derive(Debug)]
pub struct Stalling<B> {
    body: B,
    bound: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Whether `deadline` counts down: from the first poll that found no
    /// frame, since a body may rightly wait unpolled (its request queued
    /// for a connection) before anyone reads it.
    armed: bool,
}

/// The error of a body that stalled.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no byte for {0:?}")]
pub struct Stalled(Duration);

impl<B> Stalling<B> {
    /// `body`, cut after `bound` without a frame.
    pub fn new(body: B, bound: Duration) -> Self {
        Stalling {
            body,
            bound,
            deadline: Box::pin(tokio::time::sleep(bound)),
            armed: false,
        }
    }
}

impl<B> Body for Stalling<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.armed = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                if !self.armed {
                    let next = Instant::now() + self.bound;
                    self.deadline.as_mut().reset(next);
                    self.armed = true;
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Stalled(self.bound).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
