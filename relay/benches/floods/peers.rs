//! Flood 6: hostile HTTP/1.1 peers on a name of the attacker's own, which
//! answer what the relay sends them with bytes that never end.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::attack::{Asking, Attack, RETRY, connect, keep_asking};
use crate::wire::{read_request, read_response, write_until_cut};

/// The attacker's name and token: the bystander's name stays on its
/// healthy peer.
const EVIL: &str = "evil";
const EVIL_TOKEN: &str = "evil-t";

/// Flood 6a: each peer waits for the relay's `OPTIONS *` check (every
/// second with the bench's `[liveness] interval = 1`) and answers it with
/// a body of 100 GB. The relay reads 4 KiB of it and closes; the peer
/// claims again (each upgrade is a claim, so paced by the claim limit).
pub fn endless_check(attack: &Attack, workers: &mut JoinSet<()>) {
    for _ in 0..32 {
        let attack = attack.clone();
        workers.spawn(async move {
            loop {
                match claim(&attack).await {
                    Some((tcp, rest)) => answer_check_endlessly(&attack, tcp, rest).await,
                    None => tokio::time::sleep(RETRY).await,
                }
            }
        });
    }
}

async fn answer_check_endlessly(attack: &Attack, mut tcp: TcpStream, rest: Vec<u8>) {
    let _held = attack.tally.hold();
    let Ok(head) = read_request(&mut tcp, rest).await else {
        return attack.tally.add("closed before a check");
    };
    if head.method != "OPTIONS" {
        return attack
            .tally
            .add(format!("{} instead of a check", head.method));
    }
    let endless = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n";
    if tcp.write_all(endless).await.is_err() {
        return attack.tally.add("closed before the answer");
    }
    let written = write_until_cut(&mut tcp, &[b'x'; 64 * 1024]).await;
    attack.tally.add("endless check answers cut");
    // What the peer wrote counts the socket buffers on both sides, not
    // what the relay read.
    attack
        .tally
        .largest("most KiB written before a cut", written as u64 / 1024);
}

/// Flood 6b: 8 peers that answer every public request for the attacker's
/// name with `100 Continue` over and over (and the checks properly, so
/// they stay), and 16 connections of the attacker asking that name.
pub fn endless_continue(attack: &Attack, workers: &mut JoinSet<()>) {
    for _ in 0..8 {
        let attack = attack.clone();
        workers.spawn(async move {
            loop {
                match claim(&attack).await {
                    Some((tcp, rest)) => answer_continue_endlessly(&attack, tcp, rest).await,
                    None => tokio::time::sleep(RETRY).await,
                }
            }
        });
    }
    let relay = attack.relay;
    let get = format!("GET /{EVIL}/ HTTP/1.1\r\nHost: {relay}\r\n\r\n").into_bytes();
    for _ in 0..16 {
        let get = get.clone();
        let asking = Asking {
            prefix: "public ",
            patience: Duration::from_secs(5),
            slow: "public: no answer in 5 s",
        };
        workers.spawn(keep_asking(attack.clone(), asking, move || get.clone()));
    }
}

async fn answer_continue_endlessly(attack: &Attack, mut tcp: TcpStream, mut rest: Vec<u8>) {
    let _held = attack.tally.hold();
    loop {
        let Ok(head) = read_request(&mut tcp, rest).await else {
            return attack.tally.add("peer closed while idle");
        };
        if head.method == "OPTIONS" {
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if tcp.write_all(ok).await.is_err() {
                return attack.tally.add("peer closed while idle");
            }
            rest = head.rest;
            continue;
        }
        let continues = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
        write_until_cut(&mut tcp, &continues).await;
        return attack
            .tally
            .add("public requests answered with endless 100s, cut");
    }
}

/// Claims [`EVIL`] by a raw PTTH upgrade asking for HTTP/1.1; the
/// connection (now the peer's side, on which the relay sends requests)
/// and the bytes read past the `101`, or `None` when refused (counted).
async fn claim(attack: &Attack) -> Option<(TcpStream, Vec<u8>)> {
    let mut tcp = connect(attack).await;
    let upgrade = format!(
        "GET /reversehttp/{EVIL}?token={EVIL_TOKEN} HTTP/1.1\r\nHost: {}\r\n\
         Connection: upgrade\r\nUpgrade: ptth\r\nALPN: http%2F1.1\r\nContent-Length: 0\r\n\r\n",
        attack.relay
    );
    if tcp.write_all(upgrade.as_bytes()).await.is_err() {
        attack.tally.add("claim: closed");
        return None;
    }
    match read_response(&mut tcp, Vec::new()).await {
        Ok(head) if head.status == 101 => {
            attack.tally.add("claim 101");
            Some((tcp, head.rest))
        }
        Ok(head) => {
            attack.tally.add(format!("claim {}", head.status));
            None
        }
        Err(_) => {
            attack.tally.add("claim: closed");
            None
        }
    }
}
