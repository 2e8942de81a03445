//! lark-client against lark-emulator (the in-repo platform), over real
//! sockets: the long connection delivers and acks, REST round-trips show up
//! in the chat as a user sees it, CardKit streaming renders, tokens recover
//! after the platform invalidates them, injected 5xx are retried, and the
//! app registration flow completes.

use std::time::Duration;

use lark_client::registration;
use lark_client::{Client, Domain, OutgoingMessage, ReceiveIdType, WsClient, WsOptions};
use lark_emulator::{ApproveRegistration, Emulator, EmulatorConfig, Fault, UserMessage};
use lark_wire::Envelope;
use tokio_util::sync::CancellationToken;

const GUARD: Duration = Duration::from_secs(20);

async fn setup(cfg: EmulatorConfig) -> (Emulator, Client) {
    let emu = Emulator::start(cfg).await.expect("emulator");
    let app = emu.default_app();
    let client = Client::builder(&app.app_id, &app.app_secret)
        .domain(Domain::parse(&emu.base_url()).unwrap())
        .retry_backoff(Duration::from_millis(10))
        .build()
        .unwrap();
    (emu, client)
}

#[tokio::test]
async fn long_connection_delivers_fragmented_events_and_acks_them() {
    let (emu, client) = setup(EmulatorConfig {
        max_fragment_bytes: Some(100),
        ..EmulatorConfig::default()
    })
    .await;
    let stop = CancellationToken::new();
    let (mut rx, health) = WsClient::new(client.clone(), WsOptions::default()).start(stop.clone());
    tokio::time::timeout(
        GUARD,
        health.wait_for(|h| h.state == lark_client::WsState::Connected),
    )
    .await
    .unwrap();
    let sent = emu
        .send_message(UserMessage {
            text: Some(
                "a message long enough to be split into several frames by the emulator".into(),
            ),
            ..Default::default()
        })
        .unwrap();
    let d = tokio::time::timeout(GUARD, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let env = Envelope::parse(&d.payload).unwrap();
    assert_eq!(env.header.event_id, sent.event_id);
    assert_eq!(
        env.message_receive().unwrap().message.message_id,
        sent.message_id
    );
    d.ack.ack(None);
    let app = emu.default_app().app_id;
    for _ in 0..500 {
        let s = emu.stats();
        if s.apps[&app].events_acked == 1 {
            assert!(s.apps[&app].events_fragmented >= 1);
            stop.cancel();
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the emulator never saw the ack: {:?}", emu.stats());
}

#[tokio::test]
async fn rest_round_trip_as_a_user_sees_it() {
    let (emu, client) = setup(EmulatorConfig::default()).await;
    let user = emu
        .send_message(UserMessage {
            sender_open_id: Some("ou_reader".into()),
            text: Some("hi".into()),
            ..Default::default()
        })
        .unwrap();
    let reply = client
        .reply_message(
            &user.message_id,
            &OutgoingMessage::text("hello back"),
            false,
            Some("uuid-1"),
        )
        .await
        .unwrap();
    // Same uuid: the platform returns the first message, no second one.
    let again = client
        .reply_message(
            &user.message_id,
            &OutgoingMessage::text("hello back"),
            false,
            Some("uuid-1"),
        )
        .await
        .unwrap();
    assert_eq!(reply.message_id, again.message_id);
    let dm = client
        .send_message(
            ReceiveIdType::OpenId,
            "ou_reader",
            &OutgoingMessage::post_markdown("**bold** news"),
            None,
        )
        .await
        .unwrap();
    let chat = emu.chat_messages(&user.chat_id).unwrap();
    let bot: Vec<_> = chat.iter().filter(|m| m.sender == "bot").collect();
    assert_eq!(bot.len(), 2, "{chat:?}");
    assert_eq!(bot[0].reply_to.as_deref(), Some(user.message_id.as_str()));
    assert_eq!(bot[0].text, "hello back");
    assert_eq!(bot[1].message_id, dm.message_id);
    assert!(
        bot[1].text.contains("bold") && bot[1].text.contains("news"),
        "{:?}",
        bot[1]
    );
    let got = client.get_message(&reply.message_id).await.unwrap();
    assert_eq!(got[0].msg_type, "text");
    let reaction = client
        .add_reaction(&user.message_id, "Typing")
        .await
        .unwrap();
    assert_eq!(
        emu.chat_messages(&user.chat_id).unwrap()[0].reactions.len(),
        1
    );
    client
        .delete_reaction(&user.message_id, &reaction)
        .await
        .unwrap();
    assert!(emu.chat_messages(&user.chat_id).unwrap()[0]
        .reactions
        .is_empty());
    let bot_info = client.bot_info().await.unwrap();
    assert_eq!(bot_info.open_id, emu.default_app().bot_open_id);
}

#[tokio::test]
async fn cardkit_streaming_renders_and_closes() {
    let (emu, client) = setup(EmulatorConfig::default()).await;
    let user = emu.send_message(UserMessage::default()).unwrap();
    let id = lark_wire::card::ElementId::stream();
    let card = lark_wire::card::streaming_card("…", &id, &Default::default());
    let card_id = client.create_card(&card.to_string()).await.unwrap();
    client
        .reply_message(
            &user.message_id,
            &OutgoingMessage::card_entity(&card_id),
            false,
            None,
        )
        .await
        .unwrap();
    client
        .stream_card_text(&card_id, id.as_str(), "Hello", 1, None)
        .await
        .unwrap();
    client
        .stream_card_text(&card_id, id.as_str(), "Hello, world", 2, None)
        .await
        .unwrap();
    let stale = client
        .stream_card_text(&card_id, id.as_str(), "old", 2, None)
        .await;
    assert_eq!(
        stale.unwrap_err().code(),
        Some(300317),
        "sequence must increase"
    );
    let view = &emu.chat_messages(&user.chat_id).unwrap()[1];
    assert!(view.streaming);
    assert!(view.text.contains("Hello, world"));
    client
        .card_settings(
            &card_id,
            &lark_wire::card::settings_close("Hello, world"),
            3,
            None,
        )
        .await
        .unwrap();
    assert!(!emu.chat_messages(&user.chat_id).unwrap()[1].streaming);
}

#[tokio::test]
async fn tokens_recover_after_the_platform_invalidates_them_and_5xx_are_retried() {
    let (emu, client) = setup(EmulatorConfig::default()).await;
    client.bot_info().await.unwrap();
    emu.inject(Fault::ExpireTokens).unwrap();
    // The cached token is now invalid: the client refreshes and retries once.
    client.bot_info().await.unwrap();
    emu.inject(Fault::FailCalls {
        endpoint: "GET /open-apis/bot/v3/info".into(),
        count: 2,
        status: 503,
        code: 1500,
        msg: None,
    })
    .unwrap();
    client.bot_info().await.unwrap();
    let calls = client
        .stats()
        .into_iter()
        .find(|e| e.endpoint.contains("bot/v3/info"))
        .unwrap();
    assert_eq!(calls.calls, 6, "1 + (expired, retried) + (503, 503, ok)");
    emu.inject(Fault::FailCalls {
        endpoint: "GET /open-apis/bot/v3/info".into(),
        count: 1,
        status: 400,
        code: 99991672,
        msg: Some("Access denied. One of the following scopes is required".into()),
    })
    .unwrap();
    let err = client.bot_info().await.unwrap_err();
    assert_eq!(
        err.class(),
        lark_client::ErrorClass::Config,
        "not retried: {err}"
    );
}

#[tokio::test]
async fn app_registration_completes_when_the_user_approves() {
    let (emu, client) = setup(EmulatorConfig {
        registration_interval_secs: 1,
        ..EmulatorConfig::default()
    })
    .await;
    let accounts = Domain::parse(&emu.base_url()).unwrap();
    let reg = registration::begin(client.http(), &accounts).await.unwrap();
    assert!(reg.verification_uri_complete.contains(&reg.user_code));
    let approve = {
        let code = reg.user_code.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            emu.approve_registration(ApproveRegistration {
                user_code: Some(code),
                ..Default::default()
            })
            .unwrap();
            emu
        }
    };
    let stop = CancellationToken::new();
    let (approved, emu) = tokio::join!(
        registration::wait_for_approval(client.http(), &accounts, &reg, &stop),
        approve
    );
    let approved = approved.unwrap();
    assert!(approved.client_id.starts_with("cli_"));
    // The new app works against the platform right away.
    let new = Client::builder(&approved.client_id, &approved.client_secret)
        .domain(Domain::parse(&emu.base_url()).unwrap())
        .build()
        .unwrap();
    new.bot_info().await.unwrap();
}
