use std::time::Duration;

use base64::Engine;
use lark_emulator::{ForwardedMessage, UserMessage};
use serde_json::{json, Value};

use crate::common::*;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn setup() -> (lark_emulator::Emulator, Api, String) {
    let emu = start(|_| {}).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "hi").chat_id;
    (emu, api, chat)
}

#[tokio::test]
async fn send_by_every_receive_id_type_and_reply_in_threads() {
    let (emu, api, chat) = setup().await;
    let user = emu.chat_messages(&chat).unwrap()[0].sender.clone();
    let by_open_id = api
        .call(
            "POST",
            "/open-apis/im/v1/messages?receive_id_type=open_id",
            Some(
                json!({"receive_id": user, "msg_type": "text", "content": "{\"text\":\"to you\"}"}),
            ),
        )
        .await;
    assert_eq!(by_open_id.code(), 0, "{}", by_open_id.body);
    assert_eq!(
        by_open_id.body["data"]["chat_id"],
        chat.as_str(),
        "the p2p chat"
    );
    assert_eq!(by_open_id.body["data"]["sender"]["sender_type"], "app");
    assert!(by_open_id.headers.contains_key("x-tt-logid"));
    let contact = api
        .call(
            "GET",
            &format!("/open-apis/contact/v3/users/{user}?user_id_type=open_id"),
            None,
        )
        .await;
    let email = contact.body["data"]["user"]["email"]
        .as_str()
        .unwrap()
        .to_string();
    let union_id = contact.body["data"]["user"]["union_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (kind, id) in [("email", email), ("union_id", union_id)] {
        let r = api
            .call(
                "POST",
                &format!("/open-apis/im/v1/messages?receive_id_type={kind}"),
                Some(json!({"receive_id": id, "msg_type": "text", "content": "{\"text\":\"x\"}"})),
            )
            .await;
        assert_eq!(r.body["data"]["chat_id"], chat.as_str(), "{kind}");
    }
    let first = emu.chat_messages(&chat).unwrap()[0].message_id.clone();
    let reply = api
        .call("POST", &format!("/open-apis/im/v1/messages/{first}/reply"),
            Some(json!({"msg_type": "text", "content": "{\"text\":\"in thread\"}", "reply_in_thread": true})))
        .await;
    assert_eq!(reply.code(), 0, "{}", reply.body);
    let thread = reply.body["data"]["thread_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(thread.starts_with("omt_"));
    assert_eq!(reply.body["data"]["parent_id"], first.as_str());
    assert_eq!(reply.body["data"]["root_id"], first.as_str());
    let reply_id = reply.body["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = api
        .call(
            "POST",
            &format!("/open-apis/im/v1/messages/{reply_id}/reply"),
            Some(json!({"msg_type": "text", "content": "{\"text\":\"same thread\"}"})),
        )
        .await;
    assert_eq!(
        again.body["data"]["thread_id"],
        thread.as_str(),
        "replies in a thread stay there"
    );
    assert_eq!(again.body["data"]["root_id"], first.as_str());
    let view = emu.chat_messages(&chat).unwrap();
    let last = view.last().unwrap();
    assert_eq!(last.sender, "bot");
    assert_eq!(last.text, "same thread");
    assert_eq!(last.reply_to.as_deref(), Some(reply_id.as_str()));
    assert_eq!(
        view[0].thread_id.as_deref(),
        Some(thread.as_str()),
        "the root joined the thread"
    );
}

#[tokio::test]
async fn edit_limit_recall_and_get() {
    let (emu, api, chat) = setup().await;
    let sent = api.send_text(&chat, "v0").await;
    let id = sent.body["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 1..=20 {
        let r = api
            .call("PUT", &format!("/open-apis/im/v1/messages/{id}"),
                Some(json!({"msg_type": "text", "content": json!({"text": format!("v{i}")}).to_string()})))
            .await;
        assert_eq!(r.code(), 0, "edit {i}: {}", r.body);
    }
    let over = api
        .call(
            "PUT",
            &format!("/open-apis/im/v1/messages/{id}"),
            Some(json!({"msg_type": "text", "content": "{\"text\":\"v21\"}"})),
        )
        .await;
    assert_eq!(over.code(), 230072);
    let view = emu.chat_messages(&chat).unwrap();
    let m = view.iter().find(|m| m.message_id == id).unwrap();
    assert_eq!((m.edits, m.text.as_str()), (20, "v20"));

    let got = api
        .call("GET", &format!("/open-apis/im/v1/messages/{id}"), None)
        .await;
    assert_eq!(
        got.body["data"]["items"][0]["body"]["content"],
        "{\"text\":\"v20\"}"
    );
    assert_eq!(got.body["data"]["items"][0]["updated"], true);

    assert_eq!(
        api.call("DELETE", &format!("/open-apis/im/v1/messages/{id}"), None)
            .await
            .code(),
        0
    );
    assert!(emu
        .chat_messages(&chat)
        .unwrap()
        .iter()
        .any(|m| m.message_id == id && m.recalled));
    assert_eq!(
        api.call("DELETE", &format!("/open-apis/im/v1/messages/{id}"), None)
            .await
            .code(),
        230011
    );
    let reply = api
        .call(
            "POST",
            &format!("/open-apis/im/v1/messages/{id}/reply"),
            Some(json!({"msg_type": "text", "content": "{\"text\":\"x\"}"})),
        )
        .await;
    assert_eq!(reply.code(), 230011);
    // A user's message is not the bot's to edit or recall.
    let user_msg = emu.chat_messages(&chat).unwrap()[0].message_id.clone();
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/open-apis/im/v1/messages/{user_msg}"),
            None
        )
        .await
        .code(),
        230027
    );
}

#[tokio::test]
async fn card_patch_is_rate_limited_per_message() {
    let emu = start(|c| c.per_message_patch_rate = Some(1)).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "hi").chat_id;
    let card = |t: &str| json!({"elements": [{"tag": "markdown", "content": t}]});
    let sent = api.send(&chat, "interactive", &card("a")).await;
    let id = sent.body["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |t: &str| {
        api.call(
            "PATCH",
            &format!("/open-apis/im/v1/messages/{id}"),
            Some(json!({"content": card(t).to_string()})),
        )
    };
    assert_eq!(patch("b").await.code(), 0);
    let limited = patch("c").await;
    assert_eq!((limited.status, limited.code()), (400, 230020));
    assert_eq!(emu.chat_messages(&chat).unwrap().last().unwrap().text, "b");
    let text_id = api.send_text(&chat, "t").await.body["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let not_card = api
        .call(
            "PATCH",
            &format!("/open-apis/im/v1/messages/{text_id}"),
            Some(json!({"content": card("x").to_string()})),
        )
        .await;
    assert_eq!(not_card.code(), 230001);
}

#[tokio::test]
async fn merge_forward_get_returns_parent_then_children() {
    let emu = start(|_| {}).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let sent = emu
        .send_message(UserMessage {
            msg_type: Some("merge_forward".into()),
            forwarded: vec![
                ForwardedMessage {
                    text: Some("one".into()),
                    ..Default::default()
                },
                ForwardedMessage {
                    text: Some("two".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .unwrap();
    let got = api
        .call(
            "GET",
            &format!("/open-apis/im/v1/messages/{}", sent.message_id),
            None,
        )
        .await;
    let items = got.body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["message_id"], sent.message_id.as_str());
    assert_eq!(items[0]["msg_type"], "merge_forward");
    for (item, text) in items[1..].iter().zip(["one", "two"]) {
        assert_eq!(item["upper_message_id"], sent.message_id.as_str());
        assert_eq!(item["body"]["content"], json!({"text": text}).to_string());
    }
    assert_eq!(
        emu.chat_messages(&sent.chat_id).unwrap().len(),
        1,
        "children are not chat messages"
    );
}

#[tokio::test]
async fn resources_uploads_and_reactions() {
    let (emu, api, chat) = setup().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let img = emu
        .send_message(UserMessage {
            chat_id: Some(chat.clone()),
            msg_type: Some("image".into()),
            data: Some(b64.encode(PNG)),
            ..Default::default()
        })
        .unwrap();
    let file_bytes = b"hello file".to_vec();
    let file = emu
        .send_message(UserMessage {
            chat_id: Some(chat.clone()),
            msg_type: Some("file".into()),
            data: Some(b64.encode(&file_bytes)),
            file_name: Some("a.txt".into()),
            ..Default::default()
        })
        .unwrap();
    let get = api
        .call(
            "GET",
            &format!("/open-apis/im/v1/messages/{}", img.message_id),
            None,
        )
        .await;
    let content: Value = serde_json::from_str(
        get.body["data"]["items"][0]["body"]["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let image_key = content["image_key"].as_str().unwrap().to_string();
    let download = |mid: &str, key: &str, kind: &str| {
        api.http
            .get(format!(
                "{}/open-apis/im/v1/messages/{mid}/resources/{key}?type={kind}",
                api.base
            ))
            .bearer_auth(&api.token)
            .send()
    };
    let res = download(&img.message_id, &image_key, "image")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    let wrong = to_reply(
        download(&file.message_id, &image_key, "image")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.code(), 234003, "key of another message");
    let fget = api
        .call(
            "GET",
            &format!("/open-apis/im/v1/messages/{}", file.message_id),
            None,
        )
        .await;
    let fcontent: Value = serde_json::from_str(
        fget.body["data"]["items"][0]["body"]["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let file_key = fcontent["file_key"].as_str().unwrap();
    assert_eq!(fcontent["file_name"], "a.txt");
    let ranged = api
        .http
        .get(format!(
            "{}/open-apis/im/v1/messages/{}/resources/{file_key}?type=file",
            api.base, file.message_id
        ))
        .bearer_auth(&api.token)
        .header("Range", "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"hello");

    // Uploads.
    let form = reqwest::multipart::Form::new()
        .text("image_type", "message")
        .part(
            "image",
            reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("x.png"),
        );
    let up = to_reply(
        api.http
            .post(format!("{}/open-apis/im/v1/images", api.base))
            .bearer_auth(&api.token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(up.code(), 0, "{}", up.body);
    let key = up.body["data"]["image_key"].as_str().unwrap();
    assert!(key.starts_with("img_"));
    assert_eq!(
        api.send(&chat, "image", &json!({"image_key": key}))
            .await
            .code(),
        0
    );
    let bad = reqwest::multipart::Form::new()
        .text("image_type", "message")
        .part(
            "image",
            reqwest::multipart::Part::bytes(b"not an image".to_vec()).file_name("x.png"),
        );
    let bad = to_reply(
        api.http
            .post(format!("{}/open-apis/im/v1/images", api.base))
            .bearer_auth(&api.token)
            .multipart(bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.code(), 234011);
    let form = reqwest::multipart::Form::new()
        .text("file_type", "pdf")
        .text("file_name", "r.pdf")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF-1.4".to_vec()).file_name("r.pdf"),
        );
    let up = to_reply(
        api.http
            .post(format!("{}/open-apis/im/v1/files", api.base))
            .bearer_auth(&api.token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let file_key = up.body["data"]["file_key"].as_str().unwrap();
    assert_eq!(
        api.send(&chat, "file", &json!({"file_key": file_key}))
            .await
            .code(),
        0
    );
    assert_eq!(
        api.send(&chat, "image", &json!({"image_key": "img_v3_missing"}))
            .await
            .code(),
        230001
    );

    // Reactions.
    let r = api
        .call(
            "POST",
            &format!("/open-apis/im/v1/messages/{}/reactions", img.message_id),
            Some(json!({"reaction_type": {"emoji_type": "THUMBSUP"}})),
        )
        .await;
    assert_eq!(r.code(), 0);
    assert_eq!(r.body["data"]["operator"]["operator_type"], "app");
    let reaction_id = r.body["data"]["reaction_id"].as_str().unwrap().to_string();
    let m = emu
        .chat_messages(&chat)
        .unwrap()
        .into_iter()
        .find(|m| m.message_id == img.message_id)
        .unwrap();
    assert_eq!(m.reactions[0].emoji_type, "THUMBSUP");
    assert_eq!(m.reactions[0].operator, "bot");
    let del = api
        .call(
            "DELETE",
            &format!(
                "/open-apis/im/v1/messages/{}/reactions/{reaction_id}",
                img.message_id
            ),
            None,
        )
        .await;
    assert_eq!(del.code(), 0);
    let m = emu
        .chat_messages(&chat)
        .unwrap()
        .into_iter()
        .find(|m| m.message_id == img.message_id)
        .unwrap();
    assert!(m.reactions.is_empty());
}

#[tokio::test]
async fn uuid_makes_sends_idempotent() {
    let (emu, api, chat) = setup().await;
    let body = json!({"receive_id": chat, "msg_type": "text", "content": "{\"text\":\"once\"}", "uuid": "u-1"});
    let a = api
        .call(
            "POST",
            "/open-apis/im/v1/messages?receive_id_type=chat_id",
            Some(body.clone()),
        )
        .await;
    let b = api
        .call(
            "POST",
            "/open-apis/im/v1/messages?receive_id_type=chat_id",
            Some(body),
        )
        .await;
    assert_eq!(a.code(), 0);
    assert_eq!(a.body["data"]["message_id"], b.body["data"]["message_id"]);
    assert_eq!(
        emu.chat_messages(&chat)
            .unwrap()
            .iter()
            .filter(|m| m.sender == "bot")
            .count(),
        1
    );
}

#[tokio::test]
async fn content_is_validated_like_the_platform() {
    let (_emu, api, chat) = setup().await;
    let send = |q: &str, body: Value| {
        api.call("POST", &format!("/open-apis/im/v1/messages{q}"), Some(body))
    };
    let ok = |content: Value| json!({"receive_id": chat, "msg_type": "text", "content": content});
    assert_eq!(
        send("", ok(json!("{\"text\":\"x\"}"))).await.code(),
        230001,
        "receive_id_type missing"
    );
    assert_eq!(
        send("?receive_id_type=phone", ok(json!("{\"text\":\"x\"}")))
            .await
            .code(),
        230001
    );
    let q = "?receive_id_type=chat_id";
    assert_eq!(
        send(q, ok(json!({"text": "object, not string"})))
            .await
            .code(),
        230001
    );
    assert_eq!(send(q, ok(json!("not json"))).await.code(), 230001);
    assert_eq!(send(q, ok(json!("{\"txt\":\"x\"}"))).await.code(), 230001);
    let post_bad =
        json!({"receive_id": chat, "msg_type": "post", "content": "{\"zh_cn\":{\"title\":\"t\"}}"});
    assert_eq!(send(q, post_bad).await.code(), 230001);
    let post_ok = json!({"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "p"}]]}});
    assert_eq!(api.send(&chat, "post", &post_ok).await.code(), 0);
    let big_text = json!({"text": "x".repeat(151 * 1024)});
    let r = api.send(&chat, "text", &big_text).await;
    assert_eq!((r.status, r.code()), (400, 230025));
    let fits = json!({"text": "x".repeat(140 * 1024)});
    assert_eq!(api.send(&chat, "text", &fits).await.code(), 0);
    let big_post = json!({"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "x".repeat(31 * 1024)}]]}});
    assert_eq!(api.send(&chat, "post", &big_post).await.code(), 230025);
    let big_card = json!({"elements": [{"tag": "markdown", "content": "x".repeat(31 * 1024)}]});
    assert_eq!(
        api.send(&chat, "interactive", &big_card).await.code(),
        230025
    );
    assert_eq!(
        api.send("oc_unknown", "text", &json!({"text": "x"}))
            .await
            .code(),
        230002
    );
    let bad_json = api
        .http
        .post(format!("{}/open-apis/im/v1/messages{q}", api.base))
        .bearer_auth(&api.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_ne!(to_reply(bad_json).await.code(), 0);
}

#[tokio::test]
async fn app_rate_limit_answers_429_with_headers() {
    let emu = start(|c| c.app_rate_limit = Some(2)).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let mut codes = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let r = api.call("GET", "/open-apis/bot/v3/info", None).await;
        codes.push(r.code());
        if r.status == 429 {
            limited = Some(r);
        }
    }
    let r = limited.expect("a burst over the rate is limited");
    assert_eq!(r.code(), 99991400);
    assert_eq!(r.headers["x-ogw-ratelimit-limit"], "2");
    assert!(
        r.headers["x-ogw-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(r.headers.contains_key("x-tt-logid"));
    assert_eq!(codes[0], 0);
}

#[tokio::test]
async fn per_chat_send_rate() {
    let emu = start(|c| c.per_chat_rate = Some(1)).await;
    let api = Api::new(&emu, &emu.default_app()).await;
    let chat = user_says(&emu, "hi").chat_id;
    assert_eq!(api.send_text(&chat, "1").await.code(), 0);
    let r = api.send_text(&chat, "2").await;
    assert_eq!((r.status, r.code()), (400, 230020));
    let other = user_says(&emu, "hi").chat_id;
    assert_eq!(
        api.send_text(&other, "1").await.code(),
        0,
        "per chat, not per app"
    );
}

#[tokio::test]
async fn chat_info_and_long_poll() {
    let (emu, api, chat) = setup().await;
    let info = api
        .call("GET", &format!("/open-apis/im/v1/chats/{chat}"), None)
        .await;
    assert_eq!(info.code(), 0);
    assert_eq!(info.body["data"]["chat_mode"], "p2p");
    assert_eq!(info.body["data"]["user_count"], "1");
    let version = emu.chat(&chat).unwrap().version;
    let url = format!(
        "{}/_emulator/chats/{chat}/messages?wait_version={version}",
        emu.base_url()
    );
    let waiter = tokio::spawn(async move { to_reply(http().get(url).send().await.unwrap()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    api.send_text(&chat, "wake up").await;
    let woke = guard(waiter).await.unwrap();
    assert!(woke.body["version"].as_u64().unwrap() > version);
    assert_eq!(
        woke.body["messages"].as_array().unwrap().last().unwrap()["text"],
        "wake up"
    );
    let list = to_reply(
        http()
            .get(format!("{}/_emulator/chats", emu.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list.body["chats"][0]["chat_id"], chat.as_str());
}
