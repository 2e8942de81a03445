//! The short notes a reply ends with when the turn did not end well.

use crate::agent::{AgentError, AgentErrorKind};

/// Longest error message shown to the user, in characters.
const REASON_MAX_CHARS: usize = 160;

/// Appended to a card or message whose turn was stopped (`/stop`, the Stop button).
pub(crate) const STOPPED_NOTE: &str = "\n\n— _(stopped)_";

/// Shown alone when the agent produced nothing at all.
pub(crate) const EMPTY_REPLY: &str = "(no content)";

/// What ends a card (or the last message) of a turn with this outcome:
/// nothing, the stopped note, or the interrupted note with the reason.
pub(crate) fn card_suffix(outcome: &Result<(), AgentError>) -> String {
    match outcome {
        Ok(()) => String::new(),
        Err(e) if e.kind == AgentErrorKind::Cancelled => STOPPED_NOTE.to_string(),
        Err(e) => interrupted_note(&e.message),
    }
}

/// `— (interrupted: <reason>)` on its own paragraph.
pub(crate) fn interrupted_note(message: &str) -> String {
    let reason = short_reason(message);
    if reason.is_empty() {
        lark_wire::card::INTERRUPTED_SUFFIX.to_string()
    } else {
        format!("\n\n— _(interrupted: {reason})_")
    }
}

/// The separate message of block and static replies whose agent failed.
pub(crate) fn failure_message(message: &str) -> String {
    let reason = short_reason(message);
    if reason.is_empty() {
        "⚠️ The agent failed.".to_string()
    } else {
        format!("⚠️ The agent failed: {reason}")
    }
}

/// One line, at most [`REASON_MAX_CHARS`] characters, markdown markup
/// escaped so that it cannot break the note's emphasis or the card.
pub(crate) fn short_reason(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(line.len().min(REASON_MAX_CHARS * 2));
    for (n, c) in line.chars().enumerate() {
        if n == REASON_MAX_CHARS {
            out.push('…');
            break;
        }
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_follow_the_outcome() {
        assert_eq!(card_suffix(&Ok(())), "");
        let stop = AgentError::new(AgentErrorKind::Cancelled, "cancelled");
        assert_eq!(card_suffix(&Err(stop)), STOPPED_NOTE);
        let fail = AgentError::new(AgentErrorKind::Unavailable, "HTTP 502\n from *upstream*");
        assert_eq!(
            card_suffix(&Err(fail)),
            "\n\n— _(interrupted: HTTP 502 from \\*upstream\\*)_"
        );
        assert_eq!(interrupted_note("  "), lark_wire::card::INTERRUPTED_SUFFIX);
    }

    #[test]
    fn reasons_are_short_and_escaped() {
        let long = "x".repeat(500);
        let r = short_reason(&long);
        assert_eq!(r.chars().count(), REASON_MAX_CHARS + 1);
        assert!(r.ends_with('…'));
        assert_eq!(short_reason("a_b <at>"), "a\\_b \\<at\\>");
        assert_eq!(failure_message("timeout"), "⚠️ The agent failed: timeout");
        assert_eq!(failure_message(""), "⚠️ The agent failed.");
    }
}
