//! A name's long-poll clients as one member of its pool.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use ptth::longpoll::{Error, Exchange, Limits};
use tokio::time::Instant;

/// The long-poll clients of one name. Clients that share a name share its
/// queue: each request goes to whichever poll is parked first.
#[derive(Debug)]
pub struct Poller {
    exchange: Exchange,
    seen: Mutex<Instant>,
    idle_after: Duration,
}

impl Poller {
    /// Clients bounded by `limits`, gone once no poll was seen for
    /// `idle_after`.
    pub fn new(limits: Limits, idle_after: Duration) -> Self {
        Poller {
            exchange: Exchange::new(limits),
            seen: Mutex::new(Instant::now()),
            idle_after,
        }
    }

    /// Whether another request would be queued now.
    pub fn has_room(&self) -> bool {
        self.exchange.has_room()
    }

    /// Polls parked now.
    pub fn parked(&self) -> usize {
        self.exchange.parked()
    }

    /// Parks a poll under `key` for up to `hold`.
    pub async fn poll(&self, key: &str, hold: Duration) -> Result<Option<Request<Bytes>>, Error> {
        self.touch();
        let polled = self.exchange.poll(key, hold).await;
        self.touch();
        polled
    }

    /// Answers the request delivered under `key`.
    pub fn reply(&self, key: &str, response: Result<Response<Bytes>, Error>) -> bool {
        self.touch();
        self.exchange.reply(key, response)
    }

    /// Sends a public request to the next poll and waits for the reply;
    /// `None` when no poll came for it within `pickup`: the clients are
    /// gone (docs/relay.md, "Statuses": no poller took the request within the peer wait).
    pub async fn send(
        &self,
        request: Request<Bytes>,
        pickup: Duration,
    ) -> Option<Result<Response<Bytes>, Error>> {
        let queued = Instant::now();
        let sent = self.exchange.send(request);
        tokio::pin!(sent);
        tokio::select! {
            result = &mut sent => return Some(result),
            () = tokio::time::sleep(pickup) => {}
        }
        // A poll parked now, or one seen since, has taken the request (a
        // parked poll takes what is queued at once): its reply may still
        // come. Otherwise dropping the send abandons the queued request.
        if self.exchange.parked() == 0 && *self.seen() < queued {
            return None;
        }
        Some(sent.await)
    }

    /// Returns once no poll has been parked or seen for `idle_after`: the
    /// clients went away.
    pub async fn idle(&self) {
        loop {
            let seen = *self.seen();
            tokio::time::sleep_until(seen + self.idle_after).await;
            if self.exchange.parked() > 0 {
                // A parked poll touches `seen` when it ends.
                tokio::time::sleep(self.idle_after).await;
                continue;
            }
            if *self.seen() == seen {
                return;
            }
        }
    }

    /// Fails what waits, and takes nothing more.
    pub fn close(&self) {
        self.exchange.close();
    }

    fn touch(&self) {
        *self.seen() = Instant::now();
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.seen.lock().expect("the poller's clock")
    }
}
