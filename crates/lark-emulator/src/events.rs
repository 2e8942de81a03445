//! Builders of the v2.0 event envelopes the platform pushes.

use serde_json::{json, Value};

use crate::ids;
use crate::state::{now_ms, Actor, Message, State};

/// A v2.0 envelope for `app_id`; returns `(event_id, JSON bytes)`.
pub fn envelope(st: &State, app_id: &str, event_type: &str, event: Value) -> (String, Vec<u8>) {
    let event_id = ids::hex(32);
    let (token, tenant_key) = st
        .apps
        .get(app_id)
        .map(|a| (a.verification_token.clone(), a.info.tenant_key.clone()))
        .unwrap_or_default();
    let body = json!({
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": event_type,
            "create_time": now_ms().to_string(),
            "token": token,
            "app_id": app_id,
            "tenant_key": tenant_key,
        },
        "event": event,
    });
    (event_id, serde_json::to_vec(&body).unwrap_or_default())
}

/// `{union_id, user_id, open_id}` of a user.
pub fn user_ids(st: &State, open_id: &str) -> Value {
    match st.users.get(open_id) {
        Some(u) => json!({"union_id": u.union_id, "user_id": u.user_id, "open_id": u.open_id}),
        None => json!({"open_id": open_id}),
    }
}

/// The `event` of `im.message.receive_v1` for a user message.
pub fn message_receive(st: &State, msg: &Message) -> Value {
    let sender_id = match &msg.sender {
        Actor::User(id) => user_ids(st, id),
        Actor::Bot(_) => json!({}),
    };
    let (app_id, chat_type) = st
        .chats
        .get(&msg.chat_id)
        .map(|c| (c.app_id.clone(), c.mode.event_chat_type()))
        .unwrap_or_default();
    let tenant_key = st.tenant_key(&app_id);
    let mut message = json!({
        "message_id": msg.message_id,
        "create_time": msg.create_ms.to_string(),
        "update_time": msg.update_ms.to_string(),
        "chat_id": msg.chat_id,
        "chat_type": chat_type,
        "message_type": msg.msg_type,
        "content": msg.content,
    });
    for (key, value) in [
        ("root_id", &msg.root_id),
        ("parent_id", &msg.parent_id),
        ("thread_id", &msg.thread_id),
    ] {
        if let Some(v) = value {
            message[key] = Value::String(v.clone());
        }
    }
    if !msg.mentions.is_empty() {
        message["mentions"] = Value::Array(msg.mentions.clone());
    }
    json!({
        "sender": {"sender_id": sender_id, "sender_type": "user", "tenant_key": tenant_key},
        "message": message,
    })
}
