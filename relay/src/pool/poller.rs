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

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn poller() -> Poller {
        let limits = Limits {
            reply_wait: Duration::from_secs(5),
            ..Limits::default()
        };
        Poller::new(limits, IDLE)
    }

    /// Bounds a wait that a broken poller would make endless.
    async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(300), fut)
            .await
            .expect("the poller never answered")
    }

    #[tokio::test(start_paused = true)]
    async fn clients_are_idle_after_the_bound_and_each_sign_of_life_restarts_it() {
        let quiet = poller();
        let start = Instant::now();
        bounded(quiet.idle()).await;
        assert_eq!(start.elapsed(), IDLE);

        let replying = poller();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!replying.reply("gone", Ok(Response::new(Bytes::new()))));
        bounded(replying.idle()).await;
        assert_eq!(start.elapsed(), IDLE + Duration::from_secs(4 + 10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_poll_is_counted_and_keeps_the_clients_from_idling() {
        let poller = std::sync::Arc::new(poller());
        assert_eq!(poller.parked(), 0);
        let polling = poller.clone();
        let poll = tokio::spawn(async move { polling.poll("k", 3 * IDLE).await });
        bounded(async {
            while poller.parked() != 1 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let start = Instant::now();
        bounded(poller.idle()).await;
        // Parked for 3 x IDLE, then quiet for IDLE.
        assert!(start.elapsed() >= 3 * IDLE, "{:?}", start.elapsed());
        assert!(poll.await.unwrap().unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_no_poll_took_is_given_up_unless_a_client_was_seen_since() {
        let pickup = Duration::from_secs(1);
        // Seen only before the request: given up after the pickup wait.
        let poller = poller();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sent = bounded(poller.send(Request::new(Bytes::new()), pickup)).await;
        assert!(sent.is_none());
        // Seen at the very instant the request was queued, or after it: a
        // client is there, and the request waits for its reply (which
        // never comes here, so the reply wait ends it).
        let poller = super::tests::poller();
        let sent = bounded(poller.send(Request::new(Bytes::new()), pickup)).await;
        assert!(sent.is_some_and(|reply| reply.is_err()));
        let poller = std::sync::Arc::new(super::tests::poller());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let touching = poller.clone();
        let touch = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            touching.reply("other", Ok(Response::new(Bytes::new())));
        });
        let sent = bounded(poller.send(Request::new(Bytes::new()), pickup)).await;
        assert!(sent.is_some_and(|reply| reply.is_err()));
        touch.await.unwrap();
    }
}
