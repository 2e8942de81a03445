//! The webhook receiver: an axum [`Router`] that verifies, decrypts and
//! hands events to the same [`Delivery`] pipeline as the long connection.
//!
//! Order of checks for `POST {path}`: body size (413), JSON, decryption when
//! an encrypt key is set (400), `url_verification` answered with its
//! challenge after the token check (401; no signature check, as the
//! platform does not sign it), `X-Lark-Signature` over the raw body when an
//! encrypt key is set (401), timestamp window when the header is present
//! (401), verification token (401). Only then is the event delivered; the
//! answer is 200 `{"msg":"success"}` (or the callback response passed to
//! `ack`) once the consumer acked, 500 on `fail`, a dropped handle or no
//! answer within the ack timeout (the platform retries).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lark_wire::webhook as crypto;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::delivery::{AckHandle, AckOutcome, Delivery, Source};

/// Receiver settings.
#[derive(Clone)]
pub struct WebhookOptions {
    /// The route, such as `/webhook/event`.
    pub path: String,
    /// The console's Encrypt Key: bodies must be encrypted and signed.
    pub encrypt_key: Option<String>,
    /// The console's Verification Token, checked on every event.
    pub verification_token: Option<String>,
    /// Largest accepted body (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Accepted clock skew of `X-Lark-Request-Timestamp` when present
    /// (default 5 min; `None` disables the check).
    pub timestamp_window: Option<Duration>,
    /// How long to wait for the consumer's ack before answering 500
    /// (default 2.5 s, under the platform's 3 s).
    pub ack_timeout: Duration,
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("path", &self.path)
            .field(
                "encrypt_key",
                &self.encrypt_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "verification_token",
                &self.verification_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("timestamp_window", &self.timestamp_window)
            .field("ack_timeout", &self.ack_timeout)
            .finish()
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            path: "/webhook/event".into(),
            encrypt_key: None,
            verification_token: None,
            max_body_bytes: 1024 * 1024,
            timestamp_window: Some(Duration::from_secs(300)),
            ack_timeout: Duration::from_millis(2500),
        }
    }
}

struct WebhookState {
    opts: WebhookOptions,
    tx: mpsc::Sender<Delivery>,
}

/// The router: `GET {path}` answers `OK`, `POST {path}` receives events.
pub fn router(opts: WebhookOptions, tx: mpsc::Sender<Delivery>) -> Router {
    let path = if opts.path.starts_with('/') {
        opts.path.clone()
    } else {
        format!("/{}", opts.path)
    };
    Router::new()
        .route(&path, get(|| async { "OK" }).post(receive))
        .with_state(Arc::new(WebhookState { opts, tx }))
}

/// A refused request: status and a short reason.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_response(self.0, json!({"msg": self.1}).to_string().into_bytes())
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What a verified body turned out to be.
enum Verified {
    Challenge(String),
    Event(Vec<u8>),
}

async fn receive(State(rx): State<Arc<WebhookState>>, headers: HeaderMap, body: Body) -> Response {
    let raw = match read_body(&headers, body, rx.opts.max_body_bytes).await {
        Ok(raw) => raw,
        Err(refusal) => return refusal.into_response(),
    };
    let received_at = Instant::now();
    match verify(&rx.opts, &headers, &raw, SystemTime::now()) {
        Err(refusal) => {
            tracing::warn!(status = %refusal.0, reason = refusal.1, "webhook request refused");
            refusal.into_response()
        }
        Ok(Verified::Challenge(challenge)) => json_response(
            StatusCode::OK,
            json!({ "challenge": challenge }).to_string().into_bytes(),
        ),
        Ok(Verified::Event(payload)) => deliver(&rx, payload, received_at).await,
    }
}

async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, Refusal> {
    const TOO_LARGE: Refusal = Refusal(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(TOO_LARGE);
    }
    axum::body::to_bytes(body, max).await.map_err(|_| TOO_LARGE)
}

/// Every check that does not need the consumer.
fn verify(
    opts: &WebhookOptions,
    headers: &HeaderMap,
    raw: &[u8],
    now: SystemTime,
) -> Result<Verified, Refusal> {
    let bad = |why| Refusal(StatusCode::BAD_REQUEST, why);
    let unauthorized = |why| Refusal(StatusCode::UNAUTHORIZED, why);
    let outer: Value = serde_json::from_slice(raw).map_err(|_| bad("body is not JSON"))?;
    let plain: Vec<u8> = match &opts.encrypt_key {
        Some(key) => {
            let encrypt = outer
                .get("encrypt")
                .and_then(Value::as_str)
                .ok_or(bad("encrypted body expected"))?;
            crypto::decrypt(key, encrypt)
                .map_err(|_| bad("cannot decrypt body"))?
                .into_bytes()
        }
        None => raw.to_vec(),
    };
    let event: Value = if opts.encrypt_key.is_some() {
        serde_json::from_slice(&plain).map_err(|_| bad("decrypted body is not JSON"))?
    } else {
        outer
    };
    let token = event
        .pointer("/header/token")
        .or_else(|| event.get("token"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let check_token = || match &opts.verification_token {
        Some(expected) => crypto::verify_token(expected, token)
            .map_err(|_| unauthorized("verification token mismatch")),
        None => Ok(()),
    };
    if event.get("type").and_then(Value::as_str) == Some("url_verification") {
        check_token()?;
        let challenge = event
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or(bad("challenge missing"))?;
        return Ok(Verified::Challenge(challenge.to_string()));
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = &opts.encrypt_key {
        let (Some(ts), Some(nonce), Some(sig)) = (
            text("x-lark-request-timestamp"),
            text("x-lark-request-nonce"),
            text("x-lark-signature"),
        ) else {
            return Err(unauthorized("signature headers missing"));
        };
        crypto::verify_signature(ts, nonce, key, raw, sig)
            .map_err(|_| unauthorized("signature mismatch"))?;
    }
    if let (Some(window), Some(ts)) = (opts.timestamp_window, text("x-lark-request-timestamp")) {
        let sent: u64 = ts
            .trim()
            .parse()
            .map_err(|_| bad("timestamp is not a number"))?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.abs_diff(sent) > window.as_secs() {
            return Err(unauthorized("timestamp outside the window"));
        }
    }
    check_token()?;
    Ok(Verified::Event(plain))
}

async fn deliver(rx: &WebhookState, payload: Vec<u8>, received_at: Instant) -> Response {
    let timeout = rx.opts.ack_timeout;
    let deadline = tokio::time::Instant::from_std(received_at) + timeout;
    let (ack, answer) = AckHandle::channel();
    let delivery = Delivery {
        payload,
        source: Source::Webhook,
        card: false,
        received_at,
        ack,
    };
    let failed = || Refusal(StatusCode::INTERNAL_SERVER_ERROR, "not processed").into_response();
    match tokio::time::timeout_at(deadline, rx.tx.send(delivery)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) => return failed(),
    }
    match tokio::time::timeout_at(deadline, answer.outcome()).await {
        Ok(AckOutcome::Acked(Some(body))) => json_response(StatusCode::OK, body),
        Ok(AckOutcome::Acked(None)) => {
            json_response(StatusCode::OK, br#"{"msg":"success"}"#.to_vec())
        }
        Ok(AckOutcome::Failed) | Err(_) => failed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(key: Option<&str>, token: Option<&str>) -> WebhookOptions {
        WebhookOptions {
            encrypt_key: key.map(str::to_string),
            verification_token: token.map(str::to_string),
            ..WebhookOptions::default()
        }
    }

    #[test]
    fn plain_event_token_checked() {
        let body = br#"{"schema":"2.0","header":{"token":"tok","event_type":"x"},"event":{}}"#;
        let h = HeaderMap::new();
        assert!(matches!(
            verify(&opts(None, Some("tok")), &h, body, SystemTime::now()),
            Ok(Verified::Event(_))
        ));
        let e = verify(&opts(None, Some("other")), &h, body, SystemTime::now())
            .err()
            .unwrap();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn stale_timestamp_refused() {
        let body = br#"{"schema":"2.0","header":{"token":"t"},"event":{}}"#;
        let mut h = HeaderMap::new();
        h.insert("x-lark-request-timestamp", "1000".parse().unwrap());
        let at = UNIX_EPOCH + Duration::from_secs(1000 + 301);
        let e = verify(&opts(None, None), &h, body, at).err().unwrap();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
        let at = UNIX_EPOCH + Duration::from_secs(1000 + 299);
        assert!(verify(&opts(None, None), &h, body, at).is_ok());
    }

    #[test]
    fn options_debug_redacts() {
        let s = format!("{:?}", opts(Some("enc-key-123"), Some("tok-456")));
        assert!(!s.contains("enc-key-123") && !s.contains("tok-456"));
    }
}
