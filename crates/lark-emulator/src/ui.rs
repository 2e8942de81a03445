//! The chat page: a small Feishu-like web client in which a person plays the
//! emulator's users (a DM with the bot, a group, a topic group, pairing
//! approval through the gateway's admin API). Its assets are built into the
//! binary; it talks only to the control API, to [`config`] and to [`chats`].
//!
//! Routes: `GET /` and `GET /ui` (the page), `GET /ui/assets/{file}`,
//! `GET /_emulator/ui/config`, `GET /_emulator/ui/chats?wait_version=N`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::control;
use crate::model::ChatMessageView;
use crate::state::{ChatMode, Core, State};

/// A user the chat page lets a person play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoUser {
    /// The user's open_id (fixed, so a gateway config can allow it).
    pub open_id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// The chat_id of the user's DM with the default app's bot (used when
    /// the page creates that chat; an existing DM keeps its id).
    pub dm_chat_id: &'static str,
}

/// Alice, the page's default user ("you").
pub const DEMO_ALICE: DemoUser = DemoUser {
    open_id: "ou_a11ce000000000000000000000000001",
    name: "Alice",
    dm_chat_id: "oc_d1a11ce0000000000000000000000001",
};

/// Bob, a second user (in the demo he is not allowed yet and pairs).
pub const DEMO_BOB: DemoUser = DemoUser {
    open_id: "ou_b0b00000000000000000000000000002",
    name: "Bob",
    dm_chat_id: "oc_d1b0b000000000000000000000000002",
};

/// The users of the chat page, the default one first.
pub const DEMO_USERS: [DemoUser; 2] = [DEMO_ALICE, DEMO_BOB];

/// chat_id of the page's group ("Team group": Alice, Bob and the bot).
pub const DEMO_GROUP_CHAT_ID: &str = "oc_7ea30000000000000000000000000001";

/// chat_id of the page's topic group ("Topic group").
pub const DEMO_TOPIC_CHAT_ID: &str = "oc_70b1c000000000000000000000000002";

/// Display names of the page's group chats.
const GROUP_NAME: &str = "Team group";
const TOPIC_NAME: &str = "Topic group";

/// An embedded file: name under `/ui/assets/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../ui/app.js"),
    },
    Asset {
        name: "render.js",
        content_type: JS,
        bytes: include_bytes!("../ui/render.js"),
    },
    Asset {
        name: "markdown.js",
        content_type: JS,
        bytes: include_bytes!("../ui/markdown.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../ui/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../ui/icon.svg"),
    },
];

const INDEX_HTML: &str = include_str!("../ui/index.html");

/// Settings of the page that can change while the emulator runs.
#[derive(Debug, Default)]
pub struct UiState {
    gateway_admin_url: Mutex<Option<String>>,
}

impl UiState {
    /// Starts with the configured admin URL.
    pub fn new(gateway_admin_url: Option<String>) -> UiState {
        UiState {
            gateway_admin_url: Mutex::new(gateway_admin_url.map(normalize_url)),
        }
    }

    fn url(&self) -> MutexGuard<'_, Option<String>> {
        self.gateway_admin_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway admin API's base URL the page uses, if any.
    pub fn gateway_admin_url(&self) -> Option<String> {
        self.url().clone()
    }

    /// Sets or clears the gateway admin API's base URL.
    pub fn set_gateway_admin_url(&self, url: Option<String>) {
        *self.url() = url.map(normalize_url);
    }
}

fn normalize_url(url: String) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// One user in [`UiConfig`].
#[derive(Debug, Serialize)]
struct UiUser {
    open_id: &'static str,
    name: &'static str,
    dm_chat_id: String,
}

/// One group chat in [`UiConfig`].
#[derive(Debug, Serialize)]
struct UiChat {
    key: &'static str,
    chat_id: &'static str,
    chat_mode: &'static str,
    name: &'static str,
}

/// What the page learns at start (`GET /_emulator/ui/config`).
#[derive(Debug, Serialize)]
struct UiConfig {
    gateway_admin_url: Option<String>,
    app_id: String,
    bot_name: String,
    bot_open_id: String,
    users: Vec<UiUser>,
    chats: Vec<UiChat>,
}

/// A chat in the sidebar: its version and last message.
#[derive(Debug, Serialize)]
struct UiChatSummary {
    chat_id: String,
    version: u64,
    message_count: usize,
    last: Option<ChatMessageView>,
}

/// The sidebar's answer (`GET /_emulator/ui/chats`).
#[derive(Debug, Serialize)]
struct UiChats {
    version: u64,
    chats: Vec<UiChatSummary>,
}

/// The user's DM with the app's bot: the existing one, else a new chat with
/// the user's fixed id.
fn ensure_dm(st: &mut State, app_id: &str, user: &DemoUser) -> String {
    let key = (app_id.to_string(), user.open_id.to_string());
    if let Some(id) = st.p2p.get(&key) {
        return id.clone();
    }
    if st.chats.contains_key(user.dm_chat_id) {
        // The fixed id is taken by another chat: let the emulator pick one.
        return st.p2p_chat(app_id, user.open_id);
    }
    st.insert_chat(
        user.dm_chat_id,
        app_id,
        ChatMode::P2p,
        user.name.to_string(),
        user.open_id,
    );
    st.p2p.insert(key, user.dm_chat_id.to_string());
    user.dm_chat_id.to_string()
}

fn ensure_group(st: &mut State, app_id: &str, chat_id: &str, mode: ChatMode, name: &str) {
    if st.chats.contains_key(chat_id) {
        return;
    }
    st.insert_chat(chat_id, app_id, mode, name.to_string(), DEMO_ALICE.open_id);
    if let Some(chat) = st.chats.get_mut(chat_id) {
        chat.members = DEMO_USERS.iter().map(|u| u.open_id.to_string()).collect();
    }
}

impl Core {
    /// The page's config; creates the demo users and chats (in the default
    /// app) when they do not exist yet.
    fn ui_config(&self) -> UiConfig {
        let app = self.default_app();
        let mut st = self.lock();
        let users = DEMO_USERS
            .iter()
            .map(|u| {
                st.ensure_user(Some(u.open_id), Some(u.name));
                UiUser {
                    open_id: u.open_id,
                    name: u.name,
                    dm_chat_id: ensure_dm(&mut st, &app.app_id, u),
                }
            })
            .collect();
        let chats = vec![
            UiChat {
                key: "team",
                chat_id: DEMO_GROUP_CHAT_ID,
                chat_mode: ChatMode::Group.as_str(),
                name: GROUP_NAME,
            },
            UiChat {
                key: "topic",
                chat_id: DEMO_TOPIC_CHAT_ID,
                chat_mode: ChatMode::Topic.as_str(),
                name: TOPIC_NAME,
            },
        ];
        for c in &chats {
            let mode = if c.key == "topic" {
                ChatMode::Topic
            } else {
                ChatMode::Group
            };
            ensure_group(&mut st, &app.app_id, c.chat_id, mode, c.name);
        }
        UiConfig {
            gateway_admin_url: self.ui.gateway_admin_url(),
            app_id: app.app_id,
            bot_name: app.bot_name,
            bot_open_id: app.bot_open_id,
            users,
            chats,
        }
    }

    /// Every chat with its last message.
    fn ui_chats(&self) -> UiChats {
        let list = self.chat_list();
        let chats = list
            .chats
            .into_iter()
            .map(|c| UiChatSummary {
                last: self.last_message(&c.chat_id),
                chat_id: c.chat_id,
                version: c.version,
                message_count: c.message_count,
            })
            .collect();
        UiChats {
            version: list.version,
            chats,
        }
    }

    fn last_message(&self, chat_id: &str) -> Option<ChatMessageView> {
        let st = self.lock();
        let id = st.chats.get(chat_id)?.messages.last()?;
        let msg = st.messages.get(id)?;
        Some(control::view(
            &st,
            msg,
            self.cfg.streaming_auto_close,
            std::time::Instant::now(),
        ))
    }

    /// Waits until any chat changed after `after_version` (or `timeout`).
    async fn wait_any_chat(&self, after_version: u64, timeout: Duration) {
        let mut rx = self.lock().version_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.lock().version <= after_version {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                changed = rx.changed() => if changed.is_err() { return },
                _ = self.cancel.cancelled() => return,
            }
        }
    }
}

/// `GET /_emulator/ui/config`.
async fn config(AxState(core): AxState<Arc<Core>>) -> Response {
    Json(core.ui_config()).into_response()
}

/// `GET /_emulator/ui/chats[?wait_version=N&timeout_ms=T]`: all chats with
/// their last message; long-polls until the global version exceeds N.
async fn chats(
    AxState(core): AxState<Arc<Core>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let (Some(after), timeout) = crate::control::long_poll(&q) {
        core.wait_any_chat(after, timeout).await;
    }
    Json(core.ui_chats()).into_response()
}

/// The page's Content-Security-Policy: own scripts and styles only; fetches
/// to the emulator, loopback (the gateway's admin API) and the configured
/// admin URL.
fn content_security_policy(admin_url: Option<&str>) -> String {
    let admin = admin_url
        .and_then(origin_of)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' http://127.0.0.1:* http://localhost:*{admin}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) URL made of safe characters.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split('/').next()?;
    let safe = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    (!host.is_empty() && host.chars().all(safe)).then(|| format!("{scheme}://{host}"))
}

/// `GET /` and `GET /ui`.
async fn index(AxState(core): AxState<Arc<Core>>) -> Response {
    let csp = content_security_policy(core.ui.gateway_admin_url().as_deref());
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `GET /ui/assets/{file}`.
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// The page's routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/assets/{file}", get(asset))
        .route("/_emulator/ui/config", get(config))
        .route("/_emulator/ui/chats", get(chats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ids_look_like_the_platforms() {
        let hex32 = |s: &str, prefix: &str| {
            s.strip_prefix(prefix)
                .is_some_and(|h| h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()))
        };
        for u in DEMO_USERS {
            assert!(hex32(u.open_id, "ou_"), "{}", u.open_id);
            assert!(hex32(u.dm_chat_id, "oc_"), "{}", u.dm_chat_id);
        }
        assert!(hex32(DEMO_GROUP_CHAT_ID, "oc_"));
        assert!(hex32(DEMO_TOPIC_CHAT_ID, "oc_"));
    }

    #[test]
    fn csp_allows_only_safe_admin_origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("http://a b;script-src *"), None);
        let csp = content_security_policy(Some("http://gw.local:9"));
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:*"));
        assert!(csp.ends_with("frame-ancestors 'none'"));
        assert!(csp.contains(" http://gw.local:9;"));
    }

    #[test]
    fn admin_url_is_trimmed_and_settable() {
        let ui = UiState::new(Some(" http://127.0.0.1:1/ ".into()));
        assert_eq!(
            ui.gateway_admin_url().as_deref(),
            Some("http://127.0.0.1:1")
        );
        ui.set_gateway_admin_url(None);
        assert_eq!(ui.gateway_admin_url(), None);
    }
}
