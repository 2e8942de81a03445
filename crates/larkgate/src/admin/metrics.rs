//! A small Prometheus registry: labelled counters and histograms kept in
//! atomics, rendered in the text exposition format. Gauges that describe
//! live state (connections, queue depths, API calls) are not stored here;
//! they are read from their owners when `/metrics` is scraped and appended
//! with [`Exposition`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Label values, in the order of the family's label names.
type LabelValues = Vec<String>;

/// Upper bounds (seconds) of the latency histograms.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// One histogram series.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A metric family: one series per distinct set of label values.
pub struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<LabelValues, Arc<T>>>,
}

impl<T: Default> Family<T> {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series for `values` (one per label name), created on first use.
    pub fn with(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        // Found without allocating a key: a family has a handful of series
        // and this runs several times per event.
        if let Some(found) = find(&series, values) {
            return found.clone();
        }
        let key: LabelValues = values.iter().map(|v| v.to_string()).collect();
        series.entry(key).or_default().clone()
    }

    fn snapshot(&self) -> Vec<(LabelValues, Arc<T>)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// The series whose label values are `values`.
fn find<'a, T>(series: &'a BTreeMap<LabelValues, Arc<T>>, values: &[&str]) -> Option<&'a Arc<T>> {
    series
        .iter()
        .find(|(key, _)| key.iter().map(String::as_str).eq(values.iter().copied()))
        .map(|(_, v)| v)
}

/// A monotonically increasing count.
pub type Counter = AtomicU64;

impl Family<Counter> {
    /// Adds one to the series for `values`.
    pub fn inc(&self, values: &[&str]) {
        self.with(values).fetch_add(1, Ordering::Relaxed);
    }

    /// The current value for `values` (0 if never touched).
    pub fn get(&self, values: &[&str]) -> u64 {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        find(&series, values).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Every counter and histogram the gateway keeps.
pub struct Metrics {
    /// Deliveries received from the platform.
    pub events_received: Family<Counter>,
    /// Deliveries acknowledged after their durable record.
    pub events_acked: Family<Counter>,
    /// Redeliveries recognised by event_id or message_id and dropped.
    pub events_deduplicated: Family<Counter>,
    /// Messages dropped (policy, staleness, queue full), by reason.
    pub events_dropped: Family<Counter>,
    /// From receipt to ack.
    pub ack_latency: Family<Histogram>,
    /// Agent turns, by outcome (`ok`, `error`, `cancelled`).
    pub turns: Family<Counter>,
    /// From receipt to the first visible reply text.
    pub first_reply_latency: Family<Histogram>,
    /// From receipt to the completed reply.
    pub reply_latency: Family<Histogram>,
    /// Durable store operations.
    pub store_latency: Family<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry.
    pub const fn new() -> Metrics {
        Metrics {
            events_received: Family::new(
                "larkgate_events_received_total",
                "Deliveries received from the platform.",
                &["account", "source"],
            ),
            events_acked: Family::new(
                "larkgate_events_acked_total",
                "Deliveries acknowledged after their durable record.",
                &["account"],
            ),
            events_deduplicated: Family::new(
                "larkgate_events_deduplicated_total",
                "Redeliveries recognised by event_id or message_id and dropped.",
                &["account"],
            ),
            events_dropped: Family::new(
                "larkgate_events_dropped_total",
                "Messages not answered, by reason.",
                &["account", "reason"],
            ),
            ack_latency: Family::new(
                "larkgate_ack_latency_seconds",
                "Time from receipt of a delivery to its ack.",
                &["account"],
            ),
            turns: Family::new(
                "larkgate_turns_total",
                "Agent turns, by outcome.",
                &["account", "agent", "outcome"],
            ),
            first_reply_latency: Family::new(
                "larkgate_first_reply_latency_seconds",
                "Time from receipt of a message to the first visible reply text.",
                &["account"],
            ),
            reply_latency: Family::new(
                "larkgate_reply_latency_seconds",
                "Time from receipt of a message to the completed reply.",
                &["account"],
            ),
            store_latency: Family::new(
                "larkgate_store_latency_seconds",
                "Durable store operations.",
                &["op"],
            ),
        }
    }

    /// Renders every family in the text exposition format.
    pub fn render(&self, out: &mut Exposition) {
        for f in [
            &self.events_received,
            &self.events_acked,
            &self.events_deduplicated,
            &self.events_dropped,
            &self.turns,
        ] {
            out.counter_family(f);
        }
        for f in [
            &self.ack_latency,
            &self.first_reply_latency,
            &self.reply_latency,
            &self.store_latency,
        ] {
            out.histogram_family(f);
        }
    }
}

/// A text exposition being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{}\"", escape(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Exposition {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn counter_family(&mut self, f: &Family<Counter>) {
        self.header(f.name, f.help, "counter");
        for (values, c) in f.snapshot() {
            let labels = label_set(f.labels, &values, None);
            let _ = writeln!(
                self.text,
                "{}{labels} {}",
                f.name,
                c.load(Ordering::Relaxed)
            );
        }
    }

    fn histogram_family(&mut self, f: &Family<Histogram>) {
        self.header(f.name, f.help, "histogram");
        for (values, h) in f.snapshot() {
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let labels = label_set(f.labels, &values, Some(("le", &bound.to_string())));
                let _ = writeln!(self.text, "{}_bucket{labels} {cumulative}", f.name);
            }
            let count = h.count.load(Ordering::Relaxed);
            let labels = label_set(f.labels, &values, Some(("le", "+Inf")));
            let _ = writeln!(self.text, "{}_bucket{labels} {count}", f.name);
            let plain = label_set(f.labels, &values, None);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(self.text, "{}_sum{plain} {sum}", f.name);
            let _ = writeln!(self.text, "{}_count{plain} {count}", f.name);
        }
    }

    /// Appends a family of values read at scrape time (`counter` or `gauge`).
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        labels: &[&str],
        rows: &[(Vec<String>, f64)],
    ) {
        self.header(name, help, kind);
        for (values, v) in rows {
            let _ = writeln!(self.text, "{name}{} {v}", label_set(labels, values, None));
        }
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render() {
        let m = Metrics::new();
        m.events_received.inc(&["default", "ws"]);
        m.events_received.inc(&["default", "ws"]);
        m.events_dropped.inc(&["default", "not \"mentioned\""]);
        m.ack_latency
            .with(&["default"])
            .observe(Duration::from_micros(700));
        m.ack_latency
            .with(&["default"])
            .observe(Duration::from_secs(2));
        assert_eq!(m.events_received.get(&["default", "ws"]), 2);
        let mut out = Exposition::default();
        m.render(&mut out);
        out.family(
            "larkgate_connected",
            "Whether the account's connection is up.",
            "gauge",
            &["account"],
            &[(vec!["default".into()], 1.0)],
        );
        let text = out.finish();
        assert!(
            text.contains("larkgate_events_received_total{account=\"default\",source=\"ws\"} 2")
        );
        assert!(text.contains("reason=\"not \\\"mentioned\\\"\""));
        assert!(text
            .contains("larkgate_ack_latency_seconds_bucket{account=\"default\",le=\"0.0005\"} 0"));
        assert!(text
            .contains("larkgate_ack_latency_seconds_bucket{account=\"default\",le=\"0.001\"} 1"));
        assert!(
            text.contains("larkgate_ack_latency_seconds_bucket{account=\"default\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("larkgate_ack_latency_seconds_count{account=\"default\"} 2"));
        assert!(text.contains("larkgate_ack_latency_seconds_sum{account=\"default\"} 2.0007"));
        assert!(text.contains(
            "# TYPE larkgate_connected gauge\nlarkgate_connected{account=\"default\"} 1"
        ));
    }
}
