//! Per-app counters and ack latency percentiles.

use std::collections::VecDeque;
use std::time::Duration;

use crate::model::{AppStats, Latency};

/// Latency samples kept per app (the newest ones).
const MAX_SAMPLES: usize = 65_536;

/// Counters of one app plus its latency samples.
#[derive(Debug, Default)]
pub struct Counters {
    /// The public counters (latency filled on read).
    pub stats: AppStats,
    samples: VecDeque<f32>,
    max_ms: f64,
    acked_count: u64,
}

impl Counters {
    /// Records an ack latency.
    pub fn ack_latency(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(ms as f32);
        self.max_ms = self.max_ms.max(ms);
        self.acked_count += 1;
    }

    /// Counts one ack code.
    pub fn ack_code(&mut self, code: &str) {
        *self.stats.ack_codes.entry(code.to_string()).or_insert(0) += 1;
    }

    /// Counts one API call.
    pub fn api_call(&mut self, route: &str) {
        match self.stats.api_calls.get_mut(route) {
            Some(n) => *n += 1,
            None => {
                self.stats.api_calls.insert(route.to_string(), 1);
            }
        }
    }

    /// The public view with latency percentiles.
    pub fn snapshot(&self, connections: usize) -> AppStats {
        let mut s = self.stats.clone();
        s.connections = connections;
        let mut sorted: Vec<f32> = self.samples.iter().copied().collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            f64::from(sorted[idx.min(sorted.len() - 1)])
        };
        s.ack_latency = Latency {
            count: self.acked_count,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: self.max_ms,
        };
        s
    }
}
