//! A relay played by this crate's acceptor on a real socket, for tunnel
//! tests: it answers each upgrade request as the test says, reports every
//! one, and can be stopped and started again on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use ptth::acceptor::Offer;
use ptth::acceptor::SendRequest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How the relay answers an upgrade request: `None` accepts it.
pub type Answer = Arc<dyn Fn(&Request<Bytes>) -> Option<Response<Bytes>> + Send + Sync>;

pub fn accept_all() -> Answer {
    Arc::new(|_| None)
}

/// Adds fields to a `101` before it is written.
type Decorate = Arc<dyn Fn(Offer<TcpStream>) -> Offer<TcpStream> + Send + Sync>;

/// One upgrade request the relay read.
pub struct Upgrade {
    pub at: Instant,
    pub request: Request<Bytes>,
    /// The sender, when the relay accepted.
    pub sender: Option<SendRequest<Full<Bytes>>>,
    /// Closes the accepted connection when sent to.
    pub kill: Option<oneshot::Sender<()>>,
}

pub struct FakeRelay {
    pub addr: SocketAddr,
    pub upgrades: mpsc::UnboundedReceiver<Upgrade>,
    task: JoinHandle<()>,
}

impl FakeRelay {
    /// Listens on `addr` (port 0 for a free one) and answers with `answer`.
    pub async fn start(addr: SocketAddr, answer: Answer) -> FakeRelay {
        Self::start_with(addr, answer, |offer| offer).await
    }

    /// [`FakeRelay::start`], with `decorate` adding fields to each `101`.
    pub async fn start_with(
        addr: SocketAddr,
        answer: Answer,
        decorate: impl Fn(Offer<TcpStream>) -> Offer<TcpStream> + Send + Sync + 'static,
    ) -> FakeRelay {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, upgrades) = mpsc::unbounded_channel();
        let decorate: Decorate = Arc::new(decorate);
        let task = tokio::spawn(async move {
            // Owned here, so stopping the relay closes every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                connections.spawn(serve(
                    tcp,
                    peer,
                    answer.clone(),
                    decorate.clone(),
                    report.clone(),
                ));
            }
        });
        FakeRelay {
            addr,
            upgrades,
            task,
        }
    }

    /// The next upgrade request, waited for a bounded time.
    pub async fn next(&mut self) -> Upgrade {
        tokio::time::timeout(Duration::from_secs(15), self.upgrades.recv())
            .await
            .expect("no upgrade request came")
            .expect("the relay stopped")
    }

    /// The next accepted upgrade's sender.
    pub async fn next_sender(&mut self) -> SendRequest<Full<Bytes>> {
        self.next().await.sender.expect("the upgrade was accepted")
    }

    /// Stops listening and closes every connection, as a relay that went
    /// away would; returns the port's address to start again on.
    pub async fn stop(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        self.addr
    }
}

async fn serve(
    mut tcp: TcpStream,
    peer: SocketAddr,
    answer: Answer,
    decorate: Decorate,
    report: mpsc::UnboundedSender<Upgrade>,
) {
    let acceptor = ptth::acceptor::Builder::new();
    loop {
        let Ok(offer) = acceptor.read_request_from(tcp, peer).await else {
            return;
        };
        let request = offer.request().clone();
        let at = Instant::now();
        if let Some(response) = answer(&request) {
            let _ = report.send(Upgrade {
                at,
                request,
                sender: None,
                kill: None,
            });
            match offer.reject(response).await {
                Ok(io) => tcp = io,
                Err(_) => return,
            }
            continue;
        }
        let offer = decorate(offer);
        let Ok((sender, connection)) = offer.accept().await else {
            return;
        };
        let (kill, killed) = oneshot::channel();
        let _ = report.send(Upgrade {
            at,
            request,
            sender: Some(sender),
            kill: Some(kill),
        });
        tokio::select! {
            _ = connection => {}
            Ok(()) = killed => {}
        }
        return;
    }
}
