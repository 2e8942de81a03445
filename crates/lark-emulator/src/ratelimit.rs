//! Token buckets for the platform's rate limits.

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `rate` stored.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` per second.
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes one token, or returns the whole seconds until one is available
    /// (at least 1, as the `x-ogw-ratelimit-reset` header).
    pub fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// Takes a token from an optional bucket, creating it on first use.
pub fn take(bucket: &mut Option<TokenBucket>, rate: Option<u32>, now: Instant) -> Result<(), u64> {
    match rate {
        None => Ok(()),
        Some(rate) => bucket
            .get_or_insert_with(|| TokenBucket::new(rate, now))
            .take(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, t0);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        assert_eq!(b.take(t0), Err(1));
        assert!(b.take(t0 + Duration::from_millis(600)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(600)).is_err());
    }
}
