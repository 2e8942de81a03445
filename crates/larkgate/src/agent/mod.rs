//! Agent backends: something that turns a user's turn into a stream of text.
//!
//! Every backend implements [`Agent`]: it receives an [`AgentRequest`] and a
//! cancellation token, and sends [`AgentEvent`]s (text deltas, media, usage)
//! into a channel until the turn is complete, then returns.
//!
//! Backends are built from an `agents.<name>` entry with [`build`] and
//! checked with [`validate`]; `docs/AGENTS.md` describes each one and the JSON
//! exchanged with `command` and `http` agents ([`wire`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;

mod anthropic;
mod command;
mod content;
mod echo;
mod factory;
mod http;
mod openai;
pub mod sse;
mod transport;
mod turn;
mod utf8;
pub mod wire;

pub use factory::{build, validate};

/// Who said a past turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person.
    User,
    /// The agent.
    Assistant,
}

/// One past turn of the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTurn {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub text: String,
}

/// What kind of file an attachment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    /// A picture (sent to vision models).
    Image,
    /// Any file.
    File,
    /// A voice message.
    Audio,
    /// A video.
    Video,
}

/// A file the user sent, already downloaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Image, file, audio or video.
    pub kind: AttachmentKind,
    /// Where it was saved.
    pub path: PathBuf,
    /// File name as sent (or a made-up one).
    pub name: String,
    /// MIME type, when known.
    pub mime: Option<String>,
    /// What a voice message says, when a transcript is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// One turn's input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// Stable id of the conversation (changes after `/new`).
    pub session_id: String,
    /// The account (bot) name.
    pub account: String,
    /// `oc_…`.
    pub chat_id: String,
    /// `p2p` or `group`.
    pub chat_type: String,
    /// The sender's `ou_…`.
    pub sender_open_id: String,
    /// The sender's display name, when known.
    pub sender_name: Option<String>,
    /// The user's message as text (mentions resolved, quoted parent prepended).
    pub text: String,
    /// Earlier turns, oldest first.
    pub history: Vec<HistoryTurn>,
    /// Files the user sent with this message.
    pub attachments: Vec<Attachment>,
    /// System prompt: the group's, else the account's, else the agent's.
    pub system_prompt: Option<String>,
}

/// A file or image the agent wants to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMedia {
    /// Image or file (audio and video are sent as files unless typed).
    pub kind: AttachmentKind,
    /// A local path or an `http(s)://` URL.
    pub source: String,
    /// File name to show.
    pub name: Option<String>,
}

/// What an agent emits while it works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// More text, appended to what came before.
    Delta(String),
    /// A file or image to send after (or alongside) the text.
    Media(OutboundMedia),
    /// Token usage, when the backend reports it.
    Usage {
        /// Prompt tokens.
        input_tokens: u64,
        /// Completion tokens.
        output_tokens: u64,
    },
}

/// Why a turn failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentErrorKind {
    /// The backend did not answer in time.
    Timeout,
    /// The turn was cancelled (`/stop`).
    Cancelled,
    /// The backend refused the credentials (401/403).
    Auth,
    /// The backend is rate limiting (429).
    RateLimited,
    /// Network failure or 5xx: may work later.
    Unavailable,
    /// The backend answered something we cannot read.
    Protocol,
    /// A command agent exited non-zero.
    Exit,
    /// The agent is misconfigured.
    Config,
}

/// A failed turn, with a message fit to show the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// The class of failure.
    pub kind: AgentErrorKind,
    /// What happened, without secrets.
    pub message: String,
}

impl AgentError {
    /// An error of `kind` with `message`.
    pub fn new(kind: AgentErrorKind, message: impl Into<String>) -> AgentError {
        AgentError {
            kind,
            message: message.into(),
        }
    }
}

/// Where a turn's events go.
pub type EventSink = mpsc::Sender<AgentEvent>;

/// A backend that answers turns.
pub trait Agent: Send + Sync + 'static {
    /// The backend type (`echo`, `openai`, ...), for status and logs.
    fn kind(&self) -> &'static str;

    /// Runs one turn: sends events to `out` until done, then returns. Must
    /// return promptly with [`AgentErrorKind::Cancelled`] once `cancel` fires,
    /// stopping any work it started (requests, child processes).
    fn run(
        &self,
        request: AgentRequest,
        cancel: CancellationToken,
        out: EventSink,
    ) -> BoxFuture<'_, Result<(), AgentError>>;
}

/// Backend type of an `agents.<name>` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentType {
    /// Streams the input back.
    #[default]
    Echo,
    /// OpenAI-compatible Chat Completions.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
    /// A local program per turn.
    Command,
    /// A JSON/SSE HTTP endpoint.
    Http,
}

/// One `agents.<name>` entry, as written in the config file (camelCase keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// `echo`, `openai`, `anthropic`, `command` or `http`.
    #[serde(rename = "type")]
    pub kind: AgentType,
    /// API base URL (openai, anthropic).
    pub base_url: Option<String>,
    /// Model name (openai, anthropic).
    pub model: Option<String>,
    /// API key inline.
    pub api_key: Option<Secret>,
    /// Name of an environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Whole-turn timeout in seconds (default 300).
    pub timeout_secs: Option<u64>,
    /// Program and arguments (command).
    pub command: Option<Vec<String>>,
    /// Working directory (command).
    pub cwd: Option<PathBuf>,
    /// Extra environment (command).
    pub env: Option<BTreeMap<String, String>>,
    /// Endpoint URL (http).
    pub url: Option<String>,
    /// Extra request headers (http, openai, anthropic).
    pub headers: Option<BTreeMap<String, String>>,
    /// Whether images are sent to the model (openai, anthropic; default true).
    pub vision: Option<bool>,
    /// Outbound media URLs the agent may ask us to fetch must start with one of these.
    pub media_url_allowlist: Option<Vec<String>>,
    /// Seconds allowed to connect and receive the response headers
    /// (openai, anthropic, http; default 30).
    pub connect_timeout_secs: Option<u64>,
    /// Proxy URL (`http://`, `https://`, `socks5://`) for openai, anthropic
    /// and http agents. Without it no proxy is used, whatever the environment says.
    pub proxy: Option<String>,
    /// How a command agent's stdout is read (default `text`).
    pub output: Option<CommandOutput>,
    /// Milliseconds between the echo agent's chunks (default 20).
    pub chunk_delay_ms: Option<u64>,
}

/// How a `command` agent's stdout is read (`output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandOutput {
    /// Raw text, streamed into the reply as it is written.
    #[default]
    Text,
    /// One JSON object per line ([`wire::CommandLine`]).
    Jsonl,
}
