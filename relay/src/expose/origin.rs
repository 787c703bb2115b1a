//! `expose`'s connections to its one origin: hyper's plain HTTP/1.1
//! client connections, each kept while idle for the next request.
//!
//! hyper-util's pooled client was 12% of expose's instructions per
//! request (docs/performance.md, "The relay's hop against HAProxy"): a
//! pool key built per request, a map behind a lock, and a task spawned to
//! wait for each connection to be ready again. One origin needs a stack
//! of idle connections, and a response body that puts its connection back
//! when it ends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::http::{BoxError, RelayBody};

/// How long the origin may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections kept at most; one more is closed when its response
/// ends. Past the visitors' concurrency they would only hold the origin's
/// sockets.
const MAX_IDLE: usize = 256;

/// How long a kept connection may take to say it is ready again once its
/// previous response has ended (its task has yet to run).
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// TCP, or TLS over it for an `https://` origin.
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The origin and its idle connections.
#[derive(Debug)]
pub(super) struct Origin {
    uri: Uri,
    /// Its authority as a `Host` field.
    host: Option<HeaderValue>,
    connector: Connector,
    idle: Mutex<Vec<SendRequest<RelayBody>>>,
}

/// Why the origin gave no response.
#[derive(Debug, thiserror::Error)]
pub(super) enum OriginError {
    /// No connection could be opened (TCP or TLS).
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    /// A connection failed before its response.
    #[error("the connection failed")]
    Http(#[source] hyper::Error),
}

impl Origin {
    /// The origin at `uri`, plain HTTP or TLS trusting the Mozilla roots
    /// and `ca`; each connect bounded, Nagle off.
    pub(super) fn new(uri: Uri, ca: Option<&std::path::Path>) -> Result<Arc<Self>, String> {
        let tls = crate::pem::client_config(true, ca)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let idle = Mutex::default();
        let host =
            (uri.authority()).and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
        Ok(Arc::new(Origin {
            uri,
            host,
            connector,
            idle,
        }))
    }

    /// The origin's URL, as `expose` was given it.
    pub(super) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The origin's authority, as a `Host` field.
    pub(super) fn host(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }

    /// Sends `request` (origin-form target, `Host` set) on an idle
    /// connection, or a new one. A request a kept connection closed under
    /// before sending any of it goes once more on a new connection.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: Request<RelayBody>,
    ) -> Result<Response<Returning>, OriginError> {
        loop {
            let (mut sender, kept) = match self.take_idle().await {
                Some(sender) => (sender, true),
                // Boxed: the connect future holds a TLS connection's state,
                // kilobytes that every request's future would otherwise
                // carry and copy as it moves.
                None => (Box::pin(self.connect()).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.returning(response, sender)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if kept => request = unsent,
                    _ => return Err(OriginError::Http(error.into_error())),
                },
            }
        }
    }

    /// `response` with a body that puts `sender` back when it ends; at
    /// once if it is empty, as hyper will not poll an ended body. An
    /// upgraded connection is the upgrade's.
    fn returning(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: SendRequest<RelayBody>,
    ) -> Response<Returning> {
        let upgraded = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let mut back = (!upgraded).then(|| (sender, self.clone()));
        if response.body().is_end_stream() {
            put_back(&mut back);
        }
        response.map(|body| Returning { body, back })
    }

    /// An idle connection ready for a request: the newest ready one, else
    /// the newest one whose task has yet to say it is ready again.
    async fn take_idle(&self) -> Option<SendRequest<RelayBody>> {
        let pending = {
            let mut idle = self.idle.lock().expect("idle connections");
            idle.retain(|sender| !sender.is_closed());
            // A connection goes back as its response's last bytes are
            // read, before its task has run again: the newest may not be
            // ready yet while an older one is.
            if let Some(ready) = idle.iter().rposition(SendRequest::is_ready) {
                return Some(idle.swap_remove(ready));
            }
            idle.pop()
        };
        let mut sender = pending?;
        let ready = tokio::time::timeout(READY_TIMEOUT, sender.ready()).await;
        matches!(ready, Ok(Ok(()))).then_some(sender)
    }

    /// A new connection, its task spawned.
    async fn connect(&self) -> Result<SendRequest<RelayBody>, OriginError> {
        // The connector is always ready (HttpConnector's poll_ready does
        // nothing), so it is called directly.
        let io =
            (self.connector.clone().call(self.uri.clone()).await).map_err(OriginError::Connect)?;
        let (sender, connection) = http1::handshake(io).await.map_err(OriginError::Http)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "an origin connection ended");
            }
        });
        Ok(sender)
    }
}

/// Hands the connection back to its origin's idle ones, if there is room.
fn put_back(back: &mut Option<(SendRequest<RelayBody>, Arc<Origin>)>) {
    if let Some((sender, origin)) = back.take() {
        let mut idle = origin.idle.lock().expect("idle connections");
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }
}

/// The origin's response body; its connection goes back to the idle ones
/// when it ends, and closes if it is dropped before.
#[derive(Debug)]
pub(super) struct Returning {
    body: Incoming,
    back: Option<(SendRequest<RelayBody>, Arc<Origin>)>,
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => put_back(&mut self.back),
            Poll::Ready(None) => put_back(&mut self.back),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Reads one request head (these requests have no body).
    async fn read_head(socket: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            if socket.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8(head).unwrap())
    }

    fn get(path: &str) -> Request<RelayBody> {
        let request = Request::get(path).header("host", "origin");
        request.body(crate::http::full(Bytes::new())).unwrap()
    }

    async fn body_of(origin: &Arc<Origin>, path: &str) -> Bytes {
        let response = origin.send(get(path)).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_is_kept_for_the_next_request_and_a_closed_one_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let origin = Origin::new(uri, None).unwrap();
        let (accepted, mut accepts) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            // The first connection answers three requests, then closes as
            // an origin's keep-alive timeout does; the second answers on.
            for serves in [3, usize::MAX] {
                let (mut socket, _) = listener.accept().await.unwrap();
                accepted.send(()).unwrap();
                tokio::spawn(async move {
                    for n in 0..serves {
                        let Some(head) = read_head(&mut socket).await else {
                            return;
                        };
                        let empty = head.starts_with("GET /empty");
                        let answer = match empty {
                            true => "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
                            false => format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n{n}"),
                        };
                        socket.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        assert_eq!(body_of(&origin, "/").await, "0");
        // An empty body gives its connection back unread: hyper's server
        // never polls a body that says it has ended.
        let empty = origin.send(get("/empty")).await.unwrap();
        assert!(empty.body().is_end_stream());
        drop(empty);
        assert_eq!(body_of(&origin, "/").await, "2");
        assert!(
            accepts.try_recv().is_ok() && accepts.try_recv().is_err(),
            "one connection"
        );
        // The first connection is closed now, seen or not yet.
        assert_eq!(body_of(&origin, "/").await, "0");
        assert_eq!(body_of(&origin, "/").await, "1");
        assert!(
            accepts.try_recv().is_ok() && accepts.try_recv().is_err(),
            "a second one"
        );
    }

    #[tokio::test]
    async fn an_origin_that_refuses_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        let origin = Origin::new(uri, None).unwrap();
        let error = origin.send(get("/")).await.unwrap_err();
        assert!(matches!(error, OriginError::Connect(_)), "{error:?}");
    }
}
