//! Every REST call's request shape and response parsing, retries, token
//! refresh, rate limits, stats and capped downloads, against the scripted
//! fake platform over real loopback sockets.

mod support;

use std::time::Duration;

use lark_client::{Client, Error, ErrorClass, OutgoingMessage, ReceiveIdType, ResourceKind};
use serde_json::{json, Value};
use support::{Fake, Reply};

const MSG: &str = "/open-apis/im/v1/messages";

fn client(fake: &Fake) -> Client {
    Client::builder("cli_test", "secret")
        .domain(fake.domain())
        .no_proxy(Some(String::new()))
        .retry_backoff(Duration::from_millis(10))
        .build()
        .unwrap()
}

fn message_object(id: &str) -> Value {
    json!({
        "message_id": id, "root_id": "om_root", "parent_id": "om_parent", "thread_id": "omt_1",
        "msg_type": "text", "create_time": "1615380573411", "update_time": "1615380573411",
        "deleted": false, "updated": false, "chat_id": "oc_chat",
        "sender": {"id": "cli_test", "id_type": "app_id", "sender_type": "app", "tenant_key": "tk"},
        "body": {"content": "{\"text\":\"@_user_1 hi\"}"},
        "mentions": [{"key": "@_user_1", "id": "ou_tom", "id_type": "open_id", "name": "Tom", "tenant_key": "tk"}]
    })
}

fn query(r: &support::Recorded) -> Vec<(String, String)> {
    r.query_pairs()
}

#[tokio::test]
async fn send_message_shape_and_parse() {
    let fake = Fake::start().await;
    fake.on("POST", MSG, vec![Reply::ok(message_object("om_new"))]);
    let c = client(&fake);
    let msg = OutgoingMessage::text("hello \"quoted\"");
    let info = c
        .send_message(ReceiveIdType::OpenId, "ou_tom", &msg, Some("u-1"))
        .await
        .unwrap();
    assert_eq!(info.message_id, "om_new");
    assert_eq!(info.chat_id, "oc_chat");
    assert_eq!(info.root_id.as_deref(), Some("om_root"));
    assert_eq!(info.thread_id.as_deref(), Some("omt_1"));
    assert_eq!(info.sender_type, "app");
    assert_eq!(info.content, "{\"text\":\"@_user_1 hi\"}");
    assert_eq!(info.mentions[0].id, "ou_tom");

    let reqs = fake.requests_to("POST", MSG);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(query(r), vec![("receive_id_type".into(), "open_id".into())]);
    assert_eq!(r.header("authorization"), Some("Bearer t-1"));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["receive_id"], "ou_tom");
    assert_eq!(body["msg_type"], "text");
    assert_eq!(body["uuid"], "u-1");
    // content is a JSON string holding JSON (double-encoded).
    let content: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"text": "hello \"quoted\""}));
}

#[tokio::test]
async fn reply_edit_patch_recall_shapes() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/im/v1/messages/om_1/reply",
        vec![Reply::ok(message_object("om_r"))],
    );
    fake.on(
        "PUT",
        "/open-apis/im/v1/messages/om_1",
        vec![Reply::ok(message_object("om_1"))],
    );
    let c = client(&fake);
    let md = OutgoingMessage::post_markdown("**bold**");
    let r = c.reply_message("om_1", &md, true, None).await.unwrap();
    assert_eq!(r.message_id, "om_r");
    let body = fake.requests_to("POST", "/open-apis/im/v1/messages/om_1/reply")[0].json();
    assert_eq!(body["msg_type"], "post");
    assert_eq!(body["reply_in_thread"], true);
    assert_eq!(body["uuid"].as_str().unwrap().len(), 32, "generated uuid");
    let content: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content,
        json!({"zh_cn": {"content": [[{"tag": "md", "text": "**bold**"}]]}})
    );

    let edited = c
        .edit_message("om_1", &OutgoingMessage::text("fixed"))
        .await
        .unwrap();
    assert_eq!(edited.message_id, "om_1");
    let body = fake.requests_to("PUT", "/open-apis/im/v1/messages/om_1")[0].json();
    assert_eq!(
        body,
        json!({"msg_type": "text", "content": "{\"text\":\"fixed\"}"})
    );

    let card = r#"{"schema":"2.0","body":{"elements":[]}}"#;
    c.patch_card("om_1", card).await.unwrap();
    let body = fake.requests_to("PATCH", "/open-apis/im/v1/messages/om_1")[0].json();
    assert_eq!(body, json!({ "content": card }));

    c.recall_message("om_1").await.unwrap();
    let del = fake.requests_to("DELETE", "/open-apis/im/v1/messages/om_1");
    assert_eq!(del.len(), 1);
    assert!(del[0].body.is_empty());
}

#[tokio::test]
async fn get_message_returns_merge_forward_children() {
    let fake = Fake::start().await;
    let mut child = message_object("om_child");
    child["upper_message_id"] = json!("om_parent_fwd");
    fake.on(
        "GET",
        "/open-apis/im/v1/messages/om_parent_fwd",
        vec![Reply::ok(
            json!({"items": [message_object("om_parent_fwd"), child]}),
        )],
    );
    let items = client(&fake).get_message("om_parent_fwd").await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].upper_message_id.as_deref(), Some("om_parent_fwd"));
    assert_eq!(items[0].upper_message_id, None);
}

#[tokio::test]
async fn reactions_shapes() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/im/v1/messages/om_1/reactions",
        vec![Reply::ok(
            json!({"reaction_id": "r_9", "reaction_type": {"emoji_type": "Typing"}}),
        )],
    );
    let c = client(&fake);
    assert_eq!(c.add_reaction("om_1", "Typing").await.unwrap(), "r_9");
    let body = fake.requests_to("POST", "/open-apis/im/v1/messages/om_1/reactions")[0].json();
    assert_eq!(body, json!({"reaction_type": {"emoji_type": "Typing"}}));
    c.delete_reaction("om_1", "r_9").await.unwrap();
    assert_eq!(
        fake.requests_to("DELETE", "/open-apis/im/v1/messages/om_1/reactions/r_9")
            .len(),
        1
    );
}

#[tokio::test]
async fn uploads_are_multipart() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/im/v1/images",
        vec![Reply::ok(json!({"image_key": "img_v2_1"}))],
    );
    fake.on(
        "POST",
        "/open-apis/im/v1/files",
        vec![Reply::ok(json!({"file_key": "file_v2_1"}))],
    );
    let c = client(&fake);
    let key = c
        .upload_image(b"\x89PNG...".to_vec(), "a.png")
        .await
        .unwrap();
    assert_eq!(key, "img_v2_1");
    let parts = fake.requests_to("POST", "/open-apis/im/v1/images")[0].multipart();
    assert_eq!(parts["image_type"].1, b"message");
    assert_eq!(parts["image"].0.as_deref(), Some("a.png"));
    assert_eq!(parts["image"].1, b"\x89PNG...");

    let key = c
        .upload_file("opus", "voice.opus", b"OggS".to_vec(), Some(3200))
        .await
        .unwrap();
    assert_eq!(key, "file_v2_1");
    let parts = fake.requests_to("POST", "/open-apis/im/v1/files")[0].multipart();
    assert_eq!(parts["file_type"].1, b"opus");
    assert_eq!(parts["file_name"].1, b"voice.opus");
    assert_eq!(parts["duration"].1, b"3200");
    assert_eq!(parts["file"].1, b"OggS");
}

#[tokio::test]
async fn bot_chat_user_info() {
    let fake = Fake::start().await;
    fake.on(
        "GET",
        "/open-apis/bot/v3/info",
        vec![Reply::json(json!({"code": 0, "msg": "ok", "bot": {
            "activate_status": 2, "app_name": "echo", "avatar_url": "https://a/x.png",
            "ip_white_list": [], "open_id": "ou_bot"}}))],
    );
    fake.on(
        "GET",
        "/open-apis/im/v1/chats/oc_1",
        vec![Reply::ok(
            json!({"name": "Team", "chat_mode": "topic", "chat_type": "private",
            "owner_id": "ou_o", "user_count": "12", "bot_count": "1", "external": false,
            "description": "d"}),
        )],
    );
    fake.on(
        "GET",
        "/open-apis/contact/v3/users/ou_tom",
        vec![Reply::ok(
            json!({"user": {"open_id": "ou_tom", "name": "Tom", "en_name": "Tommy",
            "email": "tom@example.com", "avatar": {"avatar_72": "a72", "avatar_240": "a240"}}}),
        )],
    );
    let c = client(&fake);
    let bot = c.bot_info().await.unwrap();
    assert_eq!(
        (
            bot.open_id.as_str(),
            bot.app_name.as_str(),
            bot.activate_status
        ),
        ("ou_bot", "echo", 2)
    );
    let chat = c.chat_info("oc_1").await.unwrap();
    assert_eq!(chat.chat_mode, "topic");
    assert_eq!((chat.user_count, chat.bot_count), (12, 1));
    let user = c.user_info("ou_tom").await.unwrap();
    assert_eq!(user.en_name, "Tommy");
    assert_eq!(user.avatar_url, "a240");
    let r = &fake.requests_to("GET", "/open-apis/contact/v3/users/ou_tom")[0];
    assert_eq!(query(r), vec![("user_id_type".into(), "open_id".into())]);
}

#[tokio::test]
async fn cardkit_shapes() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/cardkit/v1/cards",
        vec![Reply::ok(json!({"card_id": "7355372766134157313"}))],
    );
    let c = client(&fake);
    let card = r#"{"schema":"2.0","config":{"streaming_mode":true},"body":{"elements":[{"tag":"markdown","element_id":"md","content":""}]}}"#;
    let id = c.create_card(card).await.unwrap();
    assert_eq!(id, "7355372766134157313");
    let body = fake.requests_to("POST", "/open-apis/cardkit/v1/cards")[0].json();
    assert_eq!(body, json!({"type": "card_json", "data": card}));

    c.stream_card_text(&id, "md", "Hello wor", 1, Some("c_1"))
        .await
        .unwrap();
    let body = fake.requests_to(
        "PUT",
        &format!("/open-apis/cardkit/v1/cards/{id}/elements/md/content"),
    )[0]
    .json();
    assert_eq!(
        body,
        json!({"content": "Hello wor", "sequence": 1, "uuid": "c_1"})
    );

    let settings = r#"{"config":{"streaming_mode":false,"summary":{"content":"done"}}}"#;
    c.card_settings(&id, settings, 2, None).await.unwrap();
    let body = fake.requests_to(
        "PATCH",
        &format!("/open-apis/cardkit/v1/cards/{id}/settings"),
    )[0]
    .json();
    assert_eq!(body["settings"], settings);
    assert_eq!(body["sequence"], 2);
    assert_eq!(body["uuid"].as_str().unwrap().len(), 32);

    c.update_card(&id, card, 3, Some("u3")).await.unwrap();
    let body = fake.requests_to("PUT", &format!("/open-apis/cardkit/v1/cards/{id}"))[0].json();
    assert_eq!(
        body,
        json!({"card": {"type": "card_json", "data": card}, "sequence": 3, "uuid": "u3"})
    );

    let actions = r#"[{"action":"delete_elements","params":{"element_ids":["md"]}}]"#;
    c.batch_update_card(&id, actions, 4, Some("u4"))
        .await
        .unwrap();
    let body = fake.requests_to(
        "POST",
        &format!("/open-apis/cardkit/v1/cards/{id}/batch_update"),
    )[0]
    .json();
    assert_eq!(
        body,
        json!({"actions": actions, "sequence": 4, "uuid": "u4"})
    );
}

#[tokio::test]
async fn invalid_token_is_refreshed_and_retried_once() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        MSG,
        vec![
            Reply::code(400, 99991663, "Invalid access token for authorization"),
            Reply::ok(message_object("om_ok")),
        ],
    );
    let c = client(&fake);
    let info = c
        .send_message(
            ReceiveIdType::ChatId,
            "oc_1",
            &OutgoingMessage::text("x"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.message_id, "om_ok");
    let reqs = fake.requests_to("POST", MSG);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer t-1"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer t-2"));
    assert_eq!(fake.tokens_issued(), 2);
    // The retry carries the same idempotency key.
    assert_eq!(reqs[0].json()["uuid"], reqs[1].json()["uuid"]);
}

#[tokio::test]
async fn second_token_failure_surfaces_as_auth() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        MSG,
        vec![Reply::code(400, 99991663, "Invalid access token")],
    );
    let c = client(&fake);
    let err = c
        .send_message(
            ReceiveIdType::ChatId,
            "oc_1",
            &OutgoingMessage::text("x"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(99991663));
    assert_eq!(err.class(), ErrorClass::Auth);
    assert_eq!(fake.requests_to("POST", MSG).len(), 2);
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test]
async fn rate_limit_waits_for_the_reset_then_succeeds() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        MSG,
        vec![
            Reply::code(429, 99991400, "request trigger frequency limit")
                .header("x-ogw-ratelimit-limit", "50")
                .header("x-ogw-ratelimit-reset", "1")
                .header("X-Tt-Logid", "log-429"),
            Reply::ok(message_object("om_after")),
        ],
    );
    let c = client(&fake);
    let info = c
        .send_message(
            ReceiveIdType::ChatId,
            "oc_1",
            &OutgoingMessage::text("x"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.message_id, "om_after");
    let reqs = fake.requests_to("POST", MSG);
    assert_eq!(reqs.len(), 2);
    // The retry waited for the platform's reset (a lower bound, not a speed claim).
    assert!(reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(990));
    let stats = c.stats();
    let sends = stats
        .iter()
        .find(|s| s.endpoint == "POST /im/v1/messages")
        .unwrap();
    assert_eq!(sends.calls, 2);
    assert_eq!(sends.errors.get(&99991400), Some(&1));
}

#[tokio::test]
async fn too_long_rate_limit_fails_fast_with_the_wait() {
    let fake = Fake::start().await;
    fake.on(
        "PATCH",
        "/open-apis/im/v1/messages/om_1",
        vec![Reply::code(429, 99991400, "limit").header("x-ogw-ratelimit-reset", "120")],
    );
    let c = client(&fake);
    let err = c.patch_card("om_1", "{}").await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::RateLimited(Duration::from_secs(120))
    );
    // Later callers of the same endpoint are refused locally, without a request.
    let err = c.patch_card("om_2", "{}").await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        1
    );
}

#[tokio::test]
async fn retryable_errors_are_retried_and_fatal_ones_are_not() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        MSG,
        vec![
            Reply::bytes(b"<html>bad gateway</html>", "text/html").status(502),
            Reply::code(500, 1500, "internal error"),
            Reply::ok(message_object("om_third")),
        ],
    );
    let c = client(&fake);
    let info = c
        .send_message(
            ReceiveIdType::ChatId,
            "oc_1",
            &OutgoingMessage::text("x"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.message_id, "om_third");
    let reqs = fake.requests_to("POST", MSG);
    assert_eq!(reqs.len(), 3);
    let uuids: Vec<Value> = reqs.iter().map(|r| r.json()["uuid"].clone()).collect();
    assert!(
        uuids.iter().all(|u| *u == uuids[0]),
        "stable uuid: {uuids:?}"
    );
    let stats = c.stats();
    let sends = stats
        .iter()
        .find(|s| s.endpoint == "POST /im/v1/messages")
        .unwrap();
    assert_eq!(sends.errors.get(&502), Some(&1));
    assert_eq!(sends.errors.get(&1500), Some(&1));

    let fatal = Fake::start().await;
    fatal.on(
        "POST",
        MSG,
        vec![Reply::code(400, 230001, "invalid param").header("X-Tt-Logid", "L-42")],
    );
    let err = client(&fatal)
        .send_message(
            ReceiveIdType::ChatId,
            "oc_1",
            &OutgoingMessage::text("x"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(err.log_id(), Some("L-42"));
    assert_eq!(fatal.requests_to("POST", MSG).len(), 1);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let fake = Fake::start().await;
    fake.on(
        "GET",
        "/open-apis/bot/v3/info",
        vec![Reply::code(503, 1503, "busy")],
    );
    let c = client(&fake);
    let err = c.bot_info().await.unwrap_err();
    assert_eq!(err.code(), Some(1503));
    assert_eq!(fake.requests_to("GET", "/open-apis/bot/v3/info").len(), 3);

    let c = Client::builder("cli_test", "secret")
        .domain(fake.domain())
        .no_proxy(Some(String::new()))
        .retry_backoff(Duration::from_millis(10))
        .max_attempts(1)
        .build()
        .unwrap();
    c.bot_info().await.unwrap_err();
    assert_eq!(fake.requests_to("GET", "/open-apis/bot/v3/info").len(), 4);
}

#[tokio::test]
async fn target_gone_is_distinguishable() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/im/v1/messages/om_gone/reply",
        vec![Reply::code(400, 230011, "The message was withdrawn.")],
    );
    let err = client(&fake)
        .reply_message("om_gone", &OutgoingMessage::text("x"), false, None)
        .await
        .unwrap_err();
    assert!(err.is_target_gone());
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn bad_credentials_surface_from_the_token_endpoint() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        "/open-apis/auth/v3/tenant_access_token/internal",
        vec![Reply::code(200, 10014, "app secret invalid")],
    );
    let c = client(&fake);
    let err = c.bot_info().await.unwrap_err();
    assert_eq!(err.code(), Some(10014));
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(fake.requests_to("GET", "/open-apis/bot/v3/info").is_empty());
    let stats = c.stats();
    assert!(stats.iter().any(
        |s| s.endpoint == "POST /auth/v3/tenant_access_token/internal"
            && s.errors.get(&10014) == Some(&1)
    ));
}

#[tokio::test]
async fn download_streams_to_a_file_with_metadata() {
    let fake = Fake::start().await;
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    fake.on(
        "GET",
        "/open-apis/im/v1/messages/om_1/resources/file_k",
        vec![Reply::bytes(&data, "application/pdf")
            .header("content-disposition", "attachment; filename=\"report.pdf\"")
            .chunked()],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let got = client(&fake)
        .download_resource("om_1", "file_k", ResourceKind::File, 10_000, &dest)
        .await
        .unwrap();
    assert_eq!(got.bytes, 5000);
    assert_eq!(got.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(got.file_name.as_deref(), Some("report.pdf"));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let r = &fake.requests_to("GET", "/open-apis/im/v1/messages/om_1/resources/file_k")[0];
    assert_eq!(query(r), vec![("type".into(), "file".into())]);
}

#[tokio::test]
async fn download_cap_is_enforced_and_partial_file_removed() {
    let fake = Fake::start().await;
    let data = vec![7u8; 4096];
    // Streamed without Content-Length: the cap trips mid-body.
    fake.on(
        "GET",
        "/open-apis/im/v1/messages/om_1/resources/img_k",
        vec![Reply::bytes(&data, "image/png").chunked()],
    );
    // With Content-Length: refused before writing.
    fake.on(
        "GET",
        "/open-apis/im/v1/messages/om_2/resources/img_k",
        vec![Reply::bytes(&data, "image/png")],
    );
    let c = client(&fake);
    let dir = tempfile::tempdir().unwrap();
    for message_id in ["om_1", "om_2"] {
        let dest = dir.path().join(format!("{message_id}.png"));
        let err = c
            .download_resource(message_id, "img_k", ResourceKind::Image, 1000, &dest)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 1000 }), "{err}");
        assert!(!dest.exists(), "partial file removed");
    }
}

#[tokio::test]
async fn download_errors_are_platform_errors() {
    let fake = Fake::start().await;
    fake.on(
        "GET",
        "/open-apis/im/v1/messages/om_1/resources/k",
        vec![Reply::code(400, 234003, "file_key does not match message")],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x");
    let err = client(&fake)
        .download_resource("om_1", "k", ResourceKind::File, 100, &dest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(234003));
    assert!(!dest.exists());
}

#[tokio::test]
async fn tenant_token_is_cached() {
    let fake = Fake::start().await;
    let c = client(&fake);
    assert_eq!(c.tenant_token().await.unwrap(), "t-1");
    assert_eq!(c.tenant_token().await.unwrap(), "t-1");
    c.recall_message("om_1").await.unwrap();
    assert_eq!(fake.tokens_issued(), 1);
    let body =
        fake.requests_to("POST", "/open-apis/auth/v3/tenant_access_token/internal")[0].json();
    assert_eq!(body, json!({"app_id": "cli_test", "app_secret": "secret"}));
}

#[tokio::test]
async fn an_exhausted_window_makes_the_next_caller_wait() {
    let fake = Fake::start().await;
    let path = "/open-apis/im/v1/messages/om_1/reactions";
    fake.on(
        "POST",
        path,
        vec![Reply::ok(json!({"reaction_id": "r1"}))
            .header("x-ogw-ratelimit-limit", "50")
            .header("x-ogw-ratelimit-remaining", "0")
            .header("x-ogw-ratelimit-reset", "1")],
    );
    let c = client(&fake);
    c.add_reaction("om_1", "OK").await.unwrap();
    c.add_reaction("om_1", "OK").await.unwrap();
    let reqs = fake.requests_to("POST", path);
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(990));
}
