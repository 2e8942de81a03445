//! Webhook mode through the whole gateway: the emulator pushes encrypted,
//! signed events (after the URL-verification challenge) and the gateway
//! answers them; forged, unsigned, mistokened and oversized requests are
//! refused before they reach the inbox.

mod e2e;

use e2e::Harness;
use lark_emulator::WebhookConfig;
use larkgate::config::Mode;
use larkgate::secret::Secret;

const KEY: &str = "encrypt-key-for-tests";
const TOKEN: &str = "verification-token-for-tests";

async fn webhook_harness() -> (Harness, String) {
    let h = Harness::start_with(|_, c| {
        c.webhook.max_body_bytes = 64 * 1024;
        let a = &mut c.accounts[0];
        a.mode = Mode::Webhook;
        a.encrypt_key = Some(Secret::new(KEY));
        a.verification_token = Some(Secret::new(TOKEN));
    })
    .await;
    let url = format!(
        "http://{}/lark/webhook",
        h.gw().webhook_addr().expect("webhook listener")
    );
    h.emu
        .set_webhook(
            &h.app.app_id,
            Some(WebhookConfig {
                url: url.clone(),
                encrypt_key: Some(KEY.into()),
                verification_token: Some(TOKEN.into()),
                verify: true,
            }),
        )
        .await
        .expect("challenge answered");
    (h, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_signed_events_are_answered() {
    let (h, _) = webhook_harness().await;
    let sent = h.dm("ou_a", "over the webhook");
    let replies = h.replies(&sent).await;
    assert!(replies[0].text.contains("over the webhook"));
    assert_eq!(
        h.gw()
            .metrics()
            .events_received
            .get(&["default", "webhook"]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_requests_never_reach_the_inbox() {
    let (h, url) = webhook_harness().await;
    let http = reqwest::Client::new();
    let body = format!(
        r#"{{"encrypt":"{}"}}"#,
        lark_wire::webhook::encrypt(KEY, [7; 16], br#"{"schema":"2.0","header":{"event_id":"forged","event_type":"im.message.receive_v1","token":"verification-token-for-tests"},"event":{}}"#)
    );
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let post = |sig: &str| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("x-lark-request-timestamp", &ts)
            .header("x-lark-request-nonce", "n")
            .header("x-lark-signature", sig.to_string())
            .body(body.clone())
    };
    let forged = post("0000").send().await.unwrap();
    assert_eq!(forged.status(), 401);
    let wrong_key_sig = lark_wire::webhook::signature(&ts, "n", "another-key", body.as_bytes());
    assert_eq!(post(&wrong_key_sig).send().await.unwrap().status(), 401);
    let plain = http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"schema":"2.0","header":{"event_id":"p","token":"verification-token-for-tests"},"event":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.status(),
        400,
        "plaintext refused when an encrypt key is set"
    );
    // On a client of its own: the server answers 413 without reading the
    // body and closes that connection, which a shared pool could hand to
    // the next request.
    let huge = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(
        h.gw()
            .metrics()
            .events_received
            .get(&["default", "webhook"]),
        0
    );
    // A correctly signed request with the right key passes the checks.
    let good = lark_wire::webhook::signature(&ts, "n", KEY, body.as_bytes());
    assert_eq!(post(&good).send().await.unwrap().status(), 200);
    assert_eq!(
        h.gw()
            .metrics()
            .events_received
            .get(&["default", "webhook"]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_mode_checks_the_verification_token() {
    let h = Harness::start_with(|_, c| {
        let a = &mut c.accounts[0];
        a.mode = Mode::Webhook;
        a.verification_token = Some(Secret::new(TOKEN));
    })
    .await;
    let url = format!("http://{}/lark/webhook", h.gw().webhook_addr().unwrap());
    let http = reqwest::Client::new();
    let wrong = http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"schema":"2.0","header":{"event_id":"w","event_type":"x","token":"nope"},"event":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let challenge = http
        .post(&url)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"challenge":"c-123","token":"{TOKEN}","type":"url_verification"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 200);
    let body: serde_json::Value = challenge.json().await.unwrap();
    assert_eq!(body["challenge"], "c-123");
    h.emu
        .set_webhook(
            &h.app.app_id,
            Some(WebhookConfig {
                url,
                encrypt_key: None,
                verification_token: Some(TOKEN.into()),
                verify: false,
            }),
        )
        .await
        .unwrap();
    let sent = h.dm("ou_a", "plain webhook");
    assert!(h.replies(&sent).await[0].text.contains("plain webhook"));
}
