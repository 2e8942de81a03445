use std::time::Duration;

use base64::Engine;
use lark_emulator::{CardPress, Fault, NewApp, UserMessage};
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn card_press_over_the_long_connection() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let api = Api::new(&emu, &app).await;
    let mut ws = WsClient::connect(&emu, &app).await;
    let sent = user_says(&emu, "menu");
    let (f, _, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await;
    let card = json!({"schema": "2.0", "body": {"elements": [
        {"tag": "button", "element_id": "ok", "text": {"tag": "plain_text", "content": "OK"}, "value": {"choice": "ok"}}]}});
    let msg = api.send(&sent.chat_id, "interactive", &card).await;
    let message_id = msg.body["data"]["message_id"].as_str().unwrap().to_string();

    let press = {
        let emu_url = emu.base_url();
        let message_id = message_id.clone();
        tokio::spawn(async move {
            post_json(
                &emu_url,
                &format!("/_emulator/cards/{message_id}/action"),
                &json!({"operator_open_id": sent.sender_open_id, "value": {"choice": "ok"}}),
            )
            .await
        })
    };
    let (frame, env, _) = ws.next_event().await;
    assert_eq!(env["header"]["event_type"], "card.action.trigger");
    assert_eq!(
        env["event"]["context"]["open_message_id"],
        message_id.as_str()
    );
    assert_eq!(
        env["event"]["context"]["open_chat_id"],
        sent.chat_id.as_str()
    );
    assert_eq!(env["event"]["action"]["value"]["choice"], "ok");
    assert_eq!(env["event"]["action"]["tag"], "button");
    let answer = json!({"toast": {"type": "info", "content": "thanks"},
        "card": {"type": "raw", "data": {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "chosen: ok"}]}}}});
    ws.ack(&frame, 200, Some(answer.to_string().as_bytes()))
        .await;
    let result = guard(press).await.unwrap();
    assert_eq!(result.body["status"], "ok", "{}", result.body);
    assert_eq!(result.body["response"]["toast"]["content"], "thanks");
    assert_eq!(result.body["card_applied"], true);
    assert_eq!(
        emu.chat_messages(&sent.chat_id)
            .unwrap()
            .last()
            .unwrap()
            .text,
        "chosen: ok"
    );

    drop(ws);
    eventually(|| emu.stats().apps[&app.app_id].connections == 0).await;
    let none = guard(emu.press_card_button(&message_id, CardPress::default()))
        .await
        .unwrap();
    assert_eq!(none.status, "no_receiver");
}

#[tokio::test]
async fn card_press_times_out_without_an_ack() {
    let emu = start(|c| c.redelivery_after = Duration::from_millis(200)).await;
    let app = emu.default_app();
    let api = Api::new(&emu, &app).await;
    let _ws = WsClient::connect(&emu, &app).await;
    let chat = user_says(&emu, "x").chat_id;
    let msg = api
        .send(
            &chat,
            "interactive",
            &json!({"elements": [{"tag": "markdown", "content": "c"}]}),
        )
        .await;
    let id = msg.body["data"]["message_id"].as_str().unwrap().to_string();
    let r = guard(emu.press_card_button(&id, CardPress::default()))
        .await
        .unwrap();
    assert_eq!(r.status, "timeout");
    assert!(!r.card_applied);
}

#[tokio::test]
async fn apps_are_isolated_and_calls_are_counted() {
    let emu = start(|_| {}).await;
    let a = emu.default_app();
    let b = emu
        .create_app(NewApp {
            app_id: Some("cli_00000000000000bb".into()),
            app_secret: Some("s".into()),
            bot_name: Some("B".into()),
            brand: None,
        })
        .unwrap();
    assert_eq!(emu.apps().len(), 2);
    assert!(emu
        .create_app(NewApp {
            app_id: Some("bad".into()),
            ..Default::default()
        })
        .is_err());
    let mut ws_b = WsClient::connect(&emu, &b).await;
    let sent = emu
        .send_message(UserMessage {
            app_id: Some(b.app_id.clone()),
            text: Some("for b".into()),
            ..Default::default()
        })
        .unwrap();
    let (f, env, _) = ws_b.next_event().await;
    assert_eq!(env["header"]["app_id"], b.app_id.as_str());
    ws_b.ack(&f, 200, None).await;
    let api_a = Api::new(&emu, &a).await;
    let other = api_a.send_text(&sent.chat_id, "not my chat").await;
    assert_eq!(other.code(), 230002, "app A is not in B's chat");
    api_a.call("GET", "/open-apis/bot/v3/info", None).await;
    api_a.call("GET", "/open-apis/bot/v3/info", None).await;
    eventually(|| emu.stats().apps[&b.app_id].events_acked == 1).await;
    let stats = emu.stats();
    assert_eq!(
        stats.apps[&a.app_id].api_calls["GET /open-apis/bot/v3/info"],
        2
    );
    assert_eq!(
        stats.apps[&a.app_id].api_calls["POST /open-apis/im/v1/messages"],
        1
    );
    assert_eq!(
        stats.apps[&a.app_id].api_calls["POST /open-apis/auth/v3/tenant_access_token/internal"],
        1
    );
    assert_eq!(
        stats.apps[&b.app_id].api_calls["POST /callback/ws/endpoint"],
        1
    );
    assert_eq!(stats.apps[&a.app_id].events_delivered, 0);
}

#[tokio::test]
async fn http_control_api_mirrors_the_rust_api() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    let app = emu.default_app();
    let index = to_reply(
        http()
            .get(format!("{base}/_emulator"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(index.body["default_app"]["app_id"], app.app_id.as_str());
    let created = post_json(&base, "/_emulator/apps", &json!({"bot_name": "Second"})).await;
    assert_eq!(created.status, 200);
    assert!(created.body["app_id"].as_str().unwrap().starts_with("cli_"));
    let apps = to_reply(
        http()
            .get(format!("{base}/_emulator/apps"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(apps.body["apps"].as_array().unwrap().len(), 2);

    let audio = base64::engine::general_purpose::STANDARD.encode(b"OggS....");
    let sent = post_json(
        &base,
        "/_emulator/messages",
        &json!({"chat_type": "topic", "msg_type": "audio", "data": audio, "duration_ms": 1500}),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let chat_id = sent.body["chat_id"].as_str().unwrap();
    let view = to_reply(
        http()
            .get(format!("{base}/_emulator/chats/{chat_id}/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let m = &view.body["messages"][0];
    assert_eq!(m["msg_type"], "audio");
    assert!(
        m["thread_id"].as_str().unwrap().starts_with("omt_"),
        "topic groups thread every root"
    );
    assert_eq!(view.body["chat_mode"], "topic");
    let content: Value = serde_json::from_str(m["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["duration"], 1500);

    let bad = post_json(
        &base,
        "/_emulator/messages",
        &json!({"chat_type": "channel"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let missing = to_reply(
        http()
            .get(format!("{base}/_emulator/chats/oc_none/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 404);

    let fault = post_json(&base, "/_emulator/faults",
        &json!({"kind": "fail_calls", "endpoint": "GET /open-apis/bot/v3/info", "count": 1, "status": 503, "code": 1500})).await;
    assert_eq!(fault.status, 200);
    let api = Api::new(&emu, &app).await;
    let failed = api.call("GET", "/open-apis/bot/v3/info", None).await;
    assert_eq!((failed.status, failed.code()), (503, 1500));
    assert_eq!(
        api.call("GET", "/open-apis/bot/v3/info", None).await.code(),
        0
    );
    let token_fault = post_json(&base, "/_emulator/faults",
        &json!({"kind": "fail_calls", "endpoint": "POST /open-apis/auth/v3/tenant_access_token/internal", "count": 1, "status": 500, "code": 10012})).await;
    assert_eq!(token_fault.status, 200);
    let t = post_json(
        &base,
        "/open-apis/auth/v3/tenant_access_token/internal",
        &json!({"app_id": app.app_id, "app_secret": app.app_secret}),
    )
    .await;
    assert_eq!((t.status, t.code()), (500, 10012));
    let unknown_fault = post_json(&base, "/_emulator/faults", &json!({"kind": "nonsense"})).await;
    assert_eq!(unknown_fault.status, 400);

    let stats = to_reply(
        http()
            .get(format!("{base}/_emulator/stats"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        stats.body["apps"][&app.app_id]["api_calls"]["GET /open-apis/bot/v3/info"],
        2
    );
    emu.inject(Fault::Clear).unwrap();
}

#[tokio::test]
async fn user_reactions_recalls_and_raw_events_are_pushed() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    let sent = user_says(&emu, "react to me");
    let (f, _, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await;

    let base = emu.base_url();
    let r = post_json(
        &base,
        &format!("/_emulator/messages/{}/reactions", sent.message_id),
        &json!({"operator_open_id": sent.sender_open_id, "emoji_type": "THUMBSUP"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (f, env, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await;
    assert_eq!(
        env["header"]["event_type"],
        "im.message.reaction.created_v1"
    );
    assert_eq!(env["header"]["event_id"], r.body["event_id"]);
    assert_eq!(env["event"]["reaction_type"]["emoji_type"], "THUMBSUP");
    assert_eq!(
        env["event"]["user_id"]["open_id"],
        sent.sender_open_id.as_str()
    );
    let view = emu.chat_messages(&sent.chat_id).unwrap();
    assert_eq!(view[0].reactions[0].operator, sent.sender_open_id);

    let recall = post_json(
        &base,
        &format!("/_emulator/messages/{}/recall", sent.message_id),
        &json!({}),
    )
    .await;
    assert_eq!(recall.status, 200);
    let (f, env, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await;
    assert_eq!(env["header"]["event_type"], "im.message.recalled_v1");
    assert_eq!(env["event"]["message_id"], sent.message_id.as_str());
    assert!(emu.chat_messages(&sent.chat_id).unwrap()[0].recalled);
    assert_eq!(
        post_json(
            &base,
            &format!("/_emulator/messages/{}/recall", sent.message_id),
            &json!({})
        )
        .await
        .status,
        400
    );

    let added = emu
        .deliver_event(lark_emulator::RawEvent {
            app_id: None,
            event_type: "im.chat.member.bot.added_v1".into(),
            event: json!({"chat_id": "oc_x", "operator_id": {"open_id": sent.sender_open_id}, "external": false, "name": "Team"}),
        })
        .unwrap();
    let (f, env, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await;
    assert_eq!(env["header"]["event_id"], added.event_id.as_str());
    assert_eq!(env["event"]["name"], "Team");
}
