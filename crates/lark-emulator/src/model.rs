//! Public types of the Rust control API (also the JSON of the HTTP control API).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One app (tenant) of the emulator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppInfo {
    /// `cli_` + 16 hex.
    pub app_id: String,
    /// The app secret (the emulator is a test tool; it shows it).
    pub app_secret: String,
    /// The bot's open_id (`ou_…`).
    pub bot_open_id: String,
    /// The bot's name (`app_name` in `bot/v3/info`).
    pub bot_name: String,
    /// `feishu` or `lark` (apps created by registration may be `lark`).
    pub brand: String,
    /// The tenant key used in event headers.
    pub tenant_key: String,
}

/// Options for a new app; everything optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NewApp {
    /// Fixed app id (`cli_` + 16 hex); random if absent.
    pub app_id: Option<String>,
    /// Fixed secret; random if absent.
    pub app_secret: Option<String>,
    /// Bot name; "Bot N" if absent.
    pub bot_name: Option<String>,
    /// `feishu` (default) or `lark`.
    pub brand: Option<String>,
}

/// Webhook delivery settings of an app.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// Where events (and card callbacks) are POSTed.
    pub url: String,
    /// With an encrypt key, bodies are `{"encrypt":…}` and signed.
    #[serde(default)]
    pub encrypt_key: Option<String>,
    /// The verification token put in `header.token` (random if absent).
    #[serde(default)]
    pub verification_token: Option<String>,
    /// POST the `url_verification` challenge first and require the echo.
    #[serde(default)]
    pub verify: bool,
}

/// A message a user sends to the bot (control API).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserMessage {
    /// The app whose bot receives it (default app if absent).
    pub app_id: Option<String>,
    /// `p2p` (default), `group` or `topic` (a topic group).
    pub chat_type: Option<String>,
    /// Existing (or to-be-created) chat; a p2p chat is found by sender.
    pub chat_id: Option<String>,
    /// The sender; a new user if absent (p2p reuses nothing then).
    pub sender_open_id: Option<String>,
    /// The sender's display name (kept for the user).
    pub sender_name: Option<String>,
    /// `text` (default), `post`, `image`, `file`, `audio`, `media`,
    /// `sticker`, `merge_forward`, `interactive`, `share_chat`, `location`, …
    pub msg_type: Option<String>,
    /// The text (for `text`, or a one-paragraph `post`).
    pub text: Option<String>,
    /// Raw content (object or JSON string); overrides what `text` builds.
    pub content: Option<Value>,
    /// @-mention the bot (`@_user_N` placeholder + mentions entry).
    pub mentions_bot: bool,
    /// @all (`@_all` placeholder, no mentions entry).
    pub mention_all: bool,
    /// Other users mentioned, by open_id.
    pub mentions: Vec<String>,
    /// Root of the thread being replied in.
    pub root_id: Option<String>,
    /// Thread id (topic).
    pub thread_id: Option<String>,
    /// The message replied to.
    pub parent_id: Option<String>,
    /// Override of the create time (ms).
    pub create_time_ms: Option<i64>,
    /// For image/file/audio/media/sticker: the bytes, base64.
    pub data: Option<String>,
    /// File name for file/media.
    pub file_name: Option<String>,
    /// Duration in ms for audio/media.
    pub duration_ms: Option<i64>,
    /// For `merge_forward`: the forwarded messages.
    pub forwarded: Vec<ForwardedMessage>,
}

/// One message inside a merge_forward.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ForwardedMessage {
    /// Original sender (a new user if absent).
    pub sender_open_id: Option<String>,
    /// `text` (default) or another type with `content`.
    pub msg_type: Option<String>,
    /// Text for a text message.
    pub text: Option<String>,
    /// Raw content (object or JSON string).
    pub content: Option<Value>,
}

/// What the control API returns for a user message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentMessage {
    /// `header.event_id` of the `im.message.receive_v1` event.
    pub event_id: String,
    /// The message id.
    pub message_id: String,
    /// The chat it went to.
    pub chat_id: String,
    /// The sender.
    pub sender_open_id: String,
}

/// A reaction as a user sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReactionView {
    /// Emoji type, such as `THUMBSUP`.
    pub emoji_type: String,
    /// `bot` or the user's open_id.
    pub operator: String,
}

/// One message of a chat as a user sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessageView {
    /// The message id.
    pub message_id: String,
    /// `bot` or the sending user's open_id.
    pub sender: String,
    /// `text`, `post`, `interactive`, …
    pub msg_type: String,
    /// Rendered plain text (a card's current text, a post's text).
    pub text: String,
    /// Raw content JSON string (a card entity's current JSON).
    pub content: String,
    /// The message replied to (`parent_id`).
    pub reply_to: Option<String>,
    /// Thread root.
    pub root_id: Option<String>,
    /// Thread id.
    pub thread_id: Option<String>,
    /// Number of edits (PUT).
    pub edits: u32,
    /// Recalled (DELETE).
    pub recalled: bool,
    /// Current reactions.
    pub reactions: Vec<ReactionView>,
    /// The card entity is still streaming.
    pub streaming: bool,
    /// The card entity id, if sent by `card_id`.
    pub card_id: Option<String>,
    /// Create time, ms.
    pub create_time_ms: i64,
}

/// A chat with its messages and version counter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatView {
    /// The chat id.
    pub chat_id: String,
    /// The app whose bot is in the chat.
    pub app_id: String,
    /// `p2p`, `group` or `topic`.
    pub chat_mode: String,
    /// Display name.
    pub name: String,
    /// Changes whenever a message of this chat changes.
    pub version: u64,
    /// Oldest first.
    pub messages: Vec<ChatMessageView>,
}

/// A chat in the list of chats.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatSummary {
    /// The chat id.
    pub chat_id: String,
    /// The app whose bot is in the chat.
    pub app_id: String,
    /// `p2p`, `group` or `topic`.
    pub chat_mode: String,
    /// Display name.
    pub name: String,
    /// Version counter of the chat.
    pub version: u64,
    /// Messages in the chat.
    pub message_count: usize,
}

/// All chats plus the global version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatList {
    /// Global version (max of all chats).
    pub version: u64,
    /// Chats, oldest first.
    pub chats: Vec<ChatSummary>,
}

/// A button press on a card message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CardPress {
    /// Who presses (a new user if absent).
    pub operator_open_id: Option<String>,
    /// The component's `value`.
    pub value: Value,
    /// Component tag (default `button`).
    pub tag: Option<String>,
    /// Component name.
    pub name: Option<String>,
    /// Form values (form submit).
    pub form_value: Option<Value>,
}

/// What came back from the app for a card press.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CardPressResult {
    /// `ok`, `timeout` (no answer within the 3-s rule), `failed` (ack code
    /// not 200 / HTTP not 200) or `no_receiver` (no connection, no webhook).
    pub status: String,
    /// The callback response body (`{"toast":…,"card":…}`), if any.
    pub response: Option<Value>,
    /// The card of the response was applied to the message.
    pub card_applied: bool,
    /// `header.event_id` of the callback.
    pub event_id: String,
    /// Why it failed, when it did.
    pub detail: Option<String>,
}

/// Faults to inject (`POST /_emulator/faults`, JSON tagged by `kind`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// Close every long connection (of one app, or all).
    DropConnections {
        /// Only this app's connections.
        #[serde(default)]
        app_id: Option<String>,
    },
    /// Deliver each of the next `count` events twice (same event_id).
    DuplicateEvents {
        /// How many events.
        count: u32,
    },
    /// Ignore the next `count` acks (as if lost), causing redelivery.
    DropAcks {
        /// How many acks.
        count: u32,
    },
    /// Change the redelivery timeout (the 3-s rule) from now on.
    SetRedeliveryAfter {
        /// Milliseconds.
        ms: u64,
    },
    /// Fail the next `count` calls of an endpoint.
    FailCalls {
        /// `"METHOD /path"` route (as in stats, e.g.
        /// `POST /open-apis/im/v1/messages`) or a prefix of the request's
        /// `"METHOD /actual/path"`.
        endpoint: String,
        /// How many calls.
        count: u32,
        /// HTTP status to answer with.
        status: u16,
        /// `code` in the body.
        code: i64,
        /// `msg` in the body.
        #[serde(default)]
        msg: Option<String>,
    },
    /// Invalidate every issued token (next use gets 99991663).
    ExpireTokens,
    /// Refuse the next `count` WebSocket handshakes.
    RefuseHandshakes {
        /// How many handshakes.
        count: u32,
        /// `handshake-status` (and HTTP status), e.g. 403 or 514.
        status: u16,
        /// `handshake-autherrcode` (e.g. 1000040350).
        #[serde(default)]
        autherrcode: Option<i64>,
        /// `handshake-msg`.
        #[serde(default)]
        msg: Option<String>,
    },
    /// Make the next `count` discoveries answer with `code`.
    DiscoveryCode {
        /// How many discoveries.
        count: u32,
        /// The code (1 = busy, 1000040343 = internal, 1000040350 = limit…).
        code: i64,
        /// `msg`.
        #[serde(default)]
        msg: Option<String>,
    },
    /// Make the next `count` registration polls answer `error`
    /// (`slow_down`, `access_denied`, `expired_token`, …).
    RegistrationPoll {
        /// RFC 8628 error string.
        error: String,
        /// How many polls.
        count: u32,
    },
    /// Remove every pending fault.
    Clear,
}

/// Ack latency summary in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Counters of one app.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AppStats {
    /// Live long connections.
    pub connections: usize,
    /// Long connections accepted so far.
    pub connections_total: u64,
    /// Delivery attempts (first deliveries and redeliveries).
    pub events_delivered: u64,
    /// Events acked with code 200 (or webhook HTTP 200).
    pub events_acked: u64,
    /// Redelivery attempts.
    pub events_redelivered: u64,
    /// Events given up after all redeliveries.
    pub events_dropped: u64,
    /// Extra deliveries made by the `duplicate_events` fault.
    pub events_duplicated: u64,
    /// Deliveries split into more than one frame.
    pub events_fragmented: u64,
    /// Acks per code (`"200"`, `"500"`, …; `"http_500"` for webhooks).
    pub ack_codes: BTreeMap<String, u64>,
    /// Ack latency (first delivery attempt of that frame to ack).
    pub ack_latency: Latency,
    /// Pings received.
    pub pings: u64,
    /// API calls per `"METHOD /route"`.
    pub api_calls: BTreeMap<String, u64>,
}

/// Counters of every app, by app id.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Per app.
    pub apps: BTreeMap<String, AppStats>,
}

/// Approve a pending app registration (device flow).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApproveRegistration {
    /// The user code shown to the user.
    pub user_code: Option<String>,
    /// Or the device code.
    pub device_code: Option<String>,
    /// `feishu` (default) or `lark`.
    pub tenant_brand: Option<String>,
    /// Name of the created bot.
    pub bot_name: Option<String>,
}

/// Result of approving a registration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovedRegistration {
    /// The created app.
    pub app: AppInfo,
    /// The scanning user's open_id (`user_info.open_id`).
    pub user_open_id: String,
}

/// Any event to push to an app as a v2.0 envelope (control API).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RawEvent {
    /// The app (default app if absent).
    #[serde(default)]
    pub app_id: Option<String>,
    /// `header.event_type`, e.g. `im.chat.member.bot.added_v1`.
    pub event_type: String,
    /// The `event` object.
    pub event: Value,
}

/// A user adds a reaction to a message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserReaction {
    /// Who reacts (a new user if absent).
    pub operator_open_id: Option<String>,
    /// Emoji type, e.g. `THUMBSUP`.
    pub emoji_type: String,
}

/// An event the control API pushed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveredEvent {
    /// `header.event_id`.
    pub event_id: String,
    /// The new reaction's id (reactions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction_id: Option<String>,
}
