//! A bound on claims per client address, so a peer that redials in a
//! tight loop (as some real PTTH clients do) cannot crowd out the rest.
//! Clients are counted by [`client_key`]: an IPv6 client by its /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::settings::ClaimRate;

/// Token buckets per client address.
#[derive(Debug)]
pub struct Limiter {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// Under the lock with the buckets, so a reload changes both at once.
    rate: ClaimRate,
    map: HashMap<IpAddr, Bucket>,
    /// When idle buckets were last forgotten: at most once a second, so a
    /// flood of new clients does not cost a scan of the map each.
    swept: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets idle this long are full again and are forgotten, which keeps
/// the map as small as the set of recent clients.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The most clients with a bucket of their own. Past it, new clients share
/// one bucket: the memory stays bounded under a flood from many
/// addresses, and the clients already known keep their own rate.
const MAX_CLIENTS: usize = 65_536;

/// Where the clients past [`MAX_CLIENTS`] are counted.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The address a client is counted by: an IPv4 address whole (an
/// IPv4-mapped IPv6 one too), an IPv6 address by its /64, since one
/// subscriber is routinely given a whole /64 and may use any address in it.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl Limiter {
    /// A limiter with `rate` for every address.
    pub fn new(rate: ClaimRate) -> Self {
        Limiter {
            buckets: Mutex::new(Buckets {
                rate,
                map: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// Takes `rate` from now on; each client's bucket keeps what it holds,
    /// up to the new burst.
    pub fn set_rate(&self, rate: ClaimRate) {
        self.buckets.lock().expect("the limiter lock").rate = rate;
    }

    /// Takes one claim for `ip` (counted by [`client_key`]), or says how
    /// long until one is free.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut key = client_key(ip);
        let mut buckets = self.buckets.lock().expect("the limiter lock");
        let Buckets { rate, map, swept } = &mut *buckets;
        let burst = f64::from(rate.burst.max(1));
        let per_second = f64::from(rate.per_second.max(1));
        if map.len() > 1024 && !map.contains_key(&key) {
            if now - *swept >= Duration::from_secs(1) {
                map.retain(|_, bucket| now - bucket.at < FORGET_AFTER);
                *swept = now;
            }
            if map.len() >= MAX_CLIENTS {
                key = OVERFLOW;
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = (now - bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let limiter = Limiter::new(ClaimRate {
            burst: 3,
            per_second: 2,
        });
        for _ in 0..3 {
            limiter.take(IP).unwrap();
        }
        let wait = limiter.take(IP).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        tokio::time::sleep(wait).await;
        limiter.take(IP).unwrap();
        assert!(limiter.take(IP).is_err());
        // Half a claim refilled: the wait is for the other half only.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.take(IP).unwrap_err(), Duration::from_millis(250));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        limiter.take(other).unwrap();
    }

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_its_64() {
        for (ip, key) in [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(client_key(ip), key.parse::<IpAddr>().unwrap(), "{ip}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_ipv6_64_shares_a_bucket() {
        let limiter = Limiter::new(ClaimRate {
            burst: 2,
            per_second: 1,
        });
        limiter.take("2001:db8::1".parse().unwrap()).unwrap();
        limiter.take("2001:db8::2:1".parse().unwrap()).unwrap();
        assert!(limiter.take("2001:db8::ffff:3".parse().unwrap()).is_err());
        limiter.take("2001:db8:0:1::1".parse().unwrap()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_bound_the_map_counts_new_clients_together() {
        let limiter = Limiter::new(ClaimRate {
            burst: 1,
            per_second: 1,
        });
        let nth = |n: u32| IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + n));
        for n in 0..MAX_CLIENTS as u32 {
            limiter.take(nth(n)).unwrap();
        }
        let known = limiter.buckets.lock().unwrap().map.len();
        assert_eq!(known, MAX_CLIENTS);
        // Two newcomers share the overflow bucket; the map grows by one.
        limiter.take(nth(1 << 20)).unwrap();
        assert!(limiter.take(nth(1 << 21)).is_err());
        assert_eq!(limiter.buckets.lock().unwrap().map.len(), MAX_CLIENTS + 1);
        // A second on, a known client still has a bucket of its own: it
        // does not take the newcomers' claim.
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.take(nth(0)).unwrap();
        limiter.take(nth(1 << 22)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_clients_are_forgotten_and_recent_ones_kept() {
        let limiter = Limiter::new(ClaimRate {
            burst: 1,
            per_second: 1,
        });
        let nth = |n: u32| IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + n));
        let known = |n: u32| limiter.buckets.lock().unwrap().map.contains_key(&nth(n));
        for n in 0..1100 {
            limiter.take(nth(n)).unwrap();
        }
        tokio::time::advance(FORGET_AFTER / 2).await;
        for n in 1100..2200 {
            limiter.take(nth(n)).unwrap();
        }
        // The first are idle exactly as long as it takes to be forgotten.
        tokio::time::advance(FORGET_AFTER / 2).await;
        limiter.take(nth(5000)).unwrap();
        assert!(!known(0) && !known(1099), "idle clients are forgotten");
        assert!(known(1100) && known(2199), "recent clients are kept");
        assert_eq!(limiter.buckets.lock().unwrap().map.len(), 1101);
    }
}
