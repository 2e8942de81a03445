use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use lark_emulator::{CardPress, WebhookConfig};
use serde_json::{json, Value};

use crate::common::*;

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Receiver {
    fn seen(&self) -> Vec<(HeaderMap, Bytes)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A webhook receiver on loopback answering from a queue (then 200 `{}`).
async fn receiver(answers: Vec<(u16, &str)>, key: Option<&'static str>) -> (String, Receiver) {
    let r = Receiver::default();
    r.answers
        .lock()
        .unwrap()
        .extend(answers.into_iter().map(|(s, b)| (s, b.to_string())));
    let state = r.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.seen.lock().unwrap().push((headers, body.clone()));
                let mut plain: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let (Some(k), Some(enc)) = (key, plain["encrypt"].as_str()) {
                    plain = serde_json::from_str(&lark_wire::webhook::decrypt(k, enc).unwrap())
                        .unwrap();
                }
                if plain["type"] == "url_verification" {
                    return (
                        StatusCode::OK,
                        json!({"challenge": plain["challenge"]}).to_string(),
                    );
                }
                let (status, answer) = state
                    .answers
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((200, "{}".into()));
                (StatusCode::from_u16(status).unwrap(), answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

fn header(h: &HeaderMap, k: &str) -> String {
    h.get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn encrypted_signed_delivery_is_retried_after_500() {
    let emu = start(|c| c.webhook_retry_schedule = vec![Duration::from_millis(50); 4]).await;
    let app = emu.default_app();
    let (url, rx) = receiver(vec![(500, "oops")], Some("test key")).await;
    let key = "test key";
    emu.set_webhook(
        &app.app_id,
        Some(WebhookConfig {
            url,
            encrypt_key: Some(key.into()),
            verification_token: Some("vtok".into()),
            verify: true,
        }),
    )
    .await
    .unwrap();
    let sent = user_says(&emu, "over http");
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    let seen = rx.seen();
    assert_eq!(seen.len(), 3, "challenge, failed attempt, retry");
    for (headers, body) in &seen[1..] {
        let outer: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            outer.as_object().unwrap().len(),
            1,
            "only the encrypt field"
        );
        let ts = header(headers, "x-lark-request-timestamp");
        let nonce = header(headers, "x-lark-request-nonce");
        let sig = header(headers, "x-lark-signature");
        lark_wire::webhook::verify_signature(&ts, &nonce, key, body, &sig)
            .expect("valid signature");
        let plain = lark_wire::webhook::decrypt(key, outer["encrypt"].as_str().unwrap()).unwrap();
        let env: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(env["header"]["event_id"], sent.event_id.as_str());
        assert_eq!(env["header"]["token"], "vtok");
        assert_eq!(
            env["event"]["message"]["message_id"],
            sent.message_id.as_str()
        );
    }
    let s = &emu.stats().apps[&app.app_id];
    assert_eq!(s.ack_codes.get("http_500"), Some(&1));
    assert_eq!(s.events_redelivered, 1);
}

#[tokio::test]
async fn plaintext_delivery_carries_the_verification_token() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let (url, rx) = receiver(vec![], None).await;
    emu.set_webhook(
        &app.app_id,
        Some(WebhookConfig {
            url,
            encrypt_key: None,
            verification_token: Some("plain-token".into()),
            verify: false,
        }),
    )
    .await
    .unwrap();
    user_says(&emu, "plain");
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    let (headers, body) = rx.seen().pop().unwrap();
    assert!(headers.get("x-lark-signature").is_none());
    let env: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(env["schema"], "2.0");
    assert_eq!(env["header"]["token"], "plain-token");
}

#[tokio::test]
async fn card_callback_over_webhook_applies_the_returned_card() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let answer = json!({"toast": {"type": "success", "content": "done"},
        "card": {"type": "raw", "data": {"elements": [{"tag": "markdown", "content": "pressed"}]}}});
    let (url, rx) = receiver(vec![(200, "{}"), (200, &answer.to_string())], None).await;
    let api = Api::new(&emu, &app).await;
    let chat = user_says(&emu, "hi").chat_id; // waits for a receiver
    let card = json!({"elements": [{"tag": "button", "text": {"tag": "plain_text", "content": "Go"}, "value": {"k": 1}}]});
    let sent = api.send(&chat, "interactive", &card).await;
    assert_eq!(sent.code(), 0, "{}", sent.body);
    let message_id = sent.body["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    emu.set_webhook(
        &app.app_id,
        Some(WebhookConfig {
            url,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await; // the backlog went out first
    let result = guard(emu.press_card_button(
        &message_id,
        CardPress {
            value: json!({"k": 1}),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    assert_eq!(result.status, "ok");
    assert_eq!(
        result.response.as_ref().unwrap()["toast"]["content"],
        "done"
    );
    assert!(result.card_applied);
    let env: Value = serde_json::from_slice(&rx.seen().last().unwrap().1).unwrap();
    assert_eq!(env["header"]["event_type"], "card.action.trigger");
    assert_eq!(
        env["event"]["context"]["open_message_id"],
        message_id.as_str()
    );
    assert_eq!(env["event"]["action"]["value"]["k"], 1);
    let view = emu.chat_messages(&chat).unwrap();
    assert_eq!(view.last().unwrap().text, "pressed");
}
