//! A crash in the middle of a turn, then a restart on the same store: the
//! message is answered exactly once. The gateway runs on its own tokio
//! runtime, which is dropped to simulate the crash (its tasks stop at their
//! next await, no cleanup runs); the emulator keeps running on another.

mod e2e;

use lark_emulator::{Emulator, EmulatorConfig};
use larkgate::gateway::{self, RunOptions};
use tokio_util::sync::CancellationToken;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn kill_during_a_turn_then_restart_gives_exactly_one_reply() {
    let emu_rt = runtime();
    let emu = emu_rt
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator");
    let app = emu.default_app();
    let dir = tempfile::tempdir().unwrap();
    let mut acct = e2e::account(&emu, &app, "default");
    acct.typing_indicator = true;
    let config = e2e::config(dir.path(), vec![acct]);

    // First life: the turn starts (typing reaction visible), then the process dies.
    let gw_rt = runtime();
    let sent = gw_rt.block_on(async {
        let gw = gateway::start(
            config.clone(),
            RunOptions::default(),
            CancellationToken::new(),
        )
        .await
        .expect("start");
        gw.wait_ready().await;
        let sent = emu
            .send_message(lark_emulator::UserMessage {
                sender_open_id: Some("ou_a".into()),
                text: Some("echo-slow 3".into()),
                ..Default::default()
            })
            .unwrap();
        e2e::wait_until(&emu, &sent.chat_id, |ms| {
            ms.iter()
                .any(|m| m.message_id == sent.message_id && !m.reactions.is_empty())
        })
        .await;
        std::mem::forget(gw); // a crash runs no destructor logic of ours
        sent
    });
    gw_rt.shutdown_background();
    assert!(
        emu.chat_messages(&sent.chat_id)
            .unwrap()
            .iter()
            .all(|m| m.sender != "bot"),
        "no reply before the crash"
    );

    // Second life on the same store: the unfinished row is replayed.
    let gw_rt = runtime();
    gw_rt.block_on(async {
        let shutdown = CancellationToken::new();
        let gw = gateway::start(config.clone(), RunOptions::default(), shutdown.clone())
            .await
            .expect("restart");
        gw.wait_ready().await;
        e2e::wait_until(&emu, &sent.chat_id, |ms| {
            e2e::replied_to(ms, &sent.message_id) >= 1
        })
        .await;
        // A later message proves the replay is over; still exactly one reply.
        let barrier = emu
            .send_message(lark_emulator::UserMessage {
                sender_open_id: Some("ou_a".into()),
                text: Some("barrier".into()),
                ..Default::default()
            })
            .unwrap();
        e2e::wait_until(&emu, &barrier.chat_id, |ms| {
            e2e::replied_to(ms, &barrier.message_id) >= 1
        })
        .await;
        let replies: Vec<_> = emu
            .chat_messages(&sent.chat_id)
            .unwrap()
            .into_iter()
            .filter(|m| m.sender == "bot" && m.reply_to.as_deref() == Some(&sent.message_id))
            .collect();
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert!(
            !replies[0].text.is_empty() && !replies[0].text.contains('⚠'),
            "a complete answer: {}",
            replies[0].text
        );
        gw.stop().await;
    });
}
