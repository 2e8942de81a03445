//! What both inbound modes (long connection and webhook) hand to the
//! consumer: a [`Delivery`] with the whole event JSON and an [`AckHandle`].
//!
//! The consumer acks after it recorded the event durably. For the long
//! connection the ack frame goes back on the socket that received the event
//! (an ack for a socket that has since died is dropped: the platform
//! redelivers); for a webhook the pending HTTP request is answered. A handle
//! dropped without an answer counts as [`AckHandle::fail`].

use std::time::Instant;

use lark_wire::AckTemplate;
use tokio::sync::{mpsc, oneshot};

/// Where a delivery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The long connection.
    Ws,
    /// An HTTP callback.
    Webhook,
}

/// One event (or card callback) to process.
pub struct Delivery {
    /// The whole (reassembled, decrypted) event JSON.
    pub payload: Vec<u8>,
    /// Where it came from.
    pub source: Source,
    /// A `type = card` frame of the long connection (legacy card callback).
    pub card: bool,
    /// When the event was complete on our side.
    pub received_at: Instant,
    /// Answer the platform with this.
    pub ack: AckHandle,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("source", &self.source)
            .field("card", &self.card)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// How a delivery was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Handled; with the callback response body, if any.
    Acked(Option<Vec<u8>>),
    /// Not handled (or the handle was dropped): the platform will redeliver.
    Failed,
}

enum Target {
    Ws {
        frame: AckTemplate,
        received_at: Instant,
        socket: mpsc::UnboundedSender<Vec<u8>>,
    },
    Channel(oneshot::Sender<AckOutcome>),
}

/// Completes one delivery exactly once: [`AckHandle::ack`],
/// [`AckHandle::fail`], or drop (= fail).
pub struct AckHandle {
    target: Option<Target>,
}

impl std::fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckHandle")
            .field("pending", &self.target.is_some())
            .finish()
    }
}

/// The other end of [`AckHandle::channel`].
#[derive(Debug)]
pub struct AckReceiver(oneshot::Receiver<AckOutcome>);

impl AckReceiver {
    /// Waits for the outcome.
    pub async fn outcome(self) -> AckOutcome {
        self.0.await.unwrap_or(AckOutcome::Failed)
    }
}

impl AckHandle {
    /// A handle whose outcome is read from the returned receiver (for the
    /// webhook receiver, custom sources and tests).
    pub fn channel() -> (AckHandle, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        (
            AckHandle {
                target: Some(Target::Channel(tx)),
            },
            AckReceiver(rx),
        )
    }

    /// A handle that writes the ack of the delivered frame (`frame`) on a
    /// socket's writer.
    pub(crate) fn ws(
        frame: AckTemplate,
        received_at: Instant,
        socket: mpsc::UnboundedSender<Vec<u8>>,
    ) -> AckHandle {
        AckHandle {
            target: Some(Target::Ws {
                frame,
                received_at,
                socket,
            }),
        }
    }

    /// Acknowledges; `response_body` is the callback response (e.g. the
    /// `card.action.trigger` toast/card JSON), if any.
    pub fn ack(mut self, response_body: Option<Vec<u8>>) {
        self.complete(AckOutcome::Acked(response_body));
    }

    /// Reports failure (code 500): the platform will redeliver.
    pub fn fail(mut self) {
        self.complete(AckOutcome::Failed);
    }

    fn complete(&mut self, outcome: AckOutcome) {
        match self.target.take() {
            None => {}
            Some(Target::Channel(tx)) => {
                let _ = tx.send(outcome);
            }
            Some(Target::Ws {
                frame,
                received_at,
                socket,
            }) => {
                let (code, body) = match &outcome {
                    AckOutcome::Acked(body) => (200, body.as_deref()),
                    AckOutcome::Failed => (500, None),
                };
                let biz_rt = u64::try_from(received_at.elapsed().as_millis()).unwrap_or(u64::MAX);
                let ack = frame.ack(code, biz_rt, body);
                // A closed socket means the connection died: the platform redelivers.
                let _ = socket.send(ack);
            }
        }
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        self.complete(AckOutcome::Failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lark_wire::frame::{Frame, Header, METHOD_DATA};
    use lark_wire::FrameRef;

    #[tokio::test]
    async fn channel_outcomes() {
        let (h, rx) = AckHandle::channel();
        h.ack(Some(b"{}".to_vec()));
        assert_eq!(rx.outcome().await, AckOutcome::Acked(Some(b"{}".to_vec())));
        let (h, rx) = AckHandle::channel();
        drop(h);
        assert_eq!(rx.outcome().await, AckOutcome::Failed);
    }

    #[test]
    fn ws_ack_frames() {
        let frame = Frame {
            seq_id: 3,
            method: METHOD_DATA,
            headers: vec![Header::new("type", "event")],
            ..Frame::default()
        };
        let bytes = frame.to_bytes();
        let frame = FrameRef::decode(&bytes).unwrap().ack_template();
        let (tx, mut rx) = mpsc::unbounded_channel();
        AckHandle::ws(frame.clone(), Instant::now(), tx.clone()).ack(None);
        let ack = Frame::decode_bytes(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(ack.payload.as_deref(), Some(&b"{\"code\":200}"[..]));
        assert!(ack.header("biz_rt").is_some());
        drop(AckHandle::ws(frame, Instant::now(), tx));
        let ack = Frame::decode_bytes(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(ack.payload.as_deref(), Some(&b"{\"code\":500}"[..]));
    }
}
