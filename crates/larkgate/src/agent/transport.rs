//! HTTP plumbing shared by the `openai`, `anthropic` and `http` backends:
//! the client (timeouts, explicit proxy), the request with its credentials,
//! classification of failed responses, and reading an SSE body.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use serde::Serialize;

use super::sse::{SseEvent, SseParser};
use super::turn::{truncate_chars, Common};
use super::{AgentConfig, AgentError, AgentErrorKind};
use crate::secret::Secret;

/// Default connect + response-headers timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of an error body read to find the backend's message.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Longest backend error message shown to the user, in characters.
const ERROR_MESSAGE_CHARS: usize = 300;

/// How the API key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
}

/// A configured HTTP endpoint family: client, credentials, extra headers.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    client: reqwest::Client,
    key: Option<Secret>,
    key_header: KeyHeader,
    headers: HeaderMap,
    first_byte: Duration,
}

impl HttpSettings {
    /// Builds the client for `cfg` (timeouts, proxy, extra headers).
    pub(crate) fn new(
        common: &Common,
        cfg: &AgentConfig,
        key: Option<Secret>,
        key_header: KeyHeader,
    ) -> Result<HttpSettings, AgentError> {
        let first_byte = cfg
            .connect_timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(first_byte)
            .user_agent(concat!("larkgate/", env!("CARGO_PKG_VERSION")));
        builder = match &cfg.proxy {
            Some(url) => {
                let proxy = reqwest::Proxy::all(url.as_str()).map_err(|_| {
                    common.error(AgentErrorKind::Config, "proxy is not a valid proxy URL")
                })?;
                builder.proxy(proxy)
            }
            None => builder.no_proxy(),
        };
        let client = builder.build().map_err(|e| {
            common.error(
                AgentErrorKind::Config,
                format!("cannot set up the HTTP client: {}", root_cause(&e)),
            )
        })?;
        Ok(HttpSettings {
            client,
            key,
            key_header,
            headers: header_map(common, cfg.headers.iter().flatten())?,
            first_byte,
        })
    }

    /// POSTs `body` as JSON to `url` with `fixed` headers, the API key and
    /// the configured extra headers (which win over `fixed`), waits for the
    /// response headers (at most the connect timeout) and turns a non-2xx
    /// status into a classified error.
    pub(crate) async fn post_json(
        &self,
        common: &Common,
        url: &str,
        fixed: &[(&'static str, &'static str)],
        body: &impl Serialize,
    ) -> Result<Response, AgentError> {
        let mut request = self.client.post(url).json(body);
        for (name, value) in fixed {
            request = request.header(*name, *value);
        }
        if let Some(value) = self.key_value() {
            request = match self.key_header {
                KeyHeader::Bearer => request.header(AUTHORIZATION, value),
                KeyHeader::XApiKey => request.header("x-api-key", value),
            };
        }
        request = request.headers(self.headers.clone());
        let host = host_of(url);
        let response = match tokio::time::timeout(self.first_byte, request.send()).await {
            Err(_) => {
                return Err(common.error(
                    AgentErrorKind::Timeout,
                    format!(
                        "{host} did not answer within {} s (connectTimeoutSecs)",
                        self.first_byte.as_secs()
                    ),
                ))
            }
            Ok(Err(e)) => return Err(self.network_error(common, &host, &e)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let message = tokio::time::timeout(self.first_byte, error_message(response))
            .await
            .ok()
            .flatten()
            .map(|m| self.redact(&m));
        Err(status_error(common, status, message.as_deref()))
    }

    /// A network-level failure (connect, TLS, reset), classified.
    pub(crate) fn network_error(
        &self,
        common: &Common,
        host: &str,
        e: &reqwest::Error,
    ) -> AgentError {
        let cause = self.redact(&root_cause(e));
        if e.is_timeout() {
            return common.error(
                AgentErrorKind::Timeout,
                format!("timed out talking to {host}: {cause}"),
            );
        }
        let what = if e.is_connect() {
            "cannot connect to"
        } else {
            "request failed:"
        };
        common.error(
            AgentErrorKind::Unavailable,
            format!("{what} {host}: {cause}"),
        )
    }

    fn key_value(&self) -> Option<HeaderValue> {
        let key = self.key.as_ref()?;
        let text = match self.key_header {
            KeyHeader::Bearer => format!("Bearer {}", key.expose()),
            KeyHeader::XApiKey => key.expose().to_string(),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Replaces the API key in `text`, should a backend echo it.
    pub(crate) fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) if key.expose().len() >= 4 => text.replace(key.expose(), "<redacted>"),
            _ => text.to_string(),
        }
    }
}

/// Parses configured header names and values.
fn header_map<'a>(
    common: &Common,
    headers: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<HeaderMap, AgentError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            common.error(
                AgentErrorKind::Config,
                format!("headers: `{name}` is not a valid header name"),
            )
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            common.error(
                AgentErrorKind::Config,
                format!("headers: the value of `{name}` is not a valid header value"),
            )
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// `host[:port]` of `url`, for messages (never the path or query, which may
/// carry secrets).
pub(crate) fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "the backend".to_string(),
        },
        Err(_) => "the backend".to_string(),
    }
}

/// The innermost cause of a reqwest error (the useful part, e.g.
/// "Connection refused (os error 111)"), never its URL.
pub(crate) fn root_cause(e: &reqwest::Error) -> String {
    let mut inner: Option<&(dyn std::error::Error + 'static)> = None;
    let mut current: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = current.source() {
        inner = Some(next);
        current = next;
    }
    match inner {
        Some(cause) => cause.to_string(),
        None if e.is_body() || e.is_decode() => "the response body could not be read".into(),
        None if e.is_builder() => "the request could not be built".into(),
        None => "request failed".into(),
    }
}

/// The error for an HTTP status the backend answered with.
pub(crate) fn status_error(
    common: &Common,
    status: StatusCode,
    message: Option<&str>,
) -> AgentError {
    let kind = match status.as_u16() {
        401 | 403 => AgentErrorKind::Auth,
        429 => AgentErrorKind::RateLimited,
        404 => AgentErrorKind::Config,
        408 | 504 => AgentErrorKind::Timeout,
        500..=599 => AgentErrorKind::Unavailable,
        _ => AgentErrorKind::Protocol,
    };
    let hint = match kind {
        AgentErrorKind::Auth => " (check the API key)",
        AgentErrorKind::Config => " (check baseUrl, url and model)",
        _ => "",
    };
    let mut text = format!("HTTP {status}{hint}");
    if let Some(m) = message {
        text.push_str(": ");
        text.push_str(m);
    }
    common.error(kind, text)
}

/// Reads the start of an error body and finds the backend's message in it.
async fn error_message(mut response: Response) -> Option<String> {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    short_message(&body)
}

/// The human part of an error body: `error.message`, `error` (a string),
/// `message` or `detail` of a JSON body, else the first line of a text body
/// (HTML pages are skipped).
pub(crate) fn short_message(body: &[u8]) -> Option<String> {
    let body = &body[..body.len().min(ERROR_BODY_LIMIT)];
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let found = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => json_message(&json),
        Err(_) if text.starts_with('<') => None,
        Err(_) => text.lines().next().map(str::to_string),
    }?;
    let found = found.trim();
    (!found.is_empty()).then(|| truncate_chars(found, ERROR_MESSAGE_CHARS))
}

/// The message in a JSON error body, wherever the common APIs put it.
pub(crate) fn json_message(json: &serde_json::Value) -> Option<String> {
    let error = json.get("error");
    let candidates = [
        error.and_then(|e| e.get("message")),
        error,
        json.get("message"),
        json.get("detail"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str())
        .map(str::to_string)
}

/// A response body read as a stream of SSE events.
pub(crate) struct SseBody {
    chunks: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    ended: bool,
    host: String,
}

impl SseBody {
    /// Starts reading `response` (from `url`).
    pub(crate) fn new(response: Response, url: &str) -> SseBody {
        SseBody {
            chunks: response.bytes_stream().boxed(),
            parser: SseParser::new(),
            ended: false,
            host: host_of(url),
        }
    }

    /// The next event; `None` once the stream has ended.
    pub(crate) async fn next(&mut self, common: &Common) -> Result<Option<SseEvent>, AgentError> {
        loop {
            let parsed = if self.ended {
                self.parser.finish()
            } else {
                self.parser.next_event()
            };
            let event =
                parsed.map_err(|e| common.error(AgentErrorKind::Protocol, e.to_string()))?;
            if event.is_some() || self.ended {
                return Ok(event);
            }
            match self.chunks.next().await {
                Some(Ok(bytes)) => self.parser.feed(&bytes),
                Some(Err(e)) => {
                    return Err(common.error(
                        AgentErrorKind::Unavailable,
                        format!(
                            "the connection to {} broke during the reply: {}",
                            self.host,
                            root_cause(&e)
                        ),
                    ))
                }
                None => self.ended = true,
            }
        }
    }
}

/// A `Protocol` error for an event we cannot read, quoting its start.
pub(crate) fn unreadable(common: &Common, data: &str, e: &serde_json::Error) -> AgentError {
    common.error(
        AgentErrorKind::Protocol,
        format!(
            "unreadable stream event ({e}): {}",
            truncate_chars(data.trim(), 80)
        ),
    )
}

/// Joins `base` (trailing `/` ignored) and `path`.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_in_common_error_bodies() {
        let cases: [(&str, Option<&str>); 7] = [
            (
                r#"{"error":{"message":"Incorrect API key","type":"x"}}"#,
                Some("Incorrect API key"),
            ),
            (
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                Some("Overloaded"),
            ),
            (
                r#"{"error":"model 'x' not found"}"#,
                Some("model 'x' not found"),
            ),
            (r#"{"detail":"Not Found"}"#, Some("Not Found")),
            (
                "upstream connect error\nmore",
                Some("upstream connect error"),
            ),
            ("<html><body>502</body></html>", None),
            ("  ", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                short_message(body.as_bytes()).as_deref(),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(1000);
        let found = short_message(long.as_bytes()).unwrap();
        assert_eq!(found.chars().count(), ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn statuses_are_classified() {
        let common = Common {
            name: "a".into(),
            system_prompt: None,
            turn_timeout: Duration::from_secs(1),
        };
        let kind =
            |code: u16| status_error(&common, StatusCode::from_u16(code).unwrap(), None).kind;
        assert_eq!(kind(401), AgentErrorKind::Auth);
        assert_eq!(kind(403), AgentErrorKind::Auth);
        assert_eq!(kind(429), AgentErrorKind::RateLimited);
        assert_eq!(kind(500), AgentErrorKind::Unavailable);
        assert_eq!(kind(503), AgentErrorKind::Unavailable);
        assert_eq!(kind(404), AgentErrorKind::Config);
        assert_eq!(kind(400), AgentErrorKind::Protocol);
        let e = status_error(&common, StatusCode::TOO_MANY_REQUESTS, Some("slow down"));
        assert_eq!(e.message, "agent a: HTTP 429 Too Many Requests: slow down");
    }

    #[test]
    fn host_never_includes_path_or_query() {
        assert_eq!(host_of("https://api.x.com/v1/chat?key=s3cret"), "api.x.com");
        assert_eq!(host_of("http://127.0.0.1:8080/a"), "127.0.0.1:8080");
        assert_eq!(
            join_url("https://a/v1/", "/chat/completions"),
            "https://a/v1/chat/completions"
        );
    }
}
