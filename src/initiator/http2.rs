//! The setup over HTTP/2: each channel is an extended CONNECT (RFC 8441)
//! with `:protocol: ptth` and the `ALPN` offer, answered by a `2xx` that
//! carries the choice; the transposed protocol then runs inside that one
//! stream, and one connection carries many channels.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::settings::AckWatch;
use super::{Builder, IntoUri, Transposed};
use crate::channel::Channel;
use crate::rewind::Rewind;
use crate::{Declined, Dialect, Error};

/// The flow-control windows this side grants on the setup connection: the
/// acceptor's requests arrive through them, so they bound a channel's
/// upload. On loopback, uploads through a channel measured the same with
/// 1 to 32 MiB per stream (`examples/load.rs`): the CPU a channel costs
/// per byte bounds them there, not the window. Over a longer round trip
/// the window does: 8 MiB per stream still carries 160 MiB/s at 50 ms, and
/// the connection's lets four channels upload at once at full rate.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

impl Builder {
    /// Starts HTTP/2 on `io` (prior knowledge: TLS that negotiated `h2`,
    /// or cleartext `h2c`) and waits for the acceptor's SETTINGS. Returns
    /// the [`Channels`] to open transposed channels with, and the
    /// connection, which must be polled (spawned) for anything to move.
    ///
    /// The builder's URI must name the acceptor's authority (an absolute
    /// URI, or a `Host` header): an extended CONNECT carries it in
    /// `:authority`. Its scheme, `http` when absent, becomes `:scheme`.
    /// The setup request speaks the current dialect and has no body, so
    /// [`dialect`](Builder::dialect) and [`body`](Builder::body) are not
    /// used. The [`timeout`](Builder::timeout) bounds this call and each
    /// [`Channels::open`].
    ///
    /// An acceptor whose SETTINGS do not enable extended CONNECT is
    /// [`Error::NoHttp2Setup`].
    pub async fn handshake_http2<T>(&self, io: T) -> Result<(Channels, Http2Connection<T>), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let target = self.connect_target()?;
        let (io, acked) = AckWatch::new(io);
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        if let Some((interval, timeout)) = self.http2_keep_alive {
            builder
                .keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        let started = async {
            let (sender, mut connection) = builder.handshake(TokioIo::new(io)).await?;
            tokio::select! {
                () = acked.notified() => {}
                ended = &mut connection => {
                    return Err(ended.err().map_or(Error::Closed, Error::from));
                }
            }
            let enabled = connection.is_extended_connect_protocol_enabled();
            Ok::<_, Error>((sender, connection, enabled))
        };
        let (sender, connection, enabled) = self.timed(started).await?;
        if !enabled {
            return Err(Error::NoHttp2Setup(
                "its HTTP/2 SETTINGS do not enable extended CONNECT",
            ));
        }
        let channels = Channels {
            sender,
            builder: Arc::new(self.clone()),
            target,
            addrs: None,
        };
        Ok((channels, Http2Connection { inner: connection }))
    }

    /// Dials `url` and starts HTTP/2 on it for channels: TLS first for
    /// `https`, offering only `h2` at the TLS layer (with the `tls`
    /// feature), cleartext `h2c` for `http`; then
    /// [`handshake_http2`](Builder::handshake_http2), with its connection
    /// driven on a task of its own until every [`Channels`] and channel
    /// is dropped. The time bound covers all of it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ptth::Error> {
    /// use http_body_util::Full;
    /// use hyper::body::{Bytes, Incoming};
    /// use hyper::service::service_fn;
    /// use hyper::{Request, Response};
    ///
    /// let channels = ptth::initiator::Builder::new()
    ///     .connect_http2("https://relay.example/reverse")
    ///     .await?;
    /// for _ in 0..4 {
    ///     let transposed = channels.open().await?;
    ///     tokio::spawn(transposed.serve(service_fn(|_: Request<Incoming>| async {
    ///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hi"))))
    ///     })));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_http2(&self, url: impl IntoUri) -> Result<Channels, Error> {
        let url = url.into_uri()?;
        let dial = super::connect::Dial::from_url(&url)?;
        let builder = self.clone().uri(&url);
        let started = async {
            let tcp = dial.tcp().await?;
            let addrs = (tcp.local_addr()?, tcp.peer_addr()?);
            let io = builder.secure_http2(tcp, &dial).await?;
            let (channels, connection) = builder.handshake_http2(io).await?;
            let channels = Channels {
                addrs: Some(addrs),
                ..channels
            };
            Ok::<_, Error>((channels, connection))
        };
        let (channels, connection) = self.timed(started).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(
                    error = &error as &dyn std::error::Error,
                    "the HTTP/2 setup connection ended"
                );
            }
        });
        Ok(channels)
    }

    #[cfg(feature = "tls")]
    async fn secure_http2(
        &self,
        tcp: tokio::net::TcpStream,
        dial: &super::connect::Dial,
    ) -> Result<super::Stream, Error> {
        if !dial.tls {
            return Ok(super::Stream::tcp(tcp));
        }
        let mut config = (*self.tls.clone().unwrap_or_else(super::tls::default_config)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tls = super::tls::connect(tcp, &dial.host, Arc::new(config)).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::NoHttp2Setup("TLS did not negotiate h2"));
        }
        Ok(super::Stream::tls(tls))
    }

    #[cfg(not(feature = "tls"))]
    async fn secure_http2(
        &self,
        tcp: tokio::net::TcpStream,
        _: &super::connect::Dial,
    ) -> Result<super::Stream, Error> {
        Ok(super::Stream::tcp(tcp))
    }

    /// The URI of the extended CONNECT: scheme, authority and path.
    fn connect_target(&self) -> Result<Uri, Error> {
        let uri = self
            .uri
            .as_ref()
            .map_err(|(url, reason)| Error::InvalidUrl {
                url: url.clone(),
                reason: reason.clone(),
            })?;
        let invalid = |reason: &str| Error::InvalidUrl {
            url: uri.to_string(),
            reason: reason.to_owned(),
        };
        let authority = match self.headers.get(HOST) {
            Some(host) => Authority::try_from(host.as_bytes())
                .map_err(|_| invalid("the Host header is not an authority"))?,
            None => uri.authority().cloned().ok_or_else(|| {
                invalid("an extended CONNECT needs the acceptor's authority: give an absolute URI")
            })?,
        };
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(target)
            .build()
            .map_err(|error| invalid(&error.to_string()))
    }
}

/// Opens transposed channels on one HTTP/2 connection to the acceptor.
/// Cheap to clone; the connection closes once every clone and every
/// channel is gone.
#[derive(Clone)]
pub struct Channels {
    sender: http2::SendRequest<NoBody>,
    builder: Arc<Builder>,
    target: Uri,
    addrs: Option<(SocketAddr, SocketAddr)>,
}

impl Channels {
    /// Sends one extended CONNECT and, on a `2xx` with `ALPN`, returns the
    /// transposed channel, ready to [`serve`](Transposed::serve). Any
    /// other answer is [`Error::Declined`].
    pub async fn open(&self) -> Result<Transposed<Channel>, Error> {
        let mut sender = self.sender.clone();
        let builder = &self.builder;
        let opening = async {
            sender.ready().await?;
            let mut response = sender.send_request(self.request()).await?;
            let status = response.status();
            // A 204 asks to send the setup again, as after an upgrade.
            if !status.is_success() || status == StatusCode::NO_CONTENT {
                let headers = response.headers().clone();
                let body = start_of(response.into_body(), builder.max_declined_body).await;
                return Err(Error::Declined(Box::new(Declined {
                    status,
                    headers,
                    body,
                })));
            }
            let protocol = builder.chosen_protocol(response.headers())?;
            let upgraded = hyper::upgrade::on(&mut response)
                .await
                .map_err(|error| Error::NotHandedOver(std::sync::Arc::new(error)))?;
            let io = Rewind::new(Channel::new(upgraded), Bytes::new());
            let headers = response.into_parts().0.headers;
            Ok(Transposed::new(io, protocol, Dialect::Current, headers))
        };
        let opened = builder.timed(opening).await;
        match &opened {
            Ok(transposed) => debug!(protocol = %transposed.protocol, "channel opened"),
            Err(error) => debug!(
                error = error as &dyn std::error::Error,
                "channel not opened"
            ),
        }
        opened
    }

    /// Whether the connection has closed: no channel can be opened on it.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// This side's address, when [`Builder::connect_http2`] dialled.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.map(|(local, _)| local)
    }

    /// The acceptor's address, when [`Builder::connect_http2`] dialled.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.addrs.map(|(_, peer)| peer)
    }

    fn request(&self) -> Request<NoBody> {
        let mut request = Request::new(NoBody);
        *request.method_mut() = Method::CONNECT;
        *request.uri_mut() = self.target.clone();
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("ptth"));
        let headers = request.headers_mut();
        let owned = [HOST, UPGRADE, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING];
        for (name, value) in &self.builder.headers {
            if !owned.contains(name) && name.as_str() != "alpn" {
                headers.append(name, value.clone());
            }
        }
        let offer: Vec<&str> = self.builder.alpn.iter().map(|p| p.alpn_field()).collect();
        if let Ok(offer) = HeaderValue::from_str(&offer.join(", ")) {
            headers.insert("alpn", offer);
        }
        request
    }
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("target", &self.target)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The HTTP/2 connection channels are opened on; it must be polled
/// (spawned) for them to move, and completes when it closes.
#[must_use = "futures do nothing unless polled"]
pub struct Http2Connection<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    inner: http2::Connection<TokioIo<AckWatch<T>>, NoBody, TokioExecutor>,
}

impl<T> Future for Http2Connection<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx).map_err(Error::from)
    }
}

impl<T> fmt::Debug for Http2Connection<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http2Connection").finish_non_exhaustive()
    }
}

/// The extended CONNECT's body: none, its stream carries the channel.
#[derive(Debug, Clone, Copy, Default)]
struct NoBody;

impl Body for NoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(0)
    }
}

/// Up to `limit` bytes of a refusal's body; the rest is not read.
async fn start_of(body: Incoming, limit: usize) -> Bytes {
    let mut body = pin!(body);
    let mut kept = BytesMut::new();
    while kept.len() < limit {
        match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    kept.freeze()
}
