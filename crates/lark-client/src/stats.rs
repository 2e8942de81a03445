//! Per-endpoint call and error counters (for the monthly quota and metrics).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::Error;

/// Counters for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// The route template, such as `"POST /im/v1/messages"`.
    pub endpoint: &'static str,
    /// Requests sent (every attempt counts against the platform's quota).
    pub calls: u64,
    /// Failures by platform code; a failure without a code (plain HTTP error
    /// status) is counted under its HTTP status.
    pub errors: BTreeMap<i64, u64>,
    /// Failures with no response at all (connect, timeout, cut-off body).
    pub network_errors: u64,
}

/// The shared counters of one [`crate::Client`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    by_endpoint: Mutex<BTreeMap<&'static str, EndpointStats>>,
}

impl Stats {
    /// Records one attempt and its outcome.
    pub fn record(&self, endpoint: &'static str, outcome: Result<(), &Error>) {
        let Ok(mut map) = self.by_endpoint.lock() else {
            return;
        };
        let entry = map.entry(endpoint).or_insert_with(|| EndpointStats {
            endpoint,
            ..EndpointStats::default()
        });
        entry.calls += 1;
        match outcome {
            Ok(()) => {}
            Err(Error::Http(_)) => entry.network_errors += 1,
            Err(e) => {
                if let Some(key) = e.code().or(e.status().map(i64::from)) {
                    *entry.errors.entry(key).or_default() += 1;
                }
            }
        }
    }

    /// A snapshot, sorted by endpoint.
    pub fn snapshot(&self) -> Vec<EndpointStats> {
        self.by_endpoint
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_codes() {
        let s = Stats::default();
        let api = Error::Api {
            code: 230020,
            msg: String::new(),
            status: 400,
            log_id: None,
            retry_after: None,
        };
        let status = Error::Status {
            status: 502,
            log_id: None,
            retry_after: None,
        };
        s.record("POST /im/v1/messages", Ok(()));
        s.record("POST /im/v1/messages", Err(&api));
        s.record("POST /im/v1/messages", Err(&api));
        s.record("GET /bot/v3/info", Err(&status));
        let snap = s.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].endpoint, "GET /bot/v3/info");
        assert_eq!(snap[0].errors.get(&502), Some(&1));
        assert_eq!(snap[1].calls, 3);
        assert_eq!(snap[1].errors.get(&230020), Some(&2));
    }
}
