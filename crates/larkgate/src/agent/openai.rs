//! `openai`: any OpenAI-compatible Chat Completions endpoint, streamed.

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::content::{usable_history, user_content, UserContent};
use super::transport::{join_url, unreadable, HttpSettings, SseBody};
use super::turn::Common;
use super::{Agent, AgentError, AgentErrorKind, AgentEvent, AgentRequest, EventSink, Role};

/// Default `baseUrl`.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Largest image sent to the model, in bytes.
const IMAGE_LIMIT: u64 = 20 * 1024 * 1024;

/// An OpenAI-compatible Chat Completions backend.
#[derive(Debug)]
pub(crate) struct OpenAiAgent {
    pub(crate) common: Common,
    pub(crate) http: HttpSettings,
    /// `<baseUrl>/chat/completions`.
    pub(crate) url: String,
    pub(crate) model: String,
    pub(crate) temperature: Option<f32>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) vision: bool,
}

impl OpenAiAgent {
    /// The endpoint for `base_url`.
    pub(crate) fn endpoint(base_url: &str) -> String {
        join_url(base_url, "chat/completions")
    }

    /// The request body for one turn.
    fn body(&self, request: &AgentRequest, user: UserContent) -> Value {
        let mut messages = Vec::new();
        if let Some(prompt) = self.common.system_prompt(request) {
            messages.push(json!({"role": "system", "content": prompt}));
        }
        for turn in usable_history(&request.history, false) {
            let role = match turn.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            messages.push(json!({"role": role, "content": turn.text}));
        }
        messages.push(json!({"role": "user", "content": user_message(user)}));
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
        }
        body
    }

    async fn turn(&self, request: AgentRequest, out: &EventSink) -> Result<(), AgentError> {
        let user = user_content(&request, self.vision, IMAGE_LIMIT).await;
        let body = self.body(&request, user);
        let response = self
            .http
            .post_json(&self.common, &self.url, &[], &body)
            .await?;
        let mut events = SseBody::new(response, &self.url);
        let mut finished = false;
        while let Some(event) = events.next(&self.common).await? {
            let data = event.data.trim();
            if data == "[DONE]" {
                return Ok(());
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Chunk =
                serde_json::from_str(data).map_err(|e| unreadable(&self.common, data, &e))?;
            if let Some(error) = chunk.error {
                return Err(self.stream_error(&error));
            }
            for choice in chunk.choices {
                if let Some(text) = choice.delta.and_then(|d| d.content) {
                    self.common.emit_text(out, text).await?;
                }
                finished |= choice.finish_reason.is_some();
            }
            if let Some(usage) = chunk.usage {
                let event = AgentEvent::Usage {
                    input_tokens: usage.prompt_tokens,
                    output_tokens: usage.completion_tokens,
                };
                self.common.emit(out, event).await?;
            }
        }
        if finished {
            Ok(())
        } else {
            Err(self.common.error(
                AgentErrorKind::Unavailable,
                "the stream ended before the reply was complete",
            ))
        }
    }

    /// An error the server reported inside the stream.
    fn stream_error(&self, error: &Value) -> AgentError {
        let message = super::transport::json_message(&json!({ "error": error }))
            .unwrap_or_else(|| "unknown error".to_string());
        let code = [error.get("type"), error.get("code")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let kind = if code.contains("rate_limit") {
            AgentErrorKind::RateLimited
        } else if code.contains("auth") || code.contains("api_key") {
            AgentErrorKind::Auth
        } else {
            AgentErrorKind::Unavailable
        };
        let message = self.http.redact(&message);
        self.common
            .error(kind, format!("error during the reply: {message}"))
    }
}

/// The user message content: a string, or text and image parts.
fn user_message(user: UserContent) -> Value {
    if user.images.is_empty() {
        return Value::String(user.text);
    }
    let mut parts = Vec::new();
    if !user.text.trim().is_empty() {
        parts.push(json!({"type": "text", "text": user.text}));
    }
    for image in &user.images {
        parts.push(json!({"type": "image_url", "image_url": {"url": image.data_url()}}));
    }
    Value::Array(parts)
}

impl Agent for OpenAiAgent {
    fn kind(&self) -> &'static str {
        "openai"
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

/// One streamed chunk (`chat.completion.chunk`).
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}
