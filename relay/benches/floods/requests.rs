//! Floods of small requests the relay answers at once: claims of fresh
//! names, and takeovers of a held one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::attack::{Asking, Attack, keep_asking};
use crate::victim::NAME;

/// Flood 1: every request names a name nobody holds, so each is a claim
/// charged to the attacker's address (`[claims]`, 20 at once and 10 a
/// second). Long-poll GETs and Second Life JSON posts alternate: both
/// create names. The few that pass park for the hold (30 s); the attacker
/// does not wait for them.
pub fn names(attack: &Attack, workers: &mut JoinSet<()>) {
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..64 {
        let relay = attack.relay;
        let next = next.clone();
        let asking = Asking {
            prefix: "",
            patience: Duration::from_millis(300),
            slow: "no answer in 300 ms (parked)",
        };
        workers.spawn(keep_asking(attack.clone(), asking, move || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let request = if n % 2 == 0 {
                format!("GET /reversehttp/n{n}/t/{n} HTTP/1.1\r\nHost: {relay}\r\n\r\n")
            } else {
                format!(
                    "POST /reversehttp/j{n}?token=t HTTP/1.1\r\nHost: {relay}\r\n\
                     Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                )
            };
            request.into_bytes()
        }));
    }
}

/// Flood 2: PTTH upgrades to the bystander's name without its token. The
/// name is held, so each is refused (403), and each wrong claim is
/// charged (429 past the rate). A `101` here would be a takeover.
pub fn takeover(attack: &Attack, workers: &mut JoinSet<()>) {
    let relay = attack.relay;
    let upgrade = format!(
        "GET /reversehttp/{NAME} HTTP/1.1\r\nHost: {relay}\r\nConnection: upgrade\r\n\
         Upgrade: ptth\r\nALPN: h2, http%2F1.1\r\nContent-Length: 0\r\n\r\n"
    );
    for _ in 0..32 {
        let upgrade = upgrade.clone().into_bytes();
        let asking = Asking {
            prefix: "",
            patience: Duration::from_secs(5),
            slow: "no answer in 5 s",
        };
        workers.spawn(keep_asking(attack.clone(), asking, move || upgrade.clone()));
    }
}
