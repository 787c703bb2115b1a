//! Dialling a URL: TCP to its host and port, and TLS for `https` (with the
//! `tls` feature), before the handshake.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Error;

/// Something that names the URL to upgrade on: a `&str`, a `String` or an
/// `http::Uri`. Text that does not parse is an [`Error::InvalidUrl`] when
/// the handshake starts, not a panic.
pub trait IntoUri: sealed::Sealed {
    /// Parses or passes on the URI.
    fn into_uri(self) -> Result<Uri, Error>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for http::Uri {}
    impl Sealed for &http::Uri {}
}

fn parse(text: &str) -> Result<Uri, Error> {
    text.parse()
        .map_err(|error: http::uri::InvalidUri| Error::InvalidUrl {
            url: text.to_owned(),
            reason: error.to_string(),
        })
}

impl IntoUri for &str {
    fn into_uri(self) -> Result<Uri, Error> {
        parse(self)
    }
}

impl IntoUri for String {
    fn into_uri(self) -> Result<Uri, Error> {
        parse(&self)
    }
}

impl IntoUri for &String {
    fn into_uri(self) -> Result<Uri, Error> {
        parse(self)
    }
}

impl IntoUri for Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self)
    }
}

impl IntoUri for &Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self.clone())
    }
}

/// Where a URL says to dial.
#[derive(Debug)]
pub(super) struct Dial {
    pub(super) host: String,
    pub(super) port: u16,
    #[cfg(feature = "tls")]
    pub(super) tls: bool,
}

impl Dial {
    /// `error`, or [`Error::WrongScheme`] when it shows that the server
    /// speaks TLS to a plain dial (a TLS record where the status line
    /// should be) or plain HTTP to a TLS one (rustls read no TLS record).
    pub(super) fn wrong_scheme(&self, error: Error) -> Error {
        let plain_got_tls = matches!(error, Error::Malformed(crate::head::TLS_RECORD));
        #[cfg(feature = "tls")]
        let tls_got_plain = matches!(&error, Error::Io(io) if io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|tls| matches!(tls, rustls::Error::InvalidMessage(_))));
        #[cfg(not(feature = "tls"))]
        let tls_got_plain = false;
        if !(plain_got_tls || tls_got_plain) {
            return error;
        }
        Error::WrongScheme {
            authority: format!("{}:{}", self.host, self.port),
            url_tls: tls_got_plain,
        }
    }

    pub(super) fn from_url(url: &Uri) -> Result<Dial, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let tls = match url.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(_) => return Err(invalid("the scheme must be http or https")),
            None => return Err(invalid("an absolute http:// or https:// URL is needed")),
        };
        if tls && cfg!(not(feature = "tls")) {
            return Err(Error::TlsNotEnabled {
                url: url.to_string(),
            });
        }
        let host = url.host().filter(|host| !host.is_empty());
        let host = host.ok_or_else(|| invalid("the URL has no host"))?;
        Ok(Dial {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: url.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// Opens the TCP connection, with Nagle's algorithm off: requests and
    /// streamed chunks are small and must not wait for an ACK.
    pub(super) async fn tcp(&self) -> Result<TcpStream, Error> {
        let connect_error = |source| Error::Connect {
            authority: format!("{}:{}", self.host, self.port),
            source: std::sync::Arc::new(source),
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(connect_error)?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// The connection [`Builder::connect`](super::Builder::connect) opened:
/// TCP, or TLS over TCP for an `https` URL.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub(super) fn tcp(tcp: TcpStream) -> Self {
        Stream {
            inner: Inner::Tcp(tcp),
        }
    }

    #[cfg(feature = "tls")]
    pub(super) fn tls(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        Stream {
            inner: Inner::Tls(Box::new(tls)),
        }
    }

    /// The TCP connection underneath, for its addresses or socket options.
    pub fn tcp_stream(&self) -> &TcpStream {
        match &self.inner {
            Inner::Tcp(tcp) => tcp,
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.inner, Inner::Tcp(_))
    }
}

/// Forwards one IO call to whichever stream is inside.
macro_rules! forward {
    ($self:ident, $io:ident => $call:expr) => {
        match &mut $self.get_mut().inner {
            Inner::Tcp($io) => {
                let $io = Pin::new($io);
                $call
            }
            #[cfg(feature = "tls")]
            Inner::Tls($io) => {
                let $io = Pin::new(&mut **$io);
                $call
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dial(url: &str) -> Result<Dial, Error> {
        Dial::from_url(&url.into_uri()?)
    }

    #[test]
    fn urls_name_host_port_and_tls() {
        let plain = dial("http://relay.example/reverse?id=1").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("relay.example", 80));
        let v6 = dial("http://[::1]:8080/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        match dial("https://relay.example/") {
            Ok(tls) => assert!(cfg!(feature = "tls") && tls.port == 443),
            Err(error) => assert!(
                !cfg!(feature = "tls") && matches!(error, Error::TlsNotEnabled { .. }),
                "{error}"
            ),
        }
    }

    #[test]
    fn unusable_urls_are_typed_errors() {
        for (url, reason) in [
            ("http://exa mple/", "invalid"),
            ("/reverse", "absolute"),
            ("ftp://relay.example/", "scheme"),
            ("relay.example:80", "absolute"),
        ] {
            match dial(url) {
                Err(Error::InvalidUrl {
                    url: given,
                    reason: why,
                }) => {
                    assert_eq!(given.trim_end_matches('/'), url.trim_end_matches('/'));
                    assert!(why.contains(reason), "{url}: {why}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
