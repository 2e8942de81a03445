//! Agent markdown to card markdown, posts and plain text, split under the platform's limits.
//!
//! Pure functions, no I/O. What a reply becomes:
//!
//! | agent markdown | card (JSON 2.0 `markdown`) | post (`md` node) | text |
//! |---|---|---|---|
//! | no formatting at all | — | — | sent as is ([`render`] picks text) |
//! | `#`..`######` headings | `#`→`####`, others→`#####` when H1-H3 occur (large ones render oversized) | same | — |
//! | lists, quotes, code fences, links, bold/italic/strike | kept; nested items re-indented to 4 spaces per level | same; each code block gets its own `md` paragraph | — |
//! | pipe tables | first 3 kept, the rest become aligned code blocks (a 4th fails the card: 230099/11310) | all become aligned code blocks (`md` has no tables) | — |
//! | `![alt](https://…)` | link `[alt](https://…)` (cards and posts take only uploaded `img_` keys) | same | — |
//! | `@Name` of a known member | `<at id=ou_…></at>` | `<at user_id="ou_…">Name</at>` | same as post |
//!
//! Long replies are split at block boundaries so that every part, once wrapped by
//! [`Target::content`], stays [`RESERVED_BYTES`] under the message limit (30 KB
//! card/post, 150 KB text), leaving room for a title, footer or button.

mod blocks;
mod mentions;
mod split;
mod stream;
mod style;
mod tables;

use lark_wire::card;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use mentions::MentionMap;
pub use split::{split_for_limit, split_head, Rollover, MIN_PART_BYTES};
pub use stream::{stream_safe, summary, BlockSplitter};
pub use style::has_formatting;
pub use tables::{count_tables, degrade_tables};

use mentions::{rewrite_mentions, MentionStyle};

/// Bytes of every message limit left free for a card title, footer or button.
pub const RESERVED_BYTES: usize = 2048;

/// The message type a reply is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `interactive`: a card JSON 2.0 with a markdown element.
    Card,
    /// `post` with `md` nodes.
    Post,
    /// `text`.
    Text,
}

impl Target {
    /// The `msg_type` of the send/reply call.
    pub fn msg_type(self) -> &'static str {
        match self {
            Target::Card => "interactive",
            Target::Post => "post",
            Target::Text => "text",
        }
    }

    /// The platform's limit on the serialised `content`, in bytes.
    pub fn max_bytes(self) -> usize {
        match self {
            Target::Card => card::CARD_MAX_BYTES,
            Target::Post => card::POST_MAX_BYTES,
            Target::Text => card::TEXT_MAX_BYTES,
        }
    }

    /// The `content` of a message holding one rendered part: a static card (summary
    /// from [`summary`]), a post (one `md` paragraph per code block and per run of
    /// other blocks), or `{"text":…}`.
    pub fn content(self, part: &str) -> Value {
        match self {
            Target::Card => card::final_card(
                part,
                &card::CardOptions {
                    summary: Some(summary(part)),
                    ..card::CardOptions::default()
                },
            ),
            Target::Post => card::post_md_paragraphs(&post_segments(part)),
            Target::Text => card::text(part),
        }
    }
}

/// A reply ready to send: its message type and its parts, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// How every part is sent.
    pub target: Target,
    /// Markdown (or text) of each message; part `i` is sent with
    /// `uuid = part_uuid(base, i)`. Empty when the reply is blank.
    pub parts: Vec<String>,
    /// One-line preview of each part ([`summary`], mentions shown as `@Name`), the
    /// card's `config.summary`.
    pub summaries: Vec<String>,
}

impl Rendered {
    /// The `content` value of each part: a static card with the part's summary, a
    /// post, or a text ([`Target::content`]).
    pub fn contents(&self) -> Vec<Value> {
        self.parts
            .iter()
            .zip(&self.summaries)
            .map(|(part, summary)| match self.target {
                Target::Card => card::final_card(
                    part,
                    &card::CardOptions {
                        summary: Some(summary.clone()),
                        ..card::CardOptions::default()
                    },
                ),
                target => target.content(part),
            })
            .collect()
    }
}

/// Renders an agent reply: plain text when it has no formatting
/// ([`has_formatting`]), otherwise as `rich` (a [`Target::Text`] preference becomes a
/// post, since text would show raw markup).
pub fn render(markdown: &str, rich: Target, mentions: &MentionMap) -> Rendered {
    let target = if !has_formatting(markdown) {
        Target::Text
    } else if rich == Target::Text {
        Target::Post
    } else {
        rich
    };
    render_as(markdown, target, mentions)
}

/// Renders an agent reply as `target`, split into parts that fit.
pub fn render_as(markdown: &str, target: Target, mentions: &MentionMap) -> Rendered {
    let text = rewrite(markdown, target, mentions);
    let limit = target.max_bytes() - RESERVED_BYTES;
    let budget = card::markdown_budget(&target.content(""), limit);
    let mut parts = Vec::new();
    fit(&text, budget, target, limit, &mut parts);
    let summaries = parts
        .iter()
        .map(|p| summary(&mentions::card_mentions_as_names(p, mentions)))
        .collect();
    Rendered {
        target,
        parts,
        summaries,
    }
}

/// The whole reply rewritten for `target` without splitting (for a streaming card:
/// feed the result through [`stream_safe`], and [`split_head`] when it grows past a
/// card).
pub fn prepare(markdown: &str, target: Target, mentions: &MentionMap) -> String {
    finish_part(&rewrite(markdown, target, mentions), target)
}

/// Bytes of markdown a streaming card built with `opts` holds within the card limit
/// (less [`RESERVED_BYTES`] for the final summary and footer).
pub fn stream_budget(opts: &card::CardOptions) -> usize {
    let empty = card::streaming_card("", &card::ElementId::stream(), opts);
    card::markdown_budget(&empty, card::CARD_MAX_BYTES - RESERVED_BYTES)
}

/// Where to roll a streamed card over to a new one. `raw` is the agent's text shown
/// in the current card; returns `None` while its [`prepare`]d form fits `max_bytes`.
/// Otherwise `head` is the prepared text to leave in the current card (fences
/// closed, within `max_bytes`) and the next card continues with the raw text
/// `tail_prefix + &raw[tail_start..]`.
pub fn card_rollover(raw: &str, mentions: &MentionMap, max_bytes: usize) -> Option<Rollover> {
    let max_bytes = max_bytes.max(MIN_PART_BYTES);
    if blocks::escaped_len(&prepare(raw, Target::Card, mentions)) <= max_bytes {
        return None;
    }
    let mut budget = max_bytes;
    loop {
        let roll = split_head(raw, budget);
        let over = match &roll {
            Some(roll) => {
                let head = prepare(&roll.head, Target::Card, mentions);
                let size = blocks::escaped_len(&head);
                if size <= max_bytes || budget == MIN_PART_BYTES {
                    return Some(Rollover {
                        head,
                        ..roll.clone()
                    });
                }
                size - max_bytes
            }
            None if budget == MIN_PART_BYTES => return None,
            None => budget / 8,
        };
        budget = budget.saturating_sub(over + 256).max(MIN_PART_BYTES);
    }
}

/// A deterministic idempotency key (<= 50 chars) for part `index` of the reply
/// identified by `base` (e.g. the inbound `message_id`).
pub fn part_uuid(base: &str, index: usize) -> String {
    let digest = Sha256::digest(base.as_bytes());
    let mut out = String::with_capacity(48);
    for b in &digest[..12] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out.push('-');
    out.push_str(&index.to_string());
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Newlines normalised, then the target's rewrites (tables are left to
/// [`finish_part`], which sees each part).
fn rewrite(markdown: &str, target: Target, mentions: &MentionMap) -> String {
    let text = markdown.replace("\r\n", "\n");
    match target {
        Target::Text => rewrite_mentions(&text, mentions, MentionStyle::UserId).into_owned(),
        Target::Card | Target::Post => {
            let style = if target == Target::Card {
                MentionStyle::Card
            } else {
                MentionStyle::UserId
            };
            let text = style::images_to_links(&text);
            let text = style::demote_headings(&text);
            let text = style::normalize_list_indent(&text);
            rewrite_mentions(&text, mentions, style).into_owned()
        }
    }
}

/// Degrades the tables one message of `target` cannot show.
fn finish_part(part: &str, target: Target) -> String {
    match target {
        Target::Card => degrade_tables(part, card::MAX_TABLES_PER_CARD),
        Target::Post => degrade_tables(part, 0),
        Target::Text => part.to_owned(),
    }
}

/// Splits `text` at `budget`, finishes each part, and splits again with a smaller
/// budget any part whose wrapped content still exceeds `limit` (tables turned into
/// code and post paragraphs cost a little more than the markdown).
fn fit(text: &str, budget: usize, target: Target, limit: usize, out: &mut Vec<String>) {
    for piece in split_for_limit(text, budget) {
        let part = finish_part(&piece, target);
        let size = card::serialized_len(&target.content(&part));
        if size <= limit || budget <= MIN_PART_BYTES {
            out.push(part);
        } else {
            let smaller = budget
                .saturating_sub(size - limit + 256)
                .max(MIN_PART_BYTES);
            fit(&piece, smaller, target, limit, out);
        }
    }
}

/// A post part cut into `md` paragraphs: each code block alone, other blocks grouped.
fn post_segments(part: &str) -> Vec<&str> {
    let lines = blocks::lines(part);
    let mut segments = Vec::new();
    let mut group: Option<std::ops::Range<usize>> = None;
    for block in blocks::blocks(&lines) {
        let range = block.range(&lines);
        if matches!(block.kind, blocks::Kind::Code { .. }) {
            segments.extend(group.take().map(|g| &part[g]));
            segments.push(&part[range]);
        } else {
            group = Some(match group {
                Some(g) => g.start..range.end,
                None => range,
            });
        }
    }
    segments.extend(group.map(|g| &part[g]));
    segments
}

#[cfg(test)]
mod tests;
