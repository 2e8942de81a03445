//! `http`: POST the turn as JSON to a URL; read a JSON answer or an SSE
//! stream of deltas.

use futures_util::future::BoxFuture;
use reqwest::header::CONTENT_TYPE;
use reqwest::Response;
use tokio_util::sync::CancellationToken;

use super::transport::{root_cause, unreadable, HttpSettings, SseBody};
use super::turn::Common;
use super::wire::{HttpAnswer, HttpStreamEvent, MediaSpec, TurnInput};
use super::{Agent, AgentError, AgentErrorKind, AgentEvent, AgentRequest, EventSink};

/// Largest whole (non-streamed) answer, in bytes.
const ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// A backend behind a JSON/SSE HTTP endpoint.
#[derive(Debug)]
pub(crate) struct HttpAgent {
    pub(crate) common: Common,
    pub(crate) http: HttpSettings,
    pub(crate) url: String,
}

/// What the answer's `Content-Type` says it is.
enum AnswerFormat {
    Sse,
    Json,
    Text,
}

impl HttpAgent {
    async fn turn(&self, request: AgentRequest, out: &EventSink) -> Result<(), AgentError> {
        let input = TurnInput::new(&request, self.common.system_prompt(&request));
        let fixed = [("accept", "text/event-stream, application/json")];
        let response = self
            .http
            .post_json(&self.common, &self.url, &fixed, &input)
            .await?;
        match answer_format(&response) {
            Some(AnswerFormat::Sse) => self.read_stream(response, out).await,
            Some(AnswerFormat::Json) => {
                let body = self.read_body(response).await?;
                let answer: HttpAnswer = serde_json::from_slice(&body)
                    .map_err(|e| unreadable(&self.common, &String::from_utf8_lossy(&body), &e))?;
                self.common.emit_text(out, answer.text).await?;
                for media in &answer.media {
                    self.emit_media(out, media).await?;
                }
                match answer.usage {
                    Some(usage) => self.common.emit(out, usage.into()).await,
                    None => Ok(()),
                }
            }
            Some(AnswerFormat::Text) => {
                let body = self.read_body(response).await?;
                let text = String::from_utf8_lossy(&body).into_owned();
                self.common.emit_text(out, text).await
            }
            None => Err(self.common.error(
                AgentErrorKind::Protocol,
                "the answer is neither JSON, an event stream nor plain text (Content-Type)",
            )),
        }
    }

    async fn read_stream(&self, response: Response, out: &EventSink) -> Result<(), AgentError> {
        let mut events = SseBody::new(response, &self.url);
        while let Some(event) = events.next(&self.common).await? {
            let data = event.data.trim();
            if data == "[DONE]" {
                break;
            }
            if data.is_empty() {
                continue;
            }
            let event: HttpStreamEvent =
                serde_json::from_str(data).map_err(|e| unreadable(&self.common, data, &e))?;
            if let Some(message) = event.error {
                return Err(self
                    .common
                    .error(AgentErrorKind::Unavailable, self.http.redact(&message)));
            }
            if let Some(text) = event.delta {
                self.common.emit_text(out, text).await?;
            }
            if let Some(media) = &event.media {
                self.emit_media(out, media).await?;
            }
            if let Some(usage) = event.usage {
                self.common.emit(out, usage.into()).await?;
            }
        }
        Ok(())
    }

    async fn emit_media(&self, out: &EventSink, media: &MediaSpec) -> Result<(), AgentError> {
        let media = media
            .to_outbound(None)
            .map_err(|why| self.common.error(AgentErrorKind::Protocol, why))?;
        self.common.emit(out, AgentEvent::Media(media)).await
    }

    /// Reads a whole answer, up to [`ANSWER_LIMIT`].
    async fn read_body(&self, mut response: Response) -> Result<Vec<u8>, AgentError> {
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > ANSWER_LIMIT {
                        return Err(self.common.error(
                            AgentErrorKind::Protocol,
                            format!("the answer is larger than {ANSWER_LIMIT} bytes"),
                        ));
                    }
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(self.common.error(
                        AgentErrorKind::Unavailable,
                        format!("the answer could not be read: {}", root_cause(&e)),
                    ))
                }
            }
        }
    }
}

fn answer_format(response: &Response) -> Option<AnswerFormat> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime == "text/event-stream" {
        Some(AnswerFormat::Sse)
    } else if mime == "application/json" || mime.ends_with("+json") {
        Some(AnswerFormat::Json)
    } else if mime.starts_with("text/") {
        Some(AnswerFormat::Text)
    } else {
        None
    }
}

impl Agent for HttpAgent {
    fn kind(&self) -> &'static str {
        "http"
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
