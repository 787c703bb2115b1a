//! A bound on claims per client address, so a peer that redials in a
//! tight loop (as some real PTTH clients do) cannot crowd out the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many claims one address may make: a burst, refilled at a rate.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRate {
    /// Claims allowed at once.
    pub burst: u32,
    /// Claims allowed per second after the burst.
    pub per_second: u32,
}

impl Default for ClaimRate {
    /// 20 at once, 10 a second: a device with a large pool connects at
    /// once, and a reconnect loop is slowed to a pace the relay does not
    /// feel.
    fn default() -> Self {
        ClaimRate {
            burst: 20,
            per_second: 10,
        }
    }
}

/// Token buckets per client address.
#[derive(Debug)]
pub struct Limiter {
    rate: ClaimRate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets idle this long are full again and are forgotten, which keeps
/// the map as small as the set of recent clients.
const FORGET_AFTER: Duration = Duration::from_secs(60);

impl Limiter {
    /// A limiter with `rate` for every address.
    pub fn new(rate: ClaimRate) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one claim for `ip`, or says how long until one is free.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.rate.burst.max(1));
        let per_second = f64::from(self.rate.per_second.max(1));
        let mut buckets = self.buckets.lock().expect("the limiter lock");
        if buckets.len() > 1024 {
            buckets.retain(|_, bucket| now - bucket.at < FORGET_AFTER);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
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
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        limiter.take(other).unwrap();
    }
}
