//! `larkgate webhook send`: incoming-webhook ("custom") bots, signed when a
//! secret is given (`lark_wire::custom_bot::sign`).

use std::time::Duration;

use serde_json::{json, Value};

use super::args::WebhookSendArgs;
use super::{Failure, Outcome};

/// The platform refuses bodies over 20 KB.
const MAX_BODY_BYTES: usize = 20 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

pub(super) async fn send(args: WebhookSendArgs) -> Outcome {
    let content = content(&args).await?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let body = body(content, args.secret.as_deref(), timestamp);
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| Failure::usage(format!("cannot encode the message: {e}")))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Failure::usage(format!(
            "the message is {} bytes; custom bots take at most {MAX_BODY_BYTES}",
            bytes.len()
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?;
    let resp = http
        .post(&args.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await
        .map_err(|e| Failure::runtime(format!("cannot reach the hook: {}", e.without_url())))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| Failure::runtime(format!("reading the answer: {}", e.without_url())))?;
    let answer: Value = serde_json::from_str(&text).map_err(|_| {
        Failure::runtime(format!(
            "HTTP {status} without a JSON answer: {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    let code = answer
        .get("code")
        .or_else(|| answer.get("StatusCode"))
        .and_then(Value::as_i64)
        .unwrap_or(if status.is_success() { 0 } else { -1 });
    let msg = answer
        .get("msg")
        .or_else(|| answer.get("StatusMessage"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if code != 0 || !status.is_success() {
        return Err(Failure::runtime(format!(
            "the hook refused the message: code {code}: {msg}{}",
            hint(code)
        )));
    }
    println!("sent (code 0: {msg})");
    Ok(())
}

/// `content` or `card` part of the body: `(key, value)`.
async fn content(args: &WebhookSendArgs) -> Result<(&'static str, Value), Failure> {
    if let Some(text) = &args.text {
        return Ok(("text", json!({ "text": text })));
    }
    if let Some(path) = &args.card {
        let raw = tokio::fs::read(path)
            .await
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        let card: Value = serde_json::from_slice(&raw)
            .map_err(|e| Failure::usage(format!("--card {}: not JSON: {e}", path.display())))?;
        if !card.is_object() {
            return Err(Failure::usage(format!(
                "--card {}: a card is a JSON object",
                path.display()
            )));
        }
        return Ok(("card", card));
    }
    Err(Failure::usage("give --text or --card"))
}

/// The request body per the custom-bot doc: `content` is an object (not a
/// string), a card goes under `card`, and the signature fields sit in the
/// body with the timestamp as a string.
fn body(content: (&'static str, Value), secret: Option<&str>, timestamp: i64) -> Value {
    let mut body = match content {
        ("card", card) => json!({ "msg_type": "interactive", "card": card }),
        (_, text) => json!({ "msg_type": "text", "content": text }),
    };
    if let (Some(secret), Some(obj)) = (secret, body.as_object_mut()) {
        obj.insert("timestamp".into(), Value::String(timestamp.to_string()));
        obj.insert(
            "sign".into(),
            Value::String(lark_wire::custom_bot::sign(timestamp, secret)),
        );
    }
    body
}

/// Plain words for the codes custom bots answer with.
fn hint(code: i64) -> &'static str {
    match code {
        19021 => " (the signature was refused: check --secret, and that this machine's clock is right within an hour)",
        19022 => " (this machine's IP is not in the bot's IP allowlist)",
        19024 => " (the text lacks one of the bot's custom keywords)",
        9499 => " (the body was malformed or too large)",
        11232 => " (rate limited: at most 5 per second and 100 per minute; avoid :00 and :30)",
        19001 => " (no such hook: check the URL)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bodies_carry_timestamp_and_sign() {
        let b = body(("text", json!({"text": "hi"})), Some("demo"), 1599360473);
        assert_eq!(b["msg_type"], "text");
        assert_eq!(b["content"]["text"], "hi");
        assert_eq!(b["timestamp"], "1599360473");
        assert_eq!(b["sign"], "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8=");
        let unsigned = body(("card", json!({"schema": "2.0"})), None, 1);
        assert_eq!(unsigned["msg_type"], "interactive");
        assert_eq!(unsigned["card"]["schema"], "2.0");
        assert!(unsigned.get("sign").is_none() && unsigned.get("content").is_none());
    }
}
