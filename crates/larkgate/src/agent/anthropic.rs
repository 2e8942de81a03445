//! `anthropic`: the Anthropic Messages API, streamed.

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::content::{usable_history, user_content, UserContent};
use super::transport::{join_url, unreadable, HttpSettings, SseBody};
use super::turn::Common;
use super::{Agent, AgentError, AgentErrorKind, AgentEvent, AgentRequest, EventSink, Role};

/// Default `baseUrl`.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// Default `maxTokens` (the API requires a value).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The API version sent in `anthropic-version`.
const API_VERSION: &str = "2023-06-01";

/// Largest image the API accepts, in bytes.
const IMAGE_LIMIT: u64 = 5 * 1024 * 1024;

/// An Anthropic Messages API backend.
#[derive(Debug)]
pub(crate) struct AnthropicAgent {
    pub(crate) common: Common,
    pub(crate) http: HttpSettings,
    /// `<baseUrl>/v1/messages`.
    pub(crate) url: String,
    pub(crate) model: String,
    pub(crate) temperature: Option<f32>,
    pub(crate) max_tokens: u32,
    pub(crate) vision: bool,
}

impl AnthropicAgent {
    /// The endpoint for `base_url` (with or without a trailing `/v1`).
    pub(crate) fn endpoint(base_url: &str) -> String {
        let base = base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            join_url(base, "messages")
        } else {
            join_url(base, "v1/messages")
        }
    }

    /// The request body for one turn.
    fn body(&self, request: &AgentRequest, user: UserContent) -> Value {
        let mut messages = Vec::new();
        for turn in usable_history(&request.history, true) {
            let role = match turn.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            messages.push(json!({"role": role, "content": turn.text}));
        }
        messages.push(json!({"role": "user", "content": user_message(user)}));
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": messages,
            "stream": true,
        });
        if let Some(prompt) = self.common.system_prompt(request) {
            body["system"] = json!(prompt);
        }
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    async fn turn(&self, request: AgentRequest, out: &EventSink) -> Result<(), AgentError> {
        let user = user_content(&request, self.vision, IMAGE_LIMIT).await;
        let body = self.body(&request, user);
        let fixed = [("anthropic-version", API_VERSION)];
        let response = self
            .http
            .post_json(&self.common, &self.url, &fixed, &body)
            .await?;
        let mut events = SseBody::new(response, &self.url);
        let mut usage = TokenCount::default();
        while let Some(event) = events.next(&self.common).await? {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            let parsed: StreamEvent =
                serde_json::from_str(data).map_err(|e| unreadable(&self.common, data, &e))?;
            match parsed {
                StreamEvent::MessageStart { message } => usage.add(&message.usage),
                StreamEvent::ContentBlockDelta {
                    delta: BlockDelta::TextDelta { text },
                } => self.common.emit_text(out, text).await?,
                StreamEvent::MessageDelta { usage: Some(u) } => usage.add(&u),
                StreamEvent::MessageStop => {
                    let event = AgentEvent::Usage {
                        input_tokens: usage.input,
                        output_tokens: usage.output,
                    };
                    return self.common.emit(out, event).await;
                }
                StreamEvent::Error { error } => return Err(self.stream_error(&error)),
                _ => {}
            }
        }
        Err(self.common.error(
            AgentErrorKind::Unavailable,
            "the stream ended before the reply was complete",
        ))
    }

    /// An `error` event inside the stream.
    fn stream_error(&self, error: &ApiError) -> AgentError {
        let kind = match error.kind.as_str() {
            "overloaded_error" | "api_error" => AgentErrorKind::Unavailable,
            "rate_limit_error" => AgentErrorKind::RateLimited,
            "authentication_error" | "permission_error" => AgentErrorKind::Auth,
            "not_found_error" => AgentErrorKind::Config,
            _ => AgentErrorKind::Protocol,
        };
        let message = self.http.redact(&error.message);
        self.common.error(
            kind,
            format!("error during the reply ({}): {message}", error.kind),
        )
    }
}

/// The user message content: a string, or image blocks then a text block.
fn user_message(user: UserContent) -> Value {
    if user.images.is_empty() {
        return Value::String(user.text);
    }
    let mut blocks: Vec<Value> = user
        .images
        .iter()
        .map(|image| {
            json!({
                "type": "image",
                "source": {"type": "base64", "media_type": image.media_type, "data": image.base64},
            })
        })
        .collect();
    if !user.text.trim().is_empty() {
        blocks.push(json!({"type": "text", "text": user.text}));
    }
    Value::Array(blocks)
}

impl Agent for AnthropicAgent {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn run(
        &self,
        request: AgentRequest,
        cancel: CancellationToken,
        out: EventSink,
    ) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.common.guard(&cancel, self.turn(request, &out)).await })
    }
}

/// Tokens counted over the stream.
#[derive(Default)]
struct TokenCount {
    input: u64,
    output: u64,
}

impl TokenCount {
    /// Takes the counts `usage` reports (they are running totals).
    fn add(&mut self, usage: &Usage) {
        let input = usage.input_tokens.unwrap_or(0)
            + usage.cache_creation_input_tokens.unwrap_or(0)
            + usage.cache_read_input_tokens.unwrap_or(0);
        if input > 0 {
            self.input = input;
        }
        if let Some(output) = usage.output_tokens {
            self.output = output;
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}
