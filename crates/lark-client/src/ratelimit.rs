//! Rate limits learned from the platform, twilight-style: once the platform
//! says an endpoint (or one target of it, such as a chat or a card) is
//! limited, every caller of that bucket waits until the reset instant
//! instead of hammering it.
//!
//! Buckets are the route template (`"PATCH /im/v1/messages/:message_id"`)
//! for app-wide limits (HTTP 429, 99991400) and the route plus the target id
//! for per-target limits (230020 and friends: 5 QPS per chat, per message,
//! 10 ops/s per card).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

/// A bucket key: a route template and, for per-target limits, the target id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bucket {
    pub route: &'static str,
    pub target: Option<String>,
}

impl Bucket {
    fn route_only(&self) -> Bucket {
        Bucket {
            route: self.route,
            target: None,
        }
    }
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{} [{t}]", self.route),
            None => f.write_str(self.route),
        }
    }
}

/// Which part of a bucket a limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole endpoint for this app.
    Route,
    /// One target (chat, user, message, card) of the endpoint.
    Target,
}

/// Blocked-until instants per bucket.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    blocked: Mutex<HashMap<Bucket, Instant>>,
}

impl RateLimiter {
    /// Blocks `bucket` (or its whole route) until `now + wait`; a later
    /// existing block is kept.
    pub fn block(&self, bucket: &Bucket, scope: Scope, wait: Duration) {
        let key = match scope {
            Scope::Target if bucket.target.is_some() => bucket.clone(),
            _ => bucket.route_only(),
        };
        let until = Instant::now() + wait;
        if let Ok(mut map) = self.blocked.lock() {
            let now = Instant::now();
            map.retain(|_, t| *t > now);
            let slot = map.entry(key).or_insert(until);
            if *slot < until {
                *slot = until;
            }
        }
    }

    /// How long `bucket` (its route or its target) is still blocked.
    pub fn remaining(&self, bucket: &Bucket) -> Duration {
        let Ok(map) = self.blocked.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        [bucket.route_only(), bucket.clone()]
            .iter()
            .filter_map(|k| map.get(k))
            .map(|until| until.saturating_duration_since(now))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Waits until `bucket` is free. Refuses (without waiting) when the
    /// block lasts longer than `max_wait`.
    pub async fn acquire(&self, bucket: &Bucket, max_wait: Duration) -> Result<(), Error> {
        loop {
            let wait = self.remaining(bucket);
            if wait.is_zero() {
                return Ok(());
            }
            if wait > max_wait {
                return Err(Error::RateLimited {
                    bucket: bucket.to_string(),
                    wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(target: Option<&str>) -> Bucket {
        Bucket {
            route: "PATCH /im/v1/messages/:message_id",
            target: target.map(str::to_string),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_wait_until_the_reset_instant() {
        let rl = RateLimiter::default();
        let b = bucket(Some("om_1"));
        rl.acquire(&b, Duration::from_secs(60)).await.unwrap();
        rl.block(&b, Scope::Route, Duration::from_secs(5));
        let start = Instant::now();
        rl.acquire(&b, Duration::from_secs(60)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // Free again.
        let start = Instant::now();
        rl.acquire(&b, Duration::from_secs(60)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn target_blocks_do_not_block_other_targets() {
        let rl = RateLimiter::default();
        rl.block(&bucket(Some("om_1")), Scope::Target, Duration::from_secs(1));
        assert_eq!(rl.remaining(&bucket(Some("om_2"))), Duration::ZERO);
        assert_eq!(rl.remaining(&bucket(Some("om_1"))), Duration::from_secs(1));
        // A route-wide block applies to every target.
        rl.block(&bucket(Some("om_1")), Scope::Route, Duration::from_secs(3));
        assert_eq!(rl.remaining(&bucket(Some("om_2"))), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn long_blocks_are_refused_not_waited() {
        let rl = RateLimiter::default();
        let b = bucket(None);
        rl.block(&b, Scope::Route, Duration::from_secs(600));
        let err = rl.acquire(&b, Duration::from_secs(60)).await.unwrap_err();
        assert!(matches!(err, Error::RateLimited { .. }));
        assert!(
            matches!(err.class(), crate::ErrorClass::RateLimited(w) if w == Duration::from_secs(600))
        );
    }
}
