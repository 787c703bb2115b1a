//! The origins behind every path: nginx for small GETs, and a hyper
//! server for the bulk transfers (nginx cannot count an upload without
//! writing it to disk), which is also the service of the in-process peer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::tools::{Process, free_port, wait_listening};

/// The small file's size: a typical API answer.
pub const SMALL: usize = 1024;
/// The bulk transfers' size.
pub const BULK: u64 = 1 << 30;
/// The path prefix of every URL, which is also the relay name, so that one
/// target works on every path.
pub const NAME: &str = "bench";

/// nginx serving `/bench/small.html` from `dir`: one process (no master,
/// so killing it leaves no worker behind), no logs.
pub fn nginx(dir: &Path) -> (Process, SocketAddr) {
    let www = dir.join("www").join(NAME);
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("small.html"), vec![b'x'; SMALL]).unwrap();
    let port = free_port();
    let config = dir.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "master_process off;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 10000000;\n\
             server {{ listen 127.0.0.1:{port}; root {dir}/www; }} }}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let process = Process::start(Command::new("nginx").arg("-c").arg(&config));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr);
    (process, addr)
}

/// The body of every origin answer.
pub type OriginBody = BoxBody<Bytes, Infallible>;

/// `small.html`, `down` (1 GiB) and `up` (counts what it is sent).
pub async fn serve(request: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let body = match request.uri().path().rsplit('/').next() {
        Some("down") => Zeros::new(BULK).boxed(),
        Some("up") => {
            let mut body = request.into_body();
            let mut count = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => count += frame.data_ref().map_or(0, |data| data.len() as u64),
                    Err(_) => break,
                }
            }
            Full::new(Bytes::from(count.to_string())).boxed()
        }
        _ => Full::new(Bytes::from(vec![b'x'; SMALL])).boxed(),
    };
    Ok(Response::new(body))
}

/// Runs [`serve`] on a port of its own, over HTTP/1.1.
pub async fn bulk() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(serve));
            tokio::spawn(connection);
        }
    });
    addr
}

/// `left` zero bytes, in chunks that are shared, not allocated.
struct Zeros {
    left: u64,
    chunk: Bytes,
}

impl Zeros {
    fn new(len: u64) -> Zeros {
        Zeros {
            left: len,
            chunk: Bytes::from(vec![0; 256 * 1024]),
        }
    }
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let len = self.left.min(self.chunk.len() as u64);
        self.left -= len;
        let data = self.chunk.slice(..len as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}
