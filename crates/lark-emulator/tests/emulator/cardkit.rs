use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

fn streaming_card() -> Value {
    json!({"schema": "2.0",
        "config": {"streaming_mode": true, "summary": {"content": "[Generating...]"}},
        "header": {"title": {"tag": "plain_text", "content": "Answer"}},
        "body": {"elements": [{"tag": "markdown", "element_id": "stream_md", "content": "Thinking..."}]}})
}

async fn create(api: &Api, card: &Value) -> Reply {
    api.call(
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(json!({"type": "card_json", "data": card.to_string()})),
    )
    .await
}

async fn put_content(api: &Api, card_id: &str, text: &str, sequence: i64) -> Reply {
    api.call(
        "PUT",
        &format!("/open-apis/cardkit/v1/cards/{card_id}/elements/stream_md/content"),
        Some(json!({"content": text, "sequence": sequence, "uuid": format!("c_{card_id}_{sequence}")})),
    )
    .await
}

async fn settings(api: &Api, card_id: &str, config: Value, sequence: i64) -> Reply {
    api.call(
        "PATCH",
        &format!("/open-apis/cardkit/v1/cards/{card_id}/settings"),
        Some(json!({"settings": json!({"config": config}).to_string(), "sequence": sequence})),
    )
    .await
}

async fn send_card(api: &Api, chat: &str, card_id: &str) -> Reply {
    api.send(
        chat,
        "interactive",
        &json!({"type": "card", "data": {"card_id": card_id}}),
    )
    .await
}

#[tokio::test]
async fn create_validates_cards() {
    let emu = start(|_| {}).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let empty = api
        .call(
            "POST",
            "/open-apis/cardkit/v1/cards",
            Some(json!({"type": "card_json", "data": ""})),
        )
        .await;
    assert_eq!((empty.status, empty.code()), (400, 300307));
    assert_eq!(create(&api, &json!({"elements": []})).await.code(), 300303);
    let dup = json!({"schema": "2.0", "body": {"elements": [
        {"tag": "markdown", "element_id": "a", "content": "1"}, {"tag": "markdown", "element_id": "a", "content": "2"}]}});
    assert_eq!(create(&api, &dup).await.code(), 300301);
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"tag": "markdown", "content": format!("{i}")}))
        .collect();
    assert_eq!(
        create(&api, &json!({"schema": "2.0", "body": {"elements": many}}))
            .await
            .code(),
        300305
    );
    let huge = json!({"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "x".repeat(31 * 1024)}]}});
    assert_eq!(create(&api, &huge).await.code(), 200860);
    let ok = create(&api, &streaming_card()).await;
    assert_eq!(ok.code(), 0);
    assert!(ok.body["data"]["card_id"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_digit()));
}

#[tokio::test]
async fn streaming_card_lifecycle() {
    let emu = start(|_| {}).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "question").chat_id;
    let card_id = create(&api, &streaming_card()).await.body["data"]["card_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = send_card(&api, &chat, &card_id).await;
    assert_eq!(sent.code(), 0, "{}", sent.body);
    let twice = send_card(&api, &chat, &card_id).await;
    assert_eq!(twice.code(), 230099, "an entity is sent once");

    assert_eq!(put_content(&api, &card_id, "Hel", 1).await.code(), 0);
    assert_eq!(put_content(&api, &card_id, "Hello", 2).await.code(), 0);
    assert_eq!(
        put_content(&api, &card_id, "Hello", 2).await.code(),
        0,
        "same uuid: applied once, ok"
    );
    let stale = api
        .call(
            "PUT",
            &format!("/open-apis/cardkit/v1/cards/{card_id}/elements/stream_md/content"),
            Some(json!({"content": "Hello!", "sequence": 2})),
        )
        .await;
    assert_eq!(stale.code(), 300317);
    let view = emu.chat_messages(&chat).unwrap();
    let card_msg = view.last().unwrap();
    assert_eq!(card_msg.card_id.as_deref(), Some(card_id.as_str()));
    assert!(card_msg.streaming);
    assert_eq!(card_msg.text, "Answer\nHello");
    let missing = api
        .call(
            "PUT",
            &format!("/open-apis/cardkit/v1/cards/{card_id}/elements/nope/content"),
            Some(json!({"content": "x", "sequence": 3})),
        )
        .await;
    assert_eq!(missing.code(), 300310);

    assert_eq!(
        settings(
            &api,
            &card_id,
            json!({"streaming_mode": false, "summary": {"content": "Hello"}}),
            4
        )
        .await
        .code(),
        0
    );
    let view = emu.chat_messages(&chat).unwrap();
    assert!(!view.last().unwrap().streaming);
    assert_eq!(
        put_content(&api, &card_id, "Hello again", 5).await.code(),
        300309
    );
    let top_level = api
        .call(
            "PATCH",
            &format!("/open-apis/cardkit/v1/cards/{card_id}/settings"),
            Some(json!({"settings": "{\"streaming_mode\":true}", "sequence": 6})),
        )
        .await;
    assert_eq!(top_level.code(), 10002, "only the documented config form");

    let batch = json!([
        {"action": "partial_update_element", "params": {"element_id": "stream_md", "partial_element": {"content": "Final"}}},
        {"action": "add_elements", "params": {"type": "insert_after", "target_element_id": "stream_md",
            "elements": [{"tag": "button", "element_id": "btn", "text": {"tag": "plain_text", "content": "Like"}}]}},
        {"action": "partial_update_setting", "params": {"settings": {"config": {"summary": {"content": "Final"}}}}}
    ]);
    let r = api
        .call(
            "POST",
            &format!("/open-apis/cardkit/v1/cards/{card_id}/batch_update"),
            Some(json!({"actions": batch.to_string(), "sequence": 7})),
        )
        .await;
    assert_eq!(r.code(), 0, "{}", r.body);
    assert_eq!(
        emu.chat_messages(&chat).unwrap().last().unwrap().text,
        "Answer\nFinal\nLike"
    );
    let del = api
        .call("POST", &format!("/open-apis/cardkit/v1/cards/{card_id}/batch_update"),
            Some(json!({"actions": json!([{"action": "delete_elements", "params": {"element_ids": ["ghost"]}}]).to_string(), "sequence": 8})))
        .await;
    assert_eq!(del.code(), 300314);
    let full = json!({"schema": "2.0", "body": {"elements": [{"tag": "markdown", "element_id": "stream_md", "content": "Replaced"}]}});
    let r = api
        .call(
            "PUT",
            &format!("/open-apis/cardkit/v1/cards/{card_id}"),
            Some(json!({"card": {"type": "card_json", "data": full.to_string()}, "sequence": 9})),
        )
        .await;
    assert_eq!(r.code(), 0);
    assert_eq!(
        emu.chat_messages(&chat).unwrap().last().unwrap().text,
        "Replaced"
    );
    let other_app = emu.create_app(Default::default()).unwrap();
    let other = Api::new(&emu, &other_app).await;
    assert_eq!(
        put_content(&other, &card_id, "steal", 10).await.code(),
        300311
    );
    assert_eq!(
        put_content(&api, "1234567890123456789", "x", 1)
            .await
            .code(),
        200740
    );
}

#[tokio::test]
async fn streaming_auto_closes() {
    let emu = start(|c| c.streaming_auto_close = Duration::from_millis(300)).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "q").chat_id;
    let card_id = create(&api, &streaming_card()).await.body["data"]["card_id"]
        .as_str()
        .unwrap()
        .to_string();
    send_card(&api, &chat, &card_id).await;
    assert_eq!(put_content(&api, &card_id, "partial", 1).await.code(), 0);
    let mut view = emu.chat(&chat).unwrap();
    while view.messages.last().unwrap().streaming {
        view = guard(emu.wait_chat(&chat, view.version, Duration::from_secs(5)))
            .await
            .unwrap();
    }
    assert_eq!(
        put_content(&api, &card_id, "too late", 2).await.code(),
        200850
    );
    assert_eq!(
        settings(&api, &card_id, json!({"streaming_mode": true}), 3)
            .await
            .code(),
        0
    );
    assert_eq!(
        put_content(&api, &card_id, "resumed", 4).await.code(),
        0,
        "re-enabled via settings"
    );
}

#[tokio::test]
async fn more_than_three_tables_fail_with_11310() {
    let emu = start(|_| {}).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "q").chat_id;
    let table = "| a | b |\n|---|---|\n| 1 | 2 |\n";
    let raw = json!({"elements": (0..4).map(|_| json!({"tag": "markdown", "content": table})).collect::<Vec<_>>()});
    let r = api.send(&chat, "interactive", &raw).await;
    assert_eq!(r.code(), 230099);
    assert!(
        r.body["msg"].as_str().unwrap().contains("ErrCode: 11310"),
        "{}",
        r.body
    );
    let three = json!({"elements": (0..3).map(|_| json!({"tag": "markdown", "content": table})).collect::<Vec<_>>()});
    assert_eq!(api.send(&chat, "interactive", &three).await.code(), 0);

    let card_id = create(&api, &streaming_card()).await.body["data"]["card_id"]
        .as_str()
        .unwrap()
        .to_string();
    send_card(&api, &chat, &card_id).await;
    assert_eq!(
        put_content(&api, &card_id, &table.repeat(3), 1)
            .await
            .code(),
        0
    );
    let four = put_content(&api, &card_id, &format!("{}\n{table}", table.repeat(3)), 2).await;
    assert_eq!(four.code(), 230099);
    assert!(four.body["msg"].as_str().unwrap().contains("11310"));
}

#[tokio::test]
async fn per_card_operation_rate() {
    let emu = start(|c| c.per_card_rate = Some(1)).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let card_id = create(&api, &streaming_card()).await.body["data"]["card_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(put_content(&api, &card_id, "a", 1).await.code(), 0);
    assert_eq!(put_content(&api, &card_id, "ab", 2).await.code(), 230020);
}
