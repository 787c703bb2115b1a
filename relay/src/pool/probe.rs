//! The liveness check of an idle HTTP/1.1 peer: only a request proves
//! such a peer alive, so the relay sends `OPTIONS *` and reads a bounded
//! answer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use http::{Request, Uri};
use http_body_util::BodyExt;
use ptth::acceptor::SendRequest;

use super::{Conn, Pool};
use crate::http::RelayBody;
use crate::settings::Liveness;

/// The most of an answer to `OPTIONS *` the relay reads: a check needs the
/// head, and a peer that streams a body to it is failing the check.
const PROBE_BODY_MAX: usize = 4 * 1024;

/// Checks an HTTP/1.1 connection every `interval` while it is idle, with
/// `OPTIONS *`; returns when one check fails.
pub(super) async fn probe(
    sender: &SendRequest<RelayBody>,
    conn: &Arc<Conn>,
    pool: &Weak<Pool>,
    liveness: Liveness,
) {
    loop {
        tokio::time::sleep(liveness.interval).await;
        // A connection in use is checked by its request instead.
        if conn
            .in_flight
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        let request = Request::options(Uri::from_static("*"))
            .body(RelayBody::default())
            .expect("a static request");
        let mut sender = sender.clone();
        let answered = tokio::time::timeout(liveness.timeout, async {
            let response = sender.send_request(request).await.ok()?;
            let body = http_body_util::Limited::new(response.into_body(), PROBE_BODY_MAX);
            body.collect().await.ok()
        })
        .await;
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(pool) = pool.upgrade() {
            pool.changed.notify_waiters();
        }
        if !matches!(answered, Ok(Some(_))) {
            return;
        }
    }
}
