//! What a peer costs the relay: memory while idle, and the time from its
//! connect to its first routed request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ptth::tunnel::{self, Handle, Phase};
use tokio::runtime::Runtime;

use crate::origin;
use crate::paths::relay;
use crate::tools::{Process, rss};

/// A relay config without the claim rate limit, which exists to slow
/// reconnect loops and would otherwise pace thousands of claims from one
/// address.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("relay.toml");
    std::fs::write(&path, "[claims]\nburst = 1000000\nper-second = 1000000\n").unwrap();
    path
}

/// Relay memory with idle HTTP/2 peers, one name each: for every count,
/// the count, the relay's RSS and the growth per peer over the relay
/// without peers.
pub fn idle(binary: &Path, dir: &Path, rt: &Runtime, counts: &[usize]) -> Vec<(usize, u64, u64)> {
    let (relay, addr) = relay(binary, Some(&config(dir)));
    settle();
    let base = rss(relay.id());
    let mut handles: Vec<Handle> = Vec::new();
    let mut rows = Vec::new();
    for &count in counts {
        // In batches, so the connects do not overflow the listen backlog
        // and wait out SYN retries.
        while handles.len() < count {
            let batch = (count - handles.len()).min(250);
            let start = handles.len();
            let batch: Vec<Handle> = rt.block_on(async {
                let mut batch: Vec<Handle> = (start..start + batch)
                    .map(|i| {
                        let url = format!("http://{addr}/reversehttp/idle-{i}");
                        let serving = tunnel::Builder::new(url)
                            .connections(1)
                            .serve(service_fn(origin::serve));
                        let handle = serving.handle();
                        tokio::spawn(serving);
                        handle
                    })
                    .collect();
                for handle in &mut batch {
                    let up = handle
                        .wait_for(|status| status.connected > 0 || status.phase != Phase::Running)
                        .await;
                    assert!(up.connected > 0, "a peer never connected: {up:?}");
                }
                batch
            });
            handles.extend(batch);
        }
        settle();
        let now = rss(relay.id());
        rows.push((count, now, now.saturating_sub(base) / count as u64));
    }
    for handle in &handles {
        handle.shutdown();
    }
    drop(relay);
    rows
}

/// Lets the relay finish what the connects started (buffers released
/// after the handshakes) before its memory is read.
pub fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

/// For `rounds` fresh peers: the time from the start of the dial to the
/// relay's 101 (the tunnel reports connected), and to the answer of the
/// first public request routed to it, as medians and the worst.
pub struct First {
    pub claimed: (Duration, Duration),
    pub answered: (Duration, Duration),
}

pub fn first(binary: &Path, dir: &Path, rt: &Runtime, rounds: usize) -> First {
    let (relay, addr): (Process, _) = relay(binary, Some(&config(dir)));
    let (mut claimed, mut answered) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        // The public client's own connection is not what is measured.
        let warm = Request::get(format!("http://{addr}/"))
            .body(Empty::new())
            .unwrap();
        client.request(warm).await.unwrap();
        for i in 0..rounds {
            let name = format!("first-{i}");
            let started = Instant::now();
            let serving = tunnel::serve(
                format!("http://{addr}/reversehttp/{name}"),
                service_fn(origin::serve),
            );
            let handle = serving.handle();
            tokio::spawn(serving);
            let up = handle
                .wait_for(|status| status.connected > 0 || status.phase != Phase::Running)
                .await;
            assert!(up.connected > 0, "a peer never connected: {up:?}");
            claimed.push(started.elapsed());
            let request = Request::get(format!("http://{addr}/{name}/small.html"))
                .body(Empty::new())
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.unwrap();
            answered.push(started.elapsed());
            handle.shutdown();
            handle.stopped().await;
        }
    });
    drop(relay);
    let spread = |values: &mut Vec<Duration>| {
        values.sort();
        (values[values.len() / 2], values[values.len() - 1])
    };
    First {
        claimed: spread(&mut claimed),
        answered: spread(&mut answered),
    }
}
