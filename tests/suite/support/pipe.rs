//! A TCP pipe a test can make fail in ways neither end chooses: frozen
//! (every socket open, no byte moving, as a hung relay or a broken
//! middlebox) or cut (both sockets reset, as a crashed host or a dropped
//! NAT mapping). The relay's tests include this file too.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the pipe does with the bytes it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Flowing,
    /// Reads and writes nothing either way and keeps every socket open: to
    /// each end the other looks alive but silent.
    Frozen,
    /// Resets every socket (`SO_LINGER` 0, then close) and closes each new
    /// connection at once.
    Cut,
}

/// A listener on `127.0.0.1:0` that carries each connection it takes to
/// one target, both ways.
pub struct Pipe {
    /// Where the pipe listens.
    pub addr: SocketAddr,
    flow: watch::Sender<Flow>,
    /// How many connections it carries.
    carried: watch::Sender<usize>,
    task: JoinHandle<()>,
}

impl Pipe {
    /// A pipe to `target`.
    pub async fn to(target: SocketAddr) -> Pipe {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let flow = watch::Sender::new(Flow::Flowing);
        let carried = watch::Sender::new(0);
        let task = tokio::spawn(accept(listener, target, flow.subscribe(), carried.clone()));
        Pipe {
            addr,
            flow,
            carried,
            task,
        }
    }

    /// A pipe carrying one connection: returns it, the socket that dialled
    /// the pipe and the socket the pipe's own connection reached.
    pub async fn between() -> (Pipe, TcpStream, TcpStream) {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pipe = Pipe::to(target.local_addr().unwrap()).await;
        let opened = TcpStream::connect(pipe.addr).await.unwrap();
        let (accepted, _) = target.accept().await.unwrap();
        (pipe, opened, accepted)
    }

    /// Stops moving bytes on every connection, old and new.
    pub fn freeze(&self) {
        self.flow.send_replace(Flow::Frozen);
    }

    /// Resets every connection's sockets, returns once they are closed,
    /// and closes new connections until restored.
    pub async fn cut(&self) {
        self.flow.send_replace(Flow::Cut);
        let mut carried = self.carried.subscribe();
        carried.wait_for(|n| *n == 0).await.unwrap();
    }

    /// Moves bytes again after a freeze (those read just before it first)
    /// or carries new connections again after a cut.
    pub fn restore(&self) {
        self.flow.send_replace(Flow::Flowing);
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes connections until aborted, which drops every one it carries.
async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    flow: watch::Receiver<Flow>,
    carried: watch::Sender<usize>,
) {
    let mut connections = JoinSet::new();
    while let Ok((near, _)) = listener.accept().await {
        while connections.try_join_next().is_some() {}
        if *flow.borrow() == Flow::Cut {
            continue;
        }
        let flow = flow.clone();
        let counted = Counted::new(&carried);
        connections.spawn(async move {
            let _counted = counted;
            if let Ok(far) = TcpStream::connect(target).await {
                carry(near, far, flow).await;
            }
        });
    }
}

/// One connection in [`Pipe::carried`], from its accept to its close.
struct Counted(watch::Sender<usize>);

impl Counted {
    fn new(carried: &watch::Sender<usize>) -> Counted {
        carried.send_modify(|n| *n += 1);
        Counted(carried.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

async fn carry(mut near: TcpStream, mut far: TcpStream, mut flow: watch::Receiver<Flow>) {
    {
        // Borrowed halves: unlike owned ones they send no FIN when dropped,
        // so freezing and cutting stay silent until the sockets go.
        let (near_read, near_write) = near.split();
        let (far_read, far_write) = far.split();
        let outward = pump(near_read, far_write, flow.clone());
        let inward = pump(far_read, near_write, flow.clone());
        // Biased: once cut, the pumps end too, and the reset must win.
        tokio::select! {
            biased;
            Ok(_) = flow.wait_for(|f| *f == Flow::Cut) => {}
            _ = async { tokio::join!(outward, inward) } => return,
        }
    }
    // `set_linger` is deprecated for the blocking close a nonzero linger
    // causes; a zero linger never blocks, it resets at once (tokio's newer
    // `set_zero_linger` postdates the 1.38 this crate allows).
    #[allow(deprecated)]
    {
        let _ = near.set_linger(Some(Duration::ZERO));
        let _ = far.set_linger(Some(Duration::ZERO));
    }
}

/// Carries one direction until EOF, which it passes on as a FIN.
async fn pump(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, mut flow: watch::Receiver<Flow>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match flowing(&mut flow, from.read(&mut buf)).await {
            Some(Ok(0) | Err(_)) => {
                flowing(&mut flow, to.shutdown()).await;
                return;
            }
            Some(Ok(n)) => n,
            None => return,
        };
        let Some(Ok(())) = flowing(&mut flow, to.write_all(&buf[..n])).await else {
            return;
        };
    }
}

/// Awaits `io`, polling it only while the pipe flows, so a frozen pipe
/// moves no byte; `None` once the pipe is cut or gone.
async fn flowing<F: Future>(flow: &mut watch::Receiver<Flow>, io: F) -> Option<F::Output> {
    tokio::pin!(io);
    loop {
        if *flow.wait_for(|f| *f != Flow::Frozen).await.ok()? == Flow::Cut {
            return None;
        }
        tokio::select! {
            biased;
            _ = flow.wait_for(|f| *f != Flow::Flowing) => {}
            output = &mut io => return Some(output),
        }
    }
}
