//! The gateway against lark-emulator over real sockets: DMs, policies,
//! pairing, groups and mentions, topics, commands, dedup, crash recovery.

mod e2e;

use e2e::Harness;
use larkgate::config::{DmPolicy, GroupConfig, GroupPolicy, SessionScope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_gets_an_echo_reply() {
    let h = Harness::start(|_| {}).await;
    let sent = h.dm("ou_alice", "hello larkgate");
    let replies = h.replies(&sent).await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].text.contains("hello larkgate"), "{:?}", replies[0]);
}
