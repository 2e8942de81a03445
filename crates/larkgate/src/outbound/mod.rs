//! From agent output to Feishu/Lark messages: streaming cards, blocks, parts.
//!
//! # Design
//!
//! [`Outbound::reply`] runs two futures in the caller's task (`tokio::join!`,
//! no spawn, so dropping the reply drops everything):
//!
//! - the **pump** polls the agent's run future and drains its event channel
//!   into a [`feed`]: one growing text, the media asked for, and the outcome
//!   once the future resolved (buffered events are drained first, so no delta
//!   is lost);
//! - the **driver** of the reply mode reads the feed when it is ready to
//!   send. It never queues frames: it takes the latest full text, so slow
//!   platform calls coalesce updates instead of piling them up.
//!
//! ## Modes
//!
//! | mode | what the user sees |
//! |---|---|
//! | `streaming` | a CardKit card (schema 2.0, `streaming_mode`) whose markdown element is replaced with the full text so far, closed at the end |
//! | `auto` | the same; groups wait longer before the first card (below) |
//! | `block` | each completed block ([`crate::render::BlockSplitter`]) as its own message (post or text) as soon as it completes |
//! | `static` | one final message ([`crate::render::render`]), in ordered parts when over the limit |
//!
//! ## The streaming state machine (`stream.rs`)
//!
//! ```text
//! first flush ──agent done──▶ one final message (1 call)            "static"
//!     │ text and 300 ms (DM) / 1.5 s (group) passed
//!     ▼
//! open part: CardKit create+send ──fails──▶ PATCH card ──fails──▶ deferred
//!     │                                                      (final message
//!     ▼                                                       when complete)
//! streaming: on change, after the interval → push full text (skip if same)
//!     │ text outgrows the card (render::card_rollover)
//!     ├──▶ close this card with the head, open the next part with the tail
//!     │ agent done
//!     ▼
//! close: ONE batch_update = final text (if changed) + delete Stop button
//!        + streaming_mode off + summary; notes (stopped / interrupted: reason,
//!        refused media) are part of that text. Then media messages.
//! ```
//!
//! **Throttling**: at most one operation in flight per card (the driver
//! awaits each call); at least `stream_interval_ms` (never below 100 ms, the
//! platform's 10 ops/s per card) between two operations on a CardKit card,
//! 1.5 s between PATCHes (5 QPS per message, and each PATCH re-renders the
//! card); a push is skipped when the rendered text did not change; the last
//! state is never pushed separately, it rides in the closing batch. A push
//! that fails (rate limit after the client's retries, 300317, streaming
//! closed by the 10-minute timeout, which is re-enabled) costs that frame
//! only: the next push carries the full text.
//!
//! **Call budget**: a reply that is done within the first-flush delay costs
//! one call (one final message). A streamed reply costs create + send +
//! one push per interval in which the text changed + one closing batch: a
//! short streamed reply costs 3–4 calls. Long replies add, per rollover card,
//! create + send + its pushes + a batch.
//!
//! **Fallbacks, never losing text**: CardKit refused (creation or sending
//! fails, e.g. 99991672 missing `cardkit:card:write`, 230020) → an
//! interactive card PATCHed every 1.5 s (a permission refusal also skips
//! CardKit for this account for 10 minutes); PATCH refused → the part is
//! sent as final message(s) once complete. A card that cannot be closed, or
//! whose entity is gone, is followed by a final message with its full text.
//! Final messages retry once with tables degraded (230099/11310), split
//! (230025) or as plain text; when the user's message is gone (230011,
//! 231003) they are sent to the chat instead of as replies.
//!
//! ## Exactly once
//!
//! Every message of a reply is part `i` with `uuid = part_uuid(uuid_base, i)`
//! (media: `part_uuid(uuid_base + ":media", j)`). Before sending, the store
//! is asked whether that uuid was sent ([`Store::sent_message`]); after
//! sending it is recorded ([`Store::record_sent`]). The platform also
//! deduplicates a uuid for an hour, which covers a crash between send and
//! record.
//!
//! A CardKit card is recorded with [`Store::open_card`] *before* its message
//! is sent (message_id empty), updated with the message_id after, and
//! forgotten with [`Store::close_card`] once closed. When `reply` is called
//! for an `inbound_id` that still has an open card (the process died
//! mid-stream and the turn is replayed), it continues in that card: its
//! message is sent again with the same uuid (answered with the same
//! message), and the new full text replaces the old. Sequences on a resumed
//! card start at `1_000_000 + (now − card creation) / 10 ms`
//! ([`kit::resume_sequence`]): above anything the earlier attempt (at most
//! one operation per 100 ms) or an earlier resume can have used; a 300317
//! jumps further ahead. Parts before the resumed card, and parts whose uuid
//! is recorded, are treated as delivered and skipped.
//!
//! [`Outbound::close_orphan_cards`] closes, at start-up, the cards whose
//! inbox row is finished or gone (an interrupted note appended, the Stop
//! button removed, streaming off, summary "⚠️ Reply interrupted"); cards
//! whose row is still pending or processing are left for the replay of that
//! row, which continues in them.
//!
//! [`Store::sent_message`]: crate::store::Store::sent_message
//! [`Store::record_sent`]: crate::store::Store::record_sent
//! [`Store::open_card`]: crate::store::Store::open_card
//! [`Store::close_card`]: crate::store::Store::close_card

mod feed;
mod kit;
pub(crate) mod media;
mod messages;
mod notes;
mod patch;
mod send;
mod stream;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lark_client::{Client, Error, OutgoingMessage};
use tokio::sync::mpsc;

use crate::agent::{AgentError, AgentEvent};
use crate::config::{AccountConfig, ReplyMode};
use crate::render::{self, MentionMap, Target};
use crate::store::Store;

pub use kit::RESUME_SEQUENCE_BASE;
pub use media::{FILE_MAX_BYTES, IMAGE_MAX_BYTES};
pub use patch::PATCH_INTERVAL_MS;
pub use stream::{DM_FIRST_FLUSH_MS, GROUP_FIRST_FLUSH_MS, MIN_CARD_INTERVAL_MS};

/// How long CardKit is skipped after a permission refusal.
const CARDKIT_RETRY_AFTER_MS: i64 = 10 * 60 * 1000;
/// Most part numbers looked at when locating a resumed card.
const MAX_PARTS_SCANNED: usize = 1_000;
/// Time allowed for a media URL download.
const MEDIA_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends replies for one account. Cheap to share: every method takes `&self`.
pub struct Outbound {
    client: Client,
    store: Arc<dyn Store>,
    account: String,
    stream_interval: Duration,
    /// Fetches media URLs; no redirects (they could leave the allowlist), no proxy.
    media_http: Option<reqwest::Client>,
    /// Unix ms until which CardKit is not tried (after a permission refusal).
    cardkit_refused_until_ms: AtomicI64,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("account", &self.account)
            .field("stream_interval", &self.stream_interval)
            .finish_non_exhaustive()
    }
}

/// What to reply to and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyPlan {
    /// `Auto` is resolved here: streaming, with a longer first-card delay in groups.
    pub mode: ReplyMode,
    /// A 1:1 chat.
    pub p2p: bool,
    /// The user's message_id; replies use the reply API (in a topic the
    /// platform keeps them in the topic).
    pub reply_to: String,
    /// The chat of `reply_to`: where replies go as new messages when the
    /// user's message is gone (recalled, deleted).
    pub chat_id: String,
    /// Reply as a thread.
    pub reply_in_thread: bool,
    /// Stable per inbound message: every message uuid derives from it
    /// ([`render::part_uuid`]), so a retry or restart never double-posts.
    pub uuid_base: String,
    /// The inbox row, for the store's open cards.
    pub inbound_id: i64,
    /// No earlier attempt at this row began, so none sent a part or opened
    /// a card: the reply need not look for them in the store.
    pub first_attempt: bool,
    /// `(name, open_id)` of people the agent may @mention.
    pub mentions: Vec<(String, String)>,
    /// When set, streaming cards carry a Stop button whose callback value is
    /// [`lark_wire::card::stop_action_value`] of it.
    pub stop_turn: Option<String>,
    /// URL prefixes (http/https) the agent may ask us to fetch; empty = no URLs.
    pub media_allowlist: Vec<String>,
}

/// What a reply did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplyReport {
    /// The agent's full text (raw markdown, as produced).
    pub text: String,
    /// How the agent's run ended.
    pub outcome: Result<(), AgentError>,
    /// Unix ms when the first reply text became visible to the user.
    pub first_visible_ms: Option<i64>,
    /// Messages of the reply, in order (including parts an earlier attempt sent).
    pub message_ids: Vec<String>,
    /// `cardkit`, `patch`, `block`, `static` or `text-fallback`.
    pub mode_used: &'static str,
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Outbound {
    /// The outbound side of `account`, sending through `client` and recording in `store`.
    pub fn new(client: Client, store: Arc<dyn Store>, account: &AccountConfig) -> Outbound {
        let media_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(MEDIA_DOWNLOAD_TIMEOUT)
            .build()
            .map_err(|e| tracing::warn!("[lark] [{}] no media downloads: {e}", account.name))
            .ok();
        Outbound {
            client,
            store,
            account: account.name.clone(),
            stream_interval: Duration::from_millis(account.stream_interval_ms),
            media_http,
            cardkit_refused_until_ms: AtomicI64::new(0),
        }
    }

    /// Streams the agent's answer to the user and returns what happened.
    /// Polls `agent` (the agent's run future) and drains `events`
    /// concurrently; the turn ends when `agent` resolves (remaining events
    /// are drained). Dropping the returned future stops the agent and the
    /// reply at once; an open card then stays recorded for a replay or
    /// [`Outbound::close_orphan_cards`].
    pub async fn reply(
        &self,
        plan: ReplyPlan,
        events: mpsc::Receiver<AgentEvent>,
        agent: BoxFuture<'_, Result<(), AgentError>>,
    ) -> ReplyReport {
        let feed = feed::Feed::default();
        let mut r = send::Replier::new(self, &plan);
        tokio::join!(feed::pump(&feed, events, agent), drive(&mut r, &feed));
        let (message_ids, first_visible_ms, mode_used) =
            (r.message_ids, r.first_visible_ms, r.mode_used);
        let (text, outcome) = feed.into_result();
        ReplyReport {
            text,
            outcome,
            first_visible_ms,
            message_ids,
            mode_used,
        }
    }

    /// A short system message (pairing code, command answers, errors) as a
    /// reply to `reply_to`, sent at most once per `uuid`: plain text, or a
    /// post when it has markdown formatting.
    pub async fn notice(&self, reply_to: &str, text: &str, uuid: &str) -> Result<(), Error> {
        let rendered = render::render(text, Target::Post, &MentionMap::new());
        for (i, part) in rendered.parts.iter().enumerate() {
            let part_uuid = if i == 0 {
                uuid.to_string()
            } else {
                render::part_uuid(uuid, i)
            };
            match self.store.sent_message(&self.account, &part_uuid).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!("[lark] [{}] cannot read sent parts: {e}", self.account),
            }
            let msg = OutgoingMessage {
                msg_type: rendered.target.msg_type().to_string(),
                content: rendered.target.content(part).to_string(),
            };
            let info = self
                .client
                .reply_message(reply_to, &msg, false, Some(&part_uuid))
                .await?;
            if let Err(e) = self
                .store
                .record_sent(&self.account, &part_uuid, &info.message_id, now_ms())
                .await
            {
                tracing::warn!("[lark] [{}] cannot record sent notice: {e}", self.account);
            }
        }
        Ok(())
    }

    /// At start-up: closes every card the store still lists as open for
    /// this account whose inbox row is finished or gone (a crash
    /// mid-stream): streaming off, an interrupted note under its text, the
    /// Stop button removed, a summary; then forgets it. Cards whose row is
    /// still pending or processing are left to the replay of that row, which
    /// continues in them.
    pub async fn close_orphan_cards(&self) {
        let cards = match self.store.open_cards(&self.account).await {
            Ok(cards) => cards,
            Err(e) => {
                tracing::warn!("[lark] [{}] cannot list open cards: {e}", self.account);
                return;
            }
        };
        for card in cards {
            if let Ok(Some(row)) = self.store.get_inbound(card.inbound_id).await {
                if row.state.is_unfinished() {
                    tracing::info!(
                        "[lark] [{}] card {} will be continued by the replay of event {}",
                        self.account,
                        card.card_id,
                        card.inbound_id
                    );
                    continue;
                }
            }
            match kit::close_orphan(self, &card).await {
                Ok(()) => {
                    tracing::info!(
                        "[lark] [{}] closed card {} left open",
                        self.account,
                        card.card_id
                    );
                    kit::forget(self, &card.card_id).await;
                }
                Err(e) => {
                    tracing::warn!(
                        "[lark] [{}] cannot close card {}: {e}",
                        self.account,
                        card.card_id
                    );
                    if !matches!(
                        e.class(),
                        lark_client::ErrorClass::Retryable
                            | lark_client::ErrorClass::RateLimited(_)
                    ) {
                        kit::forget(self, &card.card_id).await;
                    }
                }
            }
        }
    }

    /// Whether CardKit is being skipped after a permission refusal.
    fn cardkit_refused(&self) -> bool {
        self.cardkit_refused_until_ms.load(Ordering::Relaxed) > now_ms()
    }

    /// Skips CardKit for a while (the app lacks the scope).
    fn refuse_cardkit(&self) {
        self.cardkit_refused_until_ms
            .store(now_ms() + CARDKIT_RETRY_AFTER_MS, Ordering::Relaxed);
    }
}

/// Runs the reply mode (or continues an open card of an earlier attempt).
async fn drive(r: &mut send::Replier<'_>, feed: &feed::Feed) {
    if let Some(resume) = find_resume(r).await {
        return stream::run(r, feed, Some(resume)).await;
    }
    match r.plan.mode {
        ReplyMode::Streaming | ReplyMode::Auto => stream::run(r, feed, None).await,
        ReplyMode::Block => messages::run_block(r, feed).await,
        ReplyMode::Static => messages::run_static(r, feed).await,
    }
}

/// The card an earlier attempt at this reply left open, with its part number.
async fn find_resume(r: &send::Replier<'_>) -> Option<stream::Resume> {
    if r.plan.first_attempt {
        return None;
    }
    let cards = match r.out.store.open_cards(r.account()).await {
        Ok(cards) => cards,
        Err(e) => {
            tracing::warn!("[lark] [{}] cannot list open cards: {e}", r.account());
            return None;
        }
    };
    let card = cards
        .into_iter()
        .rev()
        .find(|c| c.inbound_id == r.plan.inbound_id)?;
    // The card's part: the one recorded with its message, else (sent but
    // not recorded, or never sent) the first part not recorded.
    for index in 0..MAX_PARTS_SCANNED {
        match r.recorded(&r.part_uuid(index)).await {
            Some(message_id) if !card.message_id.is_empty() && message_id == card.message_id => {
                return Some(stream::Resume { index, card });
            }
            Some(_) => {}
            None => return Some(stream::Resume { index, card }),
        }
    }
    None
}
