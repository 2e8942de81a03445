//! Sending the messages of one reply: part numbering and uuids, the
//! exactly-once record, the reply-or-send-to-chat fallback, and the retries
//! that change the payload (tables degraded, parts split, plain text).

use lark_client::{Error, OutgoingMessage, ReceiveIdType};
use lark_wire::card;
use serde_json::Value;

use super::{now_ms, Outbound, ReplyPlan};
use crate::render::{self, MentionMap, Target, MIN_PART_BYTES, RESERVED_BYTES};

/// Sub-code of 230099 for "element exceeds the limit" (tables, components).
const TABLE_LIMIT_SUBCODE: &str = "11310";
/// Card content failed (sub-code in `msg`).
const CARD_FAILED: i64 = 230099;
/// Content too long.
const TOO_LONG: i64 = 230025;

/// Whether `e` is the platform refusing a card for its tables (230099 with
/// `ErrCode: 11310`; a bare 230099 is treated the same).
pub(crate) fn is_table_error(e: &Error) -> bool {
    match e {
        Error::Api { code, msg, .. } if *code == CARD_FAILED => {
            !msg.contains("ErrCode") || msg.contains(TABLE_LIMIT_SUBCODE)
        }
        _ => false,
    }
}

/// The state of one reply while it is being sent.
pub(crate) struct Replier<'a> {
    /// The account's outbound.
    pub out: &'a Outbound,
    /// What to reply to and how.
    pub plan: &'a ReplyPlan,
    /// People the agent may mention.
    pub mentions: MentionMap,
    /// Next part number (every message of the reply takes one, in order).
    next_part: usize,
    /// Messages of the reply, in order.
    pub message_ids: Vec<String>,
    /// When the first text became visible.
    pub first_visible_ms: Option<i64>,
    /// How the reply went out.
    pub mode_used: &'static str,
    /// The user's message is gone: send to the chat instead of replying.
    reply_target_gone: bool,
    /// Parts this attempt recorded, `(uuid, message_id)`: on a first
    /// attempt the only ones there can be.
    recorded_here: Vec<(String, String)>,
}

impl<'a> Replier<'a> {
    pub fn new(out: &'a Outbound, plan: &'a ReplyPlan) -> Replier<'a> {
        Replier {
            out,
            plan,
            mentions: plan.mentions.iter().cloned().collect(),
            next_part: 0,
            message_ids: Vec::new(),
            first_visible_ms: None,
            mode_used: "static",
            reply_target_gone: false,
            recorded_here: Vec::new(),
        }
    }

    /// The account name (store namespace, logs).
    pub fn account(&self) -> &str {
        &self.out.account
    }

    /// Takes the next part number.
    pub fn take_part(&mut self) -> usize {
        let n = self.next_part;
        self.next_part += 1;
        n
    }

    /// The uuid of part `index`.
    pub fn part_uuid(&self, index: usize) -> String {
        render::part_uuid(&self.plan.uuid_base, index)
    }

    /// The message a part was already sent as (by this or an earlier attempt).
    pub async fn recorded(&self, uuid: &str) -> Option<String> {
        if let Some((_, message_id)) = self.recorded_here.iter().find(|(u, _)| u == uuid) {
            return Some(message_id.clone());
        }
        if self.plan.first_attempt {
            return None;
        }
        match self.out.store.sent_message(self.account(), uuid).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("[lark] [{}] cannot read sent parts: {e}", self.account());
                None
            }
        }
    }

    /// Records that `uuid` was sent as `message_id`.
    pub async fn record(&mut self, uuid: &str, message_id: &str) {
        self.recorded_here
            .push((uuid.to_string(), message_id.to_string()));
        if let Err(e) = self
            .out
            .store
            .record_sent(self.account(), uuid, message_id, now_ms())
            .await
        {
            tracing::warn!("[lark] [{}] cannot record sent part: {e}", self.account());
        }
    }

    /// Notes a message of the reply (and, for text, when it became visible).
    pub fn sent(&mut self, message_id: String, text: bool) {
        if text && self.first_visible_ms.is_none() {
            self.first_visible_ms = Some(now_ms());
        }
        self.message_ids.push(message_id);
    }

    /// Sends `msg` as a reply to the user's message; when that message is
    /// gone (recalled, deleted), as a new message to the chat. Returns the
    /// new message's id. Not recorded.
    pub async fn deliver(&mut self, uuid: &str, msg: &OutgoingMessage) -> Result<String, Error> {
        let client = &self.out.client;
        if !self.reply_target_gone {
            match client
                .reply_message(
                    &self.plan.reply_to,
                    msg,
                    self.plan.reply_in_thread,
                    Some(uuid),
                )
                .await
            {
                Ok(info) => return Ok(info.message_id),
                Err(e) if e.is_target_gone() && !self.plan.chat_id.is_empty() => {
                    tracing::info!(
                        "[lark] [{}] message {} is gone ({e}); sending to the chat instead",
                        self.account(),
                        self.plan.reply_to
                    );
                    self.reply_target_gone = true;
                }
                Err(e) => return Err(e),
            }
        }
        client
            .send_message(ReceiveIdType::ChatId, &self.plan.chat_id, msg, Some(uuid))
            .await
            .map(|info| info.message_id)
    }

    /// Sends `msg` as part `index` unless that part was already sent; records it.
    pub async fn send_indexed(
        &mut self,
        index: usize,
        msg: &OutgoingMessage,
        text: bool,
    ) -> Result<String, Error> {
        let uuid = self.part_uuid(index);
        if let Some(message_id) = self.recorded(&uuid).await {
            tracing::debug!(
                "[lark] [{}] part {index} of {} already sent as {message_id}",
                self.account(),
                self.plan.uuid_base
            );
            self.message_ids.push(message_id.clone());
            return Ok(message_id);
        }
        let message_id = self.deliver(&uuid, msg).await?;
        self.record(&uuid, &message_id).await;
        self.sent(message_id.clone(), text);
        Ok(message_id)
    }

    /// Renders `markdown` (plain text when it has no formatting, else
    /// `rich`) and sends every part in order. Returns whether all parts went
    /// out; failures are logged.
    pub async fn send_markdown(&mut self, markdown: &str, rich: Target) -> bool {
        if markdown.trim().is_empty() {
            return true;
        }
        let rendered = render::render(markdown, rich, &self.mentions);
        let mut all = true;
        for (part, summary) in rendered.parts.iter().zip(&rendered.summaries) {
            let index = self.take_part();
            if let Err(e) = self
                .send_rendered_part(index, rendered.target, part, summary)
                .await
            {
                tracing::warn!(
                    "[lark] [{}] reply part to {} failed: {e}",
                    self.account(),
                    self.plan.reply_to
                );
                all = false;
            }
        }
        all
    }

    /// Sends one rendered part as `target`; on refusal retries once with
    /// the payload changed: tables degraded to code (230099/11310), the part
    /// split in two (230025), or as plain text (other content errors).
    pub async fn send_rendered_part(
        &mut self,
        index: usize,
        target: Target,
        part: &str,
        summary: &str,
    ) -> Result<(), Error> {
        let msg = message(target, part, summary);
        let err = match self.send_indexed(index, &msg, true).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if target == Target::Card && is_table_error(&err) {
            tracing::info!(
                "[lark] [{}] tables refused ({err}); sending them as code",
                self.account()
            );
            let degraded = render::degrade_tables(part, 0);
            return self
                .send_indexed(index, &message(target, &degraded, summary), true)
                .await
                .map(drop);
        }
        if err.code() == Some(TOO_LONG) {
            return self.send_split(target, part, err).await;
        }
        if target != Target::Text && err.code().is_some() && !err.is_target_gone() {
            if let lark_client::ErrorClass::Fatal = err.class() {
                tracing::info!(
                    "[lark] [{}] {target:?} refused ({err}); sending text",
                    self.account()
                );
                self.mode_used = "text-fallback";
                return self
                    .send_indexed(index, &message(Target::Text, part, summary), true)
                    .await
                    .map(drop);
            }
        }
        Err(err)
    }

    /// Sends `part` again as smaller parts (after 230025).
    async fn send_split(&mut self, target: Target, part: &str, err: Error) -> Result<(), Error> {
        let limit = target.max_bytes() - RESERVED_BYTES;
        let budget = card::markdown_budget(&target.content(""), limit) / 2;
        let pieces = render::split_for_limit(part, budget.max(MIN_PART_BYTES));
        if pieces.len() < 2 {
            return Err(err);
        }
        tracing::info!(
            "[lark] [{}] part refused as too long ({err}); splitting it",
            self.account()
        );
        for piece in pieces {
            let index = self.take_part();
            let summary = render::summary(&piece);
            let msg = message(target, &piece, &summary);
            self.send_indexed(index, &msg, true).await?;
        }
        Ok(())
    }
}

/// The message holding one rendered part.
pub(crate) fn message(target: Target, part: &str, summary: &str) -> OutgoingMessage {
    let content: Value = match target {
        Target::Card => card::final_card(
            part,
            &card::CardOptions {
                summary: Some(summary.to_string()),
                ..card::CardOptions::default()
            },
        ),
        other => other.content(part),
    };
    OutgoingMessage {
        msg_type: target.msg_type().to_string(),
        content: content.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, msg: &str) -> Error {
        Error::Api {
            code,
            msg: msg.into(),
            status: 400,
            log_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn table_errors_are_recognised() {
        assert!(is_table_error(&api(
            230099,
            "ErrCode: 11310; ErrMsg: element exceeds the limit"
        )));
        assert!(is_table_error(&api(230099, "card failed")));
        assert!(!is_table_error(&api(
            230099,
            "ErrCode: 200621; parse error"
        )));
        assert!(!is_table_error(&api(230025, "too long")));
    }

    #[test]
    fn messages_have_the_target_type() {
        let m = message(Target::Card, "**x**", "x");
        assert_eq!(m.msg_type, "interactive");
        assert!(m.content.contains("\"streaming_mode\":false"));
        assert_eq!(message(Target::Text, "x", "x").content, r#"{"text":"x"}"#);
        assert_eq!(message(Target::Post, "x", "x").msg_type, "post");
    }
}
