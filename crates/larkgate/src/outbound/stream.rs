//! The streamed reply: a card per part of the text (CardKit, else a PATCHed
//! interactive message, else final messages), throttled and coalesced,
//! rolled over when the text outgrows a card, closed in one call.

use std::time::Duration;

use lark_wire::card::{self, CardOptions, StopButton};
use tokio::time::Instant;

use super::feed::Feed;
use super::kit::{self, KitCard, SEQUENCE_STALE, STREAMING_CLOSED};
use super::patch::{self, PatchCard, PATCH_INTERVAL_MS, PATCH_MIN_GAP_MS};
use super::send::{is_table_error, Replier};
use super::{media, messages, notes};
use crate::render::{self, Rollover, Target, RESERVED_BYTES};
use crate::store::OpenCard;

/// In a 1:1 chat, how long to wait before the card exists (an agent that is
/// done by then is answered with one message).
pub const DM_FIRST_FLUSH_MS: u64 = 300;
/// The same in groups (short group replies become one message).
pub const GROUP_FIRST_FLUSH_MS: u64 = 1_500;
/// The shortest time between two operations on one card (10 ops/s).
pub const MIN_CARD_INTERVAL_MS: u64 = 100;
/// Failed pushes in a row after which a card is no longer pushed to (it is
/// still closed with the full text, or replaced by a final message).
const MAX_PUSH_FAILURES: u32 = 3;
/// Label of the Stop button.
const STOP_LABEL: &str = "Stop";

/// An open card of an earlier attempt at this reply, to continue in.
#[derive(Debug)]
pub(crate) struct Resume {
    /// Its part number.
    pub index: usize,
    /// What the store knows about it.
    pub card: OpenCard,
}

/// How new parts are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// CardKit streaming card.
    Kit,
    /// Interactive message replaced with PATCH.
    Patch,
    /// Nothing streams: each part is sent as final message(s) once complete.
    Final,
}

/// Where the current part is shown.
#[derive(Debug)]
enum Surface {
    /// Not shown yet.
    Pending,
    /// A CardKit card.
    Kit(KitCard),
    /// A PATCHed message.
    Patch(PatchCard),
    /// Sent by an earlier attempt (its uuid is recorded).
    Delivered,
    /// Cannot stream: sent as final message(s) when complete.
    Deferred,
}

/// The part of the reply the current card holds: `prefix` (a reopened fence
/// or repeated table header) then the agent's text from byte `start`.
#[derive(Debug)]
struct Part {
    index: Option<usize>,
    prefix: String,
    start: usize,
    surface: Surface,
    /// What the card shows now.
    shown: String,
    /// Tables allowed (3, or 0 after the platform refused them).
    tables: usize,
    failures: u32,
}

impl Part {
    fn new(prefix: String, start: usize) -> Part {
        Part {
            index: None,
            prefix,
            start,
            surface: Surface::Pending,
            shown: String::new(),
            tables: card::MAX_TABLES_PER_CARD,
            failures: 0,
        }
    }

    fn stalled(&self) -> bool {
        self.failures >= MAX_PUSH_FAILURES
    }
}

/// Streams the reply. Waits for the first flush (text and the chat's
/// delay); an agent that finished by then gets one final message instead.
pub(crate) async fn run(r: &mut Replier<'_>, feed: &Feed, resume: Option<Resume>) {
    let delay = if resume.is_some() {
        Duration::ZERO
    } else if r.plan.p2p {
        Duration::from_millis(DM_FIRST_FLUSH_MS)
    } else {
        Duration::from_millis(GROUP_FIRST_FLUSH_MS)
    };
    if !first_flush(feed, delay).await && resume.is_none() {
        return messages::finish_instant(r, feed).await;
    }
    let mut s = CardStream::new(r, resume);
    let latest = |f: &super::feed::FeedState| (!f.done()).then(|| (f.text.clone(), f.version));
    while let Some((text, version)) = feed.with(latest) {
        s.sync(&text).await;
        feed.wait_change(version).await;
        s.pace(feed).await;
    }
    s.finish(feed).await;
}

/// Waits until there is text and `delay` has passed (true), or the agent is
/// done (false).
async fn first_flush(feed: &Feed, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        let (done, has_text, version) =
            feed.with(|f| (f.done(), !f.text.trim().is_empty(), f.version));
        if done {
            return false;
        }
        if has_text {
            if Instant::now() >= deadline {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = feed.wait_done() => {}
            }
        } else {
            feed.wait_change(version).await;
        }
    }
}

struct CardStream<'r, 'a> {
    r: &'r mut Replier<'a>,
    backend: Backend,
    part: Part,
    resume: Option<Resume>,
    opts: CardOptions,
    /// Markdown bytes one card holds.
    budget: usize,
    /// Time between CardKit operations.
    interval: Duration,
    /// When the last sync ended.
    last_tick: Option<Instant>,
}

impl<'r, 'a> CardStream<'r, 'a> {
    fn new(r: &'r mut Replier<'a>, resume: Option<Resume>) -> CardStream<'r, 'a> {
        let opts = CardOptions {
            stop: r.plan.stop_turn.clone().map(|turn| StopButton {
                label: STOP_LABEL.into(),
                turn,
            }),
            ..CardOptions::default()
        };
        let legacy = card::markdown_budget(
            &card::legacy_patch_card("", true, &opts),
            card::CARD_MAX_BYTES - RESERVED_BYTES,
        );
        let budget = render::stream_budget(&opts).min(legacy);
        let backend = if r.out.cardkit_refused() {
            Backend::Patch
        } else {
            Backend::Kit
        };
        let interval = r
            .out
            .stream_interval
            .max(Duration::from_millis(MIN_CARD_INTERVAL_MS));
        CardStream {
            r,
            backend,
            part: Part::new(String::new(), 0),
            resume,
            opts,
            budget,
            interval,
            last_tick: None,
        }
    }

    /// The agent's text of the current part.
    fn raw(&self, text: &str) -> String {
        let mut raw = self.part.prefix.clone();
        raw.push_str(text.get(self.part.start..).unwrap_or(""));
        raw
    }

    /// The card markdown of the current part (`stream_safe` unless final).
    fn display(&self, text: &str, complete: bool) -> String {
        let prepared = render::prepare(&self.raw(text), Target::Card, &self.r.mentions);
        let prepared = self.limit_tables(prepared);
        if complete {
            prepared
        } else {
            render::stream_safe(&prepared)
        }
    }

    fn limit_tables(&self, markdown: String) -> String {
        if self.part.tables < card::MAX_TABLES_PER_CARD {
            render::degrade_tables(&markdown, self.part.tables)
        } else {
            markdown
        }
    }

    /// Shows the latest text: rolls over full cards, opens the card, or
    /// pushes when the text changed.
    async fn sync(&mut self, text: &str) {
        self.roll_over_while_full(text).await;
        let display = self.display(text, false);
        if !display.trim().is_empty() {
            match self.part.surface {
                Surface::Pending => self.open(text).await,
                Surface::Kit(_) | Surface::Patch(_)
                    if display != self.part.shown && !self.part.stalled() =>
                {
                    self.push(display).await;
                }
                _ => {}
            }
        }
        self.last_tick = Some(Instant::now());
    }

    /// Waits out the interval since the last operation (coalescing what
    /// arrives meanwhile); when the agent finishes meanwhile, only the
    /// shortest gap the platform needs.
    async fn pace(&self, feed: &Feed) {
        let Some(last) = self.last_tick else { return };
        let (interval, min_gap) = match self.part.surface {
            Surface::Patch(_) => (
                Duration::from_millis(PATCH_INTERVAL_MS),
                Duration::from_millis(PATCH_MIN_GAP_MS),
            ),
            Surface::Kit(_) | Surface::Pending => (self.interval, self.interval),
            Surface::Delivered | Surface::Deferred => (self.interval, Duration::ZERO),
        };
        tokio::select! {
            () = tokio::time::sleep_until(last + interval) => {}
            () = feed.wait_done() => tokio::time::sleep_until(last + min_gap).await,
        }
    }

    /// While the current part no longer fits a card: pins its head into
    /// the card, closes it, and starts the next part with the tail.
    async fn roll_over_while_full(&mut self, text: &str) {
        loop {
            let raw = self.raw(text);
            let Some(roll) = render::card_rollover(&raw, &self.r.mentions, self.budget) else {
                return;
            };
            if roll.tail_start == 0 || roll.tail_start >= raw.len() {
                return;
            }
            let head = self.limit_tables(roll.head.clone());
            self.complete(head).await;
            let (prefix, start) = advance(&self.part.prefix, self.part.start, &roll);
            self.part = Part::new(prefix, start);
        }
    }

    /// Shows the current part for the first time.
    async fn open(&mut self, text: &str) {
        let index = self.take_index();
        if self.resume.as_ref().is_some_and(|res| res.index == index) {
            if let Some(res) = self.resume.take() {
                if self.attach(res, text).await {
                    return;
                }
            }
            self.part.index = None;
            let index = self.take_index();
            return self.open_new(index, text).await;
        }
        let uuid = self.r.part_uuid(index);
        if let Some(message_id) = self.r.recorded(&uuid).await {
            // An earlier attempt finished this part.
            self.r.message_ids.push(message_id);
            self.part.surface = Surface::Delivered;
            return;
        }
        self.open_new(index, text).await;
    }

    fn take_index(&mut self) -> usize {
        match self.part.index {
            Some(i) => i,
            None => {
                let i = self.r.take_part();
                self.part.index = Some(i);
                i
            }
        }
    }

    /// Opens a new card (CardKit, else PATCH, else deferred) as part `index`.
    async fn open_new(&mut self, mut index: usize, text: &str) {
        loop {
            let display = self.display(text, false);
            let result = match self.backend {
                Backend::Kit => kit::create(self.r, index, &display, &self.opts)
                    .await
                    .map(Surface::Kit),
                Backend::Patch => patch::open(self.r, index, &display, &self.opts)
                    .await
                    .map(Surface::Patch),
                Backend::Final => {
                    self.part.surface = Surface::Deferred;
                    self.r.mode_used = "text-fallback";
                    return;
                }
            };
            match result {
                Ok(surface) => {
                    self.r.mode_used = match surface {
                        Surface::Patch(_) => "patch",
                        _ => "cardkit",
                    };
                    self.part.surface = surface;
                    self.part.shown = display;
                    return;
                }
                Err(e) if is_table_error(&e) && self.part.tables > 0 => {
                    tracing::info!(
                        "[lark] [{}] tables refused ({e}); sending them as code",
                        self.r.account()
                    );
                    self.part.tables = 0;
                }
                Err(e) => {
                    let next = match self.backend {
                        Backend::Kit => {
                            if matches!(e.class(), lark_client::ErrorClass::Config) {
                                self.r.out.refuse_cardkit();
                            }
                            Backend::Patch
                        }
                        _ => Backend::Final,
                    };
                    tracing::warn!(
                        "[lark] [{}] {:?} card for {} failed ({e}); falling back to {next:?}",
                        self.r.account(),
                        self.backend,
                        self.r.plan.reply_to
                    );
                    self.backend = next;
                    // The failed attempt may have used its uuid: take another.
                    self.part.index = None;
                    index = self.take_index();
                }
            }
        }
    }

    /// Continues in the card an earlier attempt left open: its message is
    /// sent again with the same uuid (the platform answers with the same
    /// message), then the new text replaces the old. False if that failed
    /// (the old card is then closed as an orphan).
    async fn attach(&mut self, res: Resume, text: &str) -> bool {
        let mut card = KitCard::resumed(&res.card, self.opts.stop.is_some());
        let uuid = self.r.part_uuid(res.index);
        let known = !card.message_id.is_empty()
            && self.r.recorded(&uuid).await.as_deref() == Some(card.message_id.as_str());
        if known {
            self.r.sent(card.message_id.clone(), true);
        } else if let Err(e) = kit::show(self.r, res.index, &mut card).await {
            tracing::warn!(
                "[lark] [{}] cannot resume card {} ({e}); starting a new one",
                self.r.account(),
                res.card.card_id
            );
            self.close_orphan(&res.card).await;
            return false;
        }
        tracing::info!(
            "[lark] [{}] continuing in card {}",
            self.r.account(),
            card.card_id
        );
        self.r.mode_used = "cardkit";
        self.part.surface = Surface::Kit(card);
        let display = self.display(text, false);
        if !display.trim().is_empty() {
            self.push(display).await;
        }
        true
    }

    async fn close_orphan(&self, open: &OpenCard) {
        match kit::close_orphan(self.r.out, open).await {
            Ok(()) => kit::forget(self.r.out, &open.card_id).await,
            Err(e) => {
                tracing::warn!(
                    "[lark] [{}] cannot close card {}: {e}",
                    self.r.account(),
                    open.card_id
                );
                if !matches!(
                    e.class(),
                    lark_client::ErrorClass::Retryable | lark_client::ErrorClass::RateLimited(_)
                ) {
                    kit::forget(self.r.out, &open.card_id).await;
                }
            }
        }
    }

    /// Pushes the text so far; a failure costs at most this frame.
    async fn push(&mut self, display: String) {
        let out = self.r.out;
        let result = match &mut self.part.surface {
            Surface::Kit(card) => kit::push(out, card, &display).await,
            Surface::Patch(p) => patch::push(out, p, &display, &self.opts).await,
            _ => return,
        };
        let e = match result {
            Ok(()) => {
                self.part.shown = display;
                self.part.failures = 0;
                return;
            }
            Err(e) => e,
        };
        let account = self.r.account().to_string();
        if let lark_client::ErrorClass::RateLimited(_) = e.class() {
            tracing::debug!("[lark] [{account}] push rate limited ({e}); skipping the frame");
            return;
        }
        if is_table_error(&e) && self.part.tables > 0 {
            self.part.tables = 0;
            return;
        }
        if let Surface::Kit(card) = &mut self.part.surface {
            if e.code() == Some(SEQUENCE_STALE) {
                card.jump_sequence();
                return;
            }
            if e.code().is_some_and(|c| STREAMING_CLOSED.contains(&c)) {
                if let Err(e) = kit::reopen_streaming(out, card).await {
                    tracing::warn!("[lark] [{account}] cannot reopen streaming: {e}");
                    self.part.failures += 1;
                }
                return;
            }
        }
        if e.is_target_gone() {
            tracing::warn!(
                "[lark] [{account}] the card is gone ({e}); its text will be sent as a message"
            );
            if let Surface::Kit(card) = &self.part.surface {
                kit::forget(out, &card.card_id).await;
            }
            self.part.surface = Surface::Deferred;
            return;
        }
        self.part.failures += 1;
        tracing::warn!(
            "[lark] [{account}] push failed ({e}), {} in a row",
            self.part.failures
        );
    }

    /// Ends the current part with `final_text`: closes its card (falling
    /// back to a final message), or sends it when it was never shown.
    async fn complete(&mut self, final_text: String) {
        let out = self.r.out;
        let surface = std::mem::replace(&mut self.part.surface, Surface::Pending);
        let summary = render::summary(&final_text);
        // On failure: the text to send instead, and the message it replaces.
        let failed: Option<Option<String>> = match surface {
            Surface::Delivered => return,
            Surface::Pending => {
                let index = self.take_index();
                self.send_final(index, &final_text).await;
                return;
            }
            Surface::Deferred => Some(None),
            Surface::Kit(mut card) => {
                let shown = changed(&final_text, &self.part.shown);
                let mut result = kit::close(out, &mut card, shown, &summary).await;
                if matches!(&result, Err(e) if is_table_error(e)) {
                    let degraded = render::degrade_tables(&final_text, 0);
                    result = kit::close(out, &mut card, Some(&degraded), &summary).await;
                }
                kit::forget(out, &card.card_id).await;
                result.err().map(|e| {
                    tracing::warn!(
                        "[lark] [{}] closing card {} failed: {e}",
                        self.r.account(),
                        card.card_id
                    );
                    Some(card.message_id)
                })
            }
            Surface::Patch(p) => {
                let mut result = patch::close(out, &p, &final_text, &summary).await;
                if matches!(&result, Err(e) if is_table_error(e)) {
                    let degraded = render::degrade_tables(&final_text, 0);
                    result = patch::close(out, &p, &degraded, &summary).await;
                }
                result.err().map(|e| {
                    tracing::warn!("[lark] [{}] final PATCH failed: {e}", self.r.account());
                    Some(p.message_id)
                })
            }
        };
        if let Some(replaced) = failed {
            // Never lose text: what the card could not hold goes out as a
            // message, and the card stuck with part of it is recalled.
            self.r.mode_used = "text-fallback";
            let index = self.r.take_part();
            if self.send_final(index, &final_text).await {
                if let Some(message_id) = replaced.filter(|m| !m.is_empty()) {
                    self.recall(&message_id).await;
                }
            }
        }
    }

    /// Recalls a message of this reply that a final message replaced.
    async fn recall(&mut self, message_id: &str) {
        match self.r.out.client.recall_message(message_id).await {
            Ok(()) => self.r.message_ids.retain(|m| m != message_id),
            Err(e) => tracing::info!(
                "[lark] [{}] cannot recall {message_id}: {e}",
                self.r.account()
            ),
        }
    }

    /// Sends a part's final text as a message; false if that failed.
    async fn send_final(&mut self, index: usize, text: &str) -> bool {
        if text.trim().is_empty() {
            return true;
        }
        let summary = render::summary(text);
        // Card markdown (mentions as `<at id=…>`) stays a card unless it is plain.
        let target = if render::has_formatting(text) || text.contains("<at ") {
            Target::Card
        } else {
            Target::Text
        };
        match self
            .r
            .send_rendered_part(index, target, text, &summary)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("[lark] [{}] final message failed: {e}", self.r.account());
                false
            }
        }
    }

    /// The agent is done: the last part gets the full text and the notes
    /// (refused media, stopped, interrupted), then media follow.
    async fn finish(mut self, feed: &Feed) {
        let (text, outcome, media) =
            feed.with(|f| (f.text.clone(), f.outcome.clone(), f.media.clone()));
        let outcome = outcome.unwrap_or(Ok(()));
        let (ready, media_notes) =
            media::check(self.r.account(), &media, &self.r.plan.media_allowlist).await;
        self.roll_over_while_full(&text).await;
        let body = self.display(&text, true);
        let nothing = text.trim().is_empty();
        let mut tail: Vec<String> = media_notes;
        let mut final_text = body;
        match &outcome {
            Ok(()) if nothing && tail.is_empty() && ready.is_empty() => {
                final_text = notes::EMPTY_REPLY.to_string();
            }
            Ok(()) => {}
            Err(e) if nothing => {
                if e.kind != crate::agent::AgentErrorKind::Cancelled {
                    tail.push(notes::failure_message(&e.message));
                }
            }
            Err(_) => tail.push(notes::card_suffix(&outcome).trim_start().to_string()),
        }
        final_text.truncate(final_text.trim_end().len());
        for line in tail {
            if !final_text.trim().is_empty() {
                final_text.push_str("\n\n");
            }
            final_text.push_str(&line);
        }
        if !final_text.trim().is_empty() || !matches!(self.part.surface, Surface::Pending) {
            self.complete(final_text).await;
        }
        if let Some(res) = self.resume.take() {
            // The new text ended before reaching the card left open.
            self.close_orphan(&res.card).await;
        }
        media::send(self.r, ready).await;
    }
}

/// `Some(text)` when it differs from what the card shows.
fn changed<'t>(text: &'t str, shown: &str) -> Option<&'t str> {
    (text != shown).then_some(text)
}

/// Where the next part starts, given the current part (`prefix` + text from
/// `start`) and where its rollover cut it.
fn advance(prefix: &str, start: usize, roll: &Rollover) -> (String, usize) {
    if roll.tail_start >= prefix.len() {
        (
            roll.tail_prefix.clone(),
            start + roll.tail_start - prefix.len(),
        )
    } else {
        let rest = prefix.get(roll.tail_start..).unwrap_or("");
        (format!("{}{rest}", roll.tail_prefix), start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_past_the_head() {
        let roll = Rollover {
            head: "h".into(),
            tail_start: 10,
            tail_prefix: "```rust\n".into(),
        };
        assert_eq!(advance("", 0, &roll), ("```rust\n".to_string(), 10));
        assert_eq!(advance("```\n", 100, &roll), ("```rust\n".to_string(), 106));
        let inside = Rollover {
            head: "h".into(),
            tail_start: 2,
            tail_prefix: String::new(),
        };
        assert_eq!(advance("| a |\n", 50, &inside), ("a |\n".to_string(), 50));
    }

    #[test]
    fn unchanged_text_is_not_sent_again() {
        assert_eq!(changed("a", "a"), None);
        assert_eq!(changed("ab", "a"), Some("ab"));
    }
}
