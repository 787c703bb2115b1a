//! Name ownership shared by relay nodes through a real etcd.
#![cfg(feature = "cluster")]

#[path = "common/etcd.rs"]
mod etcd;

use std::time::Duration;

use etcd::Etcd;
use ptth_relay::cluster::{ClaimOutcome, Cluster, Settings};

async fn node(etcd: &Etcd, id: &str, ttl: Duration) -> Cluster {
    let mut settings = Settings::new(
        vec![etcd.endpoint.clone()],
        id,
        &format!("http://{id}.test"),
    );
    settings.node_ttl = ttl;
    settings.name_ttl = ttl;
    Cluster::join(settings).await.unwrap()
}

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("test did not finish in time")
}

#[tokio::test]
async fn one_token_per_name_across_nodes_and_co_owners() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(10)).await;
        let b = node(&etcd, "b", Duration::from_secs(10)).await;
        let claim = a.claim("lamp", Some("t")).await.unwrap();
        assert!(claim.created);
        let refused = b.claim("lamp", Some("other")).await.unwrap_err();
        assert!(matches!(refused, ClaimOutcome::Refused(_)), "{refused}");
        let joined = b.claim("lamp", Some("t")).await.unwrap();
        assert!(!joined.created, "the same token makes a co-owner");
        let random = a.claim("fan", None).await.unwrap();
        assert!(random.created && random.token.len() >= 16, "{random:?}");
        a.wait_until(|table| table.get("lamp").is_some_and(|lamp| lamp.owners.len() == 2))
            .await;
        let table = b.table();
        let lamp = table.get("lamp").unwrap();
        assert_eq!(lamp.token.as_deref(), Some("t"));
        assert_eq!(lamp.owners["a"], "http://a.test");
    })
    .await;
}

#[tokio::test]
async fn a_dead_node_s_entries_vanish_with_its_lease() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(10)).await;
        let b = node(&etcd, "b", Duration::from_secs(2)).await;
        b.claim("lamp", Some("t")).await.unwrap();
        a.wait_until(|table| {
            table
                .get("lamp")
                .is_some_and(|lamp| lamp.owners.contains_key("b"))
        })
        .await;
        // A crash: no goodbye, the lease is simply no longer renewed.
        drop(b);
        a.wait_until(|table| table.get("lamp").is_none_or(|lamp| lamp.owners.is_empty()))
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_released_name_stays_reserved_for_its_ttl_then_is_free() {
    let etcd = Etcd::start();
    within(async {
        let a = node(&etcd, "a", Duration::from_secs(2)).await;
        let b = node(&etcd, "b", Duration::from_secs(10)).await;
        a.claim("fan", Some("t")).await.unwrap();
        a.release("fan").await.unwrap();
        let reserved = b.claim("fan", Some("other")).await.unwrap_err();
        assert!(matches!(reserved, ClaimOutcome::Refused(_)), "{reserved}");
        b.wait_until(|table| table.get("fan").is_none()).await;
        let free = b.claim("fan", Some("other")).await.unwrap();
        assert!(free.created);
    })
    .await;
}
