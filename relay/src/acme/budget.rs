//! The orders the relay may place: a burst, then one per period, so that
//! names claimed in a rush cannot spend the ACME server's rate limits
//! (Let's Encrypt allows 300 new orders per account in three hours).

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of orders.
#[derive(Debug)]
pub(super) struct Budget {
    burst: u32,
    period: Duration,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// `burst` orders at once, then one every `period`.
    pub fn new(burst: u32, period: Duration) -> Budget {
        Budget {
            burst,
            period,
            tokens: f64::from(burst),
            at: Instant::now(),
        }
    }

    /// Takes one order, if the budget has one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refilled = (now - self.at).as_secs_f64() / self.period.as_secs_f64();
        self.tokens = (self.tokens + refilled).min(f64::from(self.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_period() {
        let mut budget = Budget::new(2, Duration::from_secs(60));
        assert!(budget.take() && budget.take());
        assert!(!budget.take());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!budget.take());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.take());
        assert!(!budget.take());
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(budget.take() && budget.take() && !budget.take());
    }
}
