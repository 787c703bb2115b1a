//! A 1 GiB body crosses the relay each way while the relay's memory stays
//! bounded: flow control, not buffering, paces the stream. The relay runs
//! as its own process so its peak RSS (`VmHWM`) is its own.

use crate::support;
use std::convert::Infallible;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use crate::support::within;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use ptth_relay::cli::ExposeArgs;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;

/// `len` zero bytes in 64 KiB chunks, made as they are read.
struct Zeros {
    left: u64,
    chunk: Bytes,
}

impl Zeros {
    fn new(len: u64) -> Self {
        Zeros {
            left: len,
            chunk: Bytes::from(vec![0u8; CHUNK]),
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
        let n = self.left.min(CHUNK as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

/// Counts a body's bytes without keeping them.
async fn drain(mut body: Incoming) -> u64 {
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    total
}

/// `/up` counts what it is sent; `/down` sends 1 GiB.
async fn origin() -> std::net::SocketAddr {
    support::http1_origin(service_fn(|request: Request<Incoming>| async move {
        let body = match request.uri().path() {
            "/bulk/up" => {
                let total = drain(request.into_body()).await;
                Full::new(Bytes::from(total.to_string())).boxed()
            }
            _ => Zeros::new(GIB).boxed(),
        };
        Ok::<_, Infallible>(Response::new(body))
    }))
    .await
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_gibibyte_each_way_with_the_relays_memory_bounded() {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ptth-relay"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let line = within(BufReader::new(stdout).lines().next_line())
        .await
        .unwrap()
        .unwrap();
    let relay = line.strip_prefix("listening on ").unwrap().to_owned();
    let origin = origin().await;
    let (announce, announced) = tokio::sync::oneshot::channel();
    let args = ExposeArgs {
        relay: vec![relay.clone()],
        name: Some("bulk".into()),
        token: None,
        to: Some(format!("http://{origin}")),
        connections: Some(1),
        h1: false,
        legacy: false,
        http2_setup: false,
        ..ExposeArgs::default()
    };
    tokio::spawn(ptth_relay::expose::run(args, move |url| {
        let _ = announce.send(url);
    }));
    within(announced).await.unwrap();
    let baseline = peak_rss_kib(serve.id().unwrap());

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::combinators::BoxBody<Bytes, Infallible>>();
    let up = Request::post(format!("{relay}/bulk/up"))
        .body(Zeros::new(GIB).boxed())
        .unwrap();
    let response = client.request(up).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let counted = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(counted, GIB.to_string().as_bytes());

    let down = Request::get(format!("{relay}/bulk/down"))
        .body(Zeros::new(0).boxed())
        .unwrap();
    let response = client.request(down).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(drain(response.into_body()).await, GIB);

    let peak = peak_rss_kib(serve.id().unwrap());
    eprintln!("relay peak RSS: {baseline} KiB at rest, {peak} KiB after 1 GiB each way");
    // Windows and buffers, not the body: far below the 1 GiB that crossed.
    assert!(peak < baseline + 64 * 1024, "the relay grew to {peak} KiB");
}
