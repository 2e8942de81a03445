//! The long connection against the scripted fake over real loopback
//! sockets: discovery, pings, pong config, fragments, acks, card frames,
//! watchdog, reconnects and failure classes.

mod support;

use std::time::Duration;

use base64::Engine;
use lark_client::{Client, Delivery, Source, WsClient, WsOptions, WsState};
use lark_wire::frame::FrameType;
use serde_json::{json, Value};
use support::{event_frame, eventually, guard, Fake, PongMode, Reply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DISCOVERY: &str = "/callback/ws/endpoint";

fn client(fake: &Fake) -> Client {
    Client::builder("cli_test", "secret")
        .domain(fake.domain())
        .no_proxy(Some(String::new()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn fast() -> WsOptions {
    WsOptions {
        reconnect_interval_override: Some(Duration::from_millis(50)),
        max_nonce_override: Some(Duration::ZERO),
        ..WsOptions::default()
    }
}

struct Running {
    rx: mpsc::Receiver<Delivery>,
    health: lark_client::HealthHandle,
    stop: CancellationToken,
}

fn start(fake: &Fake, opts: WsOptions) -> Running {
    let stop = CancellationToken::new();
    let (rx, health) = WsClient::new(client(fake), opts).start(stop.clone());
    Running { rx, health, stop }
}

async fn connected(run: &Running, fake: &Fake, connections: usize) {
    guard(run.health.wait_for(|h| h.state == WsState::Connected))
        .await
        .expect("connected");
    eventually("server side connection", || {
        fake.ws_connections() >= connections
    })
    .await;
}

async fn next(run: &mut Running) -> Delivery {
    guard(run.rx.recv()).await.expect("a delivery")
}

fn ack_json(seen: &support::Seen) -> Value {
    serde_json::from_slice(seen.frame.payload.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_ping_and_pong_config() {
    let fake = Fake::start().await;
    fake.set_pong(PongMode::Reply(Some(
        br#"{"PingInterval":1,"ReconnectCount":-1,"ReconnectInterval":1,"ReconnectNonce":0}"#
            .to_vec(),
    )));
    let mut run = start(&fake, fast());
    connected(&run, &fake, 1).await;

    let disc = fake.requests_to("POST", DISCOVERY);
    assert_eq!(disc.len(), 1);
    assert_eq!(disc[0].header("locale"), Some("zh"));
    assert_eq!(
        disc[0].json(),
        json!({"AppID": "cli_test", "AppSecret": "secret"})
    );

    eventually("first ping", || !fake.pings().is_empty()).await;
    let ping = &fake.pings()[0].frame;
    assert_eq!(ping.service, 77, "service_id from the endpoint URL");
    assert_eq!((ping.seq_id, ping.log_id, ping.method), (0, 0, 0));

    // The pong's config replaces the discovery timers (120 s) ...
    let h = guard(run.health.wait_for(|h| h.config.ping_interval == 1))
        .await
        .unwrap();
    assert_eq!(h.ping_interval, Duration::from_secs(1));
    // ... and the next ping follows the new interval.
    eventually("second ping", || fake.pings().len() >= 2).await;

    run.stop.cancel();
    guard(run.health.wait_for(|h| h.state == WsState::Stopped))
        .await
        .unwrap();
    assert!(guard(run.rx.recv()).await.is_none());
}

#[tokio::test]
async fn fragmented_event_is_delivered_once_and_acked_with_echoed_headers() {
    let fake = Fake::start().await;
    let mut run = start(&fake, fast());
    connected(&run, &fake, 1).await;

    let event = br#"{"schema":"2.0","header":{"event_id":"ev1","event_type":"im.message.receive_v1"},"event":{}}"#;
    let (a, b) = event.split_at(30);
    fake.push(event_frame(11, "event", "m1", 2, 1, b));
    fake.push(event_frame(12, "event", "m1", 2, 0, a));
    let d = next(&mut run).await;
    assert_eq!(d.payload, event);
    assert_eq!(d.source, Source::Ws);
    assert!(!d.card);
    d.ack.ack(None);

    eventually("the ack", || fake.acks().len() == 1).await;
    let seen = &fake.acks()[0];
    let ack = &seen.frame;
    // The completing frame is echoed: ids, service, method, headers.
    assert_eq!((ack.seq_id, ack.log_id, ack.service), (12, 1012, 77));
    assert_eq!(ack.log_id_new.as_deref(), Some("lognew-12"));
    assert_eq!(ack.frame_type(), FrameType::Event);
    for (k, v) in [
        ("message_id", "m1"),
        ("sum", "2"),
        ("seq", "0"),
        ("trace_id", "trace-m1"),
        ("instance_id", "inst-9"),
    ] {
        assert_eq!(ack.header(k), Some(v), "{k}");
    }
    let biz_rt: u64 = ack.header("biz_rt").unwrap().parse().unwrap();
    assert!(biz_rt < 60_000);
    assert_eq!(ack_json(seen), json!({"code": 200}));

    // The next delivery is the next event: m1 was not delivered twice.
    fake.push(event_frame(13, "event", "m2", 1, 0, b"{\"n\":2}"));
    let d = next(&mut run).await;
    assert_eq!(d.payload, b"{\"n\":2}");
    d.ack.fail();
    eventually("the failure ack", || fake.acks().len() == 2).await;
    assert_eq!(ack_json(&fake.acks()[1]), json!({"code": 500}));

    // Dropping the handle also answers 500.
    fake.push(event_frame(14, "event", "m3", 1, 0, b"{}"));
    drop(next(&mut run).await);
    eventually("the drop ack", || fake.acks().len() == 3).await;
    assert_eq!(ack_json(&fake.acks()[2]), json!({"code": 500}));
    assert_eq!(run.health.snapshot().deliveries, 3);
}

#[tokio::test]
async fn card_frames_are_delivered_and_acked_with_base64_data() {
    let fake = Fake::start().await;
    let mut run = start(&fake, fast());
    connected(&run, &fake, 1).await;
    fake.push(event_frame(
        5,
        "card",
        "c1",
        1,
        0,
        br#"{"action":{"value":{}}}"#,
    ));
    let d = next(&mut run).await;
    assert!(d.card);
    let response = br#"{"toast":{"type":"success","content":"ok"}}"#;
    d.ack.ack(Some(response.to_vec()));
    eventually("the ack", || fake.acks().len() == 1).await;
    let v = ack_json(&fake.acks()[0]);
    assert_eq!(v["code"], 200);
    let data = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, response);
}

#[tokio::test]
async fn an_ack_for_a_dead_socket_is_dropped() {
    let fake = Fake::start().await;
    let mut run = start(&fake, fast());
    connected(&run, &fake, 1).await;
    fake.push(event_frame(1, "event", "old", 1, 0, b"{}"));
    let old = next(&mut run).await;
    fake.close_newest();
    guard(
        run.health
            .wait_for(|h| h.reconnects == 1 && h.state == WsState::Connected),
    )
    .await
    .unwrap();
    eventually("second connection", || fake.ws_connections() == 2).await;
    old.ack.ack(None);
    fake.push(event_frame(2, "event", "new", 1, 0, b"{}"));
    next(&mut run).await.ack.ack(None);
    eventually("the new ack", || !fake.acks().is_empty()).await;
    let acks = fake.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].conn, 1);
    assert_eq!(acks[0].frame.header("message_id"), Some("new"));
}

#[tokio::test]
async fn a_full_queue_refuses_events_for_redelivery() {
    let fake = Fake::start().await;
    let mut run = start(&fake, WsOptions { queue: 1, ..fast() });
    connected(&run, &fake, 1).await;
    fake.push(event_frame(1, "event", "first", 1, 0, b"{}"));
    fake.push(event_frame(2, "event", "second", 1, 0, b"{}"));
    eventually("refusal", || fake.acks().len() == 1).await;
    let refused = &fake.acks()[0];
    assert_eq!(refused.frame.header("message_id"), Some("second"));
    assert_eq!(ack_json(refused), json!({"code": 500}));
    let d = next(&mut run).await;
    d.ack.ack(None);
}

#[tokio::test]
async fn a_burst_waits_for_a_consumer_that_keeps_up() {
    let fake = Fake::start().await;
    let mut run = start(&fake, WsOptions { queue: 1, ..fast() });
    connected(&run, &fake, 1).await;
    for i in 0..5u64 {
        fake.push(event_frame(i + 1, "event", &format!("e{i}"), 1, 0, b"{}"));
    }
    for _ in 0..5 {
        next(&mut run).await.ack.ack(None);
    }
    eventually("five acks", || fake.acks().len() == 5).await;
    assert!(fake
        .acks()
        .iter()
        .all(|a| ack_json(a) == json!({"code": 200})));
}

#[tokio::test]
async fn watchdog_reconnects_when_the_server_goes_silent() {
    let fake = Fake::start().await;
    fake.set_pong(PongMode::Silent);
    let run = start(
        &fake,
        WsOptions {
            ping_interval_override: Some(Duration::from_millis(200)),
            ..fast()
        },
    );
    let h = guard(run.health.wait_for(|h| h.reconnects >= 1))
        .await
        .unwrap();
    assert!(
        h.last_error.as_deref().unwrap().contains("no frame"),
        "{h:?}"
    );
    eventually("a new connection", || fake.ws_connections() >= 2).await;
    assert!(
        fake.requests_to("POST", DISCOVERY).len() >= 2,
        "fresh discovery"
    );
}

#[tokio::test]
async fn reconnects_after_close_and_resets_the_attempt_counter() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        DISCOVERY,
        vec![
            Reply::code(200, 1, "system busy"),
            Reply::code(200, 1, "system busy"),
            fake.endpoint_reply(
                json!({"PingInterval": 120, "ReconnectInterval": 120, "ReconnectNonce": 30}),
            ),
        ],
    );
    let run = start(&fake, fast());
    connected(&run, &fake, 1).await;
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 3);
    // Two failed attempts, then a healthy session (the pong) resets the counter.
    let h = guard(run.health.wait_for(|h| h.last_frame_at.is_some()))
        .await
        .unwrap();
    assert_eq!(h.failed_attempts, 0);
    assert!(h
        .last_error
        .as_deref()
        .unwrap()
        .contains("discovery code 1"));
    assert_eq!(h.reconnects, 0);

    fake.close_newest();
    let h = guard(
        run.health
            .wait_for(|h| h.reconnects == 1 && h.state == WsState::Connected),
    )
    .await
    .unwrap();
    assert!(h.last_error.as_deref().unwrap().contains("closed"), "{h:?}");
    eventually("second connection", || fake.ws_connections() == 2).await;
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 4);
}

#[tokio::test]
async fn fatal_discovery_code_stops_with_failed_health() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        DISCOVERY,
        vec![Reply::code(200, 10003, "invalid app_id or app_secret")],
    );
    let mut run = start(&fake, fast());
    let h = guard(run.health.wait_for(|h| h.state == WsState::Failed))
        .await
        .unwrap();
    assert!(h.last_error.as_deref().unwrap().contains("10003"), "{h:?}");
    assert!(guard(run.rx.recv()).await.is_none(), "deliveries closed");
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 1, "not retried");
    assert_eq!(fake.ws_connections(), 0);
}

#[tokio::test]
async fn handshake_connection_limit_is_backed_off_not_fatal() {
    let fake = Fake::start().await;
    fake.fail_handshakes(vec![Reply::bytes(b"", "text/plain")
        .status(400)
        .header("Handshake-Status", "514")
        .header("Handshake-Msg", "exceed connection limit")
        .header("Handshake-Autherrcode", "1000040350")]);
    let run = start(&fake, fast());
    let h = guard(run.health.wait_for(|h| h.state == WsState::Connected))
        .await
        .unwrap();
    let err = h.last_error.unwrap();
    assert!(err.contains("1000040350"), "{err}");
    assert!(err.contains("too many connections"), "{err}");
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 2);
}

#[tokio::test]
async fn handshake_forbidden_is_fatal() {
    let fake = Fake::start().await;
    fake.fail_handshakes(vec![Reply::bytes(b"", "text/plain")
        .status(403)
        .header("Handshake-Status", "403")
        .header("Handshake-Msg", "forbidden")]);
    let run = start(&fake, fast());
    let h = guard(run.health.wait_for(|h| h.state == WsState::Failed))
        .await
        .unwrap();
    assert!(h.last_error.unwrap().contains("403"));
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 1);
}

#[tokio::test]
async fn discovery_is_counted_in_stats() {
    let fake = Fake::start().await;
    let stop = CancellationToken::new();
    let c = client(&fake);
    let (_rx, health) = WsClient::new(c.clone(), fast()).start(stop.clone());
    guard(health.wait_for(|h| h.state == WsState::Connected))
        .await
        .unwrap();
    let stats = c.stats();
    let disc = stats
        .iter()
        .find(|s| s.endpoint == "POST /callback/ws/endpoint")
        .unwrap();
    assert_eq!(disc.calls, 1);
    stop.cancel();
}

#[tokio::test]
async fn probe_discovery_asks_for_an_endpoint_without_connecting() {
    let fake = Fake::start().await;
    let c = client(&fake);
    guard(lark_client::ws::probe_discovery(&c)).await.unwrap();
    assert_eq!(fake.requests_to("POST", DISCOVERY).len(), 1);
    assert_eq!(fake.ws_connections(), 0, "no WebSocket was opened");
    fake.on(
        "POST",
        DISCOVERY,
        vec![Reply::code(200, 10003, "invalid app_id or app_secret")],
    );
    let err = guard(lark_client::ws::probe_discovery(&c))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(10003));
    let disc = c
        .stats()
        .into_iter()
        .find(|s| s.endpoint == "POST /callback/ws/endpoint")
        .unwrap();
    assert_eq!(disc.calls, 2);
}
