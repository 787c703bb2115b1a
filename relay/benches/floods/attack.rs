//! The floods one attacker runs, and what every flood shares: the
//! attacker's address, its tally, and a loop of requests on kept-alive
//! connections.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::tally::Tally;
use crate::wire::{ATTACKER, connect_from, read_answer};
use crate::{holding, peers, polls, requests};

/// One row of the table: no flood, or one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    None,
    Names,
    Takeover,
    Idle,
    StalledAtPeer,
    StalledAtRelay,
    Parked,
    EndlessCheck,
    EndlessContinue,
}

impl Flood {
    pub const ALL: [Flood; 9] = [
        Flood::None,
        Flood::Names,
        Flood::Takeover,
        Flood::Idle,
        Flood::StalledAtPeer,
        Flood::StalledAtRelay,
        Flood::Parked,
        Flood::EndlessCheck,
        Flood::EndlessContinue,
    ];

    /// The name that picks the flood on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Flood::None => "baseline",
            Flood::Names => "names",
            Flood::Takeover => "takeover",
            Flood::Idle => "idle",
            Flood::StalledAtPeer => "stalled-peer",
            Flood::StalledAtRelay => "stalled-relay",
            Flood::Parked => "parked",
            Flood::EndlessCheck => "endless-check",
            Flood::EndlessContinue => "endless-continue",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Flood::None => "none (baseline)",
            Flood::Names => "1. name creation: polls and JSON posts of fresh names, 64 connections",
            Flood::Takeover => "2. token-less upgrades to the held name, 32 connections",
            Flood::Idle => "3. silent connections, 512 at a time",
            Flood::StalledAtPeer => {
                "4a. stalled bodies (Content-Length 1,000,000) to the healthy name, 512 at a time"
            }
            Flood::StalledAtRelay => {
                "4b. stalled bodies (Content-Length 1,000,000) to the long-poll registration, 512 at a time"
            }
            Flood::Parked => "5. parked long polls over 16 HTTP/2 connections",
            Flood::EndlessCheck => {
                "6a. HTTP/1.1 peers answering `OPTIONS *` with an endless body, 32 at a time"
            }
            Flood::EndlessContinue => {
                "6b. HTTP/1.1 peers answering `100 Continue` without end, 8 at a time, and 16 connections asking them"
            }
        }
    }

    /// What the places the attacker holds are, for the floods that hold
    /// some. A connection counts from 100 ms after its connect, when the
    /// relay has not closed it: held, or still waiting in the relay's
    /// listen backlog, which the attacker cannot tell apart.
    fn held_label(self) -> Option<&'static str> {
        match self {
            Flood::Idle | Flood::StalledAtPeer | Flood::StalledAtRelay => {
                Some("connections still open")
            }
            Flood::Parked => Some("polls parked"),
            Flood::EndlessCheck | Flood::EndlessContinue => Some("peers connected"),
            Flood::None | Flood::Names | Flood::Takeover => None,
        }
    }
}

/// What every task of one flood shares.
#[derive(Clone)]
pub struct Attack {
    pub relay: SocketAddr,
    pub tally: Tally,
}

/// Runs `flood` against `relay` until `deadline`, then closes everything it
/// opened; what the attacker saw, for the table.
pub async fn run(flood: Flood, relay: SocketAddr, deadline: Instant) -> String {
    let attack = Attack {
        relay,
        tally: Tally::default(),
    };
    let mut workers = JoinSet::new();
    match flood {
        Flood::None => {}
        Flood::Names => requests::names(&attack, &mut workers),
        Flood::Takeover => requests::takeover(&attack, &mut workers),
        Flood::Idle => holding::idle(&attack, &mut workers),
        Flood::StalledAtPeer => holding::stalled_at_peer(&attack, &mut workers),
        Flood::StalledAtRelay => holding::stalled_at_relay(&attack, &mut workers),
        Flood::Parked => polls::park(&attack, &mut workers),
        Flood::EndlessCheck => peers::endless_check(&attack, &mut workers),
        Flood::EndlessContinue => peers::endless_continue(&attack, &mut workers),
    }
    tokio::time::sleep_until(deadline).await;
    let held = attack.tally.held();
    // Aborting the tasks drops their sockets: the relay sees every
    // connection close.
    workers.shutdown().await;
    attack.tally.summary(flood.held_label(), held)
}

/// How long a worker waits after the relay refused it, so that a refused
/// worker does not spin on the two cores the relay needs too.
pub const RETRY: Duration = Duration::from_millis(50);

/// A connection from the attacker's address; a failed connect is counted
/// and tried again.
pub async fn connect(attack: &Attack) -> TcpStream {
    loop {
        match connect_from(ATTACKER, attack.relay).await {
            Ok(tcp) => return tcp,
            Err(error) => {
                attack
                    .tally
                    .add(format!("connect failed ({:?})", error.kind()));
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// How to count the answers of [`keep_asking`].
pub struct Asking {
    /// Put before every status counted.
    pub prefix: &'static str,
    /// How long an answer may take; past it the connection is dropped.
    pub patience: Duration,
    /// What an answer that took longer is counted as.
    pub slow: &'static str,
}

/// Sends the requests `next` makes one after another on kept-alive
/// connections from the attacker (as fast as the relay answers), counts
/// the answers by status, and connects again whenever the relay closes.
pub async fn keep_asking(attack: Attack, asking: Asking, mut next: impl FnMut() -> Vec<u8>) {
    loop {
        let mut tcp = connect(&attack).await;
        let mut rest = Vec::new();
        loop {
            if tcp.write_all(&next()).await.is_err() {
                attack.tally.add(format!("{}closed", asking.prefix));
                break;
            }
            let answer = tokio::time::timeout(asking.patience, read_answer(&mut tcp, rest)).await;
            match answer {
                Ok(Ok((status, after))) => {
                    attack.tally.add(format!("{}{status}", asking.prefix));
                    match after {
                        Some(after) => rest = after,
                        None => break,
                    }
                }
                Ok(Err(_)) => {
                    attack.tally.add(format!("{}closed", asking.prefix));
                    break;
                }
                Err(_) => {
                    attack.tally.add(asking.slow);
                    break;
                }
            }
        }
    }
}
