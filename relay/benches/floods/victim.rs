//! What a flood is measured against: the relay process and its memory, a
//! healthy name on a well-behaved peer, and a bystander asking for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ptth::tunnel::{self, Handle, Phase};
use tokio::time::Instant;

use crate::tools::{Process, rss};
use crate::wire::BYSTANDER;

/// The healthy name and its token: the takeover flood tries to take it.
pub const NAME: &str = "healthy";
pub const TOKEN: &str = "healthy-t";

/// `ptth-relay serve` from `binary` with `config`; the process and its
/// address.
pub fn relay(binary: &Path, config: &Path) -> (Process, SocketAddr) {
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config);
    let process = Process::start(&mut command);
    let line = process.wait_for("listening on http://");
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (process, addr)
}

/// The peer's service: a short answer, after reading the whole request
/// body as an upload handler does (so a stalled body holds its stream).
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = request.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// A well-behaved peer holding [`NAME`] over one HTTP/2 tunnel (the
/// tunnel's default); returns once it is connected.
pub async fn healthy_peer(relay: SocketAddr) -> Handle {
    let url = format!("http://{relay}/reversehttp/{NAME}?token={TOKEN}");
    let serving = tunnel::serve(url, service_fn(answer));
    let handle = serving.handle();
    tokio::spawn(serving);
    let up = handle
        .wait_for(|status| status.connected > 0 || status.phase != Phase::Running)
        .await;
    assert!(up.connected > 0, "the healthy peer never connected: {up:?}");
    handle
}

/// What the bystander measured: every GET's time (failed ones too), and
/// how many failed.
#[derive(Default)]
pub struct Latencies {
    pub times: Vec<Duration>,
    pub errors: usize,
}

/// How long a GET may take before it counts as an error.
const GET_TIMEOUT: Duration = Duration::from_secs(5);
/// A GET starts every this often at most: a user clicking about, not a
/// load generator, so the bystander does not itself load the two cores.
const PACE: Duration = Duration::from_millis(10);

/// Sequential GETs of the healthy name until `deadline`, each on a new
/// connection from [`BYSTANDER`]: a fresh public client goes through the
/// relay's accept loop and connection bounds, which some floods press on.
pub async fn bystander(relay: SocketAddr, deadline: Instant) -> Latencies {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(BYSTANDER));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build::<_, Empty<Bytes>>(connector);
    let url = format!("http://{relay}/{NAME}/small");
    let mut measured = Latencies::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        let request = Request::get(&url).body(Empty::new()).unwrap();
        let got = tokio::time::timeout(GET_TIMEOUT, async {
            let response = client.request(request).await.ok()?;
            let status = response.status();
            response.into_body().collect().await.ok()?;
            Some(status)
        })
        .await;
        measured.times.push(started.elapsed());
        if got.ok().flatten() != Some(StatusCode::OK) {
            measured.errors += 1;
        }
        tokio::time::sleep_until(started + PACE).await;
    }
    measured
}

/// Reads a process's RSS on a thread of its own every 50 ms, keeping the
/// largest, so the peak between two readings of the table is not missed.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopping.load(Ordering::Acquire) {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        Sampler { stop, thread }
    }

    /// Stops sampling; the largest RSS seen.
    pub fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the RSS sampler")
    }
}
