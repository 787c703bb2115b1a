//! An acceptor for the setup over HTTP/2: a hyper HTTP/2 server whose
//! service takes extended CONNECTs with `ptth::upgrade::accept` and hands
//! each channel's sender to the test.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ptth::acceptor::SendRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

pub type Sender = SendRequest<Full<Bytes>>;

/// What the acceptor's service made of one setup request.
pub type Outcome = Result<Sender, ptth::Error>;

/// How the acceptor's HTTP/2 server is set up.
#[derive(Clone)]
pub struct H2Acceptor {
    /// Whether its SETTINGS enable extended CONNECT.
    extended_connect: bool,
    ptth: ptth::acceptor::Builder,
    tls: Option<TlsAcceptor>,
    /// The connections taken so far, to count or cut them.
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    /// Their count, to wait on.
    accepts: watch::Sender<usize>,
}

impl H2Acceptor {
    pub fn new() -> Self {
        H2Acceptor {
            extended_connect: true,
            ptth: ptth::acceptor::Builder::new(),
            tls: None,
            connections: Arc::default(),
            accepts: watch::Sender::new(0),
        }
    }

    /// Without extended CONNECT in its SETTINGS.
    pub fn without_extended_connect(self) -> Self {
        H2Acceptor {
            extended_connect: false,
            ..self
        }
    }

    /// With these acceptor settings.
    pub fn ptth(self, ptth: ptth::acceptor::Builder) -> Self {
        H2Acceptor { ptth, ..self }
    }

    /// Over TLS.
    pub fn tls(self, tls: TlsAcceptor) -> Self {
        H2Acceptor {
            tls: Some(tls),
            ..self
        }
    }

    /// Waits until `count` connections have been taken.
    pub async fn until_accepted(&self, count: usize) {
        let mut accepts = self.accepts.subscribe();
        accepts.wait_for(|taken| *taken >= count).await.unwrap();
    }

    pub fn accepted(&self) -> usize {
        *self.accepts.borrow()
    }

    /// Drops every connection taken so far, as a relay that restarts.
    pub fn cut(&self) {
        for connection in self.connections.lock().unwrap().iter() {
            connection.abort();
        }
    }

    /// Serves HTTP/2 on every connection `listener` takes; each setup's
    /// sender, or why it was refused, comes out of the receiver.
    pub fn serve(&self, listener: TcpListener) -> mpsc::UnboundedReceiver<Outcome> {
        let this = self.clone();
        let (outcomes, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = this.clone();
                let outcomes = outcomes.clone();
                let connections = this.connections.clone();
                let connection = tokio::spawn(async move {
                    match acceptor.tls.clone() {
                        Some(tls) => {
                            let tls = tls.accept(tcp).await.unwrap();
                            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                            acceptor.connection(tls, outcomes).await;
                        }
                        None => acceptor.connection(tcp, outcomes).await,
                    }
                });
                connections.lock().unwrap().push(connection.abort_handle());
                this.accepts.send_modify(|taken| *taken += 1);
            }
        });
        received
    }

    async fn connection<T>(self, io: T, outcomes: mpsc::UnboundedSender<Outcome>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        if self.extended_connect {
            builder.enable_connect_protocol();
        }
        let ptth = self.ptth.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            let accepted = ptth::upgrade::accept::<Full<Bytes>, Full<Bytes>>(&ptth, &mut request);
            let outcomes = outcomes.clone();
            async move {
                Ok::<_, Infallible>(match accepted {
                    Ok((answer, pending)) => {
                        tokio::spawn(async move {
                            let outcome = pending.await.map(|(sender, connection)| {
                                tokio::spawn(connection);
                                sender
                            });
                            let _ = outcomes.send(outcome);
                        });
                        answer
                    }
                    Err(rejection) => {
                        let _ = outcomes.send(Err(rejection.error));
                        rejection.response
                    }
                })
            }
        });
        let _ = builder.serve_connection(TokioIo::new(io), service).await;
    }
}

/// Sends `GET path` to the initiator through `sender` and returns the
/// answer's body; the echo service answers with what it was asked.
pub async fn call(sender: &Sender, path: &str) -> String {
    let mut sender = sender.clone();
    let request = Request::get(path).body(Full::default()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}
