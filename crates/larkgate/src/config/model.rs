//! The resolved configuration: every default applied, every account
//! complete, secrets read from files and the environment. This is the shape
//! the gateway runs on; the file format itself (camelCase keys under
//! `channels.lark`) is parsed and validated elsewhere in this module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::agent::AgentConfig;
use crate::secret::Secret;

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// Enabled and disabled accounts (bots), the default one first.
    pub accounts: Vec<AccountConfig>,
    /// Named agents (`agents.<name>`); `echo` always exists.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Where durable state lives.
    pub store: StoreConfig,
    /// The admin listener (health, metrics, API).
    pub admin: AdminConfig,
    /// The webhook listener shared by accounts in webhook mode.
    pub webhook: WebhookListenConfig,
    /// Logging.
    pub log: LogConfig,
}

/// How an account receives events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The long connection (no public URL needed).
    #[default]
    Websocket,
    /// HTTP callbacks to `webhookPath`.
    Webhook,
}

/// Who may talk to the bot in 1:1 chats (`dmPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DmPolicy {
    /// Anyone.
    Open,
    /// Only senders in `allowFrom`.
    Allowlist,
    /// `allowFrom`, plus senders approved with a pairing code.
    #[default]
    Pairing,
    /// Nobody.
    Disabled,
}

/// Which groups and senders the bot answers in groups (`groupPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    /// Any group, any sender.
    Open,
    /// Groups listed in `groups` (not `enabled = false`) or senders in `groupAllowFrom`.
    #[default]
    Allowlist,
    /// No group messages.
    Disabled,
}

/// What a conversation (history, queue) is keyed by (`sessionScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SessionScope {
    /// One session per chat.
    #[default]
    Chat,
    /// One per sender within a chat.
    Sender,
    /// One per topic (`thread_id`, else `root_id`), else per chat.
    Topic,
    /// One per topic and sender.
    TopicSender,
}

/// How replies are delivered (`replyMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// A CardKit card updated as the agent writes.
    Streaming,
    /// Each completed block (paragraph, list, code block) as its own message.
    Block,
    /// One final message.
    Static,
    /// Streaming in DMs, static in groups unless the group opts in.
    #[default]
    Auto,
}

/// Per-group overrides (`groups."<chat_id>"`); `None` inherits the account's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupConfig {
    /// `false` silences the bot in this group.
    pub enabled: Option<bool>,
    /// Whether a message must mention the bot.
    pub require_mention: Option<bool>,
    /// Replaces the agent's system prompt.
    pub system_prompt: Option<String>,
    /// Senders allowed in this group (open_ids, `"*"` for anyone).
    pub allow_from: Option<Vec<String>>,
    /// Reply in a thread (topic) under the user's message.
    pub reply_in_thread: Option<bool>,
    /// Session scope in this group.
    pub session_scope: Option<SessionScope>,
    /// Agent name for this group.
    pub agent: Option<String>,
    /// Reply mode for this group.
    pub reply_mode: Option<ReplyMode>,
}

/// One bot (Feishu/Lark app) and how it behaves.
#[derive(Clone, Debug)]
pub struct AccountConfig {
    /// `default` for the top-level `channels.lark` keys, else the `accounts.<name>` key.
    pub name: String,
    /// Whether to connect this account.
    pub enabled: bool,
    /// `cli_…`.
    pub app_id: String,
    /// The app secret.
    pub app_secret: Secret,
    /// Display name for logs and status (`name`).
    pub bot_name: Option<String>,
    /// `feishu`, `lark`, or a base URL, as written.
    pub domain: String,
    /// Long connection or webhook.
    pub mode: Mode,
    /// Webhook Encrypt Key.
    pub encrypt_key: Option<Secret>,
    /// Webhook Verification Token.
    pub verification_token: Option<Secret>,
    /// Webhook path (default `/lark/webhook`).
    pub webhook_path: String,
    /// DM policy.
    pub dm_policy: DmPolicy,
    /// DM allowlist (open_ids; `"*"` means anyone).
    pub allow_from: Vec<String>,
    /// Group policy.
    pub group_policy: GroupPolicy,
    /// Group sender allowlist (open_ids; `"*"` means anyone).
    pub group_allow_from: Vec<String>,
    /// Per-group overrides by chat_id.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Whether group messages must mention the bot (default true).
    pub require_mention: bool,
    /// Whether `@all` counts as mentioning the bot (default false).
    pub mention_all: bool,
    /// Whether messages sent by other bots are processed (default false).
    pub allow_bots: bool,
    /// Session scope (default chat).
    pub session_scope: SessionScope,
    /// The agent's name in `agents` (default `echo`).
    pub agent: String,
    /// Account-wide system prompt override.
    pub system_prompt: Option<String>,
    /// Reply mode (default auto).
    pub reply_mode: ReplyMode,
    /// Reply in threads (default false).
    pub reply_in_thread: bool,
    /// Typing reaction while the agent works (`typingIndicator`, default true).
    pub typing_indicator: bool,
    /// The emoji used as typing indicator (default `Typing`).
    pub typing_emoji: String,
    /// Milliseconds the agent works before the typing reaction is added
    /// (`typingDelayMs`, default 1000; 0: at once). A quicker reply shows
    /// none and costs no reaction calls.
    pub typing_delay_ms: u64,
    /// Turns of history kept per session (default 40).
    pub history_limit: usize,
    /// Messages waiting per session before senders are told to wait (default 10).
    pub queue_limit: usize,
    /// Messages older than this many seconds are dropped (default 1800).
    pub stale_after_secs: u64,
    /// Minimum milliseconds between streaming card updates (default 100).
    pub stream_interval_ms: u64,
    /// Largest inbound media file downloaded, in bytes (default 20 MiB).
    pub media_max_bytes: u64,
    /// Explicit proxy URL (http, https, socks5); ambient proxy env is ignored unless set.
    pub proxy: Option<String>,
}

/// Durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://path` (default: `larkgate.db` beside the config) or `postgres://…`.
    pub url: String,
}

/// The admin HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Whether to listen.
    pub enabled: bool,
    /// Address (default `127.0.0.1:18790`).
    pub listen: SocketAddr,
    /// Bearer token required for the write API (pairing, send), if set.
    pub token: Option<Secret>,
}

/// The webhook listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookListenConfig {
    /// Address (default `127.0.0.1:18789`).
    pub listen: SocketAddr,
    /// Largest accepted body in bytes (default 1 MiB).
    pub max_body_bytes: usize,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// `tracing` filter (default `info`).
    pub level: String,
    /// Directory of the daily log file (default: `logs/` beside the config).
    pub dir: Option<PathBuf>,
}

impl AccountConfig {
    /// The group override for `chat_id`, if any.
    pub fn group(&self, chat_id: &str) -> Option<&GroupConfig> {
        self.groups.get(chat_id)
    }
}
