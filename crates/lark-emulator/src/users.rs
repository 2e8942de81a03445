//! What users do: send messages to bots, press card buttons.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::content;
use crate::error::Error;
use crate::events;
use crate::ids;
use crate::im::{mime_for, sniff_image};
use crate::model::{
    CardPress, CardPressResult, DeliveredEvent, ForwardedMessage, RawEvent, SentMessage,
    UserMessage, UserReaction,
};
use crate::state::{
    new_message, now_ms, Actor, CallbackOutcome, ChatMode, Core, Message, OutEvent, Resource,
    ResourceKind, State,
};

/// A 1×1 PNG used as a video cover.
const COVER_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// JSON content given as an object or as a JSON string.
fn content_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn store_resource(st: &mut State, kind: ResourceKind, bytes: Vec<u8>, file_name: &str) -> String {
    let (key, mime) = match kind {
        ResourceKind::Image => (
            format!("img_v3_{}", ids::hex(32)),
            sniff_image(&bytes).unwrap_or("image/png").to_string(),
        ),
        ResourceKind::File => (
            format!("file_v3_{}", ids::hex(32)),
            mime_for(file_name).to_string(),
        ),
    };
    st.resources.insert(
        key.clone(),
        Resource {
            bytes: Bytes::from(bytes),
            file_name: file_name.to_string(),
            mime,
            kind,
            owner_app: None,
        },
    );
    key
}

/// Mentions placed in a user's text: `(content text, rendered text, mentions)`.
fn place_mentions(
    st: &mut State,
    app_id: &str,
    req: &UserMessage,
    text: &str,
) -> (String, String, Vec<Value>) {
    let tenant_key = st.tenant_key(app_id);
    let mut mentioned: Vec<(String, Value)> = Vec::new();
    if req.mentions_bot {
        if let Ok(app) = st.app(app_id) {
            let bot = &app.info;
            mentioned.push((
                bot.bot_name.clone(),
                json!({"union_id": format!("on_{}", ids::stable_hex(&bot.bot_open_id, 32)), "open_id": bot.bot_open_id}),
            ));
        }
    }
    for open_id in &req.mentions {
        let id = st.ensure_user(Some(open_id), None);
        mentioned.push((st.user_name(&id), events::user_ids(st, &id)));
    }
    let mut mentions = Vec::new();
    let mut keys = Vec::new();
    let mut rendered_text = text.to_string();
    for (i, (name, id)) in mentioned.into_iter().enumerate() {
        let key = format!("@_user_{}", i + 1);
        rendered_text = rendered_text.replace(&key, &format!("@{name}"));
        mentions.push(json!({"key": key, "id": id, "name": name, "tenant_key": tenant_key}));
        keys.push((key, name));
    }
    let placed = text.contains("@_user_") || text.contains("@_all");
    if placed {
        return (
            text.to_string(),
            rendered_text.replace("@_all", "@all"),
            mentions,
        );
    }
    let mut prefix = String::new();
    let mut shown = String::new();
    for (key, name) in &keys {
        prefix.push_str(key);
        prefix.push(' ');
        shown.push_str(&format!("@{name} "));
    }
    if req.mention_all {
        prefix.push_str("@_all ");
        shown.push_str("@all ");
    }
    (
        format!("{prefix}{text}"),
        format!("{shown}{text}"),
        mentions,
    )
}

impl Core {
    /// The chat a user message goes to, created on demand.
    fn user_chat(
        &self,
        st: &mut State,
        app_id: &str,
        sender: &str,
        req: &UserMessage,
    ) -> Result<String, Error> {
        let mode = match req.chat_type.as_deref() {
            None | Some("p2p") => ChatMode::P2p,
            Some("group") => ChatMode::Group,
            Some("topic") | Some("topic_group") => ChatMode::Topic,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "chat_type {other:?}: use p2p, group or topic"
                )))
            }
        };
        let chat_id = match (&req.chat_id, mode) {
            (Some(id), _) if st.chats.contains_key(id) => {
                if st.chats.get(id).is_some_and(|c| c.app_id != app_id) {
                    return Err(Error::Invalid(format!("chat {id} belongs to another app")));
                }
                id.clone()
            }
            (None, ChatMode::P2p) => st.p2p_chat(app_id, sender),
            (Some(id), ChatMode::P2p) => {
                let key = (app_id.to_string(), sender.to_string());
                if st.p2p.contains_key(&key) {
                    return Err(Error::Invalid(format!(
                        "the sender already has a p2p chat; chat {id} is unknown"
                    )));
                }
                let name = st.user_name(sender);
                st.insert_chat(id, app_id, ChatMode::P2p, name, sender);
                st.p2p.insert(key, id.clone());
                id.clone()
            }
            (id, mode) => {
                let id = id.clone().unwrap_or_else(ids::chat_id);
                let name = format!("Group {}", st.chats.len() + 1);
                st.insert_chat(&id, app_id, mode, name, sender);
                id
            }
        };
        if let Some(chat) = st.chats.get_mut(&chat_id) {
            if !chat.members.iter().any(|m| m == sender) {
                chat.members.push(sender.to_string());
            }
        }
        Ok(chat_id)
    }

    /// Content JSON for a user message, plus its rendered text.
    fn user_content(
        &self,
        st: &mut State,
        app_id: &str,
        msg_type: &str,
        req: &UserMessage,
    ) -> Result<(String, Option<String>, Vec<Value>), Error> {
        let decode =
            |st: &mut State, kind: ResourceKind, default_name: &str| -> Result<String, Error> {
                let data = req
                    .data
                    .as_deref()
                    .ok_or_else(|| Error::Invalid(format!("{msg_type} needs base64 data")))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| Error::Invalid(format!("data is not base64: {e}")))?;
                let name = req
                    .file_name
                    .clone()
                    .unwrap_or_else(|| default_name.to_string());
                Ok(store_resource(st, kind, bytes, &name))
            };
        if let Some(c) = &req.content {
            if msg_type != "text" || req.text.is_none() {
                return Ok((content_string(c), None, Vec::new()));
            }
        }
        let duration = req.duration_ms.unwrap_or(2000);
        let file_name = req
            .file_name
            .clone()
            .unwrap_or_else(|| "file.bin".to_string());
        let content = match msg_type {
            "text" => {
                let text = req.text.clone().unwrap_or_default();
                let (content_text, rendered, mentions) = place_mentions(st, app_id, req, &text);
                return Ok((
                    json!({ "text": content_text }).to_string(),
                    Some(rendered),
                    mentions,
                ));
            }
            "post" => {
                let text = req.text.clone().unwrap_or_default();
                let (content_text, rendered, mentions) = place_mentions(st, app_id, req, &text);
                let post =
                    json!({"title": "", "content": [[{"tag": "text", "text": content_text}]]});
                return Ok((post.to_string(), Some(rendered), mentions));
            }
            "image" => json!({ "image_key": decode(st, ResourceKind::Image, "image.png")? }),
            "file" => {
                json!({ "file_key": decode(st, ResourceKind::File, "file.bin")?, "file_name": file_name })
            }
            "audio" => {
                json!({ "file_key": decode(st, ResourceKind::File, "audio.opus")?, "duration": duration })
            }
            "media" => {
                let file_key = decode(st, ResourceKind::File, "video.mp4")?;
                let cover =
                    store_resource(st, ResourceKind::Image, COVER_PNG.to_vec(), "cover.png");
                json!({"file_key": file_key, "image_key": cover, "file_name": req.file_name.clone().unwrap_or_else(|| "video.mp4".into()), "duration": duration})
            }
            "sticker" => json!({ "file_key": decode(st, ResourceKind::File, "sticker")? }),
            "merge_forward" => json!({ "content": "Merged and Forwarded Message" }),
            other => return Err(Error::Invalid(format!("msg_type {other} needs content"))),
        };
        Ok((content.to_string(), None, Vec::new()))
    }

    fn forwarded_children(
        &self,
        st: &mut State,
        chat_id: &str,
        parent_id: &str,
        items: &[ForwardedMessage],
        create_ms: i64,
    ) -> Vec<String> {
        items
            .iter()
            .map(|item| {
                let sender = st.ensure_user(item.sender_open_id.as_deref(), None);
                let msg_type = item.msg_type.clone().unwrap_or_else(|| "text".into());
                let content = match (&item.content, &item.text) {
                    (Some(c), _) => content_string(c),
                    (None, text) => json!({"text": text.clone().unwrap_or_default()}).to_string(),
                };
                let id = ids::message_id();
                let mut msg = new_message(
                    id.clone(),
                    chat_id.to_string(),
                    Actor::User(sender),
                    &msg_type,
                    content,
                    create_ms,
                );
                msg.upper_message_id = Some(parent_id.to_string());
                st.insert_message(msg, false);
                id
            })
            .collect()
    }

    /// A user sends a message: stored in the chat, delivered as
    /// `im.message.receive_v1`.
    pub fn send_user_message(self: &Arc<Self>, req: UserMessage) -> Result<SentMessage, Error> {
        let mut st = self.lock();
        let app_id = st.resolve_app(req.app_id.as_deref())?;
        let sender = st.ensure_user(req.sender_open_id.as_deref(), req.sender_name.as_deref());
        let chat_id = self.user_chat(&mut st, &app_id, &sender, &req)?;
        let msg_type = req.msg_type.clone().unwrap_or_else(|| "text".into());
        let (content, text, mentions) = self.user_content(&mut st, &app_id, &msg_type, &req)?;
        let create_ms = req.create_time_ms.unwrap_or_else(now_ms);
        let message_id = ids::message_id();
        let mut msg: Message = new_message(
            message_id.clone(),
            chat_id.clone(),
            Actor::User(sender.clone()),
            &msg_type,
            content,
            create_ms,
        );
        msg.text = text;
        msg.mentions = mentions;
        self.place_user_reply(&st, &req, &chat_id, &mut msg)?;
        if msg_type == "merge_forward" {
            msg.children =
                self.forwarded_children(&mut st, &chat_id, &message_id, &req.forwarded, create_ms);
        }
        let event = events::message_receive(&st, &msg);
        let (event_id, payload) = events::envelope(&st, &app_id, "im.message.receive_v1", event);
        st.insert_message(msg, true);
        self.deliver(&mut st, &app_id, OutEvent::new(event_id.clone(), payload));
        st.bench_event(&chat_id);
        Ok(SentMessage {
            event_id,
            message_id,
            chat_id,
            sender_open_id: sender,
        })
    }

    /// Fills root/parent/thread of a user message.
    fn place_user_reply(
        &self,
        st: &State,
        req: &UserMessage,
        chat_id: &str,
        msg: &mut Message,
    ) -> Result<(), Error> {
        if let Some(parent_id) = &req.parent_id {
            let parent = st
                .messages
                .get(parent_id)
                .filter(|p| p.chat_id == chat_id)
                .ok_or_else(|| Error::NotFound(format!("message {parent_id} in chat {chat_id}")))?;
            msg.parent_id = Some(parent_id.clone());
            msg.root_id = Some(
                req.root_id
                    .clone()
                    .or_else(|| parent.root_id.clone())
                    .unwrap_or_else(|| parent_id.clone()),
            );
            msg.thread_id = req.thread_id.clone().or_else(|| parent.thread_id.clone());
        } else {
            msg.root_id = req.root_id.clone();
            msg.thread_id = req.thread_id.clone();
        }
        let topic = st
            .chats
            .get(chat_id)
            .is_some_and(|c| c.mode == ChatMode::Topic);
        if topic && msg.thread_id.is_none() {
            msg.thread_id = Some(ids::thread_id());
        }
        Ok(())
    }

    /// A user presses a button on a card message: delivers
    /// `card.action.trigger`, waits for the answer (3-s rule), applies a
    /// returned card.
    pub async fn press_card_button(
        self: &Arc<Self>,
        message_id: &str,
        press: CardPress,
    ) -> Result<CardPressResult, Error> {
        let (event_id, rx, wait) = {
            let mut st = self.lock();
            let msg = st
                .messages
                .get(message_id)
                .filter(|m| m.msg_type == "interactive" && !m.recalled)
                .ok_or_else(|| Error::NotFound(format!("card message {message_id}")))?;
            let chat_id = msg.chat_id.clone();
            let app_id = st
                .chats
                .get(&chat_id)
                .map(|c| c.app_id.clone())
                .ok_or_else(|| Error::NotFound(format!("chat {chat_id}")))?;
            let operator = st.ensure_user(press.operator_open_id.as_deref(), None);
            let mut action = json!({"value": press.value, "tag": press.tag.clone().unwrap_or_else(|| "button".into())});
            if let Some(name) = &press.name {
                action["name"] = Value::String(name.clone());
            }
            if let Some(form) = &press.form_value {
                action["form_value"] = form.clone();
            }
            let mut operator_ids = events::user_ids(&st, &operator);
            operator_ids["tenant_key"] = Value::String(st.tenant_key(&app_id));
            let event = json!({
                "operator": operator_ids,
                "token": format!("c-{}", ids::hex(40)),
                "action": action,
                "host": "im_message",
                "context": {"open_message_id": message_id, "open_chat_id": chat_id},
            });
            let (event_id, payload) = events::envelope(&st, &app_id, "card.action.trigger", event);
            let (tx, rx) = oneshot::channel();
            let mut out = OutEvent::new(event_id.clone(), payload);
            out.reply = Some(tx);
            let wait = st.redelivery_after + std::time::Duration::from_secs(1);
            self.deliver(&mut st, &app_id, out);
            (event_id, rx, wait)
        };
        let outcome = tokio::time::timeout(wait, rx)
            .await
            .unwrap_or(Ok(CallbackOutcome::Timeout));
        let (status, body, detail) = match outcome {
            Ok(CallbackOutcome::Response(body)) => ("ok", Some(body), None),
            Ok(CallbackOutcome::Failed(why)) => ("failed", None, Some(why)),
            Ok(CallbackOutcome::NoReceiver) => (
                "no_receiver",
                None,
                Some("no long connection and no webhook".to_string()),
            ),
            Ok(CallbackOutcome::Timeout) | Err(_) => (
                "timeout",
                None,
                Some("no answer within the 3-s window".to_string()),
            ),
        };
        let response = body.map(|b| {
            if b.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                serde_json::from_slice(&b)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned()))
            }
        });
        let card_applied = match response.as_ref().and_then(|r| r.get("card")) {
            Some(card) => self.apply_callback_card(message_id, card),
            None => false,
        };
        Ok(CardPressResult {
            status: status.to_string(),
            response,
            card_applied,
            event_id,
            detail,
        })
    }

    /// Applies `{"type":"raw","data":{…}}` from a callback answer; a
    /// streaming card entity is left alone (the platform refuses that).
    fn apply_callback_card(&self, message_id: &str, card: &Value) -> bool {
        if card.get("type").and_then(Value::as_str) != Some("raw") {
            return false;
        }
        let Some(data) = card.get("data").filter(|d| d.is_object()) else {
            return false;
        };
        let mut st = self.lock();
        let Some(msg) = st.messages.get(message_id) else {
            return false;
        };
        let chat_id = msg.chat_id.clone();
        match msg.card_id.clone() {
            Some(card_id) => {
                let Some(entity) = st.cards.get_mut(&card_id) else {
                    return false;
                };
                if entity.streaming() || data.get("schema").and_then(Value::as_str) != Some("2.0") {
                    return false;
                }
                entity.card = data.clone();
            }
            None => {
                let text = data.to_string();
                if content::check_size("interactive", &text).is_err() {
                    return false;
                }
                if let Some(m) = st.messages.get_mut(message_id) {
                    m.content = text;
                    m.updated = true;
                }
            }
        }
        st.bump(&chat_id);
        true
    }

    /// Pushes any event to an app.
    pub fn deliver_event(self: &Arc<Self>, raw: RawEvent) -> Result<DeliveredEvent, Error> {
        if raw.event_type.is_empty() || !raw.event.is_object() {
            return Err(Error::Invalid(
                "event_type and an event object are required".into(),
            ));
        }
        let mut st = self.lock();
        let app_id = st.resolve_app(raw.app_id.as_deref())?;
        let (event_id, payload) = events::envelope(&st, &app_id, &raw.event_type, raw.event);
        self.deliver(&mut st, &app_id, OutEvent::new(event_id.clone(), payload));
        Ok(DeliveredEvent {
            event_id,
            reaction_id: None,
        })
    }

    /// The app whose chat holds `message_id`.
    fn message_app(st: &State, message_id: &str) -> Result<(String, String), Error> {
        let msg = st
            .messages
            .get(message_id)
            .ok_or_else(|| Error::NotFound(format!("message {message_id}")))?;
        let app_id = st
            .chats
            .get(&msg.chat_id)
            .map(|c| c.app_id.clone())
            .ok_or_else(|| Error::NotFound(format!("chat {}", msg.chat_id)))?;
        Ok((app_id, msg.chat_id.clone()))
    }

    /// A user reacts to a message: stored, `im.message.reaction.created_v1` pushed.
    pub fn user_react(
        self: &Arc<Self>,
        message_id: &str,
        req: UserReaction,
    ) -> Result<DeliveredEvent, Error> {
        if req.emoji_type.is_empty() {
            return Err(Error::Invalid("emoji_type is required".into()));
        }
        let mut st = self.lock();
        let (app_id, chat_id) = Self::message_app(&st, message_id)?;
        let operator = st.ensure_user(req.operator_open_id.as_deref(), None);
        let reaction_id = ids::alnum(40);
        let action_ms = now_ms();
        let event = json!({
            "message_id": message_id,
            "reaction_type": {"emoji_type": req.emoji_type},
            "operator_type": "user",
            "user_id": events::user_ids(&st, &operator),
            "action_time": action_ms.to_string(),
        });
        if let Some(msg) = st.messages.get_mut(message_id) {
            msg.reactions.push(crate::state::Reaction {
                reaction_id: reaction_id.clone(),
                emoji_type: req.emoji_type,
                operator: Actor::User(operator),
                action_ms,
            });
        }
        st.bump(&chat_id);
        let (event_id, payload) =
            events::envelope(&st, &app_id, "im.message.reaction.created_v1", event);
        self.deliver(&mut st, &app_id, OutEvent::new(event_id.clone(), payload));
        Ok(DeliveredEvent {
            event_id,
            reaction_id: Some(reaction_id),
        })
    }

    /// A user recalls their message: marked recalled, `im.message.recalled_v1` pushed.
    pub fn user_recall(self: &Arc<Self>, message_id: &str) -> Result<DeliveredEvent, Error> {
        let mut st = self.lock();
        let (app_id, chat_id) = Self::message_app(&st, message_id)?;
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(Error::NotFound(format!("message {message_id}")));
        };
        if !matches!(msg.sender, Actor::User(_)) || msg.recalled {
            return Err(Error::Invalid(
                "only a user's message that is not recalled yet".into(),
            ));
        }
        msg.recalled = true;
        st.bump(&chat_id);
        let event = json!({
            "message_id": message_id,
            "chat_id": chat_id,
            "recall_time": now_ms().to_string(),
            "recall_type": "message_owner",
        });
        let (event_id, payload) = events::envelope(&st, &app_id, "im.message.recalled_v1", event);
        self.deliver(&mut st, &app_id, OutEvent::new(event_id.clone(), payload));
        Ok(DeliveredEvent {
            event_id,
            reaction_id: None,
        })
    }
}
