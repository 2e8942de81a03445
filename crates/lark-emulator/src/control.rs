//! The control API: chat views, apps, stats, and the HTTP handlers under
//! `/_emulator/` (each calls the same `Core` method as the Rust API).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::content;
use crate::error::Error;
use crate::model::{
    AppInfo, ApproveRegistration, CardPress, ChatList, ChatMessageView, ChatSummary, ChatView,
    Fault, NewApp, RawEvent, ReactionView, Stats, UserMessage, UserReaction, WebhookConfig,
};
use crate::state::{Core, Message, State};

/// Longest a long-poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A message as a user sees it.
pub(crate) fn view(
    st: &State,
    msg: &Message,
    auto_close: Duration,
    now: Instant,
) -> ChatMessageView {
    let name_of = |id: &str| st.user_name(id);
    let card = msg.card_id.as_ref().and_then(|id| st.cards.get(id));
    let (text, content, streaming) = match card {
        Some(card) => (
            content::render_card(&card.card),
            card.card.to_string(),
            card.streaming() && now.saturating_duration_since(card.streaming_since) < auto_close,
        ),
        None => (
            msg.text
                .clone()
                .unwrap_or_else(|| content::render(&msg.msg_type, &msg.content, &name_of)),
            msg.content.clone(),
            false,
        ),
    };
    ChatMessageView {
        message_id: msg.message_id.clone(),
        sender: msg.sender.view(),
        msg_type: msg.msg_type.clone(),
        text,
        content,
        reply_to: msg.parent_id.clone(),
        root_id: msg.root_id.clone(),
        thread_id: msg.thread_id.clone(),
        edits: msg.edits,
        recalled: msg.recalled,
        reactions: msg
            .reactions
            .iter()
            .map(|r| ReactionView {
                emoji_type: r.emoji_type.clone(),
                operator: r.operator.view(),
            })
            .collect(),
        streaming,
        card_id: msg.card_id.clone(),
        create_time_ms: msg.create_ms,
    }
}

impl Core {
    /// A chat as a user sees it.
    pub fn chat_view(&self, chat_id: &str) -> Result<ChatView, Error> {
        let st = self.lock();
        let now = Instant::now();
        let chat = st
            .chats
            .get(chat_id)
            .ok_or_else(|| Error::NotFound(format!("chat {chat_id}")))?;
        let messages = chat
            .messages
            .iter()
            .filter_map(|id| st.messages.get(id))
            .map(|m| view(&st, m, self.cfg.streaming_auto_close, now))
            .collect();
        Ok(ChatView {
            chat_id: chat.chat_id.clone(),
            app_id: chat.app_id.clone(),
            chat_mode: chat.mode.as_str().to_string(),
            name: chat.name.clone(),
            version: chat.version,
            messages,
        })
    }

    /// Waits until the chat's version exceeds `after_version` (or `timeout`).
    pub async fn wait_chat(
        &self,
        chat_id: &str,
        after_version: u64,
        timeout: Duration,
    ) -> Result<ChatView, Error> {
        let mut rx = self.lock().version_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Cheap check first: changes of other chats wake us too.
            if self.chat_version(chat_id)? > after_version {
                return self.chat_view(chat_id);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return self.chat_view(chat_id),
                changed = rx.changed() => if changed.is_err() { return self.chat_view(chat_id) },
                _ = self.cancel.cancelled() => return self.chat_view(chat_id),
            }
        }
    }

    fn chat_version(&self, chat_id: &str) -> Result<u64, Error> {
        self.lock()
            .chats
            .get(chat_id)
            .map(|c| c.version)
            .ok_or_else(|| Error::NotFound(format!("chat {chat_id}")))
    }

    /// All chats.
    pub fn chat_list(&self) -> ChatList {
        let st = self.lock();
        let chats = st
            .chat_order
            .iter()
            .filter_map(|id| st.chats.get(id))
            .map(|c| ChatSummary {
                chat_id: c.chat_id.clone(),
                app_id: c.app_id.clone(),
                chat_mode: c.mode.as_str().to_string(),
                name: c.name.clone(),
                version: c.version,
                message_count: c.messages.len(),
            })
            .collect();
        ChatList {
            version: st.version,
            chats,
        }
    }

    /// All apps, default first.
    pub fn apps(&self) -> Vec<AppInfo> {
        let st = self.lock();
        st.app_order
            .iter()
            .filter_map(|id| st.apps.get(id))
            .map(|a| a.info.clone())
            .collect()
    }

    /// The default app.
    pub fn default_app(&self) -> AppInfo {
        let st = self.lock();
        st.apps
            .get(&st.default_app)
            .map(|a| a.info.clone())
            .unwrap_or_else(|| AppInfo {
                app_id: String::new(),
                app_secret: String::new(),
                bot_open_id: String::new(),
                bot_name: String::new(),
                brand: "feishu".into(),
                tenant_key: String::new(),
            })
    }

    /// Creates an app.
    pub fn create_app(&self, req: NewApp) -> Result<AppInfo, Error> {
        self.lock().create_app(req, false)
    }

    /// Counters of every app.
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            apps: st
                .apps
                .iter()
                .map(|(id, app)| (id.clone(), app.counters.snapshot(app.conns.len())))
                .collect(),
        }
    }
}

pub(crate) fn body<T: DeserializeOwned>(json: Result<Json<T>, JsonRejection>) -> Result<T, Error> {
    json.map(|Json(v)| v)
        .map_err(|e| Error::Invalid(e.body_text()))
}

pub(crate) fn respond<T: serde::Serialize>(r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

type Core_ = AxState<Arc<Core>>;

/// `POST /_emulator/messages`.
pub async fn post_message(
    AxState(core): Core_,
    json: Result<Json<UserMessage>, JsonRejection>,
) -> Response {
    respond(body(json).and_then(|m| core.send_user_message(m)))
}

/// `POST /_emulator/cards/{message_id}/action`.
pub async fn card_action(
    AxState(core): Core_,
    Path(message_id): Path<String>,
    json: Result<Json<CardPress>, JsonRejection>,
) -> Response {
    match body(json) {
        Ok(press) => respond(core.press_card_button(&message_id, press).await),
        Err(e) => e.into_response(),
    }
}

/// A long-poll's `wait_version` (if any) and `timeout_ms` (at most
/// [`MAX_WAIT`]).
pub(crate) fn long_poll(q: &HashMap<String, String>) -> (Option<u64>, Duration) {
    let wait = q.get("wait_version").and_then(|v| v.parse::<u64>().ok());
    let timeout = q
        .get("timeout_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT);
    (wait, timeout)
}

/// `GET /_emulator/chats/{chat_id}/messages[?wait_version=N&timeout_ms=T]`.
pub async fn chat_messages(
    AxState(core): Core_,
    Path(chat_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (wait, timeout) = long_poll(&q);
    match wait {
        Some(after) => respond(core.wait_chat(&chat_id, after, timeout).await),
        None => respond(core.chat_view(&chat_id)),
    }
}

/// `GET /_emulator/chats`.
pub async fn chats(AxState(core): Core_) -> Response {
    Json(core.chat_list()).into_response()
}

/// `GET /_emulator/apps`.
pub async fn apps(AxState(core): Core_) -> Response {
    Json(json!({ "apps": core.apps() })).into_response()
}

/// `POST /_emulator/apps`.
pub async fn create_app(
    AxState(core): Core_,
    json: Result<Json<NewApp>, JsonRejection>,
) -> Response {
    respond(body(json).and_then(|req| core.create_app(req)))
}

/// `PUT /_emulator/apps/{app_id}/webhook` (`null` body or DELETE clears).
pub async fn set_webhook(
    AxState(core): Core_,
    Path(app_id): Path<String>,
    json: Result<Json<Option<WebhookConfig>>, JsonRejection>,
) -> Response {
    match body(json) {
        Ok(cfg) => respond(
            core.set_webhook(&app_id, cfg)
                .await
                .map(|_| json!({"ok": true})),
        ),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /_emulator/apps/{app_id}/webhook`.
pub async fn clear_webhook(AxState(core): Core_, Path(app_id): Path<String>) -> Response {
    respond(
        core.set_webhook(&app_id, None)
            .await
            .map(|_| json!({"ok": true})),
    )
}

/// `POST /_emulator/faults`.
pub async fn faults(AxState(core): Core_, json: Result<Json<Fault>, JsonRejection>) -> Response {
    respond(
        body(json)
            .and_then(|f| core.inject(f))
            .map(|_| json!({"ok": true})),
    )
}

/// `GET /_emulator/stats`.
pub async fn stats(AxState(core): Core_) -> Response {
    Json(core.stats()).into_response()
}

/// `POST /_emulator/registrations/approve`.
pub async fn approve(
    AxState(core): Core_,
    json: Result<Json<ApproveRegistration>, JsonRejection>,
) -> Response {
    respond(body(json).and_then(|r| core.approve_registration(r)))
}

/// `POST /_emulator/events`: push any event.
pub async fn raw_event(
    AxState(core): Core_,
    json: Result<Json<RawEvent>, JsonRejection>,
) -> Response {
    respond(body(json).and_then(|e| core.deliver_event(e)))
}

/// `POST /_emulator/messages/{message_id}/reactions`: a user reacts.
pub async fn react(
    AxState(core): Core_,
    Path(message_id): Path<String>,
    json: Result<Json<UserReaction>, JsonRejection>,
) -> Response {
    respond(body(json).and_then(|r| core.user_react(&message_id, r)))
}

/// `POST /_emulator/messages/{message_id}/recall`: a user recalls a message.
pub async fn recall(AxState(core): Core_, Path(message_id): Path<String>) -> Response {
    respond(core.user_recall(&message_id))
}

/// `GET /_emulator`: what is where.
pub async fn index(AxState(core): Core_) -> Response {
    let app = core.default_app();
    Json(json!({
        "base_url": core.base_url,
        "default_app": {"app_id": app.app_id, "app_secret": app.app_secret, "bot_open_id": app.bot_open_id, "bot_name": app.bot_name},
        "control": [
            "POST /_emulator/messages", "POST /_emulator/cards/{message_id}/action",
            "POST /_emulator/messages/{message_id}/reactions", "POST /_emulator/messages/{message_id}/recall",
            "POST /_emulator/events",
            "GET /_emulator/chats", "GET /_emulator/chats/{chat_id}/messages?wait_version=N",
            "GET /_emulator/apps", "POST /_emulator/apps", "PUT /_emulator/apps/{app_id}/webhook",
            "POST /_emulator/faults", "GET /_emulator/stats", "POST /_emulator/registrations/approve",
        ],
    }))
    .into_response()
}
