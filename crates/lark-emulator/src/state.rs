//! All mutable state of the emulator, behind one `std::sync::Mutex` that is
//! never held across an `.await`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::bench::BenchLog;
use crate::config::EmulatorConfig;
use crate::error::Error;
use crate::faults::Faults;
use crate::ids;
use crate::model::{AppInfo, NewApp, WebhookConfig};
use crate::ratelimit::TokenBucket;
use crate::stats::Counters;

/// Shared by the server, the background tasks and the Rust API.
pub(crate) struct Core {
    pub cfg: EmulatorConfig,
    state: Mutex<State>,
    pub base_url: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    pub rt: tokio::runtime::Handle,
    pub redelivery_wake: Notify,
    pub cancel: CancellationToken,
    pub ui: crate::ui::UiState,
}

impl Core {
    pub fn new(cfg: EmulatorConfig, port: u16) -> Result<Arc<Core>, Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(cfg.redelivery_after.max(Duration::from_millis(100)))
            .build()
            .map_err(|e| Error::Invalid(format!("http client: {e}")))?;
        let (version_tx, _) = watch::channel(0);
        let mut state = State::new(version_tx, cfg.redelivery_after);
        let default = state.create_app(
            NewApp {
                app_id: Some(cfg.app_id.clone()),
                app_secret: Some(cfg.app_secret.clone()),
                bot_name: Some(cfg.bot_name.clone()),
                brand: None,
            },
            true,
        )?;
        state.default_app = default.app_id;
        Ok(Arc::new(Core {
            ui: crate::ui::UiState::new(cfg.ui_gateway_admin_url.clone()),
            cfg,
            state: Mutex::new(state),
            base_url: format!("http://127.0.0.1:{port}"),
            ws_url: format!("ws://127.0.0.1:{port}/ws/v2"),
            http,
            rt: tokio::runtime::Handle::current(),
            redelivery_wake: Notify::new(),
            cancel: CancellationToken::new(),
        }))
    }

    /// Locks the state (a poisoned lock is recovered: state stays usable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Who sent a message or added a reaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The bot of this app.
    Bot(String),
    /// A user by open_id.
    User(String),
}

impl Actor {
    /// `bot` or the open_id.
    pub fn view(&self) -> String {
        match self {
            Actor::Bot(_) => "bot".to_string(),
            Actor::User(id) => id.clone(),
        }
    }
}

pub struct App {
    pub info: AppInfo,
    pub service_id: i32,
    pub verification_token: String,
    pub webhook: Option<WebhookConfig>,
    pub current_token: Option<String>,
    pub conns: Vec<u64>,
    pub backlog: VecDeque<OutEvent>,
    pub counters: Counters,
    pub api_bucket: Option<TokenBucket>,
}

pub struct User {
    pub open_id: String,
    pub union_id: String,
    pub user_id: String,
    pub name: String,
    pub email: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatMode {
    P2p,
    Group,
    Topic,
}

impl ChatMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatMode::P2p => "p2p",
            ChatMode::Group => "group",
            ChatMode::Topic => "topic",
        }
    }

    /// `chat_type` in events.
    pub fn event_chat_type(self) -> &'static str {
        match self {
            ChatMode::P2p => "p2p",
            _ => "group",
        }
    }
}

pub struct Chat {
    pub chat_id: String,
    pub app_id: String,
    pub mode: ChatMode,
    pub name: String,
    pub owner: String,
    pub members: Vec<String>,
    pub messages: Vec<String>,
    pub version: u64,
    pub send_bucket: Option<TokenBucket>,
}

pub struct Reaction {
    pub reaction_id: String,
    pub emoji_type: String,
    pub operator: Actor,
    pub action_ms: i64,
}

pub struct Message {
    pub message_id: String,
    pub chat_id: String,
    pub sender: Actor,
    pub msg_type: String,
    pub content: String,
    pub text: Option<String>,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub upper_message_id: Option<String>,
    pub children: Vec<String>,
    pub mentions: Vec<Value>,
    pub create_ms: i64,
    pub update_ms: i64,
    pub edits: u32,
    pub updated: bool,
    pub recalled: bool,
    pub reactions: Vec<Reaction>,
    pub card_id: Option<String>,
    pub patch_bucket: Option<TokenBucket>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Image,
    File,
}

pub struct Resource {
    pub bytes: Bytes,
    pub file_name: String,
    pub mime: String,
    pub kind: ResourceKind,
    pub owner_app: Option<String>,
}

pub struct CardEntity {
    pub app_id: String,
    pub card: Value,
    pub last_sequence: i64,
    pub streaming_since: Instant,
    pub auto_closed: bool,
    pub message_id: Option<String>,
    pub uuids: HashSet<String>,
    pub bucket: Option<TokenBucket>,
}

/// A frame (or a close request) for one WebSocket connection.
pub enum WsOut {
    Frame(Bytes),
    Close,
}

pub struct Conn {
    pub app_id: String,
    pub tx: mpsc::UnboundedSender<WsOut>,
}

pub struct Ticket {
    pub app_id: String,
    pub device_id: String,
    pub expires: Instant,
}

/// The answer to a card callback.
#[derive(Debug)]
pub enum CallbackOutcome {
    Response(Vec<u8>),
    Failed(String),
    Timeout,
    NoReceiver,
}

/// An event on its way to an app.
pub struct OutEvent {
    pub event_id: String,
    pub payload: Bytes,
    pub reply: Option<oneshot::Sender<CallbackOutcome>>,
    pub attempt: u32,
    /// The bench push that sent it (0: not a bench event).
    pub bench_push: u64,
}

impl OutEvent {
    pub fn new(event_id: String, payload: Vec<u8>) -> OutEvent {
        OutEvent {
            event_id,
            payload: Bytes::from(payload),
            reply: None,
            attempt: 0,
            bench_push: 0,
        }
    }

    /// A copy without the callback channel (for duplicates).
    pub fn duplicate(&self) -> OutEvent {
        OutEvent {
            event_id: self.event_id.clone(),
            payload: self.payload.clone(),
            reply: None,
            attempt: self.attempt,
            bench_push: self.bench_push,
        }
    }
}

pub struct Pending {
    pub app_id: String,
    pub event: OutEvent,
    pub sent_at: Instant,
}

pub struct Registration {
    pub device_code: String,
    pub user_code: String,
    pub expires: Instant,
    pub approved: Option<(String, String, String)>,
}

pub struct TokenEntry {
    pub app_id: String,
    pub expires: Instant,
}

pub struct State {
    pub apps: HashMap<String, App>,
    pub app_order: Vec<String>,
    pub default_app: String,
    pub tokens: HashMap<String, TokenEntry>,
    pub users: HashMap<String, User>,
    pub chats: HashMap<String, Chat>,
    pub chat_order: Vec<String>,
    pub p2p: HashMap<(String, String), String>,
    pub messages: HashMap<String, Message>,
    pub resources: HashMap<String, Resource>,
    pub cards: HashMap<String, CardEntity>,
    pub conns: HashMap<u64, Conn>,
    pub next_conn: u64,
    pub next_seq: u64,
    pub tickets: HashMap<String, Ticket>,
    pub pending: HashMap<String, Pending>,
    pub redelivery: BinaryHeap<Reverse<(Instant, String)>>,
    pub redelivery_after: Duration,
    pub uuids: HashMap<(String, String), (String, Instant)>,
    pub registrations: HashMap<String, Registration>,
    pub faults: Faults,
    pub version: u64,
    pub version_tx: watch::Sender<u64>,
    pub bench: BenchLog,
}

impl State {
    fn new(version_tx: watch::Sender<u64>, redelivery_after: Duration) -> State {
        State {
            apps: HashMap::new(),
            app_order: Vec::new(),
            default_app: String::new(),
            tokens: HashMap::new(),
            users: HashMap::new(),
            chats: HashMap::new(),
            chat_order: Vec::new(),
            p2p: HashMap::new(),
            messages: HashMap::new(),
            resources: HashMap::new(),
            cards: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            next_seq: 1,
            tickets: HashMap::new(),
            pending: HashMap::new(),
            redelivery: BinaryHeap::new(),
            redelivery_after,
            uuids: HashMap::new(),
            registrations: HashMap::new(),
            faults: Faults::default(),
            version: 0,
            version_tx,
            bench: BenchLog::default(),
        }
    }

    /// Marks a chat changed: new version, wake long-pollers.
    pub fn bump(&mut self, chat_id: &str) {
        self.version += 1;
        if let Some(chat) = self.chats.get_mut(chat_id) {
            chat.version = self.version;
        }
        self.version_tx.send_replace(self.version);
        self.bench.mark("update", chat_id);
    }

    pub fn app(&self, app_id: &str) -> Result<&App, Error> {
        self.apps
            .get(app_id)
            .ok_or_else(|| Error::NotFound(format!("app {app_id}")))
    }

    pub fn app_mut(&mut self, app_id: &str) -> Result<&mut App, Error> {
        self.apps
            .get_mut(app_id)
            .ok_or_else(|| Error::NotFound(format!("app {app_id}")))
    }

    /// Resolves an optional app id to an existing app id (default app).
    pub fn resolve_app(&self, app_id: Option<&str>) -> Result<String, Error> {
        let id = app_id.unwrap_or(&self.default_app);
        self.app(id).map(|a| a.info.app_id.clone())
    }

    pub fn create_app(&mut self, req: NewApp, is_default: bool) -> Result<AppInfo, Error> {
        let app_id = match req.app_id {
            Some(id) => {
                if !valid_app_id(&id) {
                    return Err(Error::Invalid(format!(
                        "app id {id:?} must be cli_ followed by 16 hex digits"
                    )));
                }
                id
            }
            None => ids::app_id(),
        };
        if self.apps.contains_key(&app_id) {
            return Err(Error::Invalid(format!("app {app_id} already exists")));
        }
        let brand = req.brand.unwrap_or_else(|| "feishu".to_string());
        if brand != "feishu" && brand != "lark" {
            return Err(Error::Invalid(format!(
                "brand {brand:?}: use feishu or lark"
            )));
        }
        let n = self.apps.len() + 1;
        // The default app gets ids derived from its app id, so docs can show them.
        let (bot_open_id, tenant_key, verification_token) = if is_default {
            (
                format!("ou_{}", ids::stable_hex(&format!("bot:{app_id}"), 32)),
                ids::stable_hex(&format!("tenant:{app_id}"), 16),
                ids::stable_hex(&format!("vt:{app_id}"), 32),
            )
        } else {
            (ids::open_id(), ids::hex(16), ids::alnum(32))
        };
        let info = AppInfo {
            app_id: app_id.clone(),
            app_secret: req.app_secret.unwrap_or_else(|| ids::alnum(32)),
            bot_open_id,
            bot_name: req.bot_name.unwrap_or_else(|| format!("Bot {n}")),
            brand,
            tenant_key,
        };
        let service_id = 100 + rand::random::<u16>() as i32;
        self.apps.insert(
            app_id.clone(),
            App {
                info: info.clone(),
                service_id,
                verification_token,
                webhook: None,
                current_token: None,
                conns: Vec::new(),
                backlog: VecDeque::new(),
                counters: Counters::default(),
                api_bucket: None,
            },
        );
        self.app_order.push(app_id);
        Ok(info)
    }

    /// The user with this open_id, created if unknown.
    pub fn ensure_user(&mut self, open_id: Option<&str>, name: Option<&str>) -> String {
        let open_id = open_id.map(str::to_string).unwrap_or_else(ids::open_id);
        let n = self.users.len() + 1;
        let user = self.users.entry(open_id.clone()).or_insert_with(|| {
            let user_id = ids::hex(8);
            User {
                open_id: open_id.clone(),
                union_id: format!("on_{}", ids::hex(32)),
                email: format!("{user_id}@example.com"),
                user_id,
                name: format!("User {n}"),
            }
        });
        if let Some(name) = name {
            user.name = name.to_string();
        }
        open_id
    }

    pub fn user_name(&self, open_id: &str) -> String {
        self.users
            .get(open_id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| open_id.to_string())
    }

    /// The p2p chat between an app's bot and a user, created if needed.
    pub fn p2p_chat(&mut self, app_id: &str, open_id: &str) -> String {
        if let Some(id) = self.p2p.get(&(app_id.to_string(), open_id.to_string())) {
            return id.clone();
        }
        let name = self.user_name(open_id);
        let chat_id = ids::chat_id();
        self.insert_chat(&chat_id, app_id, ChatMode::P2p, name, open_id);
        self.p2p
            .insert((app_id.to_string(), open_id.to_string()), chat_id.clone());
        chat_id
    }

    pub fn insert_chat(
        &mut self,
        chat_id: &str,
        app_id: &str,
        mode: ChatMode,
        name: String,
        owner: &str,
    ) {
        self.chats.insert(
            chat_id.to_string(),
            Chat {
                chat_id: chat_id.to_string(),
                app_id: app_id.to_string(),
                mode,
                name,
                owner: owner.to_string(),
                members: vec![owner.to_string()],
                messages: Vec::new(),
                version: 0,
                send_bucket: None,
            },
        );
        self.chat_order.push(chat_id.to_string());
    }

    /// Adds a message to the state and its chat (if listed).
    pub fn insert_message(&mut self, msg: Message, listed: bool) {
        let chat_id = msg.chat_id.clone();
        let id = msg.message_id.clone();
        self.messages.insert(id.clone(), msg);
        if listed {
            if let Some(chat) = self.chats.get_mut(&chat_id) {
                chat.messages.push(id);
            }
            self.bump(&chat_id);
        }
    }

    pub fn tenant_key(&self, app_id: &str) -> String {
        self.apps
            .get(app_id)
            .map(|a| a.info.tenant_key.clone())
            .unwrap_or_default()
    }
}

/// `cli_` + 16 hex digits.
pub fn valid_app_id(id: &str) -> bool {
    id.strip_prefix("cli_")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A blank message to fill in.
pub fn new_message(
    message_id: String,
    chat_id: String,
    sender: Actor,
    msg_type: &str,
    content: String,
    create_ms: i64,
) -> Message {
    Message {
        message_id,
        chat_id,
        sender,
        msg_type: msg_type.to_string(),
        content,
        text: None,
        root_id: None,
        parent_id: None,
        thread_id: None,
        upper_message_id: None,
        children: Vec::new(),
        mentions: Vec::new(),
        create_ms,
        update_ms: create_ms,
        edits: 0,
        updated: false,
        recalled: false,
        reactions: Vec::new(),
        card_id: None,
        patch_bucket: None,
    }
}
