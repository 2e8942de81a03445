//! The webhook receiver on a real loopback listener: challenges (plain and
//! encrypted, with the SDK test vector), signatures, tokens, size limit,
//! timestamp window, and answers that wait for the consumer's ack.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lark_client::webhook::{router, WebhookOptions};
use lark_client::{Delivery, Source};
use lark_wire::webhook::{encrypt, signature};
use serde_json::{json, Value};
use support::guard;
use tokio::sync::mpsc;

const PATH: &str = "/webhook/event";

struct Server {
    url: String,
    rx: mpsc::Receiver<Delivery>,
    http: reqwest::Client,
}

async fn serve(opts: WebhookOptions) -> Server {
    let (tx, rx) = mpsc::channel(8);
    let app = router(opts, tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        url: format!("http://{addr}{PATH}"),
        rx,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

fn opts(encrypt_key: Option<&str>, token: Option<&str>) -> WebhookOptions {
    WebhookOptions {
        encrypt_key: encrypt_key.map(str::to_string),
        verification_token: token.map(str::to_string),
        ..WebhookOptions::default()
    }
}

fn now_secs() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

impl Server {
    async fn post(&self, body: &str, headers: &[(&str, String)]) -> (u16, String) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = guard(req.send()).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Posts in the background (the answer waits for the consumer).
    fn post_later(
        &self,
        body: String,
        headers: Vec<(&'static str, String)>,
    ) -> tokio::task::JoinHandle<(u16, String)> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    }

    fn nothing_delivered(&mut self) -> bool {
        self.rx.try_recv().is_err()
    }
}

const KEY: &str = "test-encrypt-key";

/// An encrypted, signed body and its headers.
fn sealed(plain: &str, key: &str) -> (String, Vec<(&'static str, String)>) {
    let body = json!({ "encrypt": encrypt(key, [9; 16], plain.as_bytes()) }).to_string();
    let ts = now_secs();
    let sig = signature(&ts, "nonce-1", key, body.as_bytes());
    let headers = vec![
        ("X-Lark-Request-Timestamp", ts),
        ("X-Lark-Request-Nonce", "nonce-1".to_string()),
        ("X-Lark-Signature", sig),
    ];
    (body, headers)
}

fn event(token: &str, event_type: &str) -> String {
    json!({
        "schema": "2.0",
        "header": {"event_id": "ev-1", "event_type": event_type, "token": token, "app_id": "cli_a"},
        "event": {"message": {"message_id": "om_1"}}
    })
    .to_string()
}

#[tokio::test]
async fn get_answers_ok() {
    let s = serve(opts(None, None)).await;
    let resp = s.http.get(&s.url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn plain_challenge_checks_the_token() {
    let mut s = serve(opts(None, Some("tok"))).await;
    let body = r#"{"challenge":"ajls384kdjx98XX","token":"tok","type":"url_verification"}"#;
    let (status, text) = s.post(body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"challenge": "ajls384kdjx98XX"})
    );
    let forged = r#"{"challenge":"x","token":"nope","type":"url_verification"}"#;
    let (status, text) = s.post(forged, &[]).await;
    assert_eq!(status, 401);
    assert!(!text.contains("\"challenge\""));
    assert!(s.nothing_delivered());
}

#[tokio::test]
async fn encrypted_challenge_from_the_sdk_vector() {
    let s = serve(opts(
        Some("mazhe.nerd"),
        Some("iRdCP2WwXNBXRM3mGLqhrgch3cn0gbT6"),
    ))
    .await;
    let body = r#"{"encrypt":"tT1xP+ovuc0T3b/rnZX3ax76exqAn0ANQ6/U45GcciC0mgNBc8JtvqOJGNAPMKpgRs2dVU1NYk9VDeqS8T4SYtU0hzNU54aS84WnxvZ3VFfDcy/RyABlNqlUiGyLDzFI0yxdCMT4KR/YEQXlt6nZi50KwRlZ+A75r645KesZuLMljezYyY8VeeXEVjPw35+e"}"#;
    // No signature headers: the challenge is not signed by the platform.
    let (status, text) = s.post(body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"challenge": "5634b122-c042-4634-bc7f-b07a3c3e77ad"})
    );
}

#[tokio::test]
async fn encrypted_event_is_delivered_and_answered_after_ack() {
    let mut s = serve(opts(Some(KEY), Some("tok"))).await;
    let plain = event("tok", "im.message.receive_v1");
    let (body, headers) = sealed(&plain, KEY);
    let pending = s.post_later(body, headers);
    let d = guard(s.rx.recv()).await.unwrap();
    assert_eq!(d.payload, plain.as_bytes());
    assert_eq!(d.source, Source::Webhook);
    d.ack.ack(None);
    let (status, text) = guard(pending).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"msg": "success"})
    );
}

#[tokio::test]
async fn card_callback_answer_is_the_ack_body() {
    let mut s = serve(opts(None, Some("tok"))).await;
    let pending = s.post_later(event("tok", "card.action.trigger"), vec![]);
    let d = guard(s.rx.recv()).await.unwrap();
    let response = r#"{"toast":{"type":"info","content":"done"}}"#;
    d.ack.ack(Some(response.as_bytes().to_vec()));
    let (status, text) = guard(pending).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(text, response);
}

#[tokio::test]
async fn forged_signature_is_refused_before_delivery() {
    let mut s = serve(opts(Some(KEY), None)).await;
    let (body, mut headers) = sealed(&event("tok", "x"), KEY);
    headers[2].1 = "0".repeat(64);
    let (status, text) = s.post(&body, &headers).await;
    assert_eq!(status, 401);
    assert!(text.contains("signature"));
    // Missing signature headers are refused too.
    let (status, _) = s.post(&body, &[]).await;
    assert_eq!(status, 401);
    // Signed with another key.
    let (body, headers) = sealed(&event("tok", "x"), "other-key");
    let (status, _) = s.post(&body, &headers).await;
    assert_eq!(status, 400, "cannot even decrypt");
    assert!(s.nothing_delivered());
}

#[tokio::test]
async fn wrong_token_and_plain_body_in_encrypted_mode_are_refused() {
    let mut s = serve(opts(None, Some("tok"))).await;
    let (status, _) = s.post(&event("wrong", "x"), &[]).await;
    assert_eq!(status, 401);
    let mut enc = serve(opts(Some(KEY), Some("tok"))).await;
    let (status, _) = enc.post(&event("tok", "x"), &[]).await;
    assert_eq!(status, 400);
    let (body, headers) = sealed(&event("wrong", "x"), KEY);
    let (status, _) = enc.post(&body, &headers).await;
    assert_eq!(status, 401);
    let (status, _) = s.post("not json", &[]).await;
    assert_eq!(status, 400);
    assert!(s.nothing_delivered() && enc.nothing_delivered());
}

#[tokio::test]
async fn oversize_body_is_413() {
    let mut s = serve(WebhookOptions {
        max_body_bytes: 1024,
        ..opts(None, None)
    })
    .await;
    let big = json!({"schema": "2.0", "header": {}, "event": {"x": "y".repeat(4096)}}).to_string();
    let (status, _) = s.post(&big, &[]).await;
    assert_eq!(status, 413);
    assert!(s.nothing_delivered());
}

#[tokio::test]
async fn stale_timestamp_is_refused() {
    let mut s = serve(opts(None, Some("tok"))).await;
    let old = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600)
        .to_string();
    let (status, _) = s
        .post(&event("tok", "x"), &[("X-Lark-Request-Timestamp", old)])
        .await;
    assert_eq!(status, 401);
    assert!(s.nothing_delivered());
}

#[tokio::test]
async fn fail_drop_and_timeout_answer_500() {
    let mut s = serve(WebhookOptions {
        ack_timeout: Duration::from_millis(300),
        ..opts(None, Some("tok"))
    })
    .await;
    let pending = s.post_later(event("tok", "x"), vec![]);
    guard(s.rx.recv()).await.unwrap().ack.fail();
    assert_eq!(guard(pending).await.unwrap().0, 500);

    let pending = s.post_later(event("tok", "x"), vec![]);
    drop(guard(s.rx.recv()).await.unwrap());
    assert_eq!(guard(pending).await.unwrap().0, 500);

    let pending = s.post_later(event("tok", "x"), vec![]);
    let held = guard(s.rx.recv()).await.unwrap();
    assert_eq!(guard(pending).await.unwrap().0, 500);
    held.ack.ack(None); // too late: harmless
}
