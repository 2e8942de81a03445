//! im/v1 as the bot uses it: send, reply, edit, card PATCH, recall, get,
//! resources, uploads, reactions, chat info; plus contact and bot info.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::content;
use crate::error::{reply, ApiError, ApiResult};
use crate::ids;
use crate::ratelimit;
use crate::server::AppCtx;
use crate::state::{
    new_message, now_ms, Actor, ChatMode, Core, Message, Reaction, Resource, ResourceKind, State,
};

/// How long a send `uuid` is remembered.
const UUID_TTL: Duration = Duration::from_secs(3600);

/// Parses a JSON body into `T` (9499 when malformed).
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

fn not_found_message(id: &str) -> ApiError {
    ApiError::invalid(format!("message {id} does not exist"))
}

fn recalled() -> ApiError {
    ApiError::bad(230011, "The message was recalled.")
}

fn rate_limited() -> ApiError {
    ApiError::bad(230020, "This operation triggers the frequency limit.")
}

/// The REST message object (send/reply/get responses).
pub fn message_json(st: &State, msg: &Message) -> Value {
    let tenant_key = st
        .chats
        .get(&msg.chat_id)
        .map(|c| st.tenant_key(&c.app_id))
        .unwrap_or_default();
    let sender = match &msg.sender {
        Actor::Bot(app_id) => {
            json!({"id": app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": tenant_key})
        }
        Actor::User(open_id) => {
            json!({"id": open_id, "id_type": "open_id", "sender_type": "user", "tenant_key": tenant_key})
        }
    };
    let content = if msg.recalled {
        json!({"text": "This message was recalled"}).to_string()
    } else {
        match msg.card_id.as_ref().and_then(|id| st.cards.get(id)) {
            Some(card) => card.card.to_string(),
            None => msg.content.clone(),
        }
    };
    let mut out = json!({
        "message_id": msg.message_id,
        "msg_type": msg.msg_type,
        "create_time": msg.create_ms.to_string(),
        "update_time": msg.update_ms.to_string(),
        "deleted": msg.recalled,
        "updated": msg.updated,
        "chat_id": msg.chat_id,
        "sender": sender,
        "body": {"content": content},
    });
    for (key, value) in [
        ("root_id", &msg.root_id),
        ("parent_id", &msg.parent_id),
        ("thread_id", &msg.thread_id),
        ("upper_message_id", &msg.upper_message_id),
    ] {
        if let Some(v) = value {
            out[key] = Value::String(v.clone());
        }
    }
    if !msg.mentions.is_empty() {
        let mentions: Vec<Value> = msg
            .mentions
            .iter()
            .map(|m| {
                json!({"key": m["key"], "id": m["id"]["open_id"], "id_type": "open_id",
                       "name": m["name"], "tenant_key": m["tenant_key"]})
            })
            .collect();
        out["mentions"] = Value::Array(mentions);
    }
    out
}

#[derive(Deserialize)]
struct SendBody {
    #[serde(default)]
    receive_id: Option<String>,
    #[serde(default)]
    msg_type: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    reply_in_thread: bool,
}

/// Where a bot message goes in a chat.
struct Placement {
    chat_id: String,
    parent_id: Option<String>,
    root_id: Option<String>,
    thread_id: Option<String>,
}

impl Core {
    fn uuid_hit(st: &mut State, app_id: &str, uuid: Option<&str>) -> Option<Value> {
        let uuid = uuid.filter(|u| !u.is_empty())?;
        let key = (app_id.to_string(), uuid.to_string());
        let (message_id, at) = st.uuids.get(&key)?;
        if at.elapsed() >= UUID_TTL {
            st.uuids.remove(&key);
            return None;
        }
        let msg = st.messages.get(message_id)?;
        Some(message_json(st, msg))
    }

    fn resolve_receiver(
        st: &mut State,
        app_id: &str,
        id_type: &str,
        receive_id: &str,
    ) -> Result<String, ApiError> {
        let bad_id = || {
            ApiError::bad(
                230034,
                format!("The receive_id {receive_id} is invalid for receive_id_type {id_type}."),
            )
        };
        let open_id = match id_type {
            "chat_id" => {
                let chat = st
                    .chats
                    .get(receive_id)
                    .filter(|c| c.app_id == app_id)
                    .ok_or_else(|| ApiError::bad(230002, "The bot is not in the chat."))?;
                return Ok(chat.chat_id.clone());
            }
            "open_id" => {
                if !receive_id.starts_with("ou_") {
                    return Err(bad_id());
                }
                st.ensure_user(Some(receive_id), None)
            }
            "union_id" => st.users.values().find(|u| u.union_id == receive_id).map(|u| u.open_id.clone()).ok_or_else(bad_id)?,
            "user_id" => st.users.values().find(|u| u.user_id == receive_id).map(|u| u.open_id.clone()).ok_or_else(bad_id)?,
            "email" => st.users.values().find(|u| u.email == receive_id).map(|u| u.open_id.clone()).ok_or_else(bad_id)?,
            other => return Err(ApiError::invalid(format!("receive_id_type {other:?} is not one of open_id, union_id, user_id, email, chat_id"))),
        };
        Ok(st.p2p_chat(app_id, &open_id))
    }

    /// Validates and stores a bot message; returns the message object.
    fn post_bot_message(
        &self,
        st: &mut State,
        app_id: &str,
        body: SendBody,
        mut at: Placement,
    ) -> ApiResult {
        let msg_type = body
            .msg_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid("msg_type is required"))?;
        let content = match body.content {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(ApiError::invalid(
                    "content must be a string containing JSON",
                ))
            }
            None => return Err(ApiError::invalid("content is required")),
        };
        let card_id = content::check_send(st, app_id, &msg_type, &content)?;
        let now = Instant::now();
        let chat = st
            .chats
            .get_mut(&at.chat_id)
            .ok_or_else(|| ApiError::bad(230002, "The bot is not in the chat."))?;
        ratelimit::take(&mut chat.send_bucket, self.cfg.per_chat_rate, now)
            .map_err(|_| rate_limited())?;
        if chat.mode == ChatMode::Topic && at.thread_id.is_none() {
            at.thread_id = Some(ids::thread_id());
        }
        let message_id = ids::message_id();
        let mut msg = new_message(
            message_id.clone(),
            at.chat_id.clone(),
            Actor::Bot(app_id.to_string()),
            &msg_type,
            content,
            now_ms(),
        );
        msg.parent_id = at.parent_id;
        msg.root_id = at.root_id;
        msg.thread_id = at.thread_id;
        msg.card_id = card_id.clone();
        if let Some(card_id) = card_id {
            if let Some(card) = st.cards.get_mut(&card_id) {
                card.message_id = Some(message_id.clone());
            }
        }
        if let Some(uuid) = body.uuid.filter(|u| !u.is_empty()) {
            st.uuids
                .insert((app_id.to_string(), uuid), (message_id.clone(), now));
        }
        let out = message_json(st, &msg);
        st.insert_message(msg, true);
        Ok(out)
    }

    fn bot_send(&self, app_id: &str, query: &HashMap<String, String>, body: &[u8]) -> ApiResult {
        let id_type = query
            .get("receive_id_type")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid("receive_id_type is required"))?;
        let body: SendBody = parse_body(body)?;
        let receive_id = body
            .receive_id
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::invalid("receive_id is required"))?;
        let mut st = self.lock();
        if let Some(hit) = Self::uuid_hit(&mut st, app_id, body.uuid.as_deref()) {
            return Ok(hit);
        }
        let chat_id = Self::resolve_receiver(&mut st, app_id, id_type, &receive_id)?;
        let at = Placement {
            chat_id,
            parent_id: None,
            root_id: None,
            thread_id: None,
        };
        self.post_bot_message(&mut st, app_id, body, at)
    }

    fn bot_reply(&self, app_id: &str, parent_id: &str, body: &[u8]) -> ApiResult {
        let body: SendBody = parse_body(body)?;
        let mut st = self.lock();
        if let Some(hit) = Self::uuid_hit(&mut st, app_id, body.uuid.as_deref()) {
            return Ok(hit);
        }
        let parent = own_chat_message(&st, app_id, parent_id)?;
        if parent.recalled {
            return Err(recalled());
        }
        let chat_id = parent.chat_id.clone();
        let root_id = parent
            .root_id
            .clone()
            .unwrap_or_else(|| parent_id.to_string());
        let mut thread_id = parent.thread_id.clone();
        if thread_id.is_none() {
            thread_id = st.messages.get(&root_id).and_then(|m| m.thread_id.clone());
        }
        if thread_id.is_none() && body.reply_in_thread {
            let tid = ids::thread_id();
            if let Some(root) = st.messages.get_mut(&root_id) {
                root.thread_id = Some(tid.clone());
            }
            thread_id = Some(tid);
        }
        let at = Placement {
            chat_id,
            parent_id: Some(parent_id.to_string()),
            root_id: Some(root_id),
            thread_id,
        };
        self.post_bot_message(&mut st, app_id, body, at)
    }

    fn bot_edit(&self, app_id: &str, message_id: &str, body: &[u8]) -> ApiResult {
        #[derive(Deserialize)]
        struct EditBody {
            #[serde(default)]
            msg_type: Option<String>,
            #[serde(default)]
            content: Option<Value>,
        }
        let body: EditBody = parse_body(body)?;
        let mut st = self.lock();
        let msg = own_bot_message(&st, app_id, message_id)?;
        let msg_type = body.msg_type.unwrap_or_default();
        if !matches!(msg_type.as_str(), "text" | "post")
            || !matches!(msg.msg_type.as_str(), "text" | "post")
        {
            return Err(ApiError::invalid(
                "only text and post messages can be edited",
            ));
        }
        if msg.edits >= 20 {
            return Err(ApiError::bad(
                230072,
                "The message has reached the maximum number of edits (20).",
            ));
        }
        let content = match body.content {
            Some(Value::String(s)) => s,
            _ => {
                return Err(ApiError::invalid(
                    "content must be a string containing JSON",
                ))
            }
        };
        content::check_send(&st, app_id, &msg_type, &content)?;
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        msg.msg_type = msg_type;
        msg.content = content;
        msg.edits += 1;
        msg.updated = true;
        msg.update_ms = now_ms();
        let chat_id = msg.chat_id.clone();
        st.bump(&chat_id);
        let msg = st
            .messages
            .get(message_id)
            .ok_or_else(|| not_found_message(message_id))?;
        Ok(message_json(&st, msg))
    }

    fn bot_patch(&self, app_id: &str, message_id: &str, body: &[u8]) -> ApiResult {
        #[derive(Deserialize)]
        struct PatchBody {
            #[serde(default)]
            content: Option<Value>,
        }
        let body: PatchBody = parse_body(body)?;
        let content = match body.content {
            Some(Value::String(s)) => s,
            _ => {
                return Err(ApiError::invalid(
                    "content must be a string containing card JSON",
                ))
            }
        };
        let mut st = self.lock();
        let msg = own_bot_message(&st, app_id, message_id)?;
        if msg.msg_type != "interactive" {
            return Err(ApiError::invalid(
                "only interactive (card) messages can be patched",
            ));
        }
        if msg.card_id.is_some() {
            return Err(ApiError::invalid(
                "this card was sent as a card entity; update it with the CardKit APIs",
            ));
        }
        let rate = self.cfg.per_message_patch_rate;
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        ratelimit::take(&mut msg.patch_bucket, rate, Instant::now()).map_err(|_| rate_limited())?;
        if content::check_send(&st, app_id, "interactive", &content)?.is_some() {
            return Err(ApiError::invalid(
                "a card entity reference cannot replace a card",
            ));
        }
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        msg.content = content;
        msg.updated = true;
        msg.update_ms = now_ms();
        let chat_id = msg.chat_id.clone();
        st.bump(&chat_id);
        Ok(json!({}))
    }

    fn bot_recall(&self, app_id: &str, message_id: &str) -> ApiResult {
        let mut st = self.lock();
        own_bot_message(&st, app_id, message_id)?;
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        msg.recalled = true;
        let chat_id = msg.chat_id.clone();
        st.bump(&chat_id);
        Ok(json!({}))
    }

    fn bot_get(&self, app_id: &str, message_id: &str) -> ApiResult {
        let st = self.lock();
        let msg = own_chat_message(&st, app_id, message_id)?;
        let mut items = vec![message_json(&st, msg)];
        for child in &msg.children {
            if let Some(c) = st.messages.get(child) {
                items.push(message_json(&st, c));
            }
        }
        Ok(json!({ "items": items }))
    }

    fn bot_resource(
        &self,
        app_id: &str,
        message_id: &str,
        key: &str,
        kind: Option<&String>,
        range: Option<&str>,
    ) -> Result<Response, ApiError> {
        let kind = match kind.map(String::as_str) {
            Some("image") => ResourceKind::Image,
            Some("file") => ResourceKind::File,
            _ => {
                return Err(ApiError::bad(
                    234001,
                    "Invalid request param: type must be image or file.",
                ))
            }
        };
        let st = self.lock();
        let msg = own_chat_message(&st, app_id, message_id)?;
        if msg.recalled {
            return Err(recalled());
        }
        if !content::resource_keys(&msg.msg_type, &msg.content)
            .iter()
            .any(|(k, _)| k == key)
        {
            return Err(ApiError::bad(234003, "File not in msg."));
        }
        let res = st
            .resources
            .get(key)
            .ok_or_else(|| ApiError::bad(234003, "File not in msg."))?;
        if res.kind != kind {
            return Err(ApiError::bad(
                234001,
                "Invalid request param: type does not match the resource.",
            ));
        }
        Ok(resource_response(res, range))
    }

    fn bot_upload(
        &self,
        app_id: &str,
        kind: ResourceKind,
        bytes: Bytes,
        file_name: String,
        mime: String,
    ) -> String {
        let key = match kind {
            ResourceKind::Image => format!("img_v3_{}", ids::hex(32)),
            ResourceKind::File => format!("file_v3_{}", ids::hex(32)),
        };
        self.lock().resources.insert(
            key.clone(),
            Resource {
                bytes,
                file_name,
                mime,
                kind,
                owner_app: Some(app_id.to_string()),
            },
        );
        key
    }

    fn bot_react(&self, app_id: &str, message_id: &str, body: &[u8]) -> ApiResult {
        let body: Value = parse_body(body)?;
        let emoji_type = body
            .pointer("/reaction_type/emoji_type")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| ApiError::bad(231001, "reaction type is invalid."))?
            .to_string();
        let mut st = self.lock();
        let msg = own_chat_message(&st, app_id, message_id)?;
        if msg.recalled {
            return Err(recalled());
        }
        let reaction = Reaction {
            reaction_id: ids::alnum(40),
            emoji_type,
            operator: Actor::Bot(app_id.to_string()),
            action_ms: now_ms(),
        };
        let out = reaction_json(&reaction);
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        msg.reactions.push(reaction);
        let chat_id = msg.chat_id.clone();
        st.bump(&chat_id);
        Ok(out)
    }

    fn bot_unreact(&self, app_id: &str, message_id: &str, reaction_id: &str) -> ApiResult {
        let mut st = self.lock();
        own_chat_message(&st, app_id, message_id)?;
        let Some(msg) = st.messages.get_mut(message_id) else {
            return Err(not_found_message(message_id));
        };
        let idx = msg
            .reactions
            .iter()
            .position(|r| r.reaction_id == reaction_id)
            .ok_or_else(|| ApiError::bad(231003, "The reaction does not exist."))?;
        if msg.reactions[idx].operator != Actor::Bot(app_id.to_string()) {
            return Err(ApiError::bad(
                231002,
                "No permission to delete this reaction.",
            ));
        }
        let removed = msg.reactions.remove(idx);
        let chat_id = msg.chat_id.clone();
        st.bump(&chat_id);
        Ok(reaction_json(&removed))
    }

    fn bot_reactions(&self, app_id: &str, message_id: &str, filter: Option<&String>) -> ApiResult {
        let st = self.lock();
        let msg = own_chat_message(&st, app_id, message_id)?;
        let items: Vec<Value> = msg
            .reactions
            .iter()
            .filter(|r| filter.is_none_or(|f| *f == r.emoji_type))
            .map(reaction_json)
            .collect();
        Ok(json!({"items": items, "has_more": false, "page_token": ""}))
    }

    fn bot_chat(&self, app_id: &str, chat_id: &str) -> ApiResult {
        let st = self.lock();
        let chat = st
            .chats
            .get(chat_id)
            .filter(|c| c.app_id == app_id)
            .ok_or_else(|| ApiError::bad(232011, "The operator or bot is not in the chat."))?;
        Ok(json!({
            "avatar": "https://example.invalid/avatar.png",
            "name": chat.name,
            "description": "",
            "i18n_names": {},
            "owner_id": chat.owner,
            "owner_id_type": "open_id",
            "chat_mode": chat.mode.as_str(),
            "chat_type": if chat.mode == ChatMode::P2p { "private" } else { "public" },
            "external": false,
            "tenant_key": st.tenant_key(app_id),
            "user_count": chat.members.len().to_string(),
            "bot_count": "1",
            "add_member_permission": "all_members",
            "share_card_permission": "allowed",
            "at_all_permission": "all_members",
            "edit_permission": "all_members",
            "moderation_permission": "all_members",
            "chat_tag": "inner",
        }))
    }

    fn bot_user(&self, user_id: &str, id_type: Option<&String>) -> ApiResult {
        let st = self.lock();
        let user = st
            .users
            .values()
            .find(|u| match id_type.map(String::as_str) {
                Some("union_id") => u.union_id == user_id,
                Some("user_id") => u.user_id == user_id,
                _ => u.open_id == user_id,
            })
            .ok_or_else(|| ApiError::bad(41050, "no user authority error"))?;
        Ok(json!({"user": {
            "open_id": user.open_id, "union_id": user.union_id, "user_id": user.user_id,
            "name": user.name, "en_name": user.name, "email": user.email,
            "avatar": {"avatar_72": "https://example.invalid/a72.png", "avatar_240": "https://example.invalid/a240.png"},
            "status": {"is_activated": true, "is_frozen": false, "is_resigned": false},
        }}))
    }
}

/// A message in a chat of this app.
fn own_chat_message<'a>(
    st: &'a State,
    app_id: &str,
    message_id: &str,
) -> Result<&'a Message, ApiError> {
    let msg = st
        .messages
        .get(message_id)
        .ok_or_else(|| not_found_message(message_id))?;
    match st.chats.get(&msg.chat_id) {
        Some(chat) if chat.app_id == app_id => Ok(msg),
        _ => Err(not_found_message(message_id)),
    }
}

/// A message this app's bot sent (not recalled).
fn own_bot_message<'a>(
    st: &'a State,
    app_id: &str,
    message_id: &str,
) -> Result<&'a Message, ApiError> {
    let msg = own_chat_message(st, app_id, message_id)?;
    if msg.sender != Actor::Bot(app_id.to_string()) {
        return Err(ApiError::bad(
            230027,
            "Lack of necessary permissions: the message was not sent by this bot.",
        ));
    }
    if msg.recalled {
        return Err(recalled());
    }
    Ok(msg)
}

fn reaction_json(r: &Reaction) -> Value {
    let (operator_id, operator_type) = match &r.operator {
        Actor::Bot(app_id) => (app_id.clone(), "app"),
        Actor::User(open_id) => (open_id.clone(), "user"),
    };
    json!({
        "reaction_id": r.reaction_id,
        "operator": {"operator_id": operator_id, "operator_type": operator_type},
        "action_time": r.action_ms.to_string(),
        "reaction_type": {"emoji_type": r.emoji_type},
    })
}

/// Binary download with optional single `Range: bytes=a-b`.
fn resource_response(res: &Resource, range: Option<&str>) -> Response {
    let len = res.bytes.len();
    let disposition = format!(
        "attachment; filename=\"{}\"",
        res.file_name.replace('"', "")
    );
    let parsed = range.and_then(|r| parse_range(r, len));
    let (status, body, content_range) = match parsed {
        Some((a, b)) => (
            StatusCode::PARTIAL_CONTENT,
            res.bytes.slice(a..=b),
            Some(format!("bytes {a}-{b}/{len}")),
        ),
        None => (StatusCode::OK, res.bytes.clone(), None),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, res.mime.as_str())
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(cr) = content_range {
        builder = builder.header(header::CONTENT_RANGE, cr);
    }
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn parse_range(range: &str, len: usize) -> Option<(usize, usize)> {
    let spec = range.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if len == 0 {
        return None;
    }
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: usize = suffix.parse().ok()?;
            (len.saturating_sub(n), len - 1)
        }
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

/// The MIME type of image bytes, if they are an image format the platform takes.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| bytes.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if starts(b"BM") {
        Some("image/bmp")
    } else if starts(&[0, 0, 1, 0]) {
        Some("image/x-icon")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("image/tiff")
    } else if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        Some("image/heic")
    } else {
        None
    }
}

/// A MIME type from a file name's extension.
pub fn mime_for(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "md" => "text/plain",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "opus" | "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

type Core_ = AxState<Arc<Core>>;
type Q = Query<HashMap<String, String>>;

/// `POST /open-apis/im/v1/messages`.
pub async fn send(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    reply(core.bot_send(&ctx.0, &q, &body))
}

/// `POST /open-apis/im/v1/messages/{message_id}/reply`.
pub async fn reply_to(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.bot_reply(&ctx.0, &id, &body))
}

/// `PUT /open-apis/im/v1/messages/{message_id}`.
pub async fn edit(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.bot_edit(&ctx.0, &id, &body))
}

/// `PATCH /open-apis/im/v1/messages/{message_id}`.
pub async fn patch(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.bot_patch(&ctx.0, &id, &body))
}

/// `DELETE /open-apis/im/v1/messages/{message_id}`.
pub async fn recall(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
) -> Response {
    reply(core.bot_recall(&ctx.0, &id))
}

/// `GET /open-apis/im/v1/messages/{message_id}`.
pub async fn get(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
) -> Response {
    reply(core.bot_get(&ctx.0, &id))
}

/// `GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}?type=`.
pub async fn resource(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((id, key)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match core.bot_resource(&ctx.0, &id, &key, q.get("type"), range) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Reads the multipart fields: `(text fields, file part name, bytes, file name)`.
async fn read_multipart(
    mut mp: Multipart,
    file_field: &str,
) -> Result<(HashMap<String, String>, Option<(Bytes, String)>), ApiError> {
    let mut fields = HashMap::new();
    let mut file = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::bad(234001, format!("Invalid request param: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().unwrap_or("").to_string();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad(234001, format!("Invalid request param: {e}")))?;
        if name == file_field {
            file = Some((data, file_name));
        } else {
            fields.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok((fields, file))
}

/// `POST /open-apis/im/v1/images` (multipart: `image_type`, `image`).
pub async fn upload_image(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    mp: Multipart,
) -> Response {
    let result = async {
        let (fields, file) = read_multipart(mp, "image").await?;
        match fields.get("image_type").map(String::as_str) {
            Some("message") | Some("avatar") => {}
            _ => {
                return Err(ApiError::bad(
                    234001,
                    "Invalid request param: image_type must be message or avatar.",
                ))
            }
        }
        let (bytes, name) =
            file.ok_or_else(|| ApiError::bad(234001, "Invalid request param: image is required."))?;
        if bytes.is_empty() {
            return Err(ApiError::bad(234010, "File's size can't be 0."));
        }
        if bytes.len() > 10 * 1024 * 1024 {
            return Err(ApiError::bad(
                234006,
                "The file size exceed the max value (10 MB).",
            ));
        }
        let mime = sniff_image(&bytes)
            .ok_or_else(|| ApiError::bad(234011, "Can't recognize image format."))?;
        let key = core.bot_upload(&ctx.0, ResourceKind::Image, bytes, name, mime.to_string());
        Ok(json!({"image_key": key}))
    }
    .await;
    reply(result)
}

/// `POST /open-apis/im/v1/files` (multipart: `file_type`, `file_name`, `duration`, `file`).
pub async fn upload_file(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    mp: Multipart,
) -> Response {
    let result = async {
        let (fields, file) = read_multipart(mp, "file").await?;
        let file_type = fields.get("file_type").map(String::as_str).unwrap_or("");
        if !matches!(
            file_type,
            "opus" | "mp4" | "pdf" | "doc" | "xls" | "ppt" | "stream"
        ) {
            return Err(ApiError::bad(234001, "Invalid request param: file_type."));
        }
        let file_name = fields
            .get("file_name")
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| {
                ApiError::bad(234001, "Invalid request param: file_name is required.")
            })?;
        let (bytes, _) =
            file.ok_or_else(|| ApiError::bad(234001, "Invalid request param: file is required."))?;
        if bytes.is_empty() {
            return Err(ApiError::bad(234010, "File's size can't be 0."));
        }
        if bytes.len() > 30 * 1024 * 1024 {
            return Err(ApiError::bad(
                234006,
                "The file size exceed the max value (30 MB).",
            ));
        }
        let mime = mime_for(&file_name).to_string();
        let key = core.bot_upload(&ctx.0, ResourceKind::File, bytes, file_name, mime);
        Ok(json!({"file_key": key}))
    }
    .await;
    reply(result)
}

/// `POST /open-apis/im/v1/messages/{message_id}/reactions`.
pub async fn react(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.bot_react(&ctx.0, &id, &body))
}

/// `DELETE /open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}`.
pub async fn unreact(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((id, rid)): Path<(String, String)>,
) -> Response {
    reply(core.bot_unreact(&ctx.0, &id, &rid))
}

/// `GET /open-apis/im/v1/messages/{message_id}/reactions`.
pub async fn reactions(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    reply(core.bot_reactions(&ctx.0, &id, q.get("reaction_type")))
}

/// `GET /open-apis/im/v1/chats/{chat_id}`.
pub async fn chat(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(id): Path<String>,
) -> Response {
    reply(core.bot_chat(&ctx.0, &id))
}

/// `GET /open-apis/contact/v3/users/{user_id}`.
pub async fn user(AxState(core): Core_, Path(id): Path<String>, Query(q): Q) -> Response {
    reply(core.bot_user(&id, q.get("user_id_type")))
}

/// `GET /open-apis/bot/v3/info` (payload under `bot`, not `data`).
pub async fn bot_info(AxState(core): Core_, Extension(ctx): Extension<AppCtx>) -> Response {
    let st = core.lock();
    match st.apps.get(&ctx.0) {
        Some(app) => Json(json!({"code": 0, "msg": "ok", "bot": {
            "activate_status": 2,
            "app_name": app.info.bot_name,
            "avatar_url": "https://example.invalid/bot.png",
            "ip_white_list": [],
            "open_id": app.info.bot_open_id,
        }}))
        .into_response(),
        None => ApiError::bad(99991663, "Invalid access token for authorization.").into_response(),
    }
}
