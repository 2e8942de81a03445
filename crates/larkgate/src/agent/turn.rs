//! What every backend shares around one turn: the agent's name and system
//! prompt, the whole-turn timeout, cancellation, and sending events.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AgentError, AgentErrorKind, AgentEvent, AgentRequest, EventSink};

/// Default whole-turn timeout.
pub(crate) const DEFAULT_TURN_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings every backend has.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    /// The `agents.<name>` key, used in error messages.
    pub(crate) name: String,
    /// The agent's own system prompt.
    pub(crate) system_prompt: Option<String>,
    /// Whole-turn timeout.
    pub(crate) turn_timeout: Duration,
}

impl Common {
    /// The system prompt for `request`: its override if set, else the
    /// agent's; an empty prompt means none.
    pub(crate) fn system_prompt<'a>(&'a self, request: &'a AgentRequest) -> Option<&'a str> {
        request
            .system_prompt
            .as_deref()
            .or(self.system_prompt.as_deref())
            .filter(|p| !p.trim().is_empty())
    }

    /// An error of `kind` whose message starts with the agent's name.
    pub(crate) fn error(&self, kind: AgentErrorKind, message: impl AsRef<str>) -> AgentError {
        AgentError::new(kind, format!("agent {}: {}", self.name, message.as_ref()))
    }

    /// The error for a turn that ran out of time.
    pub(crate) fn timed_out(&self) -> AgentError {
        self.error(
            AgentErrorKind::Timeout,
            format!(
                "no complete answer within {} s (timeoutSecs)",
                self.turn_timeout.as_secs()
            ),
        )
    }

    /// The error for a cancelled turn.
    pub(crate) fn cancelled(&self) -> AgentError {
        self.error(AgentErrorKind::Cancelled, "stopped")
    }

    /// Runs `turn` until it ends, `cancel` fires (the future is dropped, which
    /// closes its connections) or the whole-turn timeout passes.
    pub(crate) async fn guard<F>(
        &self,
        cancel: &CancellationToken,
        turn: F,
    ) -> Result<(), AgentError>
    where
        F: Future<Output = Result<(), AgentError>>,
    {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(self.cancelled()),
            result = tokio::time::timeout(self.turn_timeout, turn) => {
                result.unwrap_or_else(|_| Err(self.timed_out()))
            }
        }
    }

    /// Sends `event`; a closed channel means nobody waits for the reply any
    /// more, which ends the turn as cancelled.
    pub(crate) async fn emit(&self, out: &EventSink, event: AgentEvent) -> Result<(), AgentError> {
        out.send(event).await.map_err(|_| {
            self.error(
                AgentErrorKind::Cancelled,
                "the reply was abandoned (event channel closed)",
            )
        })
    }

    /// Sends a text delta unless it is empty.
    pub(crate) async fn emit_text(&self, out: &EventSink, text: String) -> Result<(), AgentError> {
        if text.is_empty() {
            return Ok(());
        }
        self.emit(out, AgentEvent::Delta(text)).await
    }
}

/// Shortens `text` to at most `max` characters (on a character boundary),
/// marking the cut with `…`.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(prompt: Option<&str>) -> Common {
        Common {
            name: "a".into(),
            system_prompt: prompt.map(str::to_string),
            turn_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn request_prompt_overrides_the_agents() {
        let mut request = AgentRequest::default();
        assert_eq!(common(Some("agent")).system_prompt(&request), Some("agent"));
        request.system_prompt = Some("group".into());
        assert_eq!(common(Some("agent")).system_prompt(&request), Some("group"));
        request.system_prompt = Some(" ".into());
        assert_eq!(common(Some("agent")).system_prompt(&request), None);
        assert_eq!(common(None).system_prompt(&AgentRequest::default()), None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo", 2), "hé…");
    }

    #[tokio::test]
    async fn guard_returns_cancelled_and_drops_the_turn() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = common(None)
            .guard(&cancel, std::future::pending())
            .await
            .unwrap_err();
        assert_eq!(err.kind, AgentErrorKind::Cancelled);
    }

    #[tokio::test]
    async fn emit_to_a_closed_channel_is_cancelled() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let err = common(None)
            .emit(&tx, AgentEvent::Delta("x".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, AgentErrorKind::Cancelled);
    }
}
