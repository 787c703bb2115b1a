//! A frozen peer is evicted within the liveness bound, and its name then
//! answers as one with no peer.

use crate::support;
use std::time::Duration;

use crate::support::pipe::Pipe;
use crate::support::{Reply, connected, get, relay, within};
use http::StatusCode;
use hyper::service::service_fn;
use ptth_relay::Settings;
use ptth_relay::{Liveness, Waits};
use tokio::time::Instant;

#[tokio::test]
async fn a_frozen_peer_is_evicted_on_http2_and_http1() {
    for initiator in [
        ptth::initiator::Builder::new(),
        ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]),
    ] {
        // The device's token gets its name back after the eviction.
        let bearer = http::HeaderValue::from_static("Bearer t");
        let initiator = initiator.header(http::header::AUTHORIZATION, bearer);
        let running = relay(Settings {
            liveness: Liveness {
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
            waits: Waits {
                peer: Duration::from_millis(200),
                queue: Duration::from_millis(200),
            },
            ..Settings::default()
        })
        .await;
        let pipe = Pipe::to(running.addr).await;
        let tunnel = ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp", pipe.addr))
            .initiator(initiator)
            .connections(1)
            .serve(service_fn(support::describe));
        let handle = tunnel.handle();
        tokio::spawn(tunnel);
        connected(&handle, 1).await;
        let pool = running.relay.names().lookup("lamp").unwrap();
        pipe.freeze();
        let frozen = Instant::now();
        within(pool.wait_until(|counts| counts == (0, 0))).await;
        let evicted = frozen.elapsed();
        // 1 s between checks and 1 s for an answer: 2 s by design.
        assert!(
            evicted < Duration::from_secs(8),
            "evicted after {evicted:?}"
        );
        let Reply {
            status, headers, ..
        } = get(&format!("http://{}/lamp/", running.addr)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "1");
        // Once the path moves again, the device sees the eviction and is
        // back.
        pipe.restore();
        within(pool.wait_until(|(h1, h2)| h1 + h2 == 1)).await;
        assert_eq!(
            get(&format!("http://{}/lamp/", running.addr)).await.status,
            StatusCode::OK
        );
        handle.shutdown();
    }
}
