//! Replies made of final messages: the one-message answer of an agent that
//! finished before a card was needed, `static` (one message, split when
//! over the limit) and `block` (each completed block as it completes).

use super::feed::Feed;
use super::send::Replier;
use super::{media, notes};
use crate::agent::{AgentError, AgentErrorKind};
use crate::render::{BlockSplitter, Target};

/// What the agent left when it finished.
struct Ending {
    text: String,
    outcome: Result<(), AgentError>,
    ready: Vec<media::Ready>,
    media_notes: Vec<String>,
}

async fn ending(r: &Replier<'_>, feed: &Feed) -> Ending {
    let (text, outcome, media) =
        feed.with(|f| (f.text.clone(), f.outcome.clone(), f.media.clone()));
    let (ready, media_notes) = media::check(r.account(), &media, &r.plan.media_allowlist).await;
    Ending {
        text,
        outcome: outcome.unwrap_or(Ok(())),
        ready,
        media_notes,
    }
}

/// `text` followed by each of `lines` as its own paragraph.
fn with_paragraphs(text: &str, lines: &[String]) -> String {
    let mut out = text.trim_end().to_string();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(line.trim());
    }
    out
}

/// The agent finished before a streaming card was created: the whole answer
/// (with a stopped or interrupted note) as one message, split only when it
/// is over the limit.
pub(crate) async fn finish_instant(r: &mut Replier<'_>, feed: &Feed) {
    r.mode_used = "static";
    let end = ending(r, feed).await;
    send_final(r, end, Target::Card, true).await;
}

/// `static`: waits for the whole answer, then sends it (in parts when over
/// the limit); a failure is reported in a separate message after the text.
pub(crate) async fn run_static(r: &mut Replier<'_>, feed: &Feed) {
    r.mode_used = "static";
    feed.wait_done().await;
    let end = ending(r, feed).await;
    send_final(r, end, Target::Card, false).await;
}

/// What closes a reply: notes under the text (media problems, "stopped",
/// an inline error, or the empty-reply note) and, when the error is not
/// shown inline, a separate failure message.
fn closing_notes(end: &Ending, inline_error: bool) -> (Vec<String>, Option<String>) {
    let wrote = !end.text.trim().is_empty();
    let mut lines = end.media_notes.clone();
    let mut after = None;
    match &end.outcome {
        Ok(()) if !wrote && lines.is_empty() && end.ready.is_empty() => {
            lines.push(notes::EMPTY_REPLY.to_string());
        }
        Ok(()) => {}
        Err(e) if e.kind == AgentErrorKind::Cancelled => {
            if wrote {
                lines.push(notes::STOPPED_NOTE.trim().to_string());
            }
        }
        Err(e) if wrote && inline_error => lines.push(notes::interrupted_note(&e.message)),
        Err(e) => after = Some(notes::failure_message(&e.message)),
    }
    (lines, after)
}

async fn send_final(r: &mut Replier<'_>, end: Ending, rich: Target, inline_error: bool) {
    let (lines, after) = closing_notes(&end, inline_error);
    let body = with_paragraphs(&end.text, &lines);
    r.send_markdown(&body, rich).await;
    if let Some(failure) = after {
        r.send_markdown(&failure, Target::Text).await;
    }
    media::send(r, end.ready).await;
}

/// `block`: every completed block (paragraph, list, table, code block) is
/// sent as its own message as soon as it is complete.
pub(crate) async fn run_block(r: &mut Replier<'_>, feed: &Feed) {
    r.mode_used = "block";
    let mut splitter = BlockSplitter::new();
    let mut consumed = 0;
    let mut seen = 0;
    loop {
        feed.wait_change(seen).await;
        let (delta, version, done) = feed.with(|f| {
            (
                f.text.get(consumed..).unwrap_or("").to_string(),
                f.version,
                f.done(),
            )
        });
        consumed += delta.len();
        seen = version;
        for block in splitter.push(&delta) {
            r.send_markdown(&block, Target::Post).await;
        }
        if done {
            break;
        }
    }
    let end = ending(r, feed).await;
    let mut rest = splitter.finish();
    let (lines, after) = closing_notes(&end, false);
    // Notes ride on the last block when there is one (one call less).
    match rest.last_mut() {
        Some(last) if !lines.is_empty() => *last = with_paragraphs(last, &lines),
        _ if !lines.is_empty() => rest.push(with_paragraphs("", &lines)),
        _ => {}
    }
    for block in rest {
        r.send_markdown(&block, Target::Post).await;
    }
    if let Some(failure) = after {
        r.send_markdown(&failure, Target::Text).await;
    }
    media::send(r, end.ready).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_appended() {
        assert_eq!(with_paragraphs("a\n", &["b".into(), " ".into()]), "a\n\nb");
        assert_eq!(with_paragraphs("", &["x".into()]), "x");
        assert_eq!(with_paragraphs("t", &[]), "t");
    }
}
