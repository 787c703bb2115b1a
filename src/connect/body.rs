//! The body of a [`Dial`](super::Dial) answer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The body of a [`Dial`](super::Dial)'s answers: its own (none, or a line
/// of text), or the fallback's body.
pub struct DialBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Own(Option<Bytes>),
    // Boxed so the body is Unpin whatever the fallback's is, without a
    // pin projection.
    Fallback(Pin<Box<B>>),
}

/// No body: what a [`Guard`](crate::guard::Guard) in front of a
/// [`Dial`](super::Dial) refuses with sets its own.
impl<B> Default for DialBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> DialBody<B> {
    pub(super) fn empty() -> Self {
        DialBody {
            kind: Kind::Own(None),
        }
    }

    pub(super) fn text(text: Bytes) -> Self {
        DialBody {
            kind: Kind::Own(Some(text)),
        }
    }

    pub(super) fn fallback(body: B) -> Self {
        DialBody {
            kind: Kind::Fallback(Box::pin(body)),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for DialBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Own(text) => Poll::Ready(text.take().map(|text| Ok(Frame::data(text)))),
            Kind::Fallback(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Own(text) => text.is_none(),
            Kind::Fallback(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Own(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |text| text.len() as u64))
            }
            Kind::Fallback(body) => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for DialBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Own(text) => f.debug_tuple("DialBody").field(text).finish(),
            Kind::Fallback(_) => f.debug_tuple("DialBody").field(&"fallback").finish(),
        }
    }
}
