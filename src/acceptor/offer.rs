//! An acceptable upgrade request, waiting to be accepted or rejected.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::{Instrument, Span, debug, field};

use super::answer::{refuse, switching_bytes, write_response};
use super::coalesce::Coalesce;
use super::{Builder, Connection, SendRequest, Validated, upgrade_host};
use crate::{Dialect, Error, Protocol};

/// A valid upgrade request, waiting for the application to
/// [`accept`](Offer::accept) or [`reject`](Offer::reject) it.
#[derive(Debug)]
pub struct Offer<T> {
    pub(super) request: Request<Bytes>,
    pub(super) validated: Validated,
    /// Extra fields for the `101`.
    pub(super) headers: HeaderMap,
    pub(super) peer: Option<SocketAddr>,
    pub(super) io: T,
    pub(super) builder: Builder,
    pub(super) span: Span,
}

impl<T> Offer<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// The upgrade request: method, target, headers and the whole body.
    pub fn request(&self) -> &Request<Bytes> {
        &self.request
    }

    /// The dialect the initiator asked for.
    pub fn dialect(&self) -> Dialect {
        self.validated.dialect
    }

    /// The protocol [`accept`](Offer::accept) will switch to.
    pub fn protocol(&self) -> Protocol {
        self.validated.protocol
    }

    /// The ALPN ids the initiator offered, percent-decoded, in its order;
    /// empty in the legacy dialect.
    pub fn offered_protocols(&self) -> &[String] {
        &self.validated.offered
    }

    /// The initiator's address, when it was given to
    /// [`Builder::read_request_from`].
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Adds a field to the `101` that [`accept`](Offer::accept) writes, such
    /// as a relay's `Link: <public URL>; rel="related"`. The fields that
    /// make the switch (`Upgrade`, `Connection`, `ALPN`) are the
    /// acceptor's own and are not taken from here.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Answers `101 Switching Protocols` and starts hyper's client on the
    /// transposed connection.
    ///
    /// The returned [`Connection`] must be polled (usually spawned) while
    /// the [`SendRequest`] is used. Fails with [`Error::EarlyData`] (and
    /// closes) if the initiator has sent anything since its request.
    pub async fn accept<B>(self) -> Result<(SendRequest<B>, Connection), Error>
    where
        T: Send + 'static,
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let Offer {
            mut io,
            request,
            validated,
            headers,
            builder,
            span,
            ..
        } = self;
        let host = upgrade_host(&request);
        let protocol = validated.protocol;
        span.record("protocol", field::display(protocol));
        let exchange = async {
            if let Err(error) = no_early_data(&mut io) {
                refuse(&mut io, &error).await;
                return Err(error);
            }
            let switching = switching_bytes(&validated, &headers).freeze();
            if protocol == Protocol::Http2 {
                // hyper writes the preface at once: it carries the 101.
                let io = Coalesce::new(io, switching);
                return builder.start_client(TokioIo::new(io), protocol, host).await;
            }
            // On HTTP/1.1 nothing may be written for a long time.
            io.write_all(&switching).await?;
            io.flush().await?;
            builder.start_client(TokioIo::new(io), protocol, host).await
        };
        let result = match tokio::time::timeout(builder.config.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut(builder.config.timeout)),
        };
        span.in_scope(|| match &result {
            Ok(_) => debug!("upgraded"),
            Err(error) => debug!(
                error = error as &dyn std::error::Error,
                "accepting the upgrade failed"
            ),
        });
        result
    }

    /// Answers with `response` instead of switching, and gives the
    /// connection back. It is still an ordinary HTTP/1.1 connection (the
    /// request was read whole), so it can be served with hyper or read for
    /// another upgrade request, unless `response` says `Connection: close`.
    /// A `Content-Length` is added when the response has no framing.
    pub async fn reject(mut self, response: Response<Bytes>) -> Result<T, Error> {
        let status = response.status();
        let written = tokio::time::timeout(
            self.builder.config.timeout,
            write_response(&mut self.io, &response),
        )
        .instrument(self.span.clone())
        .await;
        self.span.in_scope(|| debug!(%status, "upgrade rejected"));
        match written {
            Ok(result) => result.map(|()| self.io),
            Err(_) => Err(Error::TimedOut(self.builder.config.timeout)),
        }
    }
}

/// Fails if the initiator has sent bytes it should have held back until it
/// saw the 101: we refuse and close rather than guess what they belong to.
/// Only bytes already received count; this never waits.
fn no_early_data<T: AsyncRead + Unpin>(io: &mut T) -> Result<(), Error> {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(io).poll_read(&mut cx, &mut buf) {
        Poll::Pending => Ok(()),
        Poll::Ready(Ok(())) if buf.filled().is_empty() => Err(Error::Closed),
        Poll::Ready(Ok(())) => Err(Error::EarlyData),
        Poll::Ready(Err(error)) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;
    use crate::acceptor::Builder;

    const BOUND: Duration = Duration::from_secs(5);
    const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\
        Upgrade: ptth\r\nALPN: http%2F1.1\r\nContent-Length: 0\r\n\r\n";

    /// An offer from an initiator that sends its upgrade request and then
    /// never reads, over a pipe too small for the acceptor's answer.
    async fn offer_from_a_deaf_initiator() -> (Offer<DuplexStream>, DuplexStream) {
        let (mut initiator, acceptor) = tokio::io::duplex(16);
        let writing = tokio::spawn(async move {
            initiator.write_all(UPGRADE).await.unwrap();
            initiator
        });
        let offer = Builder::new().timeout(BOUND).read_request(acceptor).await;
        (offer.unwrap(), writing.await.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn accept_is_time_bounded_when_the_initiator_stops_reading() {
        let (offer, _initiator) = offer_from_a_deaf_initiator().await;
        let started = tokio::time::Instant::now();
        let accepting = tokio::time::timeout(2 * BOUND, offer.accept::<String>());
        let error = accepting.await.expect("no time bound").unwrap_err();
        assert!(matches!(error, Error::TimedOut(BOUND)), "{error:?}");
        assert_eq!(started.elapsed(), BOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn reject_is_time_bounded_when_the_initiator_stops_reading() {
        let (offer, _initiator) = offer_from_a_deaf_initiator().await;
        let started = tokio::time::Instant::now();
        let refusal = Response::new(Bytes::from(vec![b'x'; 4096]));
        let rejecting = tokio::time::timeout(2 * BOUND, offer.reject(refusal));
        let error = rejecting.await.expect("no time bound").unwrap_err();
        assert!(matches!(error, Error::TimedOut(BOUND)), "{error:?}");
        assert_eq!(started.elapsed(), BOUND);
    }

    /// The same offers complete when the initiator reads.
    #[tokio::test(start_paused = true)]
    async fn accept_and_reject_complete_when_the_initiator_reads() {
        let (offer, mut initiator) = offer_from_a_deaf_initiator().await;
        let reading = tokio::spawn(async move {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(initiator.read_u8().await.unwrap());
            }
            assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
            initiator
        });
        let (_sender, _connection) = offer.accept::<String>().await.unwrap();
        // On HTTP/1.1 the 101 is written by `accept` itself: no request may
        // come for minutes, and the connection is not even polled here.
        let read = tokio::time::timeout(BOUND, reading).await;
        read.expect("accept did not write the 101").unwrap();

        let (offer, mut initiator) = offer_from_a_deaf_initiator().await;
        let reading = tokio::spawn(async move {
            let mut answer = Vec::new();
            initiator.read_to_end(&mut answer).await.unwrap();
            answer
        });
        let mut refusal = Response::new(Bytes::from_static(b"no"));
        *refusal.status_mut() = http::StatusCode::FORBIDDEN;
        drop(offer.reject(refusal).await.unwrap());
        let answer = reading.await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 403 "), "{answer:?}");
        assert!(answer.ends_with(b"\r\n\r\nno"), "{answer:?}");
    }
}
