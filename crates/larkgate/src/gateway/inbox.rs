//! The durable inbox: every delivery is recorded before it is acked, in
//! batches (one statement for whatever arrived together), deduplicated by
//! the store's constraints on event_id and message_id (for the events that
//! still need work; see the store's design notes), then acked and handed on
//! in arrival order. Nothing waits for an agent before the ack.
//!
//! The plan for each event (normalize, staleness, policy) is made before the
//! insert, so an event that needs nothing more — a group message that does
//! not mention the bot, a refused sender, a reaction — is written once,
//! already final, inside its batch: one write per batch, not per event.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lark_client::{Delivery, Source};
use lark_wire::Envelope;
use tokio::sync::mpsc;

use super::account::{now_ms, AccountRuntime};
use super::dispatch::Plan;
use crate::admin::metrics::{Counter, Histogram};
use crate::store::{InboundState, InsertOutcome, NewInbound};

/// Most deliveries recorded in one transaction.
const MAX_BATCH: usize = 128;

/// How many of `waiting` deliveries to record together: a power of two up
/// to [`MAX_BATCH`], so the batch inserts use at most eight statements,
/// each prepared once (the driver's statement cache would otherwise cycle
/// through a statement per batch size); the rest start the next batch.
fn batch_size(waiting: usize) -> usize {
    let n = waiting.clamp(1, MAX_BATCH);
    1 << n.ilog2()
}

/// What a delivery is, once its envelope is read.
enum Parsed {
    /// An event to record (in the state its plan gives) and act on.
    Event(NewInbound, Plan),
    /// A card button press: answered at once, never recorded.
    CardAction(Envelope),
    /// Not an event body.
    Malformed(String),
}

fn parse(rt: &AccountRuntime, d: &Delivery) -> Parsed {
    // Chatter first: a message refused whatever its content says is judged
    // on one borrowing pass over the body, without building the envelope.
    if !d.card {
        if let Some((header, head)) = lark_wire::envelope::peek_message(&d.payload) {
            if let Some(plan) = super::dispatch::refuse_early(rt, &head) {
                let row = record(rt, d, &header.event_id, &header.event_type, &plan);
                return Parsed::Event(row, plan);
            }
        }
    }
    let env = match Envelope::parse(&d.payload) {
        Ok(env) => env,
        Err(e) => return Parsed::Malformed(e.to_string()),
    };
    if d.card || env.header.event_type == "card.action.trigger" {
        return Parsed::CardAction(env);
    }
    let plan = super::dispatch::plan(rt, &env);
    let row = record(rt, d, &env.header.event_id, &env.header.event_type, &plan);
    Parsed::Event(row, plan)
}

/// The inbox row for delivery `d`, recorded in the state its plan gives.
fn record(
    rt: &AccountRuntime,
    d: &Delivery,
    event_id: &str,
    event_type: &str,
    plan: &Plan,
) -> NewInbound {
    let (message_id, chat_id) = match plan.message_and_chat() {
        Some((message_id, chat_id)) => (Some(message_id.to_owned()), Some(chat_id.to_owned())),
        None => (None, None),
    };
    let event_id = if event_id.is_empty() {
        // No id to deduplicate on: fall back to a hash of the body, so an
        // identical redelivery is still recognised.
        format!("sha256:{}", short_hash(&d.payload))
    } else {
        event_id.to_owned()
    };
    let state = plan.state();
    // The body is kept for what may still be processed (a crash replays it);
    // a row recorded final (refused, stale, noted) keeps only its ids, type
    // and reason — half the bytes written for a busy group's chatter.
    let payload = match state {
        InboundState::Pending | InboundState::Processing => body_text(&d.payload),
        _ => String::new(),
    };
    NewInbound {
        account: rt.cfg.name.clone(),
        event_id,
        message_id,
        event_type: event_type.to_owned(),
        chat_id,
        payload,
        received_at_ms: now_ms(),
        state,
    }
}

/// The body as text (invalid UTF-8, which the platform never sends, is
/// replaced rather than refused).
fn body_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn source_label(s: Source) -> &'static str {
    match s {
        Source::Ws => "ws",
        Source::Webhook => "webhook",
    }
}

/// The ingest path's metric series of one account, each looked up once
/// (a lookup locks its family and compares label strings, several times per
/// event otherwise); created on first use, like any series.
#[derive(Default)]
pub(crate) struct IngestSeries {
    received_ws: OnceLock<Arc<Counter>>,
    received_webhook: OnceLock<Arc<Counter>>,
    acked: OnceLock<Arc<Counter>>,
    ack_latency: OnceLock<Arc<Histogram>>,
}

impl IngestSeries {
    fn received(&self, rt: &AccountRuntime, source: Source) -> &Counter {
        let cell = match source {
            Source::Ws => &self.received_ws,
            Source::Webhook => &self.received_webhook,
        };
        cell.get_or_init(|| {
            rt.shared
                .metrics
                .events_received
                .with(&[&rt.cfg.name, source_label(source)])
        })
    }

    fn acked(&self, rt: &AccountRuntime) -> &Counter {
        self.acked
            .get_or_init(|| rt.shared.metrics.events_acked.with(&[&rt.cfg.name]))
    }

    fn ack_latency(&self, rt: &AccountRuntime) -> &Histogram {
        self.ack_latency
            .get_or_init(|| rt.shared.metrics.ack_latency.with(&[&rt.cfg.name]))
    }
}

/// Receives deliveries until the connection ends or the account shuts down.
pub(crate) async fn run(rt: &Arc<AccountRuntime>, mut rx: mpsc::Receiver<Delivery>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            d = rx.recv() => d,
            _ = rt.shutdown.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < batch_size(1 + rx.len()) {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        if rt.shutting_down.load(Ordering::SeqCst) {
            // Not recorded, not acked: the platform redelivers to whoever
            // is connected next.
            for d in batch.drain(..) {
                d.ack.fail();
            }
            continue;
        }
        process(rt, &mut batch).await;
    }
}

async fn process(rt: &Arc<AccountRuntime>, batch: &mut Vec<Delivery>) {
    let name = rt.cfg.name.as_str();
    let metrics = &rt.shared.metrics;
    rt.last_event_ms.store(now_ms(), Ordering::Relaxed);
    let mut rows = Vec::with_capacity(batch.len());
    let mut plans = Vec::with_capacity(batch.len());
    let mut waiting = Vec::with_capacity(batch.len());
    for d in batch.drain(..) {
        rt.ingest_series
            .received(rt, d.source)
            .fetch_add(1, Ordering::Relaxed);
        match parse(rt, &d) {
            Parsed::Event(row, plan) => {
                rows.push(row);
                plans.push(plan);
                waiting.push(d);
            }
            Parsed::CardAction(env) => {
                let response = super::cards::handle(rt, &env).await;
                finish_ack(rt, d, Some(response));
            }
            Parsed::Malformed(why) => {
                // It can never be processed; acking stops the redelivery loop.
                tracing::warn!(
                    "[lark] [{name}] dropped a malformed event ({} bytes): {why}",
                    d.payload.len()
                );
                metrics.events_dropped.inc(&[name, "malformed"]);
                finish_ack(rt, d, None);
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let started = Instant::now();
    let outcomes = rt.shared.store.insert_inbound(&rows).await;
    metrics
        .store_latency
        .with(&["insert_inbound"])
        .observe(started.elapsed());
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("[lark] [{name}] cannot record {} event(s), not acking them (the platform will redeliver): {e}", rows.len());
            for d in waiting {
                d.ack.fail();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
    };
    // Ack the whole batch first: acks never wait for dispatching.
    for d in waiting {
        finish_ack(rt, d, None);
    }
    for ((row, plan), outcome) in rows.into_iter().zip(plans).zip(outcomes) {
        match outcome {
            InsertOutcome::Inserted(id) => {
                super::dispatch::carry_out(rt, id, plan, row.received_at_ms, true).await
            }
            InsertOutcome::Duplicate => {
                metrics.events_deduplicated.inc(&[name]);
                tracing::debug!(
                    "[lark] [{name}] duplicate delivery of {} dropped",
                    row.event_id
                );
            }
        }
    }
}

fn finish_ack(rt: &AccountRuntime, d: Delivery, body: Option<Vec<u8>>) {
    let waited = d.received_at.elapsed();
    d.ack.ack(body);
    let series = &rt.ingest_series;
    series.acked(rt).fetch_add(1, Ordering::Relaxed);
    series.ack_latency(rt).observe(waited);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_powers_of_two_up_to_the_maximum() {
        let sizes: Vec<usize> = [0, 1, 2, 3, 7, 8, 100, 128, 129, 5000]
            .into_iter()
            .map(batch_size)
            .collect();
        assert_eq!(sizes, [1, 1, 2, 2, 4, 8, 64, 128, 128, 128]);
    }
}
