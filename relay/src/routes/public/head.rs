//! Sending a request to a peer and waiting for its response head, within
//! the bounds a peer may not stretch: the head timeout, and a few
//! informational (1xx) responses before the final one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ptth::acceptor::SendRequest;
use tokio::sync::Notify;

/// How many 1xx responses a peer may send before its final one. A real
/// origin sends one `100 Continue`, maybe an `103 Early Hints`; more is a
/// peer keeping the relay parsing for nothing.
const MAX_INFORMATIONAL: usize = 4;

/// Why no usable response head came.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// None within the head timeout.
    Timeout,
    /// Informational responses without end; the connection must go.
    Informational,
    /// The peer answered `101` to a request that asked for no upgrade;
    /// the connection is no longer HTTP and must go.
    Switched,
    /// The connection failed before the head.
    Failed(ptth::Error),
}

/// Sends `request` on `sender` and waits for its final response head, up
/// to `timeout`. `upgrade` says whether the request asked to switch
/// protocols, so that a `101` is an answer and not a breach.
pub(crate) async fn send<B>(
    sender: &mut SendRequest<B>,
    mut request: Request<B>,
    timeout: Duration,
    upgrade: bool,
) -> Result<Response<Incoming>, HeadError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let informational = Arc::new(Counted::default());
    let counting = informational.clone();
    hyper::ext::on_informational(&mut request, move |_| counting.seen());
    let sending = sender.send_request(request);
    let head = tokio::time::timeout(timeout, async {
        // Biased: a final head read in the same segment as the interim
        // answer past the bound must not win by chance.
        tokio::select! {
            biased;
            () = informational.flooded.notified() => Err(HeadError::Informational),
            sent = sending => sent.map_err(HeadError::Failed),
        }
    });
    let response = head.await.map_err(|_| HeadError::Timeout)??;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
        return Err(HeadError::Switched);
    }
    Ok(response)
}

#[derive(Debug, Default)]
struct Counted {
    count: AtomicUsize,
    flooded: Notify,
}

impl Counted {
    fn seen(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 > MAX_INFORMATIONAL {
            // A stored permit: the waiter may not be polling yet.
            self.flooded.notify_one();
        }
    }
}
