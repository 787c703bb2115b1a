//! The name table's rules, claim by claim, with paused time for leases.

use super::*;

fn open() -> Names {
    Names::new(Policy::default(), 1000)
}

fn admit() -> Result<(), ClaimError> {
    Ok(())
}

fn claim(names: &Names, name: &str, token: Option<&str>) -> Result<Claimed, ClaimError> {
    names.claim(name, token, None, admit)
}

#[test]
fn names_are_dns_labels() {
    for good in ["a", "lamp", "my-lamp-2", "0", &"a".repeat(63)] {
        assert!(valid_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", "Lamp", "a_b", "a.b", "é", &"a".repeat(64)] {
        assert!(!valid_name(bad), "{bad}");
    }
    assert_eq!(
        claim(&open(), "Lamp", Some("t")).unwrap_err(),
        ClaimError::InvalidName("Lamp".into())
    );
}

#[test]
fn the_same_token_joins_and_another_or_none_is_refused() {
    let names = open();
    let first = claim(&names, "lamp", Some("t1")).unwrap();
    assert!(first.created);
    let again = claim(&names, "lamp", Some("t1")).unwrap();
    assert!(!again.created);
    assert_eq!(again.token, "t1");
    assert!(Arc::ptr_eq(&first.pool, &again.pool));
    for other in [Some("t2"), None, Some("")] {
        assert_eq!(
            claim(&names, "lamp", other).unwrap_err(),
            ClaimError::Forbidden("lamp".into()),
            "{other:?}"
        );
    }
}

#[test]
fn no_token_gets_a_random_one_that_then_holds_the_name() {
    let names = open();
    let claimed = claim(&names, "lamp", None).unwrap();
    assert_eq!(claimed.token.len(), 32);
    assert_ne!(claimed.token, random_token());
    assert!(claim(&names, "lamp", Some("guess")).is_err());
    assert!(claim(&names, "lamp", None).is_err());
    assert!(claim(&names, "lamp", Some(&claimed.token)).is_ok());
}

#[test]
fn only_a_claim_that_creates_a_name_is_admitted() {
    let names = open();
    let limited = || Err(ClaimError::RateLimited(Duration::from_secs(2)));
    assert_eq!(
        names.claim("lamp", Some("t"), None, limited).unwrap_err(),
        ClaimError::RateLimited(Duration::from_secs(2))
    );
    assert_eq!(names.stored(), 0);
    claim(&names, "lamp", Some("t")).unwrap();
    // Joining a held name creates nothing, so nothing is charged.
    assert!(names.claim("lamp", Some("t"), None, limited).is_ok());
}

#[test]
fn the_table_holds_at_most_its_bound() {
    let names = Names::new(Policy::default(), 2);
    claim(&names, "a", None).unwrap();
    claim(&names, "b", None).unwrap();
    assert_eq!(claim(&names, "c", None).unwrap_err(), ClaimError::Full);
    assert!(claim(&names, "a", None).is_err(), "a is held");
}

#[test]
fn pinned_names_need_their_token_and_closed_relays_refuse_others() {
    let mut policy = Policy::default();
    policy.pinned.insert("lamp".into(), Digest::of("secret"));
    policy.closed = true;
    let names = Names::new(policy, 1000);
    // Before anyone holds it, as after: the pin alone refuses.
    assert!(claim(&names, "lamp", Some("wrong")).is_err());
    assert!(claim(&names, "lamp", None).is_err());
    assert!(claim(&names, "lamp", Some("secret")).is_ok());
    assert!(claim(&names, "lamp", Some("wrong")).is_err());
    assert!(claim(&names, "lamp", None).is_err());
    assert!(claim(&names, "other", Some("any")).is_err());
}

#[tokio::test(start_paused = true)]
async fn an_empty_name_is_kept_for_its_lease_then_freed() {
    let names = open();
    names
        .claim("lamp", Some("t1"), Some(Duration::from_secs(45)), admit)
        .unwrap();
    assert!(names.lookup("lamp").is_some());
    tokio::time::sleep(Duration::from_secs(44)).await;
    assert!(claim(&names, "lamp", Some("t2")).is_err());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(names.lookup("lamp").is_none());
    assert!(claim(&names, "lamp", Some("t2")).unwrap().created);
}

#[tokio::test(start_paused = true)]
async fn leases_never_go_below_the_floor() {
    let names = open();
    names
        .claim("lamp", Some("t1"), Some(Duration::from_secs(1)), admit)
        .unwrap();
    tokio::time::sleep(LEASE_FLOOR - Duration::from_millis(1)).await;
    assert!(names.lookup("lamp").is_some());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(names.lookup("lamp").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_sweep_forgets_expired_names_and_keeps_held_ones() {
    let names = open();
    for i in 0..100 {
        claim(&names, &format!("n{i}"), None).unwrap();
    }
    tokio::time::sleep(LEASE_FLOOR - Duration::from_secs(1)).await;
    claim(&names, "late", None).unwrap();
    names.sweep();
    assert_eq!(names.stored(), 101);
    tokio::time::sleep(Duration::from_secs(1)).await;
    names.sweep();
    assert_eq!(names.stored(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_table_counts_held_names_and_serves_those_with_members() {
    let names = open();
    assert!(names.is_empty());
    let lamp = claim(&names, "lamp", Some("t1")).unwrap();
    claim(&names, "desk", Some("t2")).unwrap();
    assert_eq!((names.len(), names.is_empty()), (2, false));
    assert_eq!(names.census(), (2, 0, 0));
    // A name is served once it has a member: here, its long-poll
    // clients.
    assert!(names.served().is_empty());
    let limits = ptth::longpoll::Limits {
        requests: 1,
        polls: 1,
        reply_wait: Duration::from_secs(1),
    };
    lamp.pool
        .poller(|| crate::pool::Poller::new(limits, Duration::from_secs(600)));
    let served = names.served();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].0, "lamp");
    assert!(served[0].1.matches("t1"));
    // Past its lease, a name with no member is no longer held.
    tokio::time::advance(LEASE_FLOOR + Duration::from_secs(1)).await;
    assert_eq!(names.len(), 1);
    assert_eq!(names.census(), (1, 0, 0));
}

#[test]
fn a_reload_releases_the_names_the_new_policy_no_longer_grants() {
    use crate::keys::{Key, Keys};
    let key = |names: &[&str]| Key {
        label: "alice".into(),
        digest: Digest::of("k"),
        names: names.iter().map(|name| name.parse().unwrap()).collect(),
        max_names: None,
        max_connections: None,
    };
    let mut policy = Policy::default();
    policy.pinned.insert("pin".into(), Digest::of("p"));
    policy.keys = Keys::new(vec![key(&["alice-*"])]);
    policy.open = true;
    let names = Names::new(policy.clone(), 1000);
    for (name, token) in [
        ("pin", "p"),
        ("alice-a", "k"),
        ("alice-b", "k"),
        ("free", "f"),
    ] {
        claim(&names, name, Some(token)).unwrap();
    }
    // The same policy keeps every name.
    assert!(names.reload(policy.clone(), 1000).is_empty());
    // The key narrowed to one name, registration closed: the other
    // keyed name and the openly claimed one go; the pin stays.
    policy.keys = Keys::new(vec![key(&["alice-a"])]);
    policy.open = false;
    assert_eq!(names.reload(policy.clone(), 1000).len(), 2);
    let held = ["pin", "alice-a", "alice-b", "free"].map(|name| names.lookup(name).is_some());
    assert_eq!(held, [true, true, false, false]);
    // Released names are free for their new owners at once.
    assert!(
        claim(&names, "alice-b", Some("k")).is_err(),
        "not this key's"
    );
    // A changed pin releases its name; a held name is still joined.
    policy.pinned.insert("pin".into(), Digest::of("q"));
    assert_eq!(names.reload(policy, 1).len(), 1);
    assert_eq!(
        claim(&names, "alice-a", Some("k")).map(|c| c.created),
        Ok(false)
    );
}
