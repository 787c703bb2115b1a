//! Floods of connections that hold a place and send nothing more:
//! silent ones, and requests whose bodies stall.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::attack::{Attack, RETRY, connect};
use crate::victim::NAME;
use crate::wire::{status_of, until_closed};

/// Connections opened at a time: twice the relay's bound per address
/// (256), so the attacker always has some knocking.
const AT_A_TIME: usize = 512;

/// A connection the relay closes this soon was refused, not timed out.
const AT_ONCE: Duration = Duration::from_millis(100);

/// Flood 3: connections that never send a byte. The relay keeps 256 of
/// them until the head timeout (30 s, longer than the run) and closes
/// the rest at once.
pub fn idle(attack: &Attack, workers: &mut JoinSet<()>) {
    hold(attack, workers, Vec::new());
}

/// Flood 4a: uploads to the healthy name that stop after a few bytes.
/// The healthy peer reads whole bodies before it answers, as an upload
/// handler does, so each holds a stream on the peer's connection too.
pub fn stalled_at_peer(attack: &Attack, workers: &mut JoinSet<()>) {
    let head = format!(
        "POST /{NAME}/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n0123456789abcdef",
        attack.relay
    );
    hold(attack, workers, head.into_bytes());
}

/// Flood 4b: long-poll registrations, which the relay reads itself, that
/// stop after a few bytes.
pub fn stalled_at_relay(attack: &Attack, workers: &mut JoinSet<()>) {
    let head = format!(
        "POST /reversehttp HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nname=stall&tok",
        attack.relay
    );
    hold(attack, workers, head.into_bytes());
}

/// [`AT_A_TIME`] workers, each opening a connection, sending `opening`
/// and then nothing, until the relay closes it; then again.
fn hold(attack: &Attack, workers: &mut JoinSet<()>, opening: Vec<u8>) {
    for _ in 0..AT_A_TIME {
        let attack = attack.clone();
        let opening = opening.clone();
        workers.spawn(async move {
            loop {
                hold_one(&attack, &opening).await;
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}

/// One connection held until the relay closes it, counted by how it
/// ended: closed at once (refused: never counted as held), answered with
/// a status, or closed later.
async fn hold_one(attack: &Attack, opening: &[u8]) {
    let mut tcp = connect(attack).await;
    // A refused connection may still take the bytes into its buffer; the
    // close shows below.
    let _ = tcp.write_all(opening).await;
    let answer = match tokio::time::timeout(AT_ONCE, until_closed(&mut tcp)).await {
        Ok(answer) if answer.is_empty() => return attack.tally.add("closed at once"),
        Ok(answer) => answer,
        Err(_) => {
            let _held = attack.tally.hold();
            until_closed(&mut tcp).await
        }
    };
    let outcome = match status_of(&answer) {
        Some(status) => format!("answered {status}"),
        None => "closed later".to_owned(),
    };
    attack.tally.add(outcome);
}
