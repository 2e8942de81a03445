//! CardKit operations on one streaming card: create and send, push the
//! full text, re-enable streaming, close in one batch, close an orphan.

use lark_client::{Error, OutgoingMessage};
use lark_wire::card::{self, CardOptions, ElementId, STOP_BUTTON_ELEMENT_ID};
use serde_json::{json, Value};

use super::send::Replier;
use super::{now_ms, Outbound};
use crate::store::OpenCard;

/// `sequence` not strictly increasing.
pub(crate) const SEQUENCE_STALE: i64 = 300317;
/// Streaming mode is closed (300309) or was closed by the 10-minute timeout (200850).
pub(crate) const STREAMING_CLOSED: [i64; 2] = [300309, 200850];
/// An element named in the batch does not exist (the Stop button is gone).
const ELEMENT_MISSING: i64 = 300314;
/// Sequences of a resumed card start at least here (see [`resume_sequence`]).
pub const RESUME_SEQUENCE_BASE: i64 = 1_000_000;
/// How far a sequence jumps after 300317.
const SEQUENCE_JUMP: i64 = 100_000;
/// Preview of a card closed after a crash (its text is not known any more).
pub(crate) const ORPHAN_SUMMARY: &str = "⚠️ Reply interrupted";

/// A CardKit card entity shown as a message.
#[derive(Debug)]
pub(crate) struct KitCard {
    /// The entity.
    pub card_id: String,
    /// The message carrying it.
    pub message_id: String,
    /// The last `sequence` used on it.
    seq: i64,
    /// Whether it still carries the Stop button.
    pub has_stop: bool,
}

impl KitCard {
    /// A card of an earlier attempt whose last sequence is unknown: the
    /// sequence restarts above anything that attempt can have used.
    pub fn resumed(open: &OpenCard, has_stop: bool) -> KitCard {
        KitCard {
            card_id: open.card_id.clone(),
            message_id: open.message_id.clone(),
            seq: resume_sequence(open.created_ms, now_ms()),
            has_stop,
        }
    }

    fn next_seq(&mut self) -> i64 {
        self.seq = self.seq.saturating_add(1).min(i64::from(i32::MAX));
        self.seq
    }

    /// After 300317: skip far ahead (another writer, or a clock gone back).
    pub fn jump_sequence(&mut self) {
        self.seq = self
            .seq
            .saturating_add(SEQUENCE_JUMP)
            .min(i64::from(i32::MAX) - 1);
    }
}

/// The first sequence of a resumed card: [`RESUME_SEQUENCE_BASE`] plus one
/// per 10 ms since the card was created. An attempt that pushed at most one
/// operation per 10 ms (the stream keeps 100 ms between operations) stays
/// below this, and so does every earlier resume. Capped to leave room below
/// `i32::MAX`; a 300317 (clock set back) jumps ahead.
pub(crate) fn resume_sequence(created_ms: i64, now_ms: i64) -> i64 {
    let elapsed = (now_ms - created_ms).max(0) / 10;
    (RESUME_SEQUENCE_BASE + elapsed).min(i64::from(i32::MAX) - 10 * SEQUENCE_JUMP)
}

/// Creates a streaming card holding `display`, records it as open (before
/// its message exists, so a crash cannot leave it unknown), sends it as
/// part `index`, and records its message.
pub(crate) async fn create(
    r: &mut Replier<'_>,
    index: usize,
    display: &str,
    opts: &CardOptions,
) -> Result<KitCard, Error> {
    let body = card::streaming_card(display, &ElementId::stream(), opts);
    let card_id = r.out.client.create_card(&body.to_string()).await?;
    let store = &r.out.store;
    let (account, inbound_id) = (r.account().to_string(), r.plan.inbound_id);
    if let Err(e) = store
        .open_card(&account, inbound_id, &card_id, "", now_ms())
        .await
    {
        tracing::warn!("[lark] [{account}] cannot record open card {card_id}: {e}");
    }
    let mut kit = KitCard {
        card_id,
        message_id: String::new(),
        seq: 0,
        has_stop: opts.stop.is_some(),
    };
    if let Err(e) = show(r, index, &mut kit).await {
        // The entity may have reached the chat despite the error (a
        // timeout): close its streaming mode so it is not left spinning.
        let _ = settings(
            r.out,
            &mut kit,
            &card::settings_close(&crate::render::summary(display)),
        )
        .await;
        forget(r.out, &kit.card_id).await;
        return Err(e);
    }
    Ok(kit)
}

/// Sends (or re-sends, with the same uuid: idempotent) the card's message as
/// part `index`; stores its message_id with the open card, then records the part.
pub(crate) async fn show(
    r: &mut Replier<'_>,
    index: usize,
    kit: &mut KitCard,
) -> Result<(), Error> {
    let uuid = r.part_uuid(index);
    let message_id = r
        .deliver(&uuid, &OutgoingMessage::card_entity(&kit.card_id))
        .await?;
    if let Err(e) = r
        .out
        .store
        .open_card(
            r.account(),
            r.plan.inbound_id,
            &kit.card_id,
            &message_id,
            now_ms(),
        )
        .await
    {
        tracing::warn!("[lark] [{}] cannot update open card: {e}", r.account());
    }
    r.record(&uuid, &message_id).await;
    kit.message_id = message_id.clone();
    r.sent(message_id, true);
    Ok(())
}

/// Replaces the streamed element's text.
pub(crate) async fn push(out: &Outbound, kit: &mut KitCard, display: &str) -> Result<(), Error> {
    let seq = kit.next_seq();
    out.client
        .stream_card_text(
            &kit.card_id,
            ElementId::stream().as_str(),
            display,
            seq,
            None,
        )
        .await
}

/// Applies a settings string (one sequence).
pub(crate) async fn settings(
    out: &Outbound,
    kit: &mut KitCard,
    settings: &str,
) -> Result<(), Error> {
    let seq = kit.next_seq();
    out.client
        .card_settings(&kit.card_id, settings, seq, None)
        .await
}

/// Turns streaming mode back on (after the platform's 10-minute close).
pub(crate) async fn reopen_streaming(out: &Outbound, kit: &mut KitCard) -> Result<(), Error> {
    let on = json!({"config": {"streaming_mode": true}}).to_string();
    settings(out, kit, &on).await
}

/// Ends the card in one call: the final text (when it differs from what
/// is shown), the Stop button removed, streaming off and the summary set.
pub(crate) async fn close(
    out: &Outbound,
    kit: &mut KitCard,
    text: Option<&str>,
    summary: &str,
) -> Result<(), Error> {
    let mut actions = Vec::new();
    if let Some(text) = text {
        actions.push(json!({
            "action": "partial_update_element",
            "params": {"element_id": ElementId::stream().as_str(), "partial_element": {"content": text}},
        }));
    }
    batch_close(out, kit, actions, summary).await
}

/// Closes a card left open by a crash: an interrupted note appended under
/// the text it holds, the Stop button removed, streaming off, a summary set.
pub(crate) async fn close_orphan(out: &Outbound, open: &OpenCard) -> Result<(), Error> {
    let mut kit = KitCard::resumed(open, true);
    let note = json!({
        "action": "add_elements",
        "params": {"type": "append", "elements": [{
            "tag": "markdown",
            "content": card::INTERRUPTED_SUFFIX.trim_start(),
        }]},
    });
    batch_close(out, &mut kit, vec![note], ORPHAN_SUMMARY).await
}

/// One `batch_update`: `actions`, then the Stop button deleted (if the card
/// has it) and streaming closed with `summary`. Retries on a stale sequence
/// (jumping ahead) and on a Stop button that is already gone.
async fn batch_close(
    out: &Outbound,
    kit: &mut KitCard,
    mut actions: Vec<Value>,
    summary: &str,
) -> Result<(), Error> {
    let fixed = actions.len();
    let mut tries = 0;
    loop {
        actions.truncate(fixed);
        if kit.has_stop {
            actions.push(json!({
                "action": "delete_elements",
                "params": {"element_ids": [STOP_BUTTON_ELEMENT_ID]},
            }));
        }
        actions.push(json!({
            "action": "partial_update_setting",
            "params": {"settings": {"config": {"streaming_mode": false, "summary": {"content": summary}}}},
        }));
        let seq = kit.next_seq();
        let result = out
            .client
            .batch_update_card(
                &kit.card_id,
                &Value::Array(actions.clone()).to_string(),
                seq,
                None,
            )
            .await;
        tries += 1;
        match result {
            Ok(()) => {
                kit.has_stop = false;
                return Ok(());
            }
            Err(e) if tries < 3 && e.code() == Some(SEQUENCE_STALE) => kit.jump_sequence(),
            Err(e) if tries < 3 && e.code() == Some(ELEMENT_MISSING) && kit.has_stop => {
                kit.has_stop = false;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Drops the card from the store's open cards.
pub(crate) async fn forget(out: &Outbound, card_id: &str) {
    if let Err(e) = out.store.close_card(card_id).await {
        tracing::warn!(
            "[lark] [{}] cannot record closed card {card_id}: {e}",
            out.account
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_sequences_stay_above_earlier_attempts() {
        let created = 1_700_000_000_000;
        // An attempt that ran 60 s at 10 ops/s used at most 600 sequences.
        let first = resume_sequence(created, created + 60_000);
        assert!(first > 600);
        // A second resume 5 s later is above everything the first one could push.
        let second = resume_sequence(created, created + 65_000);
        assert!(second >= first + 500);
        // A clock before the creation still gives the base.
        assert_eq!(resume_sequence(created, created - 5), RESUME_SEQUENCE_BASE);
        // 14 days (the entity's life) fit in i32.
        let late = resume_sequence(created, created + 14 * 24 * 3_600_000);
        assert!(late < i64::from(i32::MAX));
    }
}
