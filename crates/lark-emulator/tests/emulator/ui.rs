//! The chat page: its assets are served, its config creates the demo users
//! and chats, and its sidebar long-poll wakes on changes.

use std::time::Duration;

use lark_emulator::{UserMessage, DEMO_ALICE, DEMO_BOB, DEMO_GROUP_CHAT_ID, DEMO_TOPIC_CHAT_ID};
use serde_json::{json, Value};

use crate::common::*;

/// GET `path`: status, content type, body text.
async fn get_text(base: &str, path: &str) -> (u16, String, String, reqwest::header::HeaderMap) {
    let res = http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status,
        content_type,
        res.text().await.expect("body"),
        headers,
    )
}

async fn get_json(base: &str, path: &str) -> Value {
    let (status, _, text, _) = get_text(base, path).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// Paths after `marker` up to the closing quote (`src="/ui/assets/…"`,
/// `from './x.js'`).
fn references(text: &str, marker: &str, close: char) -> Vec<String> {
    text.split(marker)
        .skip(1)
        .filter_map(|rest| rest.split(close).next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_page_and_every_asset_it_loads_are_served() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    for path in ["/", "/ui"] {
        let (status, ct, html, headers) = get_text(&base, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(ct, "text/html; charset=utf-8");
        assert!(html.contains(r#"<script type="module" src="/ui/assets/app.js">"#));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }
    let (_, _, html, _) = get_text(&base, "/").await;
    let mut assets: Vec<String> = references(&html, "\"/ui/assets/", '"');
    // Modules import their siblings.
    let mut i = 0;
    while i < assets.len() {
        let name = assets[i].clone();
        let (status, ct, text, _) = get_text(&base, &format!("/ui/assets/{name}")).await;
        assert_eq!(status, 200, "{name}");
        assert!(!text.is_empty(), "{name} is empty");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(ct, expected, "{name}");
        for import in references(&text, "from './", '\'') {
            if !assets.contains(&import) {
                assets.push(import);
            }
        }
        i += 1;
    }
    for needed in [
        "app.js",
        "render.js",
        "markdown.js",
        "style.css",
        "icon.svg",
    ] {
        assert!(
            assets.iter().any(|a| a == needed),
            "{needed} not referenced: {assets:?}"
        );
    }
    let (status, _, _, _) = get_text(&base, "/ui/assets/missing.js").await;
    assert_eq!(status, 404);
    let (status, _, _, _) = get_text(&base, "/ui/assets/..%2Fsrc%2Flib.rs").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn config_creates_the_demo_users_and_chats() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    let app = emu.default_app();
    let cfg = get_json(&base, "/_emulator/ui/config").await;
    assert_eq!(cfg["gateway_admin_url"], Value::Null);
    assert_eq!(cfg["app_id"], app.app_id.as_str());
    assert_eq!(cfg["bot_name"], app.bot_name.as_str());
    assert_eq!(cfg["bot_open_id"], app.bot_open_id.as_str());
    assert_eq!(
        cfg["users"],
        json!([
            {"open_id": DEMO_ALICE.open_id, "name": "Alice", "dm_chat_id": DEMO_ALICE.dm_chat_id},
            {"open_id": DEMO_BOB.open_id, "name": "Bob", "dm_chat_id": DEMO_BOB.dm_chat_id},
        ])
    );
    assert_eq!(cfg["chats"][0]["chat_id"], DEMO_GROUP_CHAT_ID);
    assert_eq!(cfg["chats"][1]["chat_id"], DEMO_TOPIC_CHAT_ID);
    for (chat_id, mode, name) in [
        (DEMO_ALICE.dm_chat_id, "p2p", "Alice"),
        (DEMO_BOB.dm_chat_id, "p2p", "Bob"),
        (DEMO_GROUP_CHAT_ID, "group", "Team group"),
        (DEMO_TOPIC_CHAT_ID, "topic", "Topic group"),
    ] {
        let view = emu.chat(chat_id).expect("chat exists");
        assert_eq!(view.chat_mode, mode, "{chat_id}");
        assert_eq!(view.name, name, "{chat_id}");
        assert!(view.messages.is_empty());
    }
    // Asking again changes nothing.
    assert_eq!(get_json(&base, "/_emulator/ui/config").await, cfg);
    assert_eq!(emu.chats().chats.len(), 4);

    // What the page sends: a DM into Alice's chat, a mention in the group.
    let dm = emu
        .send_message(UserMessage {
            chat_type: Some("p2p".into()),
            chat_id: Some(DEMO_ALICE.dm_chat_id.into()),
            sender_open_id: Some(DEMO_ALICE.open_id.into()),
            text: Some("hi".into()),
            ..Default::default()
        })
        .expect("dm");
    assert_eq!(dm.chat_id, DEMO_ALICE.dm_chat_id);
    let group = emu
        .send_message(UserMessage {
            chat_type: Some("group".into()),
            chat_id: Some(DEMO_GROUP_CHAT_ID.into()),
            sender_open_id: Some(DEMO_BOB.open_id.into()),
            text: Some("hello".into()),
            mentions_bot: true,
            ..Default::default()
        })
        .expect("group");
    assert_eq!(group.chat_id, DEMO_GROUP_CHAT_ID);
    let shown = &emu.chat_messages(DEMO_GROUP_CHAT_ID).expect("group")[0].text;
    assert_eq!(shown, &format!("@{} hello", app.bot_name));
}

#[tokio::test]
async fn an_existing_dm_keeps_its_chat_id() {
    let emu = start(|_| {}).await;
    let earlier = emu
        .send_message(UserMessage {
            sender_open_id: Some(DEMO_BOB.open_id.into()),
            text: Some("before the page".into()),
            ..Default::default()
        })
        .expect("send");
    assert_ne!(earlier.chat_id, DEMO_BOB.dm_chat_id);
    let cfg = get_json(&emu.base_url(), "/_emulator/ui/config").await;
    assert_eq!(cfg["users"][1]["dm_chat_id"], earlier.chat_id.as_str());
    assert_eq!(cfg["users"][0]["dm_chat_id"], DEMO_ALICE.dm_chat_id);
}

#[tokio::test]
async fn gateway_admin_url_from_config_and_setter() {
    let emu = start(|c| c.ui_gateway_admin_url = Some("http://127.0.0.1:7001/".into())).await;
    let base = emu.base_url();
    let cfg = get_json(&base, "/_emulator/ui/config").await;
    assert_eq!(cfg["gateway_admin_url"], "http://127.0.0.1:7001");
    emu.set_ui_gateway_admin_url(Some("http://localhost:7002".into()));
    let cfg = get_json(&base, "/_emulator/ui/config").await;
    assert_eq!(cfg["gateway_admin_url"], "http://localhost:7002");
    let (_, _, _, headers) = get_text(&base, "/").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("http://localhost:7002"), "{csp}");
    emu.set_ui_gateway_admin_url(None);
    let cfg = get_json(&base, "/_emulator/ui/config").await;
    assert_eq!(cfg["gateway_admin_url"], Value::Null);
    assert_eq!(emu.ui_url(), format!("{base}/"));
}

#[tokio::test]
async fn sidebar_long_poll_wakes_on_a_new_message() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    get_json(&base, "/_emulator/ui/config").await;
    let now = get_json(&base, "/_emulator/ui/chats").await;
    let version = now["version"].as_u64().expect("version");
    assert_eq!(now["chats"].as_array().map(Vec::len), Some(4));
    assert!(now["chats"][0]["last"].is_null());

    // Nothing changes: the poll ends at its timeout with the same version.
    let idle = get_json(
        &base,
        &format!("/_emulator/ui/chats?wait_version={version}&timeout_ms=50"),
    )
    .await;
    assert_eq!(idle["version"].as_u64(), Some(version));

    let poll = {
        let base = base.clone();
        tokio::spawn(async move {
            get_json(
                &base,
                &format!("/_emulator/ui/chats?wait_version={version}"),
            )
            .await
        })
    };
    // Usually the poll is waiting by now (if not, it answers at once: same result).
    tokio::time::sleep(Duration::from_millis(50)).await;
    emu.send_message(UserMessage {
        chat_type: Some("group".into()),
        chat_id: Some(DEMO_GROUP_CHAT_ID.into()),
        sender_open_id: Some(DEMO_ALICE.open_id.into()),
        text: Some("wake up".into()),
        ..Default::default()
    })
    .expect("send");
    let woke = guard(poll).await.expect("poll task");
    assert!(woke["version"].as_u64() > Some(version));
    let group = woke["chats"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["chat_id"] == DEMO_GROUP_CHAT_ID))
        .expect("group listed");
    assert_eq!(group["last"]["text"], "wake up");
    assert_eq!(group["last"]["sender"], DEMO_ALICE.open_id);
    assert_eq!(group["message_count"], 1);
}
