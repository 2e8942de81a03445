//! The benchmark endpoints: a push measured by its acks, refusals counted
//! and redelivered afterwards, and the timeline of a chat.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_push_is_measured_by_its_acks_and_refusals_come_back_after_it() {
    let emu = start(|c| c.redelivery_after = std::time::Duration::from_millis(200)).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    let base = emu.base_url();
    let push = tokio::spawn(async move {
        post_json(
            &base,
            "/_emulator/bench/push",
            &json!({"count": 6, "rate": 0, "chats": 2, "timeout_secs": 30}),
        )
        .await
    });
    let mut chats = std::collections::HashSet::new();
    let mut refused_event = None;
    for i in 0..6 {
        let (frame, event, _) = ws.next_event().await;
        assert_eq!(event["event"]["message"]["chat_type"], "group");
        chats.insert(event["event"]["message"]["chat_id"].to_string());
        if i == 0 {
            refused_event = Some(event["header"]["event_id"].clone());
            ws.ack(&frame, 500, None).await;
        } else {
            ws.ack(&frame, 200, None).await;
        }
    }
    let result = guard(push).await.expect("push task").body;
    assert_eq!(result["pushed"], 6, "{result}");
    assert_eq!(result["acked"], 5, "{result}");
    assert_eq!(result["refused"], 1, "{result}");
    assert_eq!(chats.len(), 2);
    assert!(
        result["ack_latency_us"]["max"].as_u64().unwrap() > 0,
        "{result}"
    );
    // The refused event is redelivered after the normal delay, not the
    // push's longer one.
    let (frame, event, _) = ws.next_event().await;
    assert_eq!(Some(event["header"]["event_id"].clone()), refused_event);
    ws.ack(&frame, 200, None).await;
}

#[tokio::test]
async fn the_timeline_records_a_user_event_and_the_bot_reply() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let base = emu.base_url();
    let on = post_json(&base, "/_emulator/bench/timeline", &json!({"on": true})).await;
    assert_eq!(on.body["ok"], true, "{}", on.body);
    let sent = user_says(&emu, "hello");
    let api = Api::new(&emu, &app).await;
    assert_eq!(api.send_text(&sent.chat_id, "hi").await.code(), 0);
    let entries = http()
        .get(format!("{base}/_emulator/bench/timeline"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone();
    let kinds: Vec<&str> = entries
        .iter()
        .filter(|e| e["chat_id"] == sent.chat_id.as_str())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let event_at = kinds.iter().position(|k| *k == "event").expect("event");
    assert!(kinds[event_at..].contains(&"update"), "{kinds:?}");
    let t: Vec<u64> = entries
        .iter()
        .map(|e| e["t_ns"].as_u64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
}

#[tokio::test]
async fn bad_push_requests_are_refused_with_a_reason() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    let r = post_json(&base, "/_emulator/bench/push", &json!({"count": 0})).await;
    assert!(r.body.to_string().contains("count"), "{}", r.body);
    let r = post_json(
        &base,
        "/_emulator/bench/push",
        &json!({"count": 1, "rate": -1}),
    )
    .await;
    assert!(r.body.to_string().contains("rate"), "{}", r.body);
}
