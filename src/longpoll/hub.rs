//! A hyper service that holds long-poll clients, and the sender the
//! application calls them with.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, LINK};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use super::exchange::{Exchange, Limits};
use super::{Error, json, message, random_id};

/// Configures a [`Hub`].
#[derive(Debug, Clone)]
pub struct Builder {
    hold: Duration,
    max_body: usize,
    limits: Limits,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            hold: Duration::from_secs(30),
            max_body: 1024 * 1024,
            limits: Limits::default(),
        }
    }
}

impl Builder {
    /// How long a poll is held before it is answered with nothing.
    ///
    /// Default is 30 s, ReverseHttp's hold: under the minute after which
    /// middleboxes drop quiet connections.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// The largest body of a request sent to the clients, or of a reply.
    ///
    /// Default is 1 MiB: both cross as one message, never streamed.
    pub fn max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// Bounds on requests waiting, polls parked and the wait for a reply.
    ///
    /// Default is [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The hub.
    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                exchange: Exchange::new(self.limits),
                hold: self.hold,
                max_body: self.max_body,
            }),
        }
    }
}

#[derive(Debug)]
struct Inner {
    exchange: Exchange,
    hold: Duration,
    max_body: usize,
}

/// The server side of long-polling, for an application that holds its own
/// clients (Second Life's viewers, a page of the application's site).
///
/// Mount it under a path, say `/poll/` (in axum with `route_service` on
/// `/poll/` and `/poll/{id}`: `nest_service` would strip the prefix from
/// the `next` links it writes); it answers:
/// - `GET /poll/<id>`: a poll, held for up to [`Builder::hold`], then `200`
///   with one request as `message/http`, or `204`; either way with
///   `Link: </poll/<fresh id>>; rel="next"`. A poll without an id gets
///   `204` and its first `next` at once.
/// - `POST /poll/<id>` with a `message/http` body: the reply to the request
///   that poll delivered: `202`, or `404` when none waits under `<id>`.
/// - `POST /poll/` with `Content-Type: application/json`: Second Life's
///   encoding, where one POST carries a reply (or `{}`) and is answered
///   with the next request as JSON (or `{}` when the hold ends).
///
/// [`Hub::sender`] gives the application a sender whose `send_request`
/// delivers a request to a client and returns its response.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Builder::default().build()
    }
}

impl Hub {
    /// A hub with the default settings.
    pub fn new() -> Self {
        Hub::default()
    }

    /// A builder, to set the hold, the body limit and the queues' bounds.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A sender for requests to this hub's clients.
    pub fn sender(&self) -> Sender {
        Sender {
            inner: self.inner.clone(),
        }
    }

    /// Polls parked now.
    pub fn parked(&self) -> usize {
        self.inner.exchange.parked()
    }

    async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = request.uri().path();
        let (base, id) = path.split_at(path.rfind('/').map_or(0, |slash| slash + 1));
        let (base, id) = (base.to_owned(), id.to_owned());
        let json = is_json(request.headers());
        match (request.method().clone(), json) {
            (Method::POST, true) => self.json(request, &base).await,
            (Method::GET, _) if id.is_empty() => {
                answer(StatusCode::NO_CONTENT, &base, Bytes::new())
            }
            (Method::GET, _) => self.poll(&base, &id).await,
            (Method::POST, false) => {
                let body = match collect(request.into_body(), self.inner.max_body).await {
                    Ok(body) if body.is_empty() => {
                        return plain(StatusCode::BAD_REQUEST, "an empty reply");
                    }
                    Ok(body) => body,
                    Err(error) => return plain(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string()),
                };
                let parsed = message::parse_response(&body);
                match self.inner.exchange.reply(&id, parsed) {
                    true => plain(StatusCode::ACCEPTED, ""),
                    false => plain(StatusCode::NOT_FOUND, "no request waits for this reply"),
                }
            }
            _ => plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "polls are GET, replies POST",
            ),
        }
    }

    async fn poll(&self, base: &str, id: &str) -> Response<Full<Bytes>> {
        match self.inner.exchange.poll(id, self.inner.hold).await {
            Ok(Some(request)) => {
                let mut response = answer(
                    StatusCode::OK,
                    base,
                    message::encode_request(&request).into(),
                );
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("message/http"));
                response
            }
            Ok(None) => answer(StatusCode::NO_CONTENT, base, Bytes::new()),
            Err(error) => refused(&error),
        }
    }

    async fn json<B>(&self, request: Request<B>, base: &str) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let body = match collect(request.into_body(), self.inner.max_body).await {
            Ok(body) => body,
            Err(error) => return plain(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string()),
        };
        if !body.iter().all(u8::is_ascii_whitespace) {
            match json::parse_response(&body) {
                Ok(Some((id, response))) => {
                    self.inner.exchange.reply(&id, Ok(response));
                }
                Ok(None) => {}
                Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
            }
        }
        let id = random_id();
        let body = match self.inner.exchange.poll(&id, self.inner.hold).await {
            Ok(Some(request)) => json::encode_request(&id, &request),
            Ok(None) => b"{}".to_vec(),
            Err(error) => return refused(&error),
        };
        let mut response = answer(StatusCode::OK, base, body.into());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

impl<B> hyper::service::Service<Request<B>> for Hub
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let hub = self.clone();
        Box::pin(async move { Ok(hub.handle(request).await) })
    }
}

/// With the `tower` feature the hub is a tower service too, for axum's
/// `Router::nest_service` and tower stacks.
#[cfg(feature = "tower")]
impl<B> tower_service::Service<Request<B>> for Hub
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    /// Always ready: every bound answers with a status instead.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        hyper::service::Service::call(self, request)
    }
}

/// Sends requests to a [`Hub`]'s clients, as
/// [`acceptor::SendRequest`](crate::acceptor::SendRequest) does to a PTTH
/// peer. Clones share the hub.
#[derive(Debug, Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

impl Sender {
    /// Delivers `request` to the next poll and returns the client's reply.
    ///
    /// The body is read whole first (up to [`Builder::max_body`]). Fails
    /// when the queue is full ([`Error::is_busy`]), when no reply comes in
    /// time ([`Error::is_timeout`]) or when the reply cannot be read
    /// ([`Error::is_malformed`]).
    pub async fn send_request<B>(
        &mut self,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, Error>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let body = collect(body, self.inner.max_body).await?;
        let response = self
            .inner
            .exchange
            .send(Request::from_parts(parts, body))
            .await?;
        Ok(response.map(Full::new))
    }
}

async fn collect<B>(body: B, max: usize) -> Result<Bytes, Error>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Error::too_large(max)),
        Err(error) => Err(Error::malformed_because("the body", error)),
    }
}

fn is_json(headers: &http::HeaderMap) -> bool {
    [CONTENT_TYPE, ACCEPT].iter().any(|name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"))
    })
}

/// A poll's answer, pointing at the next poll.
fn answer(status: StatusCode, base: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let next = format!("<{base}{}>; rel=\"next\"", random_id());
    if let Ok(next) = HeaderValue::from_str(&next) {
        response.headers_mut().insert(LINK, next);
    }
    response
}

fn refused(error: &Error) -> Response<Full<Bytes>> {
    let status = if error.is_conflict() {
        StatusCode::CONFLICT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(status, &error.to_string())
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}
