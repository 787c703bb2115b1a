//! The hop mark: how an owner node knows a request was forwarded by
//! another node, and not by a public client pretending to be one.
//!
//! A node forwarding a request marks it `ptth-relay-hop: <secs>.<mac>.<node>`,
//! where `mac` is HMAC-SHA256, under a secret the nodes share, of the
//! time, the node, the method and the target. An HMAC rather than mutual
//! TLS because it holds whether the nodes speak TLS to each other or
//! plain HTTP on a private network, and needs no certificates per node;
//! the secret is made by the first node and kept in etcd, which every
//! node already trusts with the name table. A mark older or newer than
//! [`WINDOW`] is refused, so a captured mark soon stops working.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method};
use sha2::Sha256;

use super::{Error, ROOT};

/// How far a mark's time may be from this node's clock.
const WINDOW: Duration = Duration::from_secs(60);

/// The key the nodes share, 256 random bits.
#[derive(Clone)]
pub(crate) struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The cluster's secret: the one in etcd, or a new one this node puts
/// there when it is the first.
pub(crate) async fn shared_secret(client: &mut Client) -> Result<Secret, Error> {
    let key = format!("{ROOT}hop-secret");
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).expect("the operating system's random source");
    let create = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.clone(), fresh.to_vec(), None)])
        .or_else([TxnOp::get(key, None)]);
    let created = client.txn(create).await?;
    if created.succeeded() {
        return Ok(Secret(fresh));
    }
    let stored = created.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    match stored.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
        Some(secret) => Ok(Secret(secret)),
        None => Err(Error::from(etcd_client::Error::InvalidArgs(
            "the cluster's hop secret in etcd is damaged".into(),
        ))),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn mac(secret: &Secret, secs: u64, node: &str, method: &Method, target: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    for part in [&secs.to_string(), node, method.as_str(), target] {
        // Lengths first, so no two splits of the same bytes sign alike.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

/// The mark for `node` forwarding `method target` now.
pub(crate) fn sign(
    secret: &Secret,
    node: &str,
    method: &Method,
    target: &str,
) -> Option<HeaderValue> {
    sign_at(secret, now(), node, method, target)
}

fn sign_at(
    secret: &Secret,
    secs: u64,
    node: &str,
    method: &Method,
    target: &str,
) -> Option<HeaderValue> {
    let tag = mac(secret, secs, node, method, target)
        .finalize()
        .into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("{secs}.{hex}.{node}")).ok()
}

/// Whether `mark` is a node's, for `method target`, and recent.
pub(crate) fn verify(secret: &Secret, mark: &HeaderValue, method: &Method, target: &str) -> bool {
    verify_at(secret, now(), mark, method, target)
}

fn verify_at(secret: &Secret, now: u64, mark: &HeaderValue, method: &Method, target: &str) -> bool {
    let Ok(mark) = mark.to_str() else {
        return false;
    };
    let mut parts = mark.splitn(3, '.');
    let (Some(secs), Some(hex), Some(node)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(secs) = secs.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(secs) > WINDOW.as_secs() || hex.len() != 64 {
        return false;
    }
    let Some(tag) = (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    // verify_slice compares in constant time.
    mac(secret, secs, node, method, target)
        .verify_slice(&tag)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_holds_for_its_request_and_time_only() {
        let secret = Secret([7; 32]);
        let other = Secret([8; 32]);
        let mark = sign_at(&secret, 1_000, "a", &Method::GET, "/lamp/x").unwrap();
        for (secret, now, method, target, valid) in [
            (&secret, 1_000, Method::GET, "/lamp/x", true),
            (&secret, 1_060, Method::GET, "/lamp/x", true),
            (&secret, 940, Method::GET, "/lamp/x", true),
            (&secret, 1_061, Method::GET, "/lamp/x", false),
            (&secret, 1_000, Method::POST, "/lamp/x", false),
            (&secret, 1_000, Method::GET, "/lamp/y", false),
            (&other, 1_000, Method::GET, "/lamp/x", false),
        ] {
            assert_eq!(
                verify_at(secret, now, &mark, &method, target),
                valid,
                "{now} {method} {target}"
            );
        }
        for forged in [
            "a",
            "1000.zz.a",
            "1000..a",
            "x.00.a",
            &format!("1000.{}.b", "0".repeat(64)),
        ] {
            let forged = HeaderValue::from_str(forged).unwrap();
            assert!(
                !verify_at(&secret, 1_000, &forged, &Method::GET, "/lamp/x"),
                "{forged:?}"
            );
        }
        // The node named is signed too.
        let text = mark.to_str().unwrap().replace(".a", ".b");
        let renamed = HeaderValue::from_str(&text).unwrap();
        assert!(!verify_at(
            &secret,
            1_000,
            &renamed,
            &Method::GET,
            "/lamp/x"
        ));
    }
}
