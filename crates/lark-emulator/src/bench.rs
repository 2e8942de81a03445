//! Benchmark support: pushing many message events to an app at a fixed rate
//! (or as fast as possible) and measuring acks, and a timeline of chat
//! changes for turn-latency measurements.
//!
//! - `POST /_emulator/bench/push` pushes N synthetic `im.message.receive_v1`
//!   events (group text messages of about 1 KiB that do not mention the
//!   bot) over the app's long connections and answers when all are acked
//!   (or at the timeout) with events/s, ack latency percentiles and the
//!   emulator's own CPU time, so a benchmark can show the emulator is not
//!   the bottleneck.
//! - `POST /_emulator/bench/timeline {"on": true}` clears and starts the
//!   timeline; `GET /_emulator/bench/timeline` reads it. Entries are
//!   wall-clock nanoseconds (comparable across processes on one machine):
//!   `event` when a user message's event is queued for the bot, `update`
//!   whenever the chat changes afterwards (bot message, card update,
//!   reaction).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::control::{body, respond};
use crate::error::Error;
use crate::ids;
use crate::state::{now_ms, Core, OutEvent, State};

/// Largest push accepted in one request.
const MAX_COUNT: usize = 1_000_000;
/// Events dispatched between yields when pushing as fast as possible.
const MAX_RATE_CHUNK: usize = 256;
/// Timeline entries kept (older ones are dropped).
const MAX_TIMELINE: usize = 1_000_000;

/// A push request.
#[derive(Debug, Deserialize)]
pub struct PushRequest {
    /// The app (the default app if absent).
    #[serde(default)]
    pub app_id: Option<String>,
    /// Events to push.
    pub count: usize,
    /// Events per second; 0 = as fast as possible.
    #[serde(default)]
    pub rate: f64,
    /// Distinct group chats the events are spread over (round robin).
    #[serde(default = "one")]
    pub chats: usize,
    /// Longest wait for the acks (seconds).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn one() -> usize {
    1
}

fn default_timeout() -> u64 {
    120
}

/// Ack latency percentiles (microseconds).
#[derive(Debug, Default, Serialize)]
pub struct LatencyUs {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// What a push measured.
#[derive(Debug, Serialize)]
pub struct PushResult {
    /// Events dispatched.
    pub pushed: usize,
    /// Events acked with code 200.
    pub acked: usize,
    /// Events answered with another code (the client refused them; the
    /// platform redelivers them once the push is over, as it redelivers
    /// any unacked event).
    pub refused: usize,
    /// From the first dispatch to the last ack.
    pub elapsed_secs: f64,
    /// `acked / elapsed_secs`.
    pub acked_per_sec: f64,
    /// From dispatch (frame queued for the socket) to the ack.
    pub ack_latency_us: LatencyUs,
    /// CPU time of the whole emulator process during the push.
    pub emulator_cpu_secs: f64,
}

/// One timeline entry.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    /// Wall clock, nanoseconds since the Unix epoch.
    pub t_ns: u128,
    /// `event` or `update`.
    pub kind: &'static str,
    /// The chat.
    pub chat_id: String,
}

/// What the benchmark endpoints record (part of the emulator's state).
#[derive(Debug, Default)]
pub struct BenchLog {
    timeline: Option<Vec<TimelineEntry>>,
    run: Option<AckRecorder>,
    pushes: u64,
}

/// The answers to the running push's events (redeliveries of an earlier
/// push's events are not counted).
#[derive(Debug)]
struct AckRecorder {
    push: u64,
    expected: usize,
    latencies_us: Vec<u32>,
    refused: usize,
    last_ack: Instant,
    /// Notified once every event is answered.
    done: Arc<Notify>,
}

impl AckRecorder {
    fn answered(&self) -> usize {
        self.latencies_us.len() + self.refused
    }

    /// Wakes the push when the last answer arrived.
    fn check_done(&self) {
        if self.answered() == self.expected {
            self.done.notify_one();
        }
    }
}

impl BenchLog {
    /// Records a timeline entry when the timeline is on.
    pub fn mark(&mut self, kind: &'static str, chat_id: &str) {
        if let Some(entries) = self.timeline.as_mut() {
            if entries.len() >= MAX_TIMELINE {
                entries.remove(0);
            }
            entries.push(TimelineEntry {
                t_ns: wall_ns(),
                kind,
                chat_id: chat_id.to_string(),
            });
        }
    }

    /// Records an ack latency of an event of push `push`.
    pub fn ack(&mut self, push: u64, latency: Duration) {
        if let Some(run) = self.run.as_mut().filter(|r| push != 0 && r.push == push) {
            run.latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            run.last_ack = Instant::now();
            run.check_done();
        }
    }

    /// Counts an event of push `push` answered with a code other than 200.
    pub fn refusal(&mut self, push: u64) {
        if let Some(run) = self.run.as_mut().filter(|r| push != 0 && r.push == push) {
            run.refused += 1;
            run.check_done();
        }
    }
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// CPU time of this process, all threads (Linux; 0 elsewhere).
pub fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        // Clock ticks (`_SC_CLK_TCK`, 100 on Linux).
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// The JSON of one synthetic group message event.
fn event_payload(app_id: &str, tenant_key: &str, n: usize, chat: usize) -> (String, Vec<u8>) {
    let event_id = ids::hex(32);
    // Unique across pushes: a repeated message_id is (rightly) dropped by a
    // client as a duplicate, which would measure the dedup path instead.
    let message_id = ids::message_id();
    let chat_id = format!("oc_bench{chat:024x}");
    let sender = n % 8;
    let create = now_ms();
    let text = format!(
        "message {n}: has anyone looked at the deploy logs from this morning? \
         the canary in the second region kept restarting and I would like a second pair of eyes"
    );
    let content = serde_json::json!({ "text": text }).to_string();
    let body = serde_json::json!({
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": create.to_string(),
            "token": "",
            "app_id": app_id,
            "tenant_key": tenant_key,
        },
        "event": {
            "sender": {
                "sender_id": {
                    "union_id": format!("on_bench{sender:024x}"),
                    "user_id": format!("bench{sender}"),
                    "open_id": format!("ou_bench{sender:024x}"),
                },
                "sender_type": "user",
                "tenant_key": tenant_key,
            },
            "message": {
                "message_id": message_id,
                "create_time": create.to_string(),
                "update_time": create.to_string(),
                "chat_id": chat_id,
                "chat_type": "group",
                "message_type": "text",
                "content": content,
                "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Lark/7.30.0",
            },
        },
    });
    (event_id, serde_json::to_vec(&body).unwrap_or_default())
}

impl Core {
    /// Pushes `req.count` events and waits for their acks.
    pub async fn bench_push(self: &Arc<Core>, req: PushRequest) -> Result<PushResult, Error> {
        if req.count == 0 || req.count > MAX_COUNT {
            return Err(Error::Invalid(format!(
                "count must be 1..={MAX_COUNT}, got {}",
                req.count
            )));
        }
        if !(req.rate.is_finite() && req.rate >= 0.0) {
            return Err(Error::Invalid("rate must be >= 0".into()));
        }
        let timeout = Duration::from_secs(req.timeout_secs.max(1));
        let run = self.start_run(&req, timeout)?;
        let cpu0 = process_cpu_secs();
        let start = Instant::now();
        self.dispatch_all(&req, &run, start).await;
        let deadline = start + timeout;
        let _ = tokio::time::timeout_at(deadline.into(), run.done.notified()).await;
        let cpu = process_cpu_secs() - cpu0;
        let recorded = {
            let mut st = self.lock();
            self.end_run(&mut st, &run);
            st.bench.run.take()
        };
        Ok(summarize(req.count, start, recorded, cpu))
    }

    /// Restores the redelivery delay and schedules what the push left
    /// unacked (refused or unanswered) for redelivery after that delay, not
    /// after the longer one the push used.
    fn end_run(&self, st: &mut State, run: &PushRun) {
        st.redelivery_after = run.saved_redelivery;
        let deadline = Instant::now() + run.saved_redelivery;
        let left: Vec<String> = st
            .pending
            .iter()
            .filter(|(_, p)| p.event.bench_push == run.push)
            .map(|(frame_id, _)| frame_id.clone())
            .collect();
        if left.is_empty() {
            return;
        }
        for frame_id in left {
            st.redelivery.push(Reverse((deadline, frame_id)));
        }
        self.redelivery_wake.notify_one();
    }

    /// Resolves the app, arms the recorder and keeps slow clients from
    /// being flooded by redeliveries while the push runs.
    fn start_run(&self, req: &PushRequest, timeout: Duration) -> Result<PushRun, Error> {
        let mut st = self.lock();
        let app_id = st.resolve_app(req.app_id.as_deref())?;
        if st.bench.run.is_some() {
            return Err(Error::Invalid("a bench push is already running".into()));
        }
        let tenant_key = st.tenant_key(&app_id);
        st.bench.pushes += 1;
        let done = Arc::new(Notify::new());
        st.bench.run = Some(AckRecorder {
            push: st.bench.pushes,
            expected: req.count,
            latencies_us: Vec::with_capacity(req.count),
            refused: 0,
            last_ack: Instant::now(),
            done: Arc::clone(&done),
        });
        let saved_redelivery = st.redelivery_after;
        st.redelivery_after = saved_redelivery.max(timeout);
        Ok(PushRun {
            push: st.bench.pushes,
            app_id,
            tenant_key,
            saved_redelivery,
            done,
        })
    }

    async fn dispatch_all(self: &Arc<Core>, req: &PushRequest, run: &PushRun, start: Instant) {
        let chats = req.chats.max(1);
        for n in 0..req.count {
            if req.rate > 0.0 {
                let due = start + Duration::from_secs_f64(n as f64 / req.rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
            } else if n % MAX_RATE_CHUNK == 0 {
                tokio::task::yield_now().await;
            }
            let (event_id, payload) = event_payload(&run.app_id, &run.tenant_key, n, n % chats);
            let mut event = OutEvent::new(event_id, payload);
            event.bench_push = run.push;
            let mut st = self.lock();
            self.dispatch(&mut st, &run.app_id, event);
        }
    }

    /// Clears and starts (or stops) the timeline.
    pub fn bench_timeline_switch(&self, on: bool) {
        self.lock().bench.timeline = on.then(Vec::new);
    }

    /// The timeline so far.
    pub fn bench_timeline(&self) -> Vec<TimelineEntry> {
        self.lock().bench.timeline.clone().unwrap_or_default()
    }
}

impl State {
    /// Marks a user message's event as queued for the bot.
    pub fn bench_event(&mut self, chat_id: &str) {
        self.bench.mark("event", chat_id);
    }
}

fn summarize(pushed: usize, start: Instant, run: Option<AckRecorder>, cpu: f64) -> PushResult {
    let (mut latencies, refused, last_ack) = match run {
        Some(r) => (r.latencies_us, r.refused, r.last_ack),
        None => (Vec::new(), 0, start),
    };
    latencies.sort_unstable();
    let pick = |q: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let idx = ((latencies.len() - 1) as f64 * q).round() as usize;
        u64::from(latencies[idx.min(latencies.len() - 1)])
    };
    let elapsed = last_ack.saturating_duration_since(start).as_secs_f64();
    let acked = latencies.len();
    PushResult {
        pushed,
        acked,
        refused,
        elapsed_secs: elapsed,
        acked_per_sec: if elapsed > 0.0 {
            acked as f64 / elapsed
        } else {
            0.0
        },
        ack_latency_us: LatencyUs {
            p50: pick(0.50),
            p99: pick(0.99),
            max: latencies.last().copied().map_or(0, u64::from),
        },
        emulator_cpu_secs: cpu,
    }
}

/// A push in progress.
struct PushRun {
    push: u64,
    app_id: String,
    tenant_key: String,
    saved_redelivery: Duration,
    done: Arc<Notify>,
}

/// Request body for the timeline switch.
#[derive(Debug, Deserialize)]
pub struct TimelineSwitch {
    /// Start (clearing) or stop.
    pub on: bool,
}

type CoreState = AxState<Arc<Core>>;

/// `POST /_emulator/bench/push`.
pub async fn push(
    AxState(core): CoreState,
    json: Result<Json<PushRequest>, JsonRejection>,
) -> Response {
    match body(json) {
        Ok(req) => respond(core.bench_push(req).await),
        Err(e) => e.into_response(),
    }
}

/// `POST /_emulator/bench/timeline`.
pub async fn timeline_switch(
    AxState(core): CoreState,
    json: Result<Json<TimelineSwitch>, JsonRejection>,
) -> Response {
    respond(body(json).map(|req| {
        core.bench_timeline_switch(req.on);
        serde_json::json!({"ok": true})
    }))
}

/// `GET /_emulator/bench/timeline`.
pub async fn timeline(AxState(core): CoreState) -> Response {
    Json(serde_json::json!({"entries": core.bench_timeline()})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_a_group_message_event_of_about_a_kib() {
        let (id, bytes) = event_payload("cli_0123456789abcdef", "tk", 7, 3);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["header"]["event_id"], id.as_str());
        assert_eq!(v["event"]["message"]["chat_type"], "group");
        assert_eq!(
            v["event"]["message"]["chat_id"],
            format!("oc_bench{:024x}", 3)
        );
        assert!(v["event"]["message"].get("mentions").is_none());
        assert!((700..1500).contains(&bytes.len()), "{}", bytes.len());
    }

    #[test]
    fn summary_percentiles_come_from_the_recorded_acks() {
        let start = Instant::now();
        let run = AckRecorder {
            push: 1,
            expected: 103,
            latencies_us: (1..=100).rev().collect(),
            refused: 3,
            last_ack: start + Duration::from_secs(2),
            done: Arc::new(Notify::new()),
        };
        let s = summarize(100, start, Some(run), 0.5);
        assert_eq!(s.acked, 100);
        assert_eq!(s.refused, 3);
        assert_eq!(s.ack_latency_us.max, 100);
        assert_eq!(s.ack_latency_us.p50, 51);
        assert_eq!(s.ack_latency_us.p99, 99);
        assert!((s.acked_per_sec - 50.0).abs() < 1e-9);
    }

    #[test]
    fn timeline_records_only_when_on() {
        let mut log = BenchLog::default();
        log.mark("update", "oc_1");
        log.timeline = Some(Vec::new());
        log.mark("event", "oc_2");
        let entries = log.timeline.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].chat_id, "oc_2");
    }
}
