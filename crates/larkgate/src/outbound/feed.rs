//! The agent's output as it arrives: one growing text, the media it asked
//! for, and the outcome once its run future resolved.
//!
//! [`pump`] is the producer (it polls the agent's future and drains its event
//! channel); the reply driver is the only consumer. Both run in the same task
//! (`tokio::join!`), so dropping the reply future stops both. The consumer
//! never queues frames: it reads the latest full text when it is ready to
//! push, which is what coalescing means here.

use std::sync::{Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, Notify};

use crate::agent::{AgentError, AgentErrorKind, AgentEvent, OutboundMedia};

/// What the agent produced so far.
#[derive(Debug, Default)]
pub(crate) struct FeedState {
    /// The full raw markdown so far.
    pub text: String,
    /// Bumped on every change (text, media, end).
    pub version: u64,
    /// Files and images to send after the text, in order.
    pub media: Vec<OutboundMedia>,
    /// Set once the agent's future resolved (and the channel was drained).
    pub outcome: Option<Result<(), AgentError>>,
}

impl FeedState {
    /// Whether the agent is finished.
    pub fn done(&self) -> bool {
        self.outcome.is_some()
    }
}

/// The shared state plus a wake-up for the consumer.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    changed: Notify,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // state (a string and a list) is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the state (never held across an await).
    pub fn with<R>(&self, f: impl FnOnce(&FeedState) -> R) -> R {
        f(&self.lock())
    }

    /// Whether the agent is finished.
    pub fn done(&self) -> bool {
        self.with(FeedState::done)
    }

    /// Waits until the version differs from `seen` or the agent is done.
    pub async fn wait_change(&self, seen: u64) {
        loop {
            if self.with(|s| s.version != seen || s.done()) {
                return;
            }
            // `notify_one` stores a permit when nobody waits, so a change
            // between the check and this await is not missed.
            self.changed.notified().await;
        }
    }

    /// Waits until the agent is done.
    pub async fn wait_done(&self) {
        while !self.done() {
            self.changed.notified().await;
        }
    }

    fn apply(&self, event: AgentEvent) {
        {
            let mut s = self.lock();
            match event {
                AgentEvent::Delta(d) if d.is_empty() => return,
                AgentEvent::Delta(d) => s.text.push_str(&d),
                AgentEvent::Media(m) => s.media.push(m),
                AgentEvent::Usage { .. } => return,
            }
            s.version += 1;
        }
        self.changed.notify_one();
    }

    fn finish(&self, outcome: Result<(), AgentError>) {
        {
            let mut s = self.lock();
            s.outcome = Some(outcome);
            s.version += 1;
        }
        self.changed.notify_one();
    }

    /// Takes the final text and outcome (after [`pump`] returned).
    pub fn into_result(self) -> (String, Result<(), AgentError>) {
        let state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let outcome = state.outcome.unwrap_or_else(|| {
            Err(AgentError::new(
                AgentErrorKind::Protocol,
                "the agent's run ended without an outcome",
            ))
        });
        (state.text, outcome)
    }
}

/// Polls the agent's run future and drains its events into `feed` until the
/// future resolves; then drains what is still buffered and records the
/// outcome. Events already waiting are applied before the outcome is looked
/// at, so no delta sent before the agent returned is lost.
pub(crate) async fn pump(
    feed: &Feed,
    mut events: mpsc::Receiver<AgentEvent>,
    mut agent: BoxFuture<'_, Result<(), AgentError>>,
) {
    let mut open = true;
    let outcome = loop {
        tokio::select! {
            biased;
            event = events.recv(), if open => match event {
                Some(event) => feed.apply(event),
                None => open = false,
            },
            outcome = &mut agent => break outcome,
        }
    };
    while let Ok(event) = events.try_recv() {
        feed.apply(event);
    }
    feed.finish(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AttachmentKind;

    #[tokio::test]
    async fn deltas_sent_before_the_end_are_kept() {
        let feed = Feed::default();
        let (tx, rx) = mpsc::channel(4);
        let agent = Box::pin(async move {
            for d in ["a", "", "b", "c", "d", "e", "f"] {
                tx.send(AgentEvent::Delta(d.into())).await.ok();
            }
            tx.send(AgentEvent::Media(OutboundMedia {
                kind: AttachmentKind::Image,
                source: "/x.png".into(),
                name: None,
            }))
            .await
            .ok();
            Err(AgentError::new(AgentErrorKind::Exit, "boom"))
        });
        let consumer = async {
            feed.wait_done().await;
            feed.with(|s| s.text.clone())
        };
        let ((), text) = tokio::join!(pump(&feed, rx, agent), consumer);
        assert_eq!(text, "abcdef");
        assert_eq!(feed.with(|s| s.media.len()), 1);
        let (text, outcome) = feed.into_result();
        assert_eq!(text, "abcdef");
        assert_eq!(outcome.unwrap_err().message, "boom");
    }

    #[tokio::test]
    async fn a_closed_channel_does_not_spin() {
        let feed = Feed::default();
        let (tx, rx) = mpsc::channel::<AgentEvent>(1);
        drop(tx);
        let agent = Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(())
        });
        pump(&feed, rx, agent).await;
        assert!(feed.done());
        assert!(feed.into_result().1.is_ok());
    }
}
