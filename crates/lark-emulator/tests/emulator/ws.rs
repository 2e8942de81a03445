use std::collections::HashSet;
use std::time::Duration;

use lark_emulator::{Fault, UserMessage};
use lark_wire::frame::{Frame, FrameType, METHOD_CONTROL};
use serde_json::Value;
use tokio_tungstenite::tungstenite;

use crate::common::*;

fn handshake_error(err: tungstenite::Error) -> (u16, Option<String>, Option<String>) {
    match err {
        tungstenite::Error::Http(res) => {
            let h = |k: &str| {
                res.headers()
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (
                res.status().as_u16(),
                h("handshake-status"),
                h("handshake-autherrcode"),
            )
        }
        other => panic!("expected an HTTP handshake error, got {other}"),
    }
}

#[tokio::test]
async fn discovery_then_ping_pong_with_client_config() {
    let emu = start(|c| c.ping_interval_secs = 7).await;
    let app = emu.default_app();
    let d = discover(&emu.base_url(), &app).await;
    assert_eq!(d["code"], 0);
    let url = d["data"]["URL"].as_str().unwrap();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let q = query(url);
    assert!(q.contains_key("device_id") && q.contains_key("ticket"));
    let service: i32 = q["service_id"].parse().unwrap();
    assert_eq!(d["data"]["ClientConfig"]["PingInterval"], 7);
    assert_eq!(d["data"]["ClientConfig"]["ReconnectCount"], -1);

    let mut ws = WsClient::dial(url).await.unwrap();
    ws.send_frame(&Frame::ping(service)).await;
    let pong = ws.next_frame().await.unwrap();
    assert_eq!(pong.method, METHOD_CONTROL);
    assert_eq!(pong.frame_type(), FrameType::Pong);
    assert_eq!(pong.service, service);
    let cfg: Value = serde_json::from_slice(pong.payload.as_deref().unwrap()).unwrap();
    assert_eq!(cfg["PingInterval"], 7);
    assert_eq!(cfg["ReconnectInterval"], 120);

    let reused = WsClient::dial(url)
        .await
        .err()
        .expect("ticket is single-use");
    let (status, hs, auth) = handshake_error(reused);
    assert_eq!(status, 514);
    assert_eq!(hs.as_deref(), Some("514"));
    assert_ne!(auth.as_deref(), Some("1000040350"));
    eventually(|| emu.stats().apps[&app.app_id].pings == 1).await;
}

#[tokio::test]
async fn event_is_delivered_and_acked() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    let sent = emu
        .send_message(UserMessage {
            chat_type: Some("group".into()),
            text: Some("hello".into()),
            mentions_bot: true,
            sender_name: Some("Alice".into()),
            ..Default::default()
        })
        .unwrap();
    let (frame, env, fragments) = ws.next_event().await;
    assert_eq!(fragments, 1);
    assert_eq!(frame.header("type"), Some("event"));
    assert_eq!(frame.header("sum"), Some("1"));
    assert_eq!(frame.header("seq"), Some("0"));
    assert!(frame.header("message_id").is_some() && frame.header("trace_id").is_some());
    assert!(frame.header("timestamp").is_some());
    assert_eq!(env["schema"], "2.0");
    assert_eq!(env["header"]["event_type"], "im.message.receive_v1");
    assert_eq!(env["header"]["event_id"], sent.event_id.as_str());
    assert_eq!(env["header"]["app_id"], app.app_id.as_str());
    let msg = &env["event"]["message"];
    assert_eq!(msg["message_id"], sent.message_id.as_str());
    assert_eq!(msg["chat_id"], sent.chat_id.as_str());
    assert_eq!(msg["chat_type"], "group");
    assert_eq!(msg["message_type"], "text");
    let content: Value = serde_json::from_str(msg["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"], "@_user_1 hello");
    assert_eq!(msg["mentions"][0]["key"], "@_user_1");
    assert_eq!(
        msg["mentions"][0]["id"]["open_id"],
        app.bot_open_id.as_str()
    );
    assert_eq!(
        env["event"]["sender"]["sender_id"]["open_id"],
        sent.sender_open_id.as_str()
    );
    assert_eq!(env["event"]["sender"]["sender_type"], "user");

    ws.ack(&frame, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    let s = &emu.stats().apps[&app.app_id];
    assert_eq!(s.ack_codes.get("200"), Some(&1));
    assert_eq!(s.events_delivered, 1);
    assert_eq!(s.ack_latency.count, 1);
    assert_eq!(s.connections, 1);
    let view = emu.chat_messages(&sent.chat_id).unwrap();
    assert_eq!(view[0].text, "@Emulator Bot hello");
    assert_eq!(view[0].sender, sent.sender_open_id);
}

#[tokio::test]
async fn mention_all_omits_the_mentions_array() {
    let emu = start(|_| {}).await;
    let mut ws = WsClient::connect(&emu, &emu.default_app()).await;
    emu.send_message(UserMessage {
        chat_type: Some("group".into()),
        text: Some("hi all".into()),
        mention_all: true,
        ..Default::default()
    })
    .unwrap();
    let (_, env, _) = ws.next_event().await;
    let content: Value =
        serde_json::from_str(env["event"]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"], "@_all hi all");
    assert!(env["event"]["message"].get("mentions").is_none());
}

#[tokio::test]
async fn large_events_are_fragmented() {
    let emu = start(|c| c.max_fragment_bytes = Some(200)).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    let text = "x".repeat(1000);
    let sent = user_says(&emu, &text);
    let (frame, env, fragments) = ws.next_event().await;
    assert!(fragments >= 5, "{fragments} fragments");
    assert_eq!(frame.header("sum"), Some(fragments.to_string().as_str()));
    assert_eq!(env["header"]["event_id"], sent.event_id.as_str());
    let content: Value =
        serde_json::from_str(env["event"]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"], text.as_str());
    ws.ack(&frame, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    assert_eq!(emu.stats().apps[&app.app_id].events_fragmented, 1);
}

#[tokio::test]
async fn unacked_and_failed_events_are_redelivered_with_the_same_event_id() {
    let emu = start(|c| c.redelivery_after = Duration::from_millis(150)).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    let sent = user_says(&emu, "again?");
    let (first, env1, _) = ws.next_event().await; // not acked
    let (second, env2, _) = ws.next_event().await;
    assert_eq!(env1["header"]["event_id"], sent.event_id.as_str());
    assert_eq!(env2["header"]["event_id"], sent.event_id.as_str());
    assert_ne!(first.header("message_id"), second.header("message_id"));
    ws.ack(&second, 500, None).await; // handler failed: redelivered too
    let (third, env3, _) = ws.next_event().await;
    assert_eq!(env3["header"]["event_id"], sent.event_id.as_str());
    ws.ack(&third, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    let s = &emu.stats().apps[&app.app_id];
    assert_eq!(s.events_redelivered, 2);
    assert_eq!(s.ack_codes.get("500"), Some(&1));
}

#[tokio::test]
async fn cluster_mode_gives_each_event_to_exactly_one_connection() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let mut a = WsClient::connect(&emu, &app).await;
    let mut b = WsClient::connect(&emu, &app).await;
    eventually(|| emu.stats().apps[&app.app_id].connections == 2).await;
    let sent: HashSet<String> = (0..30)
        .map(|i| user_says(&emu, &format!("m{i}")).event_id)
        .collect();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    while got_a.len() + got_b.len() < sent.len() {
        tokio::select! {
            (f, env, _) = a.next_event() => { a.ack(&f, 200, None).await; got_a.push(env["header"]["event_id"].as_str().unwrap().to_string()); }
            (f, env, _) = b.next_event() => { b.ack(&f, 200, None).await; got_b.push(env["header"]["event_id"].as_str().unwrap().to_string()); }
        }
    }
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 30).await;
    let all: Vec<&String> = got_a.iter().chain(&got_b).collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 30, "no event delivered twice");
    assert_eq!(unique.len(), 30);
    assert!(unique.iter().all(|e| sent.contains(*e)));
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "spread over both: {} / {}",
        got_a.len(),
        got_b.len()
    );
    assert_eq!(emu.stats().apps[&app.app_id].events_delivered, 30);
}

#[tokio::test]
async fn fifty_first_connection_is_refused_at_discovery() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(WsClient::connect(&emu, &app).await);
    }
    eventually(|| emu.stats().apps[&app.app_id].connections == 50).await;
    let d = discover(&emu.base_url(), &app).await;
    assert_eq!(d["code"], 1000040350, "{d}");
}

#[tokio::test]
async fn connection_limit_at_handshake_is_514_with_autherrcode() {
    let emu = start(|c| c.max_connections_per_app = 2).await;
    let app = emu.default_app();
    let base = emu.base_url();
    let mut urls = Vec::new();
    for _ in 0..3 {
        urls.push(
            discover(&base, &app).await["data"]["URL"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let _a = WsClient::dial(&urls[0]).await.unwrap();
    let _b = WsClient::dial(&urls[1]).await.unwrap();
    let (status, hs, auth) = handshake_error(WsClient::dial(&urls[2]).await.err().unwrap());
    assert_eq!(
        (status, hs.as_deref(), auth.as_deref()),
        (514, Some("514"), Some("1000040350"))
    );
}

#[tokio::test]
async fn handshake_and_discovery_faults() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    emu.inject(Fault::RefuseHandshakes {
        count: 1,
        status: 403,
        autherrcode: None,
        msg: Some("banned".into()),
    })
    .unwrap();
    let d = discover(&emu.base_url(), &app).await;
    let (status, hs, _) = handshake_error(
        WsClient::dial(d["data"]["URL"].as_str().unwrap())
            .await
            .err()
            .unwrap(),
    );
    assert_eq!((status, hs.as_deref()), (403, Some("403")));
    let _ok = WsClient::connect(&emu, &app).await; // only one refusal

    emu.inject(Fault::DiscoveryCode {
        count: 2,
        code: 1,
        msg: None,
    })
    .unwrap();
    assert_eq!(discover(&emu.base_url(), &app).await["code"], 1);
    assert_eq!(discover(&emu.base_url(), &app).await["code"], 1);
    assert_eq!(discover(&emu.base_url(), &app).await["code"], 0);
    let wrong = post_json(
        &emu.base_url(),
        "/callback/ws/endpoint",
        &serde_json::json!({"AppID": app.app_id, "AppSecret": "bad"}),
    )
    .await;
    assert_eq!(wrong.body["code"], 10014);
}

#[tokio::test]
async fn dropped_connections_get_backlogged_events_after_reconnect() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    emu.inject(Fault::DropConnections { app_id: None }).unwrap();
    assert!(ws.next_frame().await.is_none(), "the socket is closed");
    let sent = user_says(&emu, "while offline");
    let mut again = WsClient::connect(&emu, &app).await;
    let (f, env, _) = again.next_event().await;
    assert_eq!(env["header"]["event_id"], sent.event_id.as_str());
    again.ack(&f, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
}

#[tokio::test]
async fn duplicate_and_dropped_ack_faults() {
    let emu = start(|c| c.redelivery_after = Duration::from_millis(150)).await;
    let app = emu.default_app();
    let mut ws = WsClient::connect(&emu, &app).await;
    emu.inject(Fault::DuplicateEvents { count: 1 }).unwrap();
    let sent = user_says(&emu, "twice");
    let (f1, e1, _) = ws.next_event().await;
    let (f2, e2, _) = ws.next_event().await;
    assert_eq!(e1["header"]["event_id"], sent.event_id.as_str());
    assert_eq!(e2["header"]["event_id"], sent.event_id.as_str());
    ws.ack(&f1, 200, None).await;
    ws.ack(&f2, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 2).await;
    assert_eq!(emu.stats().apps[&app.app_id].events_duplicated, 1);

    emu.inject(Fault::DropAcks { count: 1 }).unwrap();
    let sent = user_says(&emu, "lost ack");
    let (f, _, _) = ws.next_event().await;
    ws.ack(&f, 200, None).await; // dropped by the fault
    let (f, env, _) = ws.next_event().await;
    assert_eq!(env["header"]["event_id"], sent.event_id.as_str());
    ws.ack(&f, 200, None).await;
    eventually(|| emu.stats().apps[&app.app_id].events_acked == 3).await;
    assert_eq!(emu.stats().apps[&app.app_id].events_redelivered, 1);
}
