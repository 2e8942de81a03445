//! From agent output to Feishu/Lark messages: streaming cards, blocks, parts.
//!
//! Interim version: one final message per reply (the streaming controller
//! replaces it). The API is the one the gateway uses.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lark_client::{Client, OutgoingMessage};
use tokio::sync::mpsc;

use crate::agent::{AgentError, AgentEvent};
use crate::config::{AccountConfig, ReplyMode};
use crate::render::{self, MentionMap, Target};
use crate::store::Store;

/// How to answer one turn.
#[derive(Clone, Debug)]
pub struct ReplyPlan {
    /// Reply mode (auto is resolved here).
    pub mode: ReplyMode,
    /// A 1:1 chat.
    pub p2p: bool,
    /// The user's message.
    pub reply_to: String,
    /// Reply in a thread.
    pub reply_in_thread: bool,
    /// Every uuid derives from this.
    pub uuid_base: String,
    /// The inbox row answered.
    pub inbound_id: i64,
    /// People the agent may mention.
    pub mentions: Vec<(String, String)>,
    /// The Stop button's turn, for streaming cards.
    pub stop_turn: Option<String>,
    /// URL prefixes the agent may ask us to fetch.
    pub media_allowlist: Vec<String>,
}

/// What a reply did.
#[derive(Debug)]
pub struct ReplyReport {
    /// The agent's full text.
    pub text: String,
    /// How the agent ended.
    pub outcome: Result<(), AgentError>,
    /// When the first text was visible (unix ms).
    pub first_visible_ms: Option<i64>,
    /// Messages sent.
    pub message_ids: Vec<String>,
    /// The delivery used.
    pub mode_used: &'static str,
}

/// Sends replies for one account.
pub struct Outbound {
    client: Client,
    store: Arc<dyn Store>,
    account: String,
}

impl Outbound {
    /// An outbound for `account`.
    pub fn new(client: Client, store: Arc<dyn Store>, account: &AccountConfig) -> Outbound {
        Outbound {
            client,
            store,
            account: account.name.clone(),
        }
    }

    /// Runs the agent to completion and sends its answer.
    pub async fn reply(
        &self,
        plan: ReplyPlan,
        mut events: mpsc::Receiver<AgentEvent>,
        agent: BoxFuture<'_, Result<(), AgentError>>,
    ) -> ReplyReport {
        let collect = async {
            let mut text = String::new();
            while let Some(ev) = events.recv().await {
                if let AgentEvent::Delta(d) = ev {
                    text.push_str(&d);
                }
            }
            text
        };
        let (outcome, mut text) = tokio::join!(agent, collect);
        let mut shown = text.clone();
        if let Err(e) = &outcome {
            shown.push_str(&format!("\n\n⚠️ {}", e.message));
        }
        if shown.trim().is_empty() {
            text.clear();
            shown = "(no answer)".into();
        }
        let mentions: MentionMap = plan.mentions.iter().cloned().collect();
        let rendered = render::render(&shown, Target::Post, &mentions);
        let mut ids = Vec::new();
        let mut first = None;
        for (i, content) in rendered.contents().into_iter().enumerate() {
            let uuid = render::part_uuid(&plan.uuid_base, i);
            let msg = OutgoingMessage {
                msg_type: rendered.target.msg_type().to_string(),
                content: content.to_string(),
            };
            if let Ok(m) = self
                .client
                .reply_message(&plan.reply_to, &msg, plan.reply_in_thread, Some(&uuid))
                .await
            {
                first.get_or_insert_with(crate::gateway::now_ms);
                let _ = self
                    .store
                    .record_sent(
                        &self.account,
                        &uuid,
                        &m.message_id,
                        crate::gateway::now_ms(),
                    )
                    .await;
                ids.push(m.message_id);
            }
        }
        ReplyReport {
            text,
            outcome,
            first_visible_ms: first,
            message_ids: ids,
            mode_used: "static",
        }
    }

    /// A short system reply, sent at most once.
    pub async fn notice(
        &self,
        reply_to: &str,
        text: &str,
        uuid: &str,
    ) -> Result<(), lark_client::Error> {
        self.client
            .reply_message(reply_to, &OutgoingMessage::text(text), false, Some(uuid))
            .await
            .map(|_| ())
    }

    /// Closes cards left open by a crash (none in this version).
    pub async fn close_orphan_cards(&self) {}
}
