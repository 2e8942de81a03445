//! Event delivery: one random long connection of the app (cluster mode) or
//! the app's webhook; ack tracking; redelivery of unacked events.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lark_wire::frame::{Frame, Header, METHOD_DATA};
use rand::Rng;
use serde::Deserialize;

use crate::ids;
use crate::state::{now_ms, CallbackOutcome, Core, OutEvent, Pending, State, WsOut};

/// Events kept per app while no receiver is connected (oldest dropped).
const MAX_BACKLOG: usize = 100_000;

/// The data frames carrying one event (several when fragmented).
pub fn event_frames(
    payload: &[u8],
    message_id: &str,
    service: i32,
    seq_id: u64,
    max_fragment: Option<usize>,
) -> Vec<Bytes> {
    let chunks: Vec<&[u8]> = match max_fragment {
        Some(max) if max > 0 && payload.len() > max => payload.chunks(max).collect(),
        _ => vec![payload],
    };
    let sum = chunks.len().to_string();
    let timestamp = now_ms().to_string();
    let trace_id = ids::hex(16);
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let frame = Frame {
                seq_id,
                log_id: seq_id,
                service,
                method: METHOD_DATA,
                headers: vec![
                    Header::new("type", "event"),
                    Header::new("message_id", message_id),
                    Header::new("sum", sum.as_str()),
                    Header::new("seq", i.to_string()),
                    Header::new("trace_id", trace_id.as_str()),
                    Header::new("timestamp", timestamp.as_str()),
                ],
                payload: Some(chunk.to_vec()),
                ..Frame::default()
            };
            Bytes::from(frame.to_bytes())
        })
        .collect()
}

#[derive(Deserialize)]
struct AckPayload {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    data: Option<String>,
}

/// Parses an ack payload: `(code, decoded data)`; code 0 if unreadable.
fn parse_ack(payload: Option<&[u8]>) -> (i64, Option<Vec<u8>>) {
    use base64::Engine;
    let Some(ack) = payload.and_then(|p| serde_json::from_slice::<AckPayload>(p).ok()) else {
        return (0, None);
    };
    let data = ack
        .data
        .filter(|d| !d.is_empty())
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
    (ack.code, data)
}

impl State {
    /// Forgets a connection (its unacked events will be redelivered).
    pub fn remove_conn(&mut self, conn_id: u64) {
        if let Some(conn) = self.conns.remove(&conn_id) {
            if let Some(app) = self.apps.get_mut(&conn.app_id) {
                app.conns.retain(|c| *c != conn_id);
            }
        }
    }
}

impl Core {
    /// Delivers a new event, honouring the `duplicate_events` fault.
    pub fn deliver(self: &Arc<Core>, st: &mut State, app_id: &str, event: OutEvent) {
        if event.reply.is_none() && st.faults.duplicate_events > 0 {
            st.faults.duplicate_events -= 1;
            let copy = event.duplicate();
            if let Some(app) = st.apps.get_mut(app_id) {
                app.counters.stats.events_duplicated += 1;
            }
            self.dispatch(st, app_id, copy);
        }
        self.dispatch(st, app_id, event);
    }

    /// One delivery attempt: webhook, or a random connection, or the backlog.
    pub fn dispatch(self: &Arc<Core>, st: &mut State, app_id: &str, mut event: OutEvent) {
        let max_fragment = self.cfg.max_fragment_bytes;
        let redelivery_after = st.redelivery_after;
        let Some(app) = st.apps.get_mut(app_id) else {
            return;
        };
        if let Some(webhook) = app.webhook.clone() {
            app.counters.stats.events_delivered += 1;
            let core = Arc::clone(self);
            let app_id = app_id.to_string();
            self.rt
                .spawn(async move { core.push_webhook(app_id, webhook, event).await });
            return;
        }
        loop {
            if app.conns.is_empty() {
                match event.reply.take() {
                    Some(reply) => {
                        let _ = reply.send(CallbackOutcome::NoReceiver);
                    }
                    None => {
                        if app.backlog.len() >= MAX_BACKLOG {
                            app.backlog.pop_front();
                            app.counters.stats.events_dropped += 1;
                        }
                        app.backlog.push_back(event);
                    }
                }
                return;
            }
            let idx = rand::thread_rng().gen_range(0..app.conns.len());
            let conn_id = app.conns[idx];
            let Some(conn) = st.conns.get(&conn_id) else {
                app.conns.swap_remove(idx);
                continue;
            };
            let seq_id = st.next_seq;
            st.next_seq += 1;
            let frame_id = ids::hex(32);
            let frames = event_frames(
                &event.payload,
                &frame_id,
                app.service_id,
                seq_id,
                max_fragment,
            );
            let fragmented = frames.len() > 1;
            if frames
                .into_iter()
                .any(|f| conn.tx.send(WsOut::Frame(f)).is_err())
            {
                app.conns.swap_remove(idx);
                continue;
            }
            app.counters.stats.events_delivered += 1;
            if fragmented {
                app.counters.stats.events_fragmented += 1;
            }
            let now = Instant::now();
            let deadline = now + redelivery_after;
            let wake = st
                .redelivery
                .peek()
                .is_none_or(|Reverse((first, _))| deadline < *first);
            st.redelivery.push(Reverse((deadline, frame_id.clone())));
            st.pending.insert(
                frame_id,
                Pending {
                    app_id: app_id.to_string(),
                    event,
                    sent_at: now,
                },
            );
            if wake {
                self.redelivery_wake.notify_one();
            }
            return;
        }
    }

    /// Delivers what waited for a connection.
    pub fn flush_backlog(self: &Arc<Core>, st: &mut State, app_id: &str) {
        let backlog = match st.apps.get_mut(app_id) {
            Some(app) => std::mem::take(&mut app.backlog),
            None => return,
        };
        for event in backlog {
            self.dispatch(st, app_id, event);
        }
    }

    /// Handles an ack frame from a connection of `app_id`.
    pub fn on_ack(&self, st: &mut State, app_id: &str, frame: &Frame) {
        let Some(frame_id) = frame.header("message_id") else {
            return;
        };
        if st.faults.drop_acks > 0 {
            st.faults.drop_acks -= 1;
            return;
        }
        let (code, data) = parse_ack(frame.payload.as_deref());
        let pending = st.pending.remove(frame_id);
        let bench_push = pending.as_ref().map_or(0, |p| p.event.bench_push);
        if code != 200 {
            st.bench.refusal(bench_push);
        }
        let Some(app) = st.apps.get_mut(app_id) else {
            return;
        };
        app.counters.ack_code(&code.to_string());
        let Some(mut pending) = pending else {
            return; // late or duplicate ack
        };
        if code == 200 {
            app.counters.stats.events_acked += 1;
            let latency = pending.sent_at.elapsed();
            app.counters.ack_latency(latency);
            st.bench.ack(bench_push, latency);
            if let Some(reply) = pending.event.reply.take() {
                let _ = reply.send(CallbackOutcome::Response(data.unwrap_or_default()));
            }
        } else if let Some(reply) = pending.event.reply.take() {
            let _ = reply.send(CallbackOutcome::Failed(format!("ack code {code}")));
        } else {
            // Not handled: stays pending, redelivered at its deadline.
            st.pending.insert(frame_id.to_string(), pending);
        }
    }

    /// Redelivers (or gives up on) every pending event past its deadline;
    /// returns the next deadline.
    fn redeliver_due(self: &Arc<Core>, st: &mut State) -> Option<Instant> {
        let now = Instant::now();
        loop {
            let Reverse((deadline, _)) = st.redelivery.peek()?;
            if *deadline > now {
                return Some(*deadline);
            }
            let Reverse((_, frame_id)) = st.redelivery.pop()?;
            let Some(mut pending) = st.pending.remove(&frame_id) else {
                continue;
            };
            if let Some(reply) = pending.event.reply.take() {
                let _ = reply.send(CallbackOutcome::Timeout);
                continue;
            }
            let app_id = pending.app_id;
            let Some(app) = st.apps.get_mut(&app_id) else {
                continue;
            };
            if pending.event.attempt >= self.cfg.max_redeliveries {
                app.counters.stats.events_dropped += 1;
                continue;
            }
            app.counters.stats.events_redelivered += 1;
            pending.event.attempt += 1;
            self.dispatch(st, &app_id, pending.event);
        }
    }

    /// Background task: redelivery timer.
    pub async fn redelivery_loop(self: Arc<Core>) {
        loop {
            let next = {
                let mut st = self.lock();
                self.redeliver_due(&mut st)
            };
            let sleep = next
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep) => {}
                _ = self.redelivery_wake.notified() => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }
}
