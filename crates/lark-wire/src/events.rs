//! Typed events beyond message receipt: reactions, bot added/removed, a user
//! entering the bot's 1:1 chat, recalls, and card callbacks. Decode with
//! [`Event::from_envelope`]; unknown event types become [`Event::Other`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, MessageReceive, UserId};

/// `reaction_type` of a reaction event.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ReactionType {
    /// Emoji name, such as `THUMBSUP`.
    #[serde(default)]
    pub emoji_type: String,
}

/// `im.message.reaction.created_v1` / `deleted_v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Reaction {
    /// The message reacted to.
    #[serde(default)]
    pub message_id: String,
    /// The emoji.
    #[serde(default)]
    pub reaction_type: ReactionType,
    /// `user` or `app`.
    #[serde(default)]
    pub operator_type: String,
    /// The reacting user (for `operator_type = user`).
    #[serde(default)]
    pub user_id: UserId,
    /// Milliseconds, as a string.
    #[serde(default)]
    pub action_time: String,
}

/// `im.chat.member.bot.added_v1` / `deleted_v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct BotMembership {
    /// The chat.
    #[serde(default)]
    pub chat_id: String,
    /// Who added or removed the bot.
    #[serde(default)]
    pub operator_id: UserId,
    /// Cross-tenant group.
    #[serde(default)]
    pub external: bool,
    /// The chat's name (per the docs).
    #[serde(default)]
    pub name: String,
}

/// `im.chat.access_event.bot_p2p_chat_entered_v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct P2pChatEntered {
    /// The 1:1 chat.
    #[serde(default)]
    pub chat_id: String,
    /// The user.
    #[serde(default)]
    pub operator_id: UserId,
}

/// `im.message.recalled_v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Recalled {
    /// The recalled message.
    #[serde(default)]
    pub message_id: String,
    /// Its chat.
    #[serde(default)]
    pub chat_id: String,
}

/// The `action` of a card callback.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct CardAction {
    /// The component's `value` (object or string).
    #[serde(default)]
    pub value: Value,
    /// Component tag, such as `button`.
    #[serde(default)]
    pub tag: String,
    /// Component name.
    #[serde(default)]
    pub name: Option<String>,
    /// Submitted form values.
    #[serde(default)]
    pub form_value: Option<Value>,
    /// Input text outside a form.
    #[serde(default)]
    pub input_value: Option<String>,
    /// Selected option.
    #[serde(default)]
    pub option: Option<String>,
}

/// `card.action.trigger`: a user pressed a button (or submitted a form) on a card.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CardActionTrigger {
    /// Who pressed it.
    pub operator: UserId,
    /// What was pressed.
    pub action: CardAction,
    /// The message holding the card.
    pub open_message_id: String,
    /// Its chat.
    pub open_chat_id: String,
    /// Delayed-update token (valid 30 min, at most 2 updates).
    pub token: String,
}

impl CardActionTrigger {
    fn from_event(event: &Value) -> Option<CardActionTrigger> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            operator: UserId,
            #[serde(default)]
            action: CardAction,
            #[serde(default)]
            token: String,
            #[serde(default)]
            context: Value,
            #[serde(default)]
            open_message_id: String,
            #[serde(default)]
            open_chat_id: String,
        }
        let raw = Raw::deserialize(event).ok()?;
        let ctx = |k: &str| {
            raw.context
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Some(CardActionTrigger {
            open_message_id: ctx("open_message_id").unwrap_or(raw.open_message_id),
            open_chat_id: ctx("open_chat_id").unwrap_or(raw.open_chat_id),
            operator: raw.operator,
            action: raw.action,
            token: raw.token,
        })
    }
}

/// A toast shown to the user who pressed a card button.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Toast {
    /// `info`, `success`, `error` or `warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub content: String,
}

/// The response to a card callback: an optional toast and an optional new card.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CardActionResponse {
    /// Toast to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toast: Option<Toast>,
    /// Replacement card: `{"type":"raw","data":{...}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<Value>,
}

impl CardActionResponse {
    /// JSON body (webhook response, or base64'd into the WS ack's `data`).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// An event the gateway understands.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `im.message.receive_v1`.
    MessageReceived(Box<MessageReceive>),
    /// `im.message.reaction.created_v1`.
    ReactionAdded(Reaction),
    /// `im.message.reaction.deleted_v1`.
    ReactionRemoved(Reaction),
    /// `im.chat.member.bot.added_v1`.
    BotAdded(BotMembership),
    /// `im.chat.member.bot.deleted_v1`.
    BotRemoved(BotMembership),
    /// `im.chat.access_event.bot_p2p_chat_entered_v1`.
    P2pChatEntered(P2pChatEntered),
    /// `im.message.recalled_v1`.
    Recalled(Recalled),
    /// `card.action.trigger`.
    CardAction(Box<CardActionTrigger>),
    /// Anything else, or a known type whose body did not fit.
    Other(String),
}

impl Event {
    /// Types the envelope's event; never fails.
    pub fn from_envelope(env: &Envelope) -> Event {
        let ty = env.header.event_type.as_str();
        let typed = match ty {
            "im.message.receive_v1" => env
                .message_receive()
                .map(|m| Event::MessageReceived(Box::new(m))),
            "im.message.reaction.created_v1" => {
                env.event_as::<Reaction>().map(Event::ReactionAdded)
            }
            "im.message.reaction.deleted_v1" => {
                env.event_as::<Reaction>().map(Event::ReactionRemoved)
            }
            "im.chat.member.bot.added_v1" => env.event_as::<BotMembership>().map(Event::BotAdded),
            "im.chat.member.bot.deleted_v1" => {
                env.event_as::<BotMembership>().map(Event::BotRemoved)
            }
            "im.chat.access_event.bot_p2p_chat_entered_v1" => {
                env.event_as::<P2pChatEntered>().map(Event::P2pChatEntered)
            }
            "im.message.recalled_v1" => env.event_as::<Recalled>().map(Event::Recalled),
            "card.action.trigger" => CardActionTrigger::from_event(&env.event_value())
                .map(|c| Event::CardAction(Box::new(c))),
            _ => None,
        };
        typed.unwrap_or_else(|| Event::Other(ty.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: &str, body: &str) -> Event {
        let json = format!(
            r#"{{"schema":"2.0","header":{{"event_id":"e","event_type":"{ty}"}},"event":{body}}}"#
        );
        Event::from_envelope(&Envelope::parse(json.as_bytes()).unwrap())
    }

    #[test]
    fn card_action_trigger_with_context_and_legacy_ids() {
        let e = event(
            "card.action.trigger",
            r#"{"operator":{"open_id":"ou_1"},"token":"c-1","action":{"value":{"cmd":"stop"},"tag":"button"},"context":{"open_message_id":"om_1","open_chat_id":"oc_1"}}"#,
        );
        let Event::CardAction(c) = e else {
            panic!("{e:?}")
        };
        assert_eq!(c.operator.open_id, "ou_1");
        assert_eq!(c.action.value["cmd"], "stop");
        assert_eq!(c.open_message_id, "om_1");
        let legacy = event(
            "card.action.trigger",
            r#"{"open_message_id":"om_2","action":{"tag":"button"}}"#,
        );
        assert!(matches!(legacy, Event::CardAction(c) if c.open_message_id == "om_2"));
    }

    #[test]
    fn reactions_membership_entered_recalled() {
        let r = event(
            "im.message.reaction.created_v1",
            r#"{"message_id":"om_1","reaction_type":{"emoji_type":"THUMBSUP"},"operator_type":"user","user_id":{"open_id":"ou_1"}}"#,
        );
        assert!(
            matches!(r, Event::ReactionAdded(ref x) if x.reaction_type.emoji_type == "THUMBSUP")
        );
        let b = event(
            "im.chat.member.bot.added_v1",
            r#"{"chat_id":"oc_1","name":"team"}"#,
        );
        assert!(matches!(b, Event::BotAdded(ref x) if x.chat_id == "oc_1"));
        let p = event(
            "im.chat.access_event.bot_p2p_chat_entered_v1",
            r#"{"chat_id":"oc_2","operator_id":{"open_id":"ou_2"}}"#,
        );
        assert!(matches!(p, Event::P2pChatEntered(ref x) if x.operator_id.open_id == "ou_2"));
        let d = event(
            "im.message.recalled_v1",
            r#"{"message_id":"om_9","chat_id":"oc_1"}"#,
        );
        assert!(matches!(d, Event::Recalled(ref x) if x.message_id == "om_9"));
    }

    #[test]
    fn unknown_and_ill_fitting_events_are_other() {
        assert_eq!(
            event("brand.new_v9", "{}"),
            Event::Other("brand.new_v9".into())
        );
        assert_eq!(
            event("im.message.receive_v1", r#"{"message":42}"#),
            Event::Other("im.message.receive_v1".into())
        );
    }

    #[test]
    fn card_response_json() {
        let r = CardActionResponse {
            toast: Some(Toast {
                kind: "info".into(),
                content: "stopped".into(),
            }),
            card: None,
        };
        assert_eq!(
            r.to_json(),
            br#"{"toast":{"type":"info","content":"stopped"}}"#.to_vec()
        );
        assert_eq!(CardActionResponse::default().to_json(), b"{}".to_vec());
    }
}
