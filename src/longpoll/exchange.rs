//! Requests waiting for polls, and polls waiting for requests: the meeting
//! point of one long-poll client (or several sharing a name).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::Error;

type Reply = oneshot::Sender<Result<Response<Bytes>, Error>>;

/// The bounds of one [`Exchange`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests not yet answered, queued or delivered. Default is 64.
    pub requests: usize,
    /// Polls parked at once. Default is 16.
    pub polls: usize,
    /// How long a request waits for its reply, from when it is sent.
    /// Default is 60 s, the relay's response-head bound.
    pub reply_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: 64,
            polls: 16,
            reply_wait: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    queued: VecDeque<(u64, Request<Bytes>, Reply)>,
    delivered: HashMap<String, (u64, Reply)>,
    parked: usize,
    closed: bool,
}

/// Hands requests to polls and replies back to the requests' senders.
///
/// A request is delivered to the first poll that comes (or is parked), under
/// the poll's key; the reply to that key answers it. Every queue has a
/// length and every wait an end: see [`Limits`].
#[derive(Debug)]
pub struct Exchange {
    state: Mutex<State>,
    arrived: Notify,
    limits: Limits,
}

impl Exchange {
    /// An exchange with `limits`.
    pub fn new(limits: Limits) -> Self {
        Exchange {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            limits,
        }
    }

    /// Sends `request` to the next poll and waits for its reply.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let (reply, replied) = oneshot::channel();
        let seq = {
            let mut state = self.state();
            if state.closed {
                return Err(Error::closed());
            }
            state.forget_abandoned();
            if state.queued.len() + state.delivered.len() >= self.limits.requests {
                return Err(Error::busy("requests waiting for replies"));
            }
            state.next += 1;
            let seq = state.next;
            state.queued.push_back((seq, request, reply));
            seq
        };
        self.arrived.notify_one();
        match tokio::time::timeout(self.limits.reply_wait, replied).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::closed()),
            Err(_) => {
                let mut state = self.state();
                state.queued.retain(|(queued, ..)| *queued != seq);
                state
                    .delivered
                    .retain(|_, (delivered, _)| *delivered != seq);
                Err(Error::timed_out(self.limits.reply_wait))
            }
        }
    }

    /// Parks a poll under `key` for up to `hold`; returns the request it
    /// delivers, whose reply is then expected under `key`, or `None` when
    /// nothing came.
    pub async fn poll(&self, key: &str, hold: Duration) -> Result<Option<Request<Bytes>>, Error> {
        {
            let mut state = self.state();
            if state.closed {
                return Err(Error::closed());
            }
            if state.delivered.contains_key(key) {
                return Err(Error::conflict());
            }
            if state.parked >= self.limits.polls {
                return Err(Error::busy("parked polls"));
            }
            state.parked += 1;
        }
        let _parked = Parked(self);
        let deadline = Instant::now() + hold;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut state = self.state();
                if state.closed {
                    return Err(Error::closed());
                }
                while let Some((seq, request, reply)) = state.queued.pop_front() {
                    // Its sender gave up (timed out or went away).
                    if reply.is_closed() {
                        continue;
                    }
                    state.delivered.insert(key.to_owned(), (seq, reply));
                    return Ok(Some(request));
                }
            }
            tokio::select! {
                () = &mut arrived => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// Answers the request delivered under `key`; `false` when no request
    /// waits under it (never delivered, answered already, or given up).
    pub fn reply(&self, key: &str, response: Result<Response<Bytes>, Error>) -> bool {
        let waiting = self.state().delivered.remove(key);
        match waiting {
            Some((_, reply)) => reply.send(response).is_ok(),
            None => false,
        }
    }

    /// Polls parked now.
    pub fn parked(&self) -> usize {
        self.state().parked
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        let state = self.state();
        state.queued.len() + state.delivered.len()
    }

    /// Whether another request would be taken now.
    pub fn has_room(&self) -> bool {
        let mut state = self.state();
        state.forget_abandoned();
        !state.closed && state.queued.len() + state.delivered.len() < self.limits.requests
    }

    /// Fails every waiting request and poll, and refuses new ones.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.queued.clear();
        state.delivered.clear();
        drop(state);
        self.arrived.notify_waiters();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the exchange lock")
    }
}

impl State {
    /// Drops requests whose senders went away (a public client that hung
    /// up cancels `send`), so they stop taking room; their late replies
    /// find no one and get `false`.
    fn forget_abandoned(&mut self) {
        self.queued.retain(|(_, _, reply)| !reply.is_closed());
        self.delivered.retain(|_, (_, reply)| !reply.is_closed());
    }
}

struct Parked<'a>(&'a Exchange);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.state().parked -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn get(path: &str) -> Request<Bytes> {
        Request::get(path).body(Bytes::new()).unwrap()
    }

    fn ok(body: &'static str) -> Result<Response<Bytes>, Error> {
        Ok(Response::new(Bytes::from_static(body.as_bytes())))
    }

    #[tokio::test]
    async fn a_request_meets_a_parked_poll_and_its_reply() {
        let exchange = Arc::new(Exchange::new(Limits::default()));
        let polling = exchange.clone();
        let poll = tokio::spawn(async move { polling.poll("k1", Duration::from_secs(30)).await });
        let sending = exchange.clone();
        let sent = tokio::spawn(async move { sending.send(get("/a")).await });
        let delivered = poll.await.unwrap().unwrap().unwrap();
        assert_eq!(delivered.uri(), "/a");
        assert_eq!(exchange.outstanding(), 1);
        assert!(matches!(
            exchange.poll("k1", Duration::ZERO).await,
            Err(error) if error.is_conflict()
        ));
        assert!(exchange.reply("k1", ok("answer")));
        assert!(!exchange.reply("k1", ok("twice")));
        assert_eq!(sent.await.unwrap().unwrap().body().as_ref(), b"answer");
        assert_eq!(exchange.outstanding(), 0);
    }

    #[tokio::test]
    async fn requests_whose_senders_left_take_no_room() {
        let limits = Limits {
            requests: 1,
            ..Limits::default()
        };
        let exchange = Arc::new(Exchange::new(limits));
        let sending = exchange.clone();
        let abandoned = tokio::spawn(async move { sending.send(get("/gone")).await });
        let delivered = exchange.poll("k", Duration::from_secs(30)).await.unwrap();
        assert!(delivered.is_some());
        assert!(!exchange.has_room());
        abandoned.abort();
        let _ = abandoned.await;
        assert!(exchange.has_room());
        assert!(!exchange.reply("k", ok("late")), "no one waits for it");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_end() {
        let limits = Limits {
            requests: 1,
            polls: 1,
            reply_wait: Duration::from_secs(5),
        };
        let exchange = Arc::new(Exchange::new(limits));
        assert!(
            exchange
                .poll("k", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none()
        );
        let sending = exchange.clone();
        let sent = tokio::spawn(async move { sending.send(get("/late")).await });
        tokio::task::yield_now().await;
        let busy = exchange.send(get("/more")).await.unwrap_err();
        assert!(busy.is_busy(), "{busy}");
        let error = sent.await.unwrap().unwrap_err();
        assert!(error.is_timeout(), "{error}");
        assert_eq!(exchange.outstanding(), 0);
        let polling = exchange.clone();
        let parked = tokio::spawn(async move { polling.poll("a", Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        let second = exchange
            .poll("b", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(second.is_busy(), "{second}");
        exchange.close();
        assert!(parked.await.unwrap().unwrap_err().is_closed());
    }
}
