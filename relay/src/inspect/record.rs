//! Recording exchanges as they pass, without holding them up: each body
//! is wrapped so its frames go on to their reader at once, a copy of the
//! first [`BODY_LIMIT`] bytes kept on the way.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::history::{BODY_LIMIT, Cut, Exchange, History, SharedCut, lock};
use crate::http::{BoxError, RelayBody};

/// The recorder `expose` calls on each request, and the history the
/// inspector's API reads. Cheap to clone: all clones share the history.
#[derive(Debug, Clone)]
pub struct Inspector {
    history: Arc<Mutex<History>>,
}

impl Inspector {
    /// An inspector keeping the last `size` exchanges.
    pub fn new(size: usize) -> Inspector {
        Inspector {
            history: Arc::new(Mutex::new(History::new(size))),
        }
    }

    /// Starts recording `request`: its head now, its body as it is read.
    /// Send the returned request on, and hand its response to
    /// [`Recording::finish`].
    pub fn begin(&self, request: Request<RelayBody>) -> (Request<RelayBody>, Recording) {
        self.begin_replay(request, None)
    }

    /// [`Inspector::begin`] for a replay of the exchange `of`.
    pub(super) fn begin_replay(
        &self,
        request: Request<RelayBody>,
        of: Option<u64>,
    ) -> (Request<RelayBody>, Recording) {
        let (parts, body) = request.into_parts();
        let (body, cut) = tee(body);
        let (method, headers, upgrade) = head_of(&parts);
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let recording = Recording {
            history: self.history.clone(),
            started: Instant::now(),
            replay_of: of,
            method,
            target: target.to_owned(),
            headers,
            upgrade,
            body: cut,
        };
        (Request::from_parts(parts, body), recording)
    }

    /// Runs `read` on the history, under its lock.
    pub(super) fn read<T>(&self, read: impl FnOnce(&History) -> T) -> T {
        let history = (self.history.lock()).unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&history)
    }
}

/// A request on its way to the origin, waiting for its response.
#[derive(Debug)]
pub struct Recording {
    history: Arc<Mutex<History>>,
    started: Instant,
    replay_of: Option<u64>,
    method: Method,
    target: String,
    headers: HeaderMap,
    /// Whether the request was an HTTP/2 extended CONNECT, whose `2xx`
    /// is the origin's `101`.
    upgrade: bool,
    body: SharedCut,
}

impl Recording {
    /// Puts the exchange in the history as `response`'s head arrives, so
    /// a streaming response shows at once; its body fills in as it
    /// passes. Returns the response to send on.
    pub fn finish(self, response: Response<RelayBody>) -> Response<RelayBody> {
        self.record(response).1
    }

    /// [`Recording::finish`], and the exchange's id.
    pub(super) fn record(self, response: Response<RelayBody>) -> (u64, Response<RelayBody>) {
        let (parts, body) = response.into_parts();
        let (body, cut) = tee(body);
        let exchange = Exchange {
            id: 0,
            replay_of: self.replay_of,
            method: self.method,
            target: self.target,
            request_headers: self.headers,
            request_body: self.body,
            status: match self.upgrade && parts.status.is_success() {
                true => StatusCode::SWITCHING_PROTOCOLS.as_u16(),
                false => parts.status.as_u16(),
            },
            duration_ms: self.started.elapsed().as_millis() as u64,
            response_headers: parts.headers.clone(),
            response_body: cut,
        };
        let mut history = (self.history.lock()).unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = history.push(exchange);
        (id, Response::from_parts(parts, body))
    }
}

/// The method and fields to record of a request's head, as the origin
/// sees them, and whether it is an extended CONNECT. From an HTTP/2 relay
/// the visitor's host comes as the authority, and an upgrade as
/// `CONNECT` with `:protocol`: `expose` turns them into `Host` and an
/// HTTP/1.1 upgrade for the origin, and a replay must carry them too.
fn head_of(parts: &http::request::Parts) -> (Method, HeaderMap, bool) {
    let mut headers = parts.headers.clone();
    let authority = (parts.uri.authority()).map(|a| HeaderValue::from_str(a.as_str()));
    if let (false, Some(Ok(host))) = (headers.contains_key(HOST), authority) {
        headers.insert(HOST, host);
    }
    let protocol = (parts.extensions.get::<hyper::ext::Protocol>())
        .and_then(|protocol| HeaderValue::from_str(protocol.as_str()).ok());
    match (parts.method == Method::CONNECT, protocol) {
        (true, Some(protocol)) => {
            crate::http::upgrade::restore(&mut headers, protocol);
            (Method::GET, headers, true)
        }
        _ => (parts.method.clone(), headers, false),
    }
}

/// `body`, passing its frames on as they come and keeping a copy of the
/// first bytes in the returned cut.
fn tee(body: RelayBody) -> (RelayBody, SharedCut) {
    let mut cut = Cut::new(BODY_LIMIT);
    // An empty body may never be polled: hyper asks first.
    if body.is_end_stream() {
        cut.end();
    }
    let cut = Arc::new(Mutex::new(cut));
    let tee = Tee {
        inner: body,
        cut: cut.clone(),
    };
    (tee.boxed(), cut)
}

/// A body that copies what passes into its cut.
struct Tee {
    inner: RelayBody,
    cut: SharedCut,
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let mut cut = lock(&self.cut);
                if let Some(data) = frame.data_ref() {
                    cut.push(data);
                }
                // Ended before the frame goes on: whoever saw the last
                // byte finds the exchange whole.
                if self.inner.is_end_stream() {
                    cut.end();
                }
            }
            Poll::Ready(None) => lock(&self.cut).end(),
            // An error leaves the body cut short: not ended.
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn body(frames: &[&'static [u8]]) -> RelayBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = (frames.iter())
            .map(|data| Ok(Frame::data(Bytes::from_static(data))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    #[tokio::test]
    async fn bodies_pass_whole_and_are_kept_as_they_pass() {
        let inspector = Inspector::new(4);
        let request = Request::post("/lamp/x")
            .body(
                Full::new(Bytes::from_static(b"ping"))
                    .map_err(|n| match n {})
                    .boxed(),
            )
            .unwrap();
        let (request, recording) = inspector.begin(request);
        let sent = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(sent, "ping");
        let response = Response::new(body(&[b"po", b"ng"]));
        let (id, response) = recording.record(response);
        let got = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, "pong");
        let json = inspector.read(|history| history.get(id).unwrap().json());
        assert_eq!(json["request"]["body"]["data"], "ping");
        assert_eq!(json["request"]["body"]["ended"], true);
        assert_eq!(json["response"]["body"]["data"], "pong");
        assert_eq!(json["response"]["body"]["ended"], true);
        assert_eq!(json["target"], "/lamp/x");
    }
}
