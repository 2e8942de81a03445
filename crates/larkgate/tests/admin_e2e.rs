//! The admin listener over HTTP: health (and 503 when an account is down),
//! metrics, pairing approval, the token on write endpoints, loopback CORS;
//! one broken account leaves the others serving.

mod e2e;

use e2e::Harness;
use lark_emulator::NewApp;
use larkgate::config::DmPolicy;
use larkgate::secret::Secret;
use serde_json::Value;

fn admin_url(h: &Harness) -> String {
    format!("http://{}", h.gw().admin_addr().expect("admin enabled"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_pairing_over_http() {
    let h = Harness::start_with(|_, c| {
        c.admin.enabled = true;
        c.accounts[0].dm_policy = DmPolicy::Pairing;
    })
    .await;
    let base = admin_url(&h);
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["accounts"][0]["state"], "ready");
    assert_eq!(body["accounts"][0]["connection"]["state"], "connected");
    assert_eq!(
        body["accounts"][0]["bot_open_id"],
        h.app.bot_open_id.as_str()
    );

    let first = h.dm("ou_new", "hi");
    h.replies(&first).await;
    let list: Value = http
        .get(format!("{base}/api/pairing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = list[0]["code"].as_str().unwrap().to_string();
    let cors = http
        .post(format!(
            "{base}/api/pairing/{}/approve",
            code.to_lowercase()
        ))
        .header("origin", "http://127.0.0.1:5555")
        .send()
        .await
        .unwrap();
    assert_eq!(cors.status(), 200);
    assert_eq!(
        cors.headers()["access-control-allow-origin"],
        "http://127.0.0.1:5555"
    );
    let again = http
        .post(format!("{base}/api/pairing/{code}/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let answered = h.dm("ou_new", "am I in");
    assert!(h.replies(&answered).await[0].text.contains("am I in"));

    // The emulator shows a reply before the client has read the response
    // (and counted the call), so wait for the count to settle.
    let reply_calls = "larkgate_api_calls_total{account=\"default\",endpoint=\"POST /im/v1/messages/:message_id/reply\"} 2";
    let mut metrics = String::new();
    for _ in 0..250 {
        metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(reply_calls) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains("larkgate_events_received_total{account=\"default\",source=\"ws\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("larkgate_connected{account=\"default\"} 1"));
    assert!(metrics.contains(reply_calls), "{metrics}");
    assert!(metrics.contains("larkgate_ack_latency_seconds_count{account=\"default\"} 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_endpoints_need_the_token_and_foreign_origins_get_no_cors() {
    let h = Harness::start_with(|_, c| {
        c.admin.enabled = true;
        c.admin.token = Some(Secret::new("s3cret"));
    })
    .await;
    let base = admin_url(&h);
    let http = reqwest::Client::new();
    let denied = http
        .post(format!("{base}/api/pairing/ABCDEFGH/reject"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let allowed = http
        .post(format!("{base}/api/pairing/ABCDEFGH/reject"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 404);
    let foreign = http
        .get(format!("{base}/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let sent: Value = http
        .post(format!("{base}/api/send"))
        .bearer_auth("s3cret")
        .json(&serde_json::json!({"to": "ou_someone", "text": "hello from the operator"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = sent["chat_id"].as_str().unwrap();
    assert!(h
        .bot_messages(chat)
        .iter()
        .any(|m| m.text.contains("hello from the operator")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broken_account_leaves_the_others_serving() {
    let h = Harness::start_with(|emu, c| {
        c.admin.enabled = true;
        let other = emu
            .create_app(NewApp {
                bot_name: Some("Second".into()),
                ..Default::default()
            })
            .unwrap();
        let mut broken = e2e::account(emu, &other, "broken");
        broken.app_secret = Secret::new("wrong-secret");
        let good = e2e::account(emu, &other, "second");
        c.accounts.push(broken);
        c.accounts.push(good);
    })
    .await;
    // The default account still answers.
    h.replies(&h.dm("ou_a", "still here?")).await;
    let base = admin_url(&h);
    let resp = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    let accounts = body["accounts"].as_array().unwrap();
    let broken = accounts.iter().find(|a| a["name"] == "broken").unwrap();
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .contains("wrong appId or appSecret"),
        "{broken}"
    );
    let second = accounts.iter().find(|a| a["name"] == "second").unwrap();
    assert_eq!(second["state"], "ready");
}
