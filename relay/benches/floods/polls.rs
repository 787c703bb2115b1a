//! Flood 5: as many parked long polls as one address can hold. Over
//! HTTP/1.1 a poll holds a connection, and the relay keeps 256 per
//! address, less than the parked-poll share (1/8 of 10,000); so the
//! attacker polls over HTTP/2, many polls a connection.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinSet;

use crate::attack::{Attack, connect};

/// HTTP/2 connections: with the relay's 200 streams each, room for more
/// polls than the share.
const CONNECTIONS: usize = 16;
/// Polls a name parks at most (`[longpoll] polls`).
const PER_NAME: usize = 32;
/// A new name every this often: faster than the claim limit refills (10
/// a second), so the relay, not the attacker, sets the pace.
const NAME_EVERY: Duration = Duration::from_millis(10);
/// Polls in flight at most: below the streams the connections carry, so
/// that none waits in the attacker's own queue.
const IN_FLIGHT: usize = CONNECTIONS * 190;
/// A poll unanswered this long is parked; the relay refuses at once.
const PARKED_AFTER: Duration = Duration::from_millis(100);

pub fn park(attack: &Attack, workers: &mut JoinSet<()>) {
    workers.spawn(parker(attack.clone()));
}

/// Sends [`PER_NAME`] polls for a fresh name every [`NAME_EVERY`]; the
/// first poll of a name creates it (a claim, charged to the address) and
/// the rest join it free of charge, or all are refused (429 past the
/// claim rate, 503 past the address's share of parked polls). The polls
/// and connections live in sets of their own, aborted with this task.
async fn parker(attack: Attack) {
    let mut connections = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        senders.push(h2(&attack, &mut connections).await);
    }
    let mut polls = JoinSet::new();
    let (mut sent, mut name) = (0usize, 0usize);
    loop {
        if polls.len() + PER_NAME <= IN_FLIGHT {
            for id in 0..PER_NAME {
                let sender = senders[sent % CONNECTIONS].clone();
                sent += 1;
                polls.spawn(poll(attack.clone(), sender, name, id));
            }
            name += 1;
        }
        tokio::time::sleep(NAME_EVERY).await;
        // Answered polls are forgotten, so the set stays as large as the
        // polls parked.
        while polls.try_join_next().is_some() {}
    }
}

/// An HTTP/2 connection from the attacker's address, driven in
/// `connections`.
async fn h2(attack: &Attack, connections: &mut JoinSet<()>) -> SendRequest<Empty<Bytes>> {
    let tcp = connect(attack).await;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("the relay refused HTTP/2");
    connections.spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// One poll on `p<name>` with token `t`; its status is counted once it
/// comes. It counts as parked once unanswered for [`PARKED_AFTER`]: the
/// relay answers a refused poll at once.
async fn poll(attack: Attack, mut sender: SendRequest<Empty<Bytes>>, name: usize, id: usize) {
    let url = format!("http://{}/reversehttp/p{name}/t/{id}", attack.relay);
    let request = Request::get(url).body(Empty::new()).unwrap();
    let answered = async move {
        sender.ready().await?;
        sender.send_request(request).await
    };
    tokio::pin!(answered);
    let answered = match tokio::time::timeout(PARKED_AFTER, &mut answered).await {
        Ok(answered) => answered,
        Err(_) => {
            let _parked = attack.tally.hold();
            answered.await
        }
    };
    match answered {
        Ok(response) => attack.tally.status(response.status().as_u16()),
        Err(_) => attack.tally.add("stream failed"),
    }
}
