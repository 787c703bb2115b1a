//! The load harness: opening connections and channels on any path, and
//! running paths side by side.

use super::*;

/// The client end's handle on one connection, plain or transposed.
pub(crate) enum Sender {
    Http1(client::conn::http1::SendRequest<ReqBody>),
    Http2(client::conn::http2::SendRequest<ReqBody>),
    Transposed(ptth::acceptor::SendRequest<ReqBody>),
}

impl Sender {
    /// Sends `request` once the connection can take it; anything but `200`
    /// is an error.
    pub(crate) async fn send(
        &mut self,
        request: Request<ReqBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        let response = match self {
            Sender::Http1(tx) => {
                tx.ready().await?;
                tx.send_request(request).await?
            }
            Sender::Http2(tx) => {
                tx.ready().await?;
                tx.send_request(request).await?
            }
            Sender::Transposed(tx) => tx.send_request(request).await?,
        };
        match response.status() {
            StatusCode::OK => Ok(response),
            status => Err(format!("the service answered {status}").into()),
        }
    }

    /// One small GET, its response read to the end.
    pub(crate) async fn get_small(&mut self, protocol: Proto) -> Result<(), BoxError> {
        let response = self.send(small_get(protocol)).await?;
        drain(response.into_body()).await?;
        Ok(())
    }

    /// Another handle on the same connection; HTTP/2 only.
    pub(crate) fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(tx) => Some(Sender::Http2(tx.clone())),
            Sender::Transposed(tx) if tx.protocol() == Protocol::Http2 => {
                Some(Sender::Transposed(tx.clone()))
            }
            Sender::Transposed(_) => None,
        }
    }
}

/// Every builder any path uses, for one protocol. The plain ones are set up
/// as ptth sets up its own (`ptth::initiator::Server::new`: HTTP/1.1
/// keep-alive and no header-read timeout, HTTP/2 with tokio's executor and
/// timer; `ptth::acceptor::Builder::new`: hyper's client defaults, HTTP/2
/// with tokio's timer), so that the paths differ only by ptth itself.
pub(crate) struct Builders {
    pub(crate) protocol: Proto,
    pub(crate) server_h1: server::conn::http1::Builder,
    pub(crate) server_h2: server::conn::http2::Builder<TokioExecutor>,
    pub(crate) client_h1: client::conn::http1::Builder,
    pub(crate) client_h2: client::conn::http2::Builder<TokioExecutor>,
    pub(crate) initiator: ptth::initiator::Builder,
    pub(crate) server: ptth::initiator::Server,
    pub(crate) acceptor: ptth::acceptor::Builder,
    /// The initiator on the channel paths: an extended CONNECT names the
    /// acceptor's authority, where the upgrade goes without one.
    pub(crate) channel_initiator: ptth::initiator::Builder,
    /// The acceptor's HTTP/2 server on the channel path, and on the
    /// untuned one.
    pub(crate) channel_server: server::conn::http2::Builder<TokioExecutor>,
    pub(crate) untuned_server: server::conn::http2::Builder<TokioExecutor>,
}

impl Builders {
    pub(crate) fn new(protocol: Proto) -> Self {
        let mut server_h1 = server::conn::http1::Builder::new();
        server_h1.keep_alive(true).header_read_timeout(None);
        let mut server_h2 = server::conn::http2::Builder::new(TokioExecutor::new());
        server_h2.timer(TokioTimer::new());
        let mut client_h2 = client::conn::http2::Builder::new(TokioExecutor::new());
        client_h2.timer(TokioTimer::new());
        let initiator = ptth::initiator::Builder::new().protocols([protocol.ptth()]);
        let channel_initiator = initiator.clone().uri("http://localhost/");
        // As a relay's: tokio's timer and extended CONNECT.
        let mut untuned_server = server::conn::http2::Builder::new(TokioExecutor::new());
        untuned_server
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let mut channel_server = untuned_server.clone();
        channel_server
            .initial_stream_window_size(SETUP_STREAM_WINDOW)
            .initial_connection_window_size(SETUP_CONNECTION_WINDOW);
        Builders {
            protocol,
            server_h1,
            server_h2,
            client_h1: client::conn::http1::Builder::new(),
            client_h2,
            initiator,
            server: ptth::initiator::Server::new(),
            acceptor: ptth::acceptor::Builder::new(),
            channel_initiator,
            channel_server,
            untuned_server,
        }
    }

    /// Takes up `role` on one TCP connection, which on a channel path
    /// carries `channels` channels (and on the others is one connection).
    /// A client sends one GET on each before returning its senders, so by
    /// then both ends are past every handshake.
    pub(crate) async fn open(
        &self,
        path: Path,
        role: Role,
        tcp: TcpStream,
        channels: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        match role {
            Role::Server => {
                self.serve(path, tcp, channels).await?;
                Ok(Vec::new())
            }
            Role::Client => {
                let mut senders = self.client(path, tcp, channels).await?;
                for sender in &mut senders {
                    sender.get_small(self.protocol).await?;
                }
                Ok(senders)
            }
        }
    }

    /// Starts serving on `tcp`: on the transposed path after the upgrade,
    /// on a channel path on each of `channels` channels opened on it.
    pub(crate) async fn serve(
        &self,
        path: Path,
        tcp: TcpStream,
        channels: usize,
    ) -> Result<(), BoxError> {
        let service = service_fn(service);
        match (path, self.protocol) {
            (Path::Plain, Proto::H1) => {
                tokio::spawn(self.server_h1.serve_connection(TokioIo::new(tcp), service));
            }
            (Path::Plain, Proto::H2) => {
                tokio::spawn(self.server_h2.serve_connection(TokioIo::new(tcp), service));
            }
            (Path::Transposed, _) => {
                let transposed = self.initiator.handshake(tcp).await?;
                tokio::spawn(self.server.serve_connection(transposed, service));
            }
            (Path::Channel | Path::ChannelUntuned, _) => {
                let (opener, connection) = self.channel_initiator.handshake_http2(tcp).await?;
                tokio::spawn(connection);
                for _ in 0..channels {
                    let transposed = opener.open().await?;
                    tokio::spawn(self.server.serve_connection(transposed, service));
                }
            }
        }
        Ok(())
    }

    /// Starts a client on `tcp`, on the transposed path after accepting the
    /// upgrade, and returns its sender; on a channel path, a sender on each
    /// of the first `channels` channels set up on it.
    pub(crate) async fn client(
        &self,
        path: Path,
        tcp: TcpStream,
        channels: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        let sender = match (path, self.protocol) {
            (Path::Plain, Proto::H1) => {
                let (tx, connection) = self.client_h1.handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(connection);
                Sender::Http1(tx)
            }
            (Path::Plain, Proto::H2) => {
                let (tx, connection) = self.client_h2.handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(connection);
                Sender::Http2(tx)
            }
            (Path::Transposed, _) => {
                let offer = self.acceptor.read_request(tcp).await?;
                let (tx, connection) = offer.accept().await?;
                tokio::spawn(connection);
                self.transposed(tx)?
            }
            (Path::Channel | Path::ChannelUntuned, _) => {
                return self.accept_channels(path, tcp, channels).await;
            }
        };
        Ok(vec![sender])
    }

    /// Serves HTTP/2 on `tcp` as a relay does, taking every extended
    /// CONNECT with `ptth::upgrade::accept`, and returns a sender on each of
    /// the first `count` channels.
    pub(crate) async fn accept_channels(
        &self,
        path: Path,
        tcp: TcpStream,
        count: usize,
    ) -> Result<Vec<Sender>, BoxError> {
        let (switching, mut switched) = mpsc::unbounded_channel();
        let acceptor = self.acceptor.clone();
        let setup = service_fn(move |mut request: Request<Incoming>| {
            let answer =
                match ptth::upgrade::accept::<ReqBody, Full<Bytes>>(&acceptor, &mut request) {
                    Ok((answer, pending)) => {
                        let _ = switching.send(pending);
                        answer
                    }
                    // The initiator reads why from the answer and fails there.
                    Err(rejection) => rejection.response,
                };
            async { Ok::<_, Infallible>(answer) }
        });
        let server = match path {
            Path::ChannelUntuned => &self.untuned_server,
            _ => &self.channel_server,
        };
        tokio::spawn(server.serve_connection(TokioIo::new(tcp), setup));
        let mut senders = Vec::with_capacity(count);
        while senders.len() < count {
            let pending = switched.recv().await.ok_or("the setup connection ended")?;
            let (tx, connection) = pending.await?;
            tokio::spawn(connection);
            senders.push(self.transposed(tx)?);
        }
        Ok(senders)
    }

    /// The acceptor's sender on a ptth path, once it is known to speak this
    /// row's protocol.
    pub(crate) fn transposed(
        &self,
        tx: ptth::acceptor::SendRequest<ReqBody>,
    ) -> Result<Sender, BoxError> {
        if tx.protocol() != self.protocol.ptth() {
            return Err(format!("transposed to {}, not {}", tx.protocol(), self.protocol).into());
        }
        Ok(Sender::Transposed(tx))
    }
}

/// Where one end gets its connections: by accepting or by dialling.
pub(crate) enum Source {
    Listen(TcpListener),
    Dial(SocketAddr),
}

impl Source {
    pub(crate) fn end(&self) -> End {
        match self {
            Source::Listen(_) => End::Listen,
            Source::Dial(_) => End::Dial,
        }
    }

    pub(crate) async fn next(&self) -> std::io::Result<TcpStream> {
        let tcp = match self {
            Source::Listen(listener) => listener.accept().await?.0,
            Source::Dial(addr) => TcpStream::connect(addr).await?,
        };
        // The same on every path: small messages go out at once.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// Plays one end of `connections` TCP connections on `path`, each carrying
/// `channels` channels on a channel path, opening a few at a time, and
/// returns the senders if this end is the client.
pub(crate) async fn open_end(
    builders: Arc<Builders>,
    path: Path,
    source: Source,
    connections: usize,
    channels: usize,
) -> Result<Vec<Sender>, BoxError> {
    let role = path.role(source.end());
    let mut opening = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..connections {
        if opening.len() == OPENING_AT_ONCE {
            senders.extend(opened(&mut opening).await?);
        }
        let tcp = source.next().await?;
        let builders = builders.clone();
        opening.spawn(async move { builders.open(path, role, tcp, channels).await });
    }
    while !opening.is_empty() {
        senders.extend(opened(&mut opening).await?);
    }
    Ok(senders)
}

/// Waits for the next TCP connection to be open.
pub(crate) async fn opened(
    opening: &mut JoinSet<Result<Vec<Sender>, BoxError>>,
) -> Result<Vec<Sender>, BoxError> {
    match opening.join_next().await {
        Some(result) => result?,
        None => Ok(Vec::new()),
    }
}

/// Opens `count` connections on `path` between two ends in this process,
/// and returns the client end's senders. On a channel path they are `count`
/// channels on one TCP connection, as the setup is meant to be used.
pub(crate) async fn connect(
    builders: &Arc<Builders>,
    path: Path,
    count: usize,
) -> Result<Vec<Sender>, BoxError> {
    let (connections, channels) = if path.is_channel() {
        (1, count)
    } else {
        (count, 1)
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (mut senders, dialled) = tokio::try_join!(
        open_end(
            builders.clone(),
            path,
            Source::Listen(listener),
            connections,
            channels
        ),
        open_end(
            builders.clone(),
            path,
            Source::Dial(addr),
            connections,
            channels
        ),
    )?;
    senders.extend(dialled);
    Ok(senders)
}

/// `in_flight` senders: on HTTP/1.1 one connection each, on HTTP/2 handles
/// on one connection.
pub(crate) async fn senders(
    builders: &Arc<Builders>,
    path: Path,
    in_flight: usize,
) -> Result<Vec<Sender>, BoxError> {
    if builders.protocol == Proto::H1 {
        return connect(builders, path, in_flight).await;
    }
    let mut senders = connect(builders, path, 1).await?;
    while senders.len() < in_flight {
        let shared = senders[0]
            .share()
            .ok_or("an HTTP/2 sender should be shareable")?;
        senders.push(shared);
    }
    Ok(senders)
}

/// Runs `round` for each of `paths`, `rounds` times, after one unrecorded
/// warm-up round each, and returns each path's results in the order of
/// `paths`, taking [`turns`]. A round opens its own connections, so where
/// tokio happens to place their tasks on its workers is drawn anew each
/// round instead of holding for a whole row.
pub(crate) async fn side_by_side<T>(
    paths: &[Path],
    rounds: usize,
    mut round: impl AsyncFnMut(Path) -> Result<T, BoxError>,
) -> Result<Vec<Vec<T>>, BoxError> {
    for &path in paths {
        round(path).await?;
    }
    let mut results: Vec<Vec<T>> = paths.iter().map(|_| Vec::new()).collect();
    for number in 0..rounds {
        for index in turns(number, paths.len()) {
            results[index].push(round(paths[index]).await?);
        }
    }
    Ok(results)
}

/// The order of `paths` paths in round `number`: each round starts with the
/// next path, and every other round runs backwards (A B C, B A C, C A B,
/// A C B, ...; for two, A B, B A, ...), so no path always goes first or
/// always runs in the same one's wake, as it would if the order only
/// rotated.
pub(crate) fn turns(number: usize, paths: usize) -> impl Iterator<Item = usize> {
    let start = number % paths;
    (0..paths).map(move |turn| {
        if number % 2 == 0 {
            (start + turn) % paths
        } else {
            (start + paths - turn) % paths
        }
    })
}
