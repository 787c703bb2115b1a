//! The load harness: what is compared (protocols, paths, ends and roles),
//! and the service and bodies every path runs.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    H1,
    H2,
}

impl Proto {
    pub(crate) fn ptth(self) -> Protocol {
        match self {
            Proto::H1 => Protocol::Http1,
            Proto::H2 => Protocol::Http2,
        }
    }

    pub(crate) fn parse(name: &str) -> Result<Proto, BoxError> {
        [Proto::H1, Proto::H2]
            .into_iter()
            .find(|p| p.ptth().alpn_id() == name)
            .ok_or_else(|| format!("unknown protocol {name}").into())
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.ptth().alpn_id())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Plain hyper: the client dials the server.
    Plain,
    /// ptth set up by an HTTP/1.1 upgrade: the initiator dials the acceptor
    /// and then serves it.
    Transposed,
    /// ptth set up over HTTP/2: the initiator dials the acceptor and then
    /// serves it on channels, one extended CONNECT each.
    Channel,
    /// `Channel` with hyper's default windows on the acceptor's side.
    ChannelUntuned,
}

impl Path {
    pub(crate) const ALL: [Path; 4] = [
        Path::Plain,
        Path::Transposed,
        Path::Channel,
        Path::ChannelUntuned,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain",
            Path::Transposed => "transposed",
            Path::Channel => "channel",
            Path::ChannelUntuned => "channel-untuned",
        }
    }

    /// What the report's header calls it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Path::Plain => "plain hyper",
            Path::Transposed => "ptth after an HTTP/1.1 upgrade",
            Path::Channel => "ptth channels over HTTP/2",
            Path::ChannelUntuned => "ptth channels over HTTP/2 with hyper's windows",
        }
    }

    pub(crate) fn parse(name: &str) -> Result<Path, BoxError> {
        Path::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown path {name}").into())
    }

    /// Whether its connections are channels, several of which may share a
    /// TCP connection.
    pub(crate) fn is_channel(self) -> bool {
        matches!(self, Path::Channel | Path::ChannelUntuned)
    }

    /// The HTTP role at each end of the TCP connection: on the ptth paths
    /// the end that dials is the one that serves.
    pub(crate) fn role(self, end: End) -> Role {
        match (self, end) {
            (Path::Plain, End::Dial) => Role::Client,
            (Path::Plain, End::Listen) => Role::Server,
            (_, End::Listen) => Role::Client,
            (_, End::Dial) => Role::Server,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Listen,
    Dial,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

// ---------------------------------------------------------------------------
// The service and the bodies, one of each for every path.

/// `/upload` counts the request body and answers the count, `/download/N`
/// streams N bytes, anything else gets a small fixed body.
pub(crate) async fn service(request: Request<Incoming>) -> Result<Response<ResBody>, hyper::Error> {
    let path = request.uri().path();
    if path == "/upload" {
        let received = drain(request.into_body()).await?;
        let count = Full::new(Bytes::from(received.to_string()));
        return Ok(Response::new(Either::Left(count)));
    }
    if let Some(Ok(remaining)) = path.strip_prefix("/download/").map(str::parse) {
        return Ok(Response::new(Either::Right(Chunks { remaining })));
    }
    let reply = Full::new(Bytes::from_static(SMALL_REPLY));
    Ok(Response::new(Either::Left(reply)))
}

/// A body of `remaining` bytes sent as slices of one static 64 KiB chunk,
/// so producing it copies and allocates nothing, on any path.
pub(crate) struct Chunks {
    pub(crate) remaining: u64,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.remaining.min(CHUNK_SIZE as u64) as usize;
        if len == 0 {
            return Poll::Ready(None);
        }
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads a body to its end without keeping it, and returns its length.
pub(crate) async fn drain(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            length += data.len() as u64;
        }
    }
    Ok(length)
}

/// A request as every path sends it, with its authority given, so the
/// bytes on the wire are the same on every path: HTTP/1.1 gets a `Host`
/// (ptth's sender would add an empty one, plain hyper none), HTTP/2 an
/// absolute target (ptth's sender would add `:authority`, plain hyper none,
/// which a strict server refuses).
pub(crate) fn request(
    protocol: Proto,
    method: Method,
    path: Uri,
    body: ReqBody,
) -> Request<ReqBody> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    match protocol {
        Proto::H1 => {
            *request.uri_mut() = path;
            let host = HeaderValue::from_static("localhost");
            request.headers_mut().insert(HOST, host);
        }
        Proto::H2 => {
            let mut parts = path.into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(Authority::from_static("localhost"));
            *request.uri_mut() = Uri::from_parts(parts).expect("an absolute URI");
        }
    }
    request
}

pub(crate) fn small_get(protocol: Proto) -> Request<ReqBody> {
    let small = Uri::from_static("/small");
    request(protocol, Method::GET, small, Either::Left(Empty::new()))
}
