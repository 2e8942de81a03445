//! Outbound replies against the in-repo platform emulator over loopback:
//! streaming cards, fallbacks, parts, blocks, media, exactly-once.
//!
//! The agent is a scripted future built here (deltas with small sleeps into
//! the channel, then `Ok`, an error, or waiting for cancellation). What the
//! user sees is read back from the emulator (`chat_messages`), API calls
//! from its statistics and from the client's error counters.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lark_client::{Client, Domain};
use lark_emulator::{ChatMessageView, Emulator, EmulatorConfig, Fault, UserMessage};
use larkgate::agent::{AgentError, AgentErrorKind, AgentEvent, AttachmentKind, OutboundMedia};
use larkgate::config::{AccountConfig, ReplyMode};
use larkgate::outbound::{Outbound, ReplyPlan, ReplyReport};
use larkgate::render::{self, MentionMap, Target};
use larkgate::secret::Secret;
use larkgate::store::{NewInbound, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bound for anything that should finish promptly (a hang guard, not a
/// performance assertion).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

// ---------------------------------------------------------------- harness

struct Harness {
    emu: Emulator,
    client: Client,
    store: Arc<dyn Store>,
    out: Outbound,
    _dir: tempfile::TempDir,
}

fn account() -> AccountConfig {
    let mut account = AccountConfig::new("test", "cli_test", Secret::new("secret"));
    account.stream_interval_ms = 100;
    account
}

async fn harness() -> Harness {
    harness_with(EmulatorConfig::default()).await
}

async fn harness_with(config: EmulatorConfig) -> Harness {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let emu = Emulator::start(config).await.unwrap();
    let app = emu.default_app();
    let client = Client::builder(&app.app_id, &app.app_secret)
        .domain(Domain::parse(&emu.base_url()).unwrap())
        .retry_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = larkgate::store::open(&url).await.unwrap();
    let out = Outbound::new(client.clone(), store.clone(), &account());
    Harness {
        emu,
        client,
        store,
        out,
        _dir: dir,
    }
}

/// A user message to reply to: `(message_id, chat_id)`.
fn user_message(h: &Harness, chat_type: &str) -> (String, String) {
    let sent = h
        .emu
        .send_message(UserMessage {
            chat_type: Some(chat_type.into()),
            text: Some("question".into()),
            mentions_bot: true,
            ..UserMessage::default()
        })
        .unwrap();
    (sent.message_id, sent.chat_id)
}

fn plan(mode: ReplyMode, p2p: bool, reply_to: &str, chat_id: &str, inbound_id: i64) -> ReplyPlan {
    ReplyPlan {
        mode,
        p2p,
        reply_to: reply_to.into(),
        chat_id: chat_id.into(),
        reply_in_thread: false,
        uuid_base: reply_to.into(),
        inbound_id,
        // Replies in these tests may repeat a reply: look in the store.
        first_attempt: false,
        mentions: Vec::new(),
        stop_turn: Some(format!("p:{chat_id}")),
        media_allowlist: Vec::new(),
    }
}

type Agent = BoxFuture<'static, Result<(), AgentError>>;

/// An agent whose run is `script(tx)`.
fn agent<F>(
    script: impl FnOnce(mpsc::Sender<AgentEvent>) -> F,
) -> (mpsc::Receiver<AgentEvent>, Agent)
where
    F: Future<Output = Result<(), AgentError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    (rx, Box::pin(script(tx)))
}

/// Sends `text` in chunks of `chunk` characters, `gap` apart.
async fn stream_text(tx: &mpsc::Sender<AgentEvent>, text: &str, chunk: usize, gap: Duration) {
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(chunk) {
        let _ = tx.send(AgentEvent::Delta(piece.iter().collect())).await;
        tokio::time::sleep(gap).await;
    }
}

/// An agent that streams `text` and returns `end`.
fn streaming_agent(
    text: &str,
    chunk: usize,
    gap_ms: u64,
    end: Result<(), AgentError>,
) -> (mpsc::Receiver<AgentEvent>, Agent) {
    let text = text.to_string();
    agent(move |tx| async move {
        stream_text(&tx, &text, chunk, Duration::from_millis(gap_ms)).await;
        end
    })
}

async fn reply(
    h: &Harness,
    plan: ReplyPlan,
    (rx, run): (mpsc::Receiver<AgentEvent>, Agent),
) -> ReplyReport {
    tokio::time::timeout(HANG_GUARD, h.out.reply(plan, rx, run))
        .await
        .expect("reply hung")
}

fn bot_messages(h: &Harness, chat_id: &str) -> Vec<ChatMessageView> {
    h.emu
        .chat_messages(chat_id)
        .unwrap()
        .into_iter()
        .filter(|m| m.sender == "bot")
        .collect()
}

/// Platform API calls of the default app so far (token fetches excluded).
fn api_calls(h: &Harness) -> BTreeMap<String, u64> {
    let app = h.emu.default_app().app_id;
    h.emu
        .stats()
        .apps
        .get(&app)
        .map(|s| s.api_calls.clone())
        .unwrap_or_default()
}

/// Calls that count against the quota: everything but token fetches.
fn total_calls(h: &Harness) -> u64 {
    api_calls(h)
        .iter()
        .filter(|(route, _)| !route.contains("/auth/v3/"))
        .map(|(_, n)| n)
        .sum()
}

fn calls_to(h: &Harness, route: &str) -> u64 {
    api_calls(h).get(route).copied().unwrap_or(0)
}

/// Error codes the client saw (any endpoint).
fn client_errors(h: &Harness) -> BTreeMap<i64, u64> {
    let mut all = BTreeMap::new();
    for e in h.client.stats() {
        for (code, n) in e.errors {
            *all.entry(code).or_default() += n;
        }
    }
    all
}

const PUSH_ROUTE: &str = "PUT /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content";

/// The throttle's invariant: one push per 100 ms at most (a slower machine
/// only lowers the count).
fn assert_throttled(h: &Harness, elapsed: Duration) {
    let pushes = calls_to(h, PUSH_ROUTE);
    let allowed = elapsed.as_millis() as u64 / larkgate::outbound::MIN_CARD_INTERVAL_MS + 1;
    assert!(pushes <= allowed, "{pushes} pushes in {elapsed:?}");
}

fn card_markdown(text: &str) -> String {
    render::prepare(text, Target::Card, &MentionMap::new())
}

/// Waits until `pred` holds for the chat's bot messages.
async fn wait_until(h: &Harness, chat_id: &str, pred: impl Fn(&[ChatMessageView]) -> bool) {
    let wait = async {
        loop {
            let view = h.emu.chat(chat_id).unwrap();
            let bots: Vec<_> = view
                .messages
                .iter()
                .filter(|m| m.sender == "bot")
                .cloned()
                .collect();
            if pred(&bots) {
                return;
            }
            let _ = h
                .emu
                .wait_chat(chat_id, view.version, Duration::from_secs(2))
                .await;
        }
    };
    tokio::time::timeout(HANG_GUARD, wait)
        .await
        .expect("condition never held");
}

fn paragraphs(n: usize, words: usize) -> String {
    (0..n)
        .map(|i| {
            (0..words)
                .map(|w| format!("p{i}w{w}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The words of a text, without fence lines (a split code block closes and
/// reopens its fence: the documented rendering of a rollover).
fn words(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------- streaming

#[tokio::test]
async fn streamed_reply_ends_as_one_closed_card_with_the_full_text() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let text = "Here is **the plan**:\n\n1. read `main.rs`\n2. fix the bug\n\n```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\nDone.";
    let started = std::time::Instant::now();
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(text, 4, 40, Ok(())),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(report.text, text);
    assert!(report.outcome.is_ok());
    assert_eq!(report.mode_used, "cardkit");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1, "{bots:#?}");
    let card = &bots[0];
    assert_eq!(card.msg_type, "interactive");
    assert!(card.card_id.is_some());
    assert!(!card.streaming, "the card must be closed");
    assert_eq!(card.reply_to.as_deref(), Some(msg.as_str()));
    assert_eq!(card.text, card_markdown(text));
    assert_eq!(report.message_ids, vec![card.message_id.clone()]);
    assert!(report.first_visible_ms.is_some());
    assert!(h.store.open_cards("test").await.unwrap().is_empty());
    assert_throttled(&h, elapsed);
    assert_eq!(
        calls_to(
            &h,
            "POST /open-apis/cardkit/v1/cards/{card_id}/batch_update"
        ),
        1
    );
}

#[tokio::test]
async fn short_streamed_reply_costs_at_most_four_calls() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let before = total_calls(&h);
    let run = agent(|tx| async move {
        let _ = tx.send(AgentEvent::Delta("Hello! ".into())).await;
        tokio::time::sleep(Duration::from_millis(DM_DELAY_MS + 150)).await;
        let _ = tx
            .send(AgentEvent::Delta("How can I help you today?".into()))
            .await;
        Ok(())
    });
    let report = reply(&h, plan(ReplyMode::Streaming, true, &msg, &chat, 1), run).await;
    let calls = total_calls(&h) - before;
    println!(
        "short streamed reply: {calls} API calls {:?}",
        api_calls(&h)
    );
    assert_eq!(report.mode_used, "cardkit");
    assert!(calls <= 4, "{calls} calls: {:?}", api_calls(&h));
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].text, "Hello! How can I help you today?");
    assert!(!bots[0].streaming);
}

const DM_DELAY_MS: u64 = larkgate::outbound::DM_FIRST_FLUSH_MS;

#[tokio::test]
async fn instant_reply_costs_one_call() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let before = total_calls(&h);
    let text = "Sure, **42** is the answer.";
    let run = agent(move |tx| async move {
        let _ = tx.send(AgentEvent::Delta(text.into())).await;
        Ok(())
    });
    let report = reply(&h, plan(ReplyMode::Auto, true, &msg, &chat, 1), run).await;
    let calls = total_calls(&h) - before;
    println!("instant reply: {calls} API call(s) {:?}", api_calls(&h));
    assert_eq!(calls, 1);
    assert_eq!(report.mode_used, "static");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].msg_type, "interactive");
    assert!(bots[0].card_id.is_none());
    assert_eq!(bots[0].text, card_markdown(text));
    assert_eq!(bots[0].reply_to.as_deref(), Some(msg.as_str()));
}

#[tokio::test]
async fn short_group_reply_in_auto_mode_is_one_message() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "group");
    let before = total_calls(&h);
    // Slower than the DM delay: in a 1:1 chat a card would exist by now.
    let emu = &h.emu;
    let chat2 = chat.clone();
    let (tx, rx) = mpsc::channel(64);
    let run = async move {
        let _ = tx.send(AgentEvent::Delta("plain words, ".into())).await;
        tokio::time::sleep(Duration::from_millis(DM_DELAY_MS + 50)).await;
        let bots = emu
            .chat_messages(&chat2)
            .unwrap()
            .into_iter()
            .filter(|m| m.sender == "bot")
            .count();
        assert_eq!(bots, 0, "no card yet in a group");
        let _ = tx.send(AgentEvent::Delta("no markup at all".into())).await;
        Ok(())
    };
    let report = tokio::time::timeout(
        HANG_GUARD,
        h.out.reply(
            plan(ReplyMode::Auto, false, &msg, &chat, 1),
            rx,
            Box::pin(run),
        ),
    )
    .await
    .unwrap();
    assert_eq!(total_calls(&h) - before, 1);
    assert_eq!(report.mode_used, "static");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].msg_type, "text");
    assert_eq!(bots[0].text, "plain words, no markup at all");
}

#[tokio::test]
async fn slow_long_reply_stays_within_the_rate_limits() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let text = paragraphs(40, 12);
    let text = text.chars().take(2_000).collect::<String>();
    assert_eq!(text.chars().count(), 2_000);
    let before = total_calls(&h);
    let started = std::time::Instant::now();
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(&text, 20, 30, Ok(())),
    )
    .await;
    let elapsed = started.elapsed();
    let calls = total_calls(&h) - before;
    println!(
        "2,000-character reply (100 deltas over ~3 s): {calls} API calls {:?}",
        api_calls(&h)
    );
    let errors = client_errors(&h);
    assert!(!errors.contains_key(&230020), "{errors:?}");
    assert!(!errors.contains_key(&99991400), "{errors:?}");
    assert!(!errors.contains_key(&429), "{errors:?}");
    assert_eq!(report.mode_used, "cardkit");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].text, card_markdown(&text));
    assert_throttled(&h, elapsed);
}

#[tokio::test]
async fn cancellation_ends_the_card_with_the_stopped_note() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let run = agent(move |tx| async move {
        for i in 0.. {
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(40)) => {}
            }
            let _ = tx.send(AgentEvent::Delta(format!("word{i} "))).await;
        }
        Err(AgentError::new(AgentErrorKind::Cancelled, "cancelled"))
    });
    let stopper = async {
        wait_until(&h, &chat, |m| m.iter().any(|c| c.text.contains("word8"))).await;
        cancel.cancel();
    };
    let (report, ()) = tokio::join!(
        reply(&h, plan(ReplyMode::Streaming, true, &msg, &chat, 1), run),
        stopper
    );
    let err = report.outcome.clone().unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Cancelled);
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert!(!bots[0].streaming);
    let expected = format!(
        "{}\n\n— _(stopped)_",
        card_markdown(&report.text).trim_end()
    );
    assert_eq!(bots[0].text, expected);
    assert!(
        !bots[0].text.contains("Stop\n"),
        "the Stop button is removed"
    );
}

#[tokio::test]
async fn backend_error_gives_a_visible_interrupted_note() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let run = streaming_agent(
        "The first half of the answer ",
        3,
        50,
        Err(AgentError::new(
            AgentErrorKind::Unavailable,
            "upstream returned HTTP 502",
        )),
    );
    let report = reply(&h, plan(ReplyMode::Streaming, true, &msg, &chat, 1), run).await;
    assert!(report.outcome.is_err());
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert!(!bots[0].streaming);
    assert_eq!(
        bots[0].text,
        "The first half of the answer\n\n— _(interrupted: upstream returned HTTP 502)_"
    );
}

#[tokio::test]
async fn failures_in_static_and_block_modes_are_reported() {
    let h = harness().await;
    for mode in [ReplyMode::Static, ReplyMode::Block] {
        let (msg, chat) = user_message(&h, "p2p");
        let run = streaming_agent(
            "Partial text.",
            4,
            10,
            Err(AgentError::new(
                AgentErrorKind::Timeout,
                "no answer within 300 s",
            )),
        );
        reply(&h, plan(mode, true, &msg, &chat, 1), run).await;
        let texts: Vec<String> = bot_messages(&h, &chat)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(
            texts,
            vec![
                "Partial text.".to_string(),
                "⚠️ The agent failed: no answer within 300 s".into()
            ],
            "{mode:?}"
        );
    }
    // Nothing written: only the failure.
    let (msg, chat) = user_message(&h, "p2p");
    let run = agent(|_tx| async { Err(AgentError::new(AgentErrorKind::Auth, "invalid API key")) });
    reply(&h, plan(ReplyMode::Streaming, true, &msg, &chat, 1), run).await;
    let texts: Vec<String> = bot_messages(&h, &chat)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        vec!["⚠️ The agent failed: invalid API key".to_string()]
    );
}

#[tokio::test]
async fn cancellation_in_block_and_static_modes() {
    let h = harness().await;
    for mode in [ReplyMode::Static, ReplyMode::Block] {
        let (msg, chat) = user_message(&h, "p2p");
        let run = streaming_agent(
            "First block.\n\nSecond",
            5,
            10,
            Err(AgentError::new(AgentErrorKind::Cancelled, "cancelled")),
        );
        reply(&h, plan(mode, true, &msg, &chat, 1), run).await;
        let joined = bot_messages(&h, &chat)
            .into_iter()
            .map(|m| m.text)
            .collect::<Vec<_>>()
            .join("\n\n");
        assert!(joined.starts_with("First block."), "{mode:?}: {joined}");
        assert!(joined.contains("Second"), "{mode:?}: {joined}");
        assert!(joined.ends_with("_(stopped)_"), "{mode:?}: {joined}");
        // Nothing written: nothing sent.
        let (msg, chat) = user_message(&h, "p2p");
        let run =
            agent(|_tx| async { Err(AgentError::new(AgentErrorKind::Cancelled, "cancelled")) });
        reply(&h, plan(mode, true, &msg, &chat, 1), run).await;
        assert!(bot_messages(&h, &chat).is_empty(), "{mode:?}");
    }
}

// ---------------------------------------------------------------- long replies and tables

fn long_reply() -> String {
    // ~40 KB: paragraphs, and a long code block in the middle.
    let mut text = paragraphs(200, 25);
    let code: String = (0..400)
        .map(|i| format!("let v{i} = compute({i});\n"))
        .collect();
    let mid = text.len() / 2;
    let cut = text[..mid].rfind("\n\n").unwrap_or(mid);
    text.insert_str(cut, &format!("\n\n```rust\n{code}```"));
    text
}

#[tokio::test]
async fn long_streamed_reply_rolls_over_into_ordered_cards() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let text = long_reply();
    assert!(text.len() > 40_000, "{}", text.len());
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(&text, 1_500, 20, Ok(())),
    )
    .await;
    let bots = bot_messages(&h, &chat);
    assert!(bots.len() >= 2, "{} cards", bots.len());
    for card in &bots {
        // A part that filled up before its card was opened (a burst of text)
        // goes out as one final message instead of a card.
        assert!(
            matches!(card.msg_type.as_str(), "interactive" | "text"),
            "{}",
            card.msg_type
        );
        assert!(!card.streaming);
        assert_eq!(card.reply_to.as_deref(), Some(msg.as_str()));
    }
    assert_eq!(
        report.message_ids,
        bots.iter()
            .map(|b| b.message_id.clone())
            .collect::<Vec<_>>()
    );
    let joined = bots
        .iter()
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_eq!(words(&joined), words(&text));
    assert!(h.store.open_cards("test").await.unwrap().is_empty());
}

#[tokio::test]
async fn long_static_reply_arrives_as_ordered_parts() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let text = long_reply();
    let first = ReplyPlan {
        first_attempt: true,
        ..plan(ReplyMode::Static, true, &msg, &chat, 1)
    };
    let report = reply(&h, first, streaming_agent(&text, 4_000, 5, Ok(()))).await;
    let bots = bot_messages(&h, &chat);
    assert!(bots.len() >= 2, "{} parts", bots.len());
    assert_eq!(report.message_ids.len(), bots.len());
    let joined = bots
        .iter()
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_eq!(words(&joined), words(&text));
    // Exactly once: the same reply again (a second attempt, which looks up
    // what the first, which did not look, recorded) sends nothing new.
    let again = reply(
        &h,
        plan(ReplyMode::Static, true, &msg, &chat, 1),
        streaming_agent(&text, 4_000, 5, Ok(())),
    )
    .await;
    assert_eq!(bot_messages(&h, &chat).len(), bots.len());
    assert_eq!(again.message_ids, report.message_ids);
}

fn five_tables() -> String {
    (1..=5)
        .map(|t| {
            format!("Table {t}:\n\n| name | value |\n|---|---|\n| a{t} | {t}1 |\n| b{t} | {t}2 |")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test]
async fn five_tables_never_fail_a_card() {
    let h = harness().await;
    let text = five_tables();
    for mode in [ReplyMode::Streaming, ReplyMode::Static] {
        let (msg, chat) = user_message(&h, "p2p");
        reply(
            &h,
            plan(mode, true, &msg, &chat, 1),
            streaming_agent(&text, 30, 30, Ok(())),
        )
        .await;
        let bots = bot_messages(&h, &chat);
        assert_eq!(bots.len(), 1, "{mode:?}");
        let shown = &bots[0].text;
        for t in 1..=5 {
            assert!(
                shown.contains(&format!("a{t}")) && shown.contains(&format!("{t}2")),
                "{mode:?}: {shown}"
            );
        }
        let tables = shown.lines().filter(|l| l.starts_with("|---")).count();
        assert!(tables <= 3, "{mode:?}: {tables} tables");
    }
    let errors = client_errors(&h);
    assert!(!errors.contains_key(&230099), "{errors:?}");
}

// ---------------------------------------------------------------- block mode

#[tokio::test]
async fn block_mode_sends_each_block_as_it_completes() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let chat2 = chat.clone();
    let emu = &h.emu;
    let blocks = [
        "First paragraph.",
        "- item one\n- item two",
        "```sh\nls -l\n```",
        "Last **words**.",
    ];
    let run = {
        let (tx, rx) = mpsc::channel(64);
        let script = async move {
            let _ = tx
                .send(AgentEvent::Delta(format!("{}\n\n", blocks[0])))
                .await;
            // Block streaming: the first block reaches the chat while the
            // agent is still writing (else this waits until the hang guard).
            let seen = async {
                loop {
                    let view = emu.chat(&chat2).unwrap();
                    if view.messages.iter().any(|m| m.sender == "bot") {
                        return;
                    }
                    let _ = emu
                        .wait_chat(&chat2, view.version, Duration::from_secs(2))
                        .await;
                }
            };
            tokio::time::timeout(HANG_GUARD, seen)
                .await
                .expect("first block not sent early");
            let rest = blocks[1..].join("\n\n");
            stream_text(&tx, &rest, 7, Duration::from_millis(10)).await;
            Ok(())
        };
        (
            rx,
            Box::pin(script) as BoxFuture<'_, Result<(), AgentError>>,
        )
    };
    let report = tokio::time::timeout(
        HANG_GUARD,
        h.out
            .reply(plan(ReplyMode::Block, true, &msg, &chat, 1), run.0, run.1),
    )
    .await
    .unwrap();
    assert_eq!(report.mode_used, "block");
    let bots = bot_messages(&h, &chat);
    let texts: Vec<&str> = bots.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[0], "First paragraph.");
    assert_eq!(bots[0].msg_type, "text");
    assert_eq!(texts[1], "- item one\n- item two");
    assert_eq!(texts[2], "```sh\nls -l\n```");
    assert_eq!(texts[3], "Last **words**.");
    assert!(bots[1..].iter().all(|m| m.msg_type == "post"));
    assert!(bots
        .iter()
        .all(|m| m.reply_to.as_deref() == Some(msg.as_str())));
}

// ---------------------------------------------------------------- fallbacks

#[tokio::test]
async fn cardkit_refused_falls_back_to_patch() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    h.emu
        .inject(Fault::FailCalls {
            endpoint: "POST /open-apis/cardkit/v1/cards".into(),
            count: 1,
            status: 400,
            code: 99991672,
            msg: Some(
                "Access denied. One of the following scopes is required: [cardkit:card:write]"
                    .into(),
            ),
        })
        .unwrap();
    let text =
        "A **patched** reply that streams for a while, word by word, so that the card is updated.";
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(text, 6, 150, Ok(())),
    )
    .await;
    assert_eq!(report.mode_used, "patch");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1, "{bots:#?}");
    assert_eq!(bots[0].msg_type, "interactive");
    assert!(bots[0].card_id.is_none(), "not a CardKit entity");
    assert_eq!(bots[0].text, card_markdown(text));
    assert!(calls_to(&h, "PATCH /open-apis/im/v1/messages/{message_id}") >= 1);
    assert!(!client_errors(&h).contains_key(&230020));
}

#[tokio::test]
async fn patch_failing_too_falls_back_to_a_final_message() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    for endpoint in [
        "POST /open-apis/cardkit/v1/cards",
        "PATCH /open-apis/im/v1/messages/{message_id}",
    ] {
        h.emu
            .inject(Fault::FailCalls {
                endpoint: endpoint.into(),
                count: 100,
                status: 400,
                code: 230001,
                msg: Some("refused".into()),
            })
            .unwrap();
    }
    let text = "Every word of this **answer** must still arrive, even when nothing can be updated.";
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(text, 6, 150, Ok(())),
    )
    .await;
    assert_eq!(report.mode_used, "text-fallback");
    let bots = bot_messages(&h, &chat);
    let last = bots.last().expect("a final message");
    assert_eq!(last.text, card_markdown(text));
    assert!(!last.streaming);
    // The card stuck with part of the text was recalled: one answer remains.
    let visible: Vec<_> = bots.iter().filter(|m| !m.recalled).collect();
    assert_eq!(visible.len(), 1, "{bots:#?}");
    assert_eq!(report.message_ids, vec![last.message_id.clone()]);
}

#[tokio::test]
async fn recalled_question_gets_the_answer_in_the_chat() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    h.emu.user_recall(&msg).unwrap();
    let run = agent(|tx| async move {
        let _ = tx.send(AgentEvent::Delta("still answered".into())).await;
        Ok(())
    });
    let report = reply(&h, plan(ReplyMode::Auto, true, &msg, &chat, 1), run).await;
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].text, "still answered");
    assert_eq!(bots[0].reply_to, None);
    assert_eq!(report.message_ids.len(), 1);
}

// ---------------------------------------------------------------- media

/// An agent that writes `text`, then asks for `media`.
fn media_agent(
    text: &str,
    media: Vec<(AttachmentKind, String)>,
) -> (mpsc::Receiver<AgentEvent>, Agent) {
    let text = text.to_string();
    agent(move |tx| async move {
        let _ = tx.send(AgentEvent::Delta(text)).await;
        for (kind, source) in media {
            let media = OutboundMedia {
                kind,
                source,
                name: None,
            };
            let _ = tx.send(AgentEvent::Media(media)).await;
        }
        Ok(())
    })
}

#[tokio::test]
async fn local_image_and_file_are_sent_after_the_text() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("chart.png");
    std::fs::write(&png, PNG).unwrap();
    let pdf = dir.path().join("report.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 tiny").unwrap();
    let media = vec![
        (AttachmentKind::Image, png.to_string_lossy().to_string()),
        (AttachmentKind::File, pdf.to_string_lossy().to_string()),
    ];
    let p = plan(ReplyMode::Auto, true, &msg, &chat, 1);
    let report = reply(
        &h,
        p.clone(),
        media_agent("Here is the chart.", media.clone()),
    )
    .await;
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 3, "{bots:#?}");
    assert_eq!(bots[0].text, "Here is the chart.");
    assert_eq!(bots[1].msg_type, "image");
    assert_eq!(bots[2].msg_type, "file");
    assert_eq!(report.message_ids.len(), 3);
    // Replayed: nothing uploaded or sent again.
    let uploads =
        calls_to(&h, "POST /open-apis/im/v1/images") + calls_to(&h, "POST /open-apis/im/v1/files");
    let again = reply(&h, p, media_agent("Here is the chart.", media)).await;
    assert_eq!(bot_messages(&h, &chat).len(), 3);
    assert_eq!(again.message_ids, report.message_ids);
    assert_eq!(
        calls_to(&h, "POST /open-apis/im/v1/images") + calls_to(&h, "POST /open-apis/im/v1/files"),
        uploads
    );
}

#[tokio::test]
async fn media_urls_must_be_allowlisted() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    // A loopback file server for the allowed URL.
    let app = axum::Router::new().route("/files/pic.png", axum::routing::get(|| async { PNG }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let run = media_agent(
        "Two pictures.",
        vec![
            (AttachmentKind::Image, format!("{base}/files/pic.png")),
            (
                AttachmentKind::Image,
                "https://evil.example/steal.png".into(),
            ),
        ],
    );
    let mut p = plan(ReplyMode::Auto, true, &msg, &chat, 1);
    p.media_allowlist = vec![format!("{base}/files/")];
    reply(&h, p, run).await;
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 2, "{bots:#?}");
    assert!(bots[0].text.starts_with("Two pictures."));
    assert!(
        bots[0]
            .text
            .contains("Not sent: steal.png (URL not in the media allowlist)"),
        "{}",
        bots[0].text
    );
    assert_eq!(bots[1].msg_type, "image");
    assert_eq!(calls_to(&h, "POST /open-apis/im/v1/images"), 1);
}

// ---------------------------------------------------------------- exactly once across crashes

/// Starts a streamed reply and drops it (a crash) once the card shows `marker`.
async fn crash_mid_stream(h: &Harness, plan: ReplyPlan, chat: &str, marker: &str) {
    let run = agent(|tx| async move {
        for i in 0.. {
            let _ = tx.send(AgentEvent::Delta(format!("old{i} "))).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(())
    });
    tokio::select! {
        _ = h.out.reply(plan, run.0, run.1) => panic!("the endless agent finished"),
        () = wait_until(h, chat, |m| m.iter().any(|c| c.streaming && c.text.contains(marker))) => {}
    }
}

#[tokio::test]
async fn replay_after_a_crash_continues_in_the_same_card() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    let p = plan(ReplyMode::Streaming, true, &msg, &chat, 7);
    let first = ReplyPlan {
        first_attempt: true,
        ..p.clone()
    };
    crash_mid_stream(&h, first, &chat, "old5 ").await;
    let open = h.store.open_cards("test").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].inbound_id, 7);
    let first = bot_messages(&h, &chat);
    assert_eq!(first.len(), 1);
    assert!(first[0].streaming);
    // The turn is replayed with a (different) complete answer.
    let answer = "The **complete** second answer, streamed again from the start.";
    let report = reply(&h, p, streaming_agent(answer, 8, 40, Ok(()))).await;
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1, "exactly one card: {bots:#?}");
    assert_eq!(bots[0].message_id, first[0].message_id);
    assert!(!bots[0].streaming);
    assert_eq!(bots[0].text, card_markdown(answer));
    assert_eq!(report.message_ids, vec![first[0].message_id.clone()]);
    assert_eq!(report.mode_used, "cardkit");
    assert!(h.store.open_cards("test").await.unwrap().is_empty());
    assert!(!client_errors(&h).contains_key(&300317));
}

#[tokio::test]
async fn close_orphan_cards_closes_cards_left_open() {
    let h = harness().await;
    // A card whose inbox row is gone (the crash) …
    let (msg, chat) = user_message(&h, "p2p");
    crash_mid_stream(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 42),
        &chat,
        "old3 ",
    )
    .await;
    // … and one whose row is still pending (its replay will continue it).
    let ids = h
        .store
        .insert_inbound(&[NewInbound {
            account: "test".into(),
            event_id: "ev_pending".into(),
            message_id: Some("om_pending".into()),
            event_type: "im.message.receive_v1".into(),
            chat_id: None,
            payload: "{}".into(),
            received_at_ms: 1,
            state: larkgate::store::InboundState::Pending,
        }])
        .await
        .unwrap();
    let pending_id = match ids[0] {
        larkgate::store::InsertOutcome::Inserted(id) => id,
        other => panic!("{other:?}"),
    };
    let (msg2, chat2) = user_message(&h, "p2p");
    crash_mid_stream(
        &h,
        plan(ReplyMode::Streaming, true, &msg2, &chat2, pending_id),
        &chat2,
        "old3 ",
    )
    .await;
    assert_eq!(h.store.open_cards("test").await.unwrap().len(), 2);

    h.out.close_orphan_cards().await;

    let closed = bot_messages(&h, &chat);
    assert_eq!(closed.len(), 1);
    assert!(!closed[0].streaming);
    assert!(
        closed[0].text.starts_with("old0 old1 old2 old3"),
        "{}",
        closed[0].text
    );
    assert!(
        closed[0].text.ends_with("— _(interrupted)_"),
        "{}",
        closed[0].text
    );
    assert!(!closed[0].text.contains("Stop"), "{}", closed[0].text);
    let open = h.store.open_cards("test").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].inbound_id, pending_id);
    assert!(bot_messages(&h, &chat2)[0].streaming);
}

#[tokio::test]
async fn notice_is_sent_once_per_uuid() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    h.out
        .notice(&msg, "Your pairing code is ABCD2345.", "notice-1")
        .await
        .unwrap();
    h.out
        .notice(&msg, "Your pairing code is ABCD2345.", "notice-1")
        .await
        .unwrap();
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].msg_type, "text");
    assert_eq!(bots[0].text, "Your pairing code is ABCD2345.");
    assert_eq!(bots[0].reply_to.as_deref(), Some(msg.as_str()));
    h.out
        .notice(&msg, "**Commands**\n\n- `/new`\n- `/stop`", "notice-2")
        .await
        .unwrap();
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 2);
    assert_eq!(bots[1].msg_type, "post");
}

#[test]
fn the_reply_future_is_send() {
    fn is_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = harness().await;
        let (rx, run) = agent(|_tx| async { Ok(()) });
        let fut = h
            .out
            .reply(plan(ReplyMode::Auto, true, "om_x", "oc_x", 1), rx, run);
        is_send(&fut);
    });
}

#[tokio::test]
async fn refused_tables_are_sent_again_as_code() {
    let h = harness().await;
    let (msg, chat) = user_message(&h, "p2p");
    h.emu
        .inject(Fault::FailCalls {
            endpoint: "POST /open-apis/im/v1/messages/{message_id}/reply".into(),
            count: 1,
            status: 400,
            code: 230099,
            msg: Some("Failed to create card content, ext=ErrCode: 11310; ErrMsg: element exceeds the limit".into()),
        })
        .unwrap();
    let text = "| k | v |\n|---|---|\n| a | 1 |";
    reply(
        &h,
        plan(ReplyMode::Static, true, &msg, &chat, 1),
        streaming_agent(text, 100, 1, Ok(())),
    )
    .await;
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert!(bots[0].text.starts_with("```"), "{}", bots[0].text);
    assert!(bots[0].text.contains("a | 1"), "{}", bots[0].text);
    assert!(!bots[0].text.contains("|---|"), "{}", bots[0].text);
}

#[tokio::test]
async fn streaming_closed_by_the_platform_timeout_is_reopened() {
    let h = harness_with(EmulatorConfig {
        streaming_auto_close: Duration::from_millis(400),
        ..EmulatorConfig::default()
    })
    .await;
    let (msg, chat) = user_message(&h, "p2p");
    let text = paragraphs(6, 10);
    let report = reply(
        &h,
        plan(ReplyMode::Streaming, true, &msg, &chat, 1),
        streaming_agent(&text, 10, 40, Ok(())),
    )
    .await;
    assert_eq!(report.mode_used, "cardkit");
    let bots = bot_messages(&h, &chat);
    assert_eq!(bots.len(), 1);
    assert!(!bots[0].streaming);
    assert_eq!(bots[0].text, card_markdown(&text));
    assert!(calls_to(&h, "PATCH /open-apis/cardkit/v1/cards/{card_id}/settings") >= 1);
}
