//! Conversations: session keys, one turn at a time per session, commands.
//!
//! A session is what history and ordering are keyed by ([`session_key`]).
//! [`Conversations`] runs the turns of each session one at a time, in arrival
//! order, while different sessions run concurrently; waiting turns are
//! bounded per session, and `/stop` cancels the running turn without waiting
//! in line ([`Conversations::stop`]).

pub mod commands;
mod conversations;

pub use commands::{parse_command, Command};
pub use conversations::{Conversations, Runner, SessionStatus, StopOutcome, Submitted};

use crate::config::SessionScope;

/// Where a message sits, as far as sessions care.
#[derive(Clone, Copy, Debug, Default)]
pub struct Place<'a> {
    /// `oc_…`.
    pub chat_id: &'a str,
    /// A 1:1 chat.
    pub p2p: bool,
    /// The sender's `ou_…`.
    pub sender_open_id: &'a str,
    /// `omt_…` when the message is in a topic.
    pub thread_id: Option<&'a str>,
    /// The thread root, for replies.
    pub root_id: Option<&'a str>,
}

/// The session key of a message under `scope`. A 1:1 chat is always one
/// session; in groups the scope picks chat, sender, topic or topic and sender.
/// The topic is the `thread_id`, else the `root_id`, else the chat itself.
pub fn session_key(scope: SessionScope, place: &Place<'_>) -> String {
    if place.p2p {
        return place.chat_id.to_string();
    }
    let topic = place.thread_id.or(place.root_id).filter(|t| !t.is_empty());
    match (scope, topic) {
        (SessionScope::Chat, _) => place.chat_id.to_string(),
        (SessionScope::Sender, _) => format!("{}#{}", place.chat_id, place.sender_open_id),
        (SessionScope::Topic, Some(t)) => format!("{}/{t}", place.chat_id),
        (SessionScope::Topic, None) => place.chat_id.to_string(),
        (SessionScope::TopicSender, Some(t)) => {
            format!("{}/{t}#{}", place.chat_id, place.sender_open_id)
        }
        (SessionScope::TopicSender, None) => {
            format!("{}#{}", place.chat_id, place.sender_open_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(
        p2p: bool,
        thread: Option<&'static str>,
        root: Option<&'static str>,
    ) -> Place<'static> {
        Place {
            chat_id: "oc_1",
            p2p,
            sender_open_id: "ou_a",
            thread_id: thread,
            root_id: root,
        }
    }

    #[test]
    fn keys_per_scope() {
        let t = place(false, Some("omt_9"), Some("om_r"));
        assert_eq!(session_key(SessionScope::Chat, &t), "oc_1");
        assert_eq!(session_key(SessionScope::Sender, &t), "oc_1#ou_a");
        assert_eq!(session_key(SessionScope::Topic, &t), "oc_1/omt_9");
        assert_eq!(
            session_key(SessionScope::TopicSender, &t),
            "oc_1/omt_9#ou_a"
        );
        let r = place(false, None, Some("om_r"));
        assert_eq!(session_key(SessionScope::Topic, &r), "oc_1/om_r");
        let plain = place(false, None, None);
        assert_eq!(session_key(SessionScope::Topic, &plain), "oc_1");
        assert_eq!(session_key(SessionScope::TopicSender, &plain), "oc_1#ou_a");
        assert_eq!(
            session_key(SessionScope::TopicSender, &place(true, Some("omt_9"), None)),
            "oc_1"
        );
    }
}
