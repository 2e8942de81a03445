//! The gateway against lark-emulator over real sockets: DMs, every policy,
//! pairing, groups and mentions, topics, commands, dedup.

mod e2e;

use e2e::Harness;
use lark_emulator::{Fault, UserMessage};
use larkgate::config::{DmPolicy, GroupConfig, GroupPolicy, SessionScope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_gets_an_echo_reply() {
    let h = Harness::start(|_| {}).await;
    let sent = h.dm("ou_alice", "hello larkgate");
    let replies = h.replies(&sent).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].text.contains("hello larkgate"),
        "{:?}",
        replies[0]
    );
}

/// Calls the bot's client made to the reaction endpoints: (added, removed).
fn reaction_calls(h: &Harness) -> (u64, u64) {
    let stats = h.gw().accounts()[0].client().stats();
    let calls = |route: &str| {
        stats
            .iter()
            .filter(|e| e.endpoint == route)
            .map(|e| e.calls)
            .sum::<u64>()
    };
    (
        calls("POST /im/v1/messages/:message_id/reactions"),
        calls("DELETE /im/v1/messages/:message_id/reactions/:reaction_id"),
    )
}

/// A reply quicker than `typingDelayMs` shows no typing reaction and spends
/// no API call on one; the turn does not wait for the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_reply_spends_no_typing_reaction() {
    let h = Harness::start(|a| {
        a.typing_indicator = true;
        a.typing_delay_ms = 600_000;
    })
    .await;
    let sent = h.dm("ou_alice", "hello");
    assert_eq!(h.replies(&sent).await.len(), 1);
    let sent = h.dm("ou_alice", "again");
    assert_eq!(h.replies(&sent).await.len(), 1);
    assert_eq!(reaction_calls(&h), (0, 0));
}

/// With no delay the reaction is added at once and removed after the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typing_reaction_is_removed_after_the_reply() {
    let h = Harness::start(|a| {
        a.typing_indicator = true;
        a.typing_delay_ms = 0;
    })
    .await;
    let sent = h.dm("ou_alice", "hello");
    assert_eq!(h.replies(&sent).await.len(), 1);
    e2e::wait_until(&h.emu, &sent.chat_id, |ms| {
        ms.iter()
            .any(|m| m.message_id == sent.message_id && m.reactions.is_empty())
    })
    .await;
    e2e::eventually(|| reaction_calls(&h) == (1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_allowlist_answers_only_listed_senders() {
    let h = Harness::start(|a| {
        a.dm_policy = DmPolicy::Allowlist;
        a.allow_from = vec!["ou_friend".into()];
    })
    .await;
    let stranger = h.dm("ou_stranger", "let me in");
    let friend = h.dm("ou_friend", "hi");
    assert!(h.ignored_before(&stranger, &friend).await);
    let m = h.gw().metrics();
    assert_eq!(m.events_dropped.get(&["default", "not_in_allow_from"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_allowlist_star_means_anyone() {
    let h = Harness::start(|a| {
        a.dm_policy = DmPolicy::Allowlist;
        a.allow_from = vec!["*".into()];
    })
    .await;
    h.replies(&h.dm("ou_anyone", "hi")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_disabled_answers_nobody_but_groups_still_work() {
    let h = Harness::start(|a| {
        a.dm_policy = DmPolicy::Disabled;
        a.allow_from = vec!["*".into()];
    })
    .await;
    let dm = h.dm("ou_alice", "hello?");
    let group = h.group("oc_team", "ou_alice", "ping", true);
    h.replies(&group).await;
    // Dispatch is in arrival order per account, so the DM was decided first.
    assert!(h.bot_messages(&dm.chat_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_issued_approved_then_answered() {
    let h = Harness::start(|a| a.dm_policy = DmPolicy::Pairing).await;
    let first = h.dm("ou_newcomer", "hello bot");
    let reply = &h.replies(&first).await[0];
    let pending = h
        .gw()
        .store()
        .list_pairings(Some("default"), larkgate::gateway::now_ms())
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let code = pending[0].code.clone();
    assert_eq!(pending[0].open_id, "ou_newcomer");
    assert_eq!(code.len(), 8);
    assert!(
        reply.text.contains(&code),
        "the reply shows the code: {}",
        reply.text
    );
    assert!(!code.contains(['0', 'O', '1', 'I']));
    // Not approved yet: asking again repeats the same code, no agent answer.
    let again = h.dm("ou_newcomer", "please?");
    assert!(h.replies(&again).await[0].text.contains(&code));
    let approved = h
        .gw()
        .store()
        .approve_pairing(&code.to_lowercase(), larkgate::gateway::now_ms())
        .await
        .unwrap();
    assert!(approved.is_some());
    let after = h.dm("ou_newcomer", "now do you know me");
    let answer = &h.replies(&after).await[0];
    assert!(
        answer.text.contains("now do you know me"),
        "{}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_three_pairing_requests_wait() {
    let h = Harness::start(|a| a.dm_policy = DmPolicy::Pairing).await;
    for i in 0..3 {
        h.replies(&h.dm(&format!("ou_p{i}"), "hi")).await;
    }
    let fourth = h.dm("ou_p3", "hi");
    let reply = &h.replies(&fourth).await[0];
    assert!(reply.text.contains("Too many"), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_needs_a_mention_by_open_id() {
    let h = Harness::start(|_| {}).await;
    let quiet = h.group("oc_g1", "ou_a", "just chatting", false);
    let asked = h.group("oc_g1", "ou_a", "what time is it", true);
    assert!(h.ignored_before(&quiet, &asked).await);
    // The refused message was recorded once, already final: nothing left to replay.
    let store = h.gw().store().clone();
    let pending = store.unfinished_inbound("default").await.unwrap();
    assert!(
        pending
            .iter()
            .all(|r| r.message_id.as_deref() != Some(&quiet.message_id)),
        "{pending:?}"
    );
    let replies = h.replies(&asked).await;
    assert!(replies[0].text.contains("what time is it"));
    assert!(
        !replies[0].text.contains("@_user"),
        "the bot's mention is stripped: {}",
        replies[0].text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_all_counts_only_when_configured() {
    let h = Harness::start(|_| {}).await;
    let all = h.send(UserMessage {
        chat_type: Some("group".into()),
        chat_id: Some("oc_all".into()),
        sender_open_id: Some("ou_a".into()),
        text: Some("standup now".into()),
        mention_all: true,
        ..Default::default()
    });
    let barrier = h.group("oc_all", "ou_a", "barrier", true);
    assert!(h.ignored_before(&all, &barrier).await);

    let h = Harness::start(|a| a.mention_all = true).await;
    let all = h.send(UserMessage {
        chat_type: Some("group".into()),
        chat_id: Some("oc_all".into()),
        sender_open_id: Some("ou_a".into()),
        text: Some("standup now".into()),
        mention_all: true,
        ..Default::default()
    });
    assert!(h.replies(&all).await[0].text.contains("standup now"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_allowlist_by_group_and_by_sender() {
    let h = Harness::start(|a| {
        a.group_policy = GroupPolicy::Allowlist;
        a.groups.insert("oc_listed".into(), GroupConfig::default());
        a.group_allow_from = vec!["ou_vip".into()];
    })
    .await;
    let unlisted = h.group("oc_other", "ou_a", "hello", true);
    let vip = h.group("oc_other", "ou_vip", "hello", true);
    assert!(h.ignored_before(&unlisted, &vip).await);
    h.replies(&h.group("oc_listed", "ou_a", "hello", true))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_overrides_mention_and_senders() {
    let h = Harness::start(|a| {
        a.groups.insert(
            "oc_quiet".into(),
            GroupConfig {
                require_mention: Some(false),
                allow_from: Some(vec!["ou_boss".into()]),
                ..Default::default()
            },
        );
        a.groups.insert(
            "oc_off".into(),
            GroupConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
    })
    .await;
    let intern = h.group("oc_quiet", "ou_intern", "hi", true);
    let off = h.group("oc_off", "ou_boss", "hi", true);
    let boss = h.group("oc_quiet", "ou_boss", "no mention needed", false);
    assert!(h.ignored_before(&intern, &boss).await);
    assert!(h.bot_messages(&off.chat_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_disabled() {
    let h = Harness::start(|a| a.group_policy = GroupPolicy::Disabled).await;
    let g = h.group("oc_g", "ou_a", "hi", true);
    let dm = h.dm("ou_a", "hi");
    assert!(h.ignored_before(&g, &dm).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_separate_sessions() {
    let h = Harness::start(|a| a.session_scope = SessionScope::Topic).await;
    let topic = |text: &str, parent: Option<&str>| UserMessage {
        chat_type: Some("topic".into()),
        chat_id: Some("oc_topics".into()),
        sender_open_id: Some("ou_a".into()),
        text: Some(text.into()),
        mentions_bot: true,
        parent_id: parent.map(str::to_string),
        ..Default::default()
    };
    let t1 = h.send(topic("first topic", None));
    let t2 = h.send(topic("second topic", None));
    h.replies(&t1).await;
    h.replies(&t2).await;
    // /new in topic 1 resets only topic 1.
    let new1 = h.send(topic("/new", Some(&t1.message_id)));
    assert!(h.replies(&new1).await[0].text.contains("new conversation"));
    let s1 = h.send(topic("/status", Some(&t1.message_id)));
    let s2 = h.send(topic("/status", Some(&t2.message_id)));
    let s1 = h.replies(&s1).await[0].text.clone();
    let s2 = h.replies(&s2).await[0].text.clone();
    assert!(s1.contains("(#1)"), "{s1}");
    assert!(s2.contains("(#0)"), "{s2}");
    assert_ne!(session_of(&s1), session_of(&s2));
    assert!(session_of(&s1).starts_with("oc_topics/"));
}

fn session_of(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_help_and_status_commands() {
    let h = Harness::start(|_| {}).await;
    let help = h.dm("ou_a", "/HELP");
    assert!(h.replies(&help).await[0].text.contains("/stop"));
    let new = h.dm("ou_a", "/new");
    assert!(h.replies(&new).await[0].text.contains("new conversation"));
    let status = h.dm("ou_a", "/status");
    let text = h.replies(&status).await[0].text.clone();
    assert!(
        text.contains("Agent: echo (echo)") && text.contains("(#1)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_interrupts_the_running_turn_at_once() {
    let h = Harness::start(|_| {}).await;
    let slow = h.dm("ou_a", "echo-slow 60");
    // The stop command bypasses the queue; give the slow turn a moment to start.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stop = h.dm("ou_a", "stop");
    let ack = h.replies(&stop).await;
    assert!(ack[0].text.contains("Stopped"), "{}", ack[0].text);
    h.replies(&slow).await;
    let m = h.gw().metrics().clone();
    e2e::eventually(|| m.turns.get(&["default", "echo", "cancelled"]) == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_gives_one_reply() {
    let h = Harness::start(|_| {}).await;
    h.emu.inject(Fault::DuplicateEvents { count: 1 }).unwrap();
    let sent = h.dm("ou_a", "only once please");
    h.replies(&sent).await;
    let barrier = h.dm("ou_a", "barrier");
    h.replies(&barrier).await;
    let replies: Vec<_> = h
        .bot_messages(&sent.chat_id)
        .into_iter()
        .filter(|m| m.reply_to.as_deref() == Some(&sent.message_id))
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(h.gw().metrics().events_deduplicated.get(&["default"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_dms_at_once_are_all_answered_in_order_per_chat() {
    // The emulator keeps the platform's rate limits (per app and per chat).
    let h = Harness::start(|_| {}).await;
    let mut chats: Vec<Vec<lark_emulator::SentMessage>> = vec![Vec::new(); 50];
    for round in 0..4 {
        for (user, sent) in chats.iter_mut().enumerate() {
            sent.push(h.dm(
                &format!("ou_burst{user:04}"),
                &format!("message {round} from user {user}"),
            ));
        }
    }
    for sent in &chats {
        let chat_id = sent[0].chat_id.clone();
        e2e::wait_until(&h.emu, &chat_id, |messages| {
            sent.iter()
                .all(|s| e2e::replied_to(messages, &s.message_id) == 1)
                && messages.iter().all(|m| !m.streaming)
        })
        .await;
        let order: Vec<String> = h
            .bot_messages(&chat_id)
            .into_iter()
            .filter_map(|m| m.reply_to)
            .collect();
        let expected: Vec<String> = sent.iter().map(|s| s.message_id.clone()).collect();
        assert_eq!(order, expected, "replies in {chat_id} out of order");
    }
    let m = h.gw().metrics();
    assert_eq!(m.events_acked.get(&["default"]), 200);
}
