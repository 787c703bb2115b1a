//! What the relay counts, and its Prometheus text endpoint.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::debug;

use crate::settings::Bounds;
use crate::slots::Slots;

type Labels = Vec<(&'static str, String)>;

/// The relay's counters, gauges and histogram.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Histogram,
    bytes_to_peers: Counter,
    bytes_from_peers: Counter,
    names: Gauge,
    connections: Family<Labels, Gauge>,
    tcp_visitors: Family<Labels, Counter>,
    tcp_bytes_to_peers: Counter,
    tcp_bytes_from_peers: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `ptth_relay` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ptth_relay");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Public requests, by the status answered",
            requests.clone(),
        );
        // 1 ms to about 65 s: a loopback hop up to the 60 s head timeout.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "response_head_seconds",
            "Time from a public request to its response head",
            latency.clone(),
        );
        let bytes_to_peers = Counter::default();
        registry.register(
            "bytes_to_peers",
            "Request body bytes forwarded to peers",
            bytes_to_peers.clone(),
        );
        let bytes_from_peers = Counter::default();
        registry.register(
            "bytes_from_peers",
            "Response body bytes forwarded from peers",
            bytes_from_peers.clone(),
        );
        let names = Gauge::default();
        registry.register("names", "Names held", names.clone());
        let connections = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Peer connections, by protocol",
            connections.clone(),
        );
        let tcp_visitors = Family::<Labels, Counter>::default();
        registry.register(
            "tcp_visitors",
            "Visitor connections to TCP names' ports, by outcome",
            tcp_visitors.clone(),
        );
        let tcp_bytes_to_peers = Counter::default();
        registry.register(
            "tcp_bytes_to_peers",
            "Bytes from TCP visitors forwarded to peers",
            tcp_bytes_to_peers.clone(),
        );
        let tcp_bytes_from_peers = Counter::default();
        registry.register(
            "tcp_bytes_from_peers",
            "Bytes from peers forwarded to TCP visitors",
            tcp_bytes_from_peers.clone(),
        );
        Metrics {
            tcp_visitors,
            tcp_bytes_to_peers,
            tcp_bytes_from_peers,
            registry,
            requests,
            latency,
            bytes_to_peers,
            bytes_from_peers,
            names,
            connections,
        }
    }

    /// Counts a public request answered with `status` after `elapsed`.
    pub fn answered(&self, status: StatusCode, elapsed: Duration) {
        let labels = vec![("status", status.as_u16().to_string())];
        self.requests.get_or_create(&labels).inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts request body bytes sent to a peer.
    pub fn to_peer(&self, bytes: usize) {
        self.bytes_to_peers.inc_by(bytes as u64);
    }

    /// Counts response body bytes received from a peer.
    pub fn from_peer(&self, bytes: usize) {
        self.bytes_from_peers.inc_by(bytes as u64);
    }

    /// Counts a visitor's connection to a TCP name's port by its
    /// `outcome`: `opened`, `refused` (by the device), `no-peer`,
    /// `name-full`, `too-many-connections`.
    pub fn tcp_visitor(&self, outcome: &'static str) {
        let labels = vec![("outcome", outcome.to_owned())];
        self.tcp_visitors.get_or_create(&labels).inc();
    }

    /// Counts bytes carried for TCP visitors, `up` to a peer or down from
    /// one, as they pass.
    pub fn tcp_bytes(&self, up: bool, bytes: u64) {
        match up {
            true => self.tcp_bytes_to_peers.inc_by(bytes),
            false => self.tcp_bytes_from_peers.inc_by(bytes),
        };
    }

    /// The Prometheus text, with the gauges set to `names` held and their
    /// `h1` and `h2` connections now.
    pub fn render(&self, names: usize, h1: usize, h2: usize) -> String {
        self.names.set(names as i64);
        for (protocol, count) in [("http/1.1", h1), ("h2", h2)] {
            let labels = vec![("protocol", protocol.to_owned())];
            self.connections.get_or_create(&labels).set(count as i64);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// At most this many scrapers' connections at once, and per address: a
/// Prometheus server needs one, and the port may be reachable by others.
const SCRAPERS: Bounds = Bounds {
    per_client: 8,
    total: 64,
};

/// Serves `GET /metrics` on `listener`, answered with what `text` renders
/// then (for a relay, [`crate::Relay::metrics_text`]); any other request
/// is `404`. A connection has `head_timeout` to send each request head.
pub async fn serve<F>(listener: TcpListener, text: F, head_timeout: Duration)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let text = Arc::new(text);
    let slots = Slots::new(SCRAPERS);
    while let Ok((tcp, client)) = listener.accept().await {
        let Some(slot) = slots.take(client.ip()) else {
            continue;
        };
        let text = text.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let response = answer(&*text, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(error) = served {
                debug!(%error, "metrics connection failed");
            }
            drop(slot);
        });
    }
}

fn answer(text: &dyn Fn() -> String, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let wanted = request.method() == Method::GET && request.uri().path() == "/metrics";
    let mut response = if wanted {
        let mut response = Response::new(Full::new(Bytes::from(text())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"GET /metrics\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    response.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
