//! Agents and replies through the whole gateway, against lark-emulator and
//! scripted model endpoints: streamed cards that end with the model's full
//! text, /stop and the card's Stop button stopping the backend, visible
//! errors, long replies in ordered parts, tables, block mode, images in and
//! out, and the command and HTTP agents.

mod e2e;

use base64::Engine;
use e2e::llm::{Flavor, Llm, Script};
use e2e::Harness;
use lark_emulator::{CardPress, ChatMessageView, UserMessage};
use larkgate::agent::{AgentConfig, AgentType};
use larkgate::config::ReplyMode;
use larkgate::secret::Secret;

const ANSWER: &str = "Here is the plan.\n\n**First**, we gather the requirements from everyone involved.\n\n- write the summary\n- review it together\n- ship it on Friday\n\nThat is all for now; ask me anything else.";

fn model_agent(llm: &Llm, flavor: Flavor) -> AgentConfig {
    AgentConfig {
        kind: match flavor {
            Flavor::OpenAi => AgentType::Openai,
            Flavor::Anthropic => AgentType::Anthropic,
        },
        base_url: Some(llm.url.clone()),
        model: Some("scripted-model".into()),
        api_key: Some(Secret::new("test-key")),
        system_prompt: Some("You are a test bot.".into()),
        ..Default::default()
    }
}

/// A harness whose account streams and uses the agent `agent`.
async fn streaming_with(agent: AgentConfig, mode: ReplyMode) -> Harness {
    Harness::start_with(move |_, c| {
        c.agents.insert("model".into(), agent);
        c.accounts[0].agent = "model".into();
        c.accounts[0].reply_mode = mode;
    })
    .await
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The card's text holds exactly the words of `expected`, in order.
fn assert_same_words(card: &ChatMessageView, expected: &str) {
    assert_eq!(
        words(&card.text),
        words(expected),
        "card text: {:?}",
        card.text
    );
}

async fn streamed_reply_is_complete(flavor: Flavor) {
    let llm = Llm::start(Script::stream(flavor, ANSWER, 24, 30)).await;
    let h = streaming_with(model_agent(&llm, flavor), ReplyMode::Streaming).await;
    let first = h.dm("ou_a", "what is the plan?");
    let replies = h.replies(&first).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].msg_type, "interactive");
    assert!(replies[0].card_id.is_some(), "a CardKit card");
    assert!(!replies[0].streaming, "closed at the end");
    assert_same_words(&replies[0], ANSWER);
    // The second turn carries the system prompt and the first turn as history.
    let second = h.dm("ou_a", "and then?");
    h.replies(&second).await;
    let body = llm.requests().pop().unwrap().to_string();
    assert!(body.contains("You are a test bot."), "{body}");
    assert!(
        body.contains("what is the plan?") && body.contains("ship it on Friday"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_reply_streams_into_a_card_holding_the_full_text() {
    streamed_reply_is_complete(Flavor::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_reply_streams_into_a_card_holding_the_full_text() {
    streamed_reply_is_complete(Flavor::Anthropic).await;
}

/// Waits until the bot's card answering `sent` shows `needle` while streaming.
async fn card_streaming(
    h: &Harness,
    sent: &lark_emulator::SentMessage,
    needle: &str,
) -> ChatMessageView {
    let mut found = None;
    e2e::wait_until(&h.emu, &sent.chat_id, |ms| {
        found = ms
            .iter()
            .find(|m| {
                m.sender == "bot"
                    && m.reply_to.as_deref() == Some(&sent.message_id)
                    && m.streaming
                    && m.text.contains(needle)
            })
            .cloned();
        found.is_some()
    })
    .await;
    found.unwrap()
}

fn holding(text: &str) -> Script {
    Script {
        hold: true,
        ..Script::stream(Flavor::OpenAi, text, 2, 20)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_card_as_stopped_and_stops_the_backend() {
    let llm = Llm::start(holding("partial answer, still thinking")).await;
    let h = streaming_with(model_agent(&llm, Flavor::OpenAi), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "think hard");
    card_streaming(&h, &ask, "partial answer").await;
    let stop = h.dm("ou_a", "/stop");
    assert!(h.replies(&stop).await[0].text.contains("Stopped"));
    let card = &h.replies(&ask).await[0];
    assert!(
        card.text.contains("partial answer") && card.text.contains("stopped"),
        "{}",
        card.text
    );
    e2e::eventually(|| llm.client_left()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_button_on_the_card_stops_the_turn() {
    let llm = Llm::start(holding("working on it")).await;
    let h = streaming_with(model_agent(&llm, Flavor::OpenAi), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "go");
    let card = card_streaming(&h, &ask, "working on it").await;
    let json: serde_json::Value = serde_json::from_str(&card.content).unwrap();
    let value = find_button_value(&json).expect("a Stop button on the streaming card");
    let pressed = h
        .emu
        .press_card_button(
            &card.message_id,
            CardPress {
                operator_open_id: Some("ou_a".into()),
                value,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pressed.status, "ok", "{pressed:?}");
    assert!(pressed.response.unwrap().to_string().contains("Stopping"));
    let done = &h.replies(&ask).await[0];
    assert!(done.text.contains("stopped"), "{}", done.text);
    assert!(
        find_button_value(&serde_json::from_str(&done.content).unwrap()).is_none(),
        "the button is gone"
    );
    e2e::eventually(|| llm.client_left()).await;
}

fn find_button_value(v: &serde_json::Value) -> Option<serde_json::Value> {
    match v {
        serde_json::Value::Object(o) => {
            if o.get("tag").and_then(|t| t.as_str()) == Some("button") {
                return o.get("behaviors")?.get(0)?.get("value").cloned();
            }
            o.values().find_map(find_button_value)
        }
        serde_json::Value::Array(a) => a.iter().find_map(find_button_value),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_error_is_visible() {
    let llm = Llm::start(Script {
        fail: Some(500),
        ..Script::stream(Flavor::OpenAi, "", 1, 0)
    })
    .await;
    let h = streaming_with(model_agent(&llm, Flavor::OpenAi), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "hello?");
    let reply = &h.replies(&ask).await[0];
    assert!(
        reply.text.contains("500"),
        "the error is shown: {}",
        reply.text
    );
    let m = h.gw().metrics().clone();
    e2e::eventually(|| m.turns.get(&["default", "model", "error"]) == 1).await;
}

fn echo(delay_ms: u64) -> AgentConfig {
    AgentConfig {
        chunk_delay_ms: Some(delay_ms),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_40_kb_reply_arrives_as_ordered_complete_parts() {
    let h = streaming_with(echo(5), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "echo-long 40");
    // Wait until every word has arrived, then check the order.
    let expected = {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let agent =
            larkgate::agent::build("e", &echo(0), std::path::Path::new("."), &|_| None).unwrap();
        agent
            .run(
                larkgate::agent::AgentRequest {
                    text: "echo-long 40".into(),
                    ..Default::default()
                },
                Default::default(),
                tx,
            )
            .await
            .unwrap();
        let mut text = String::new();
        while let Ok(larkgate::agent::AgentEvent::Delta(d)) = rx.try_recv() {
            text.push_str(&d);
        }
        text
    };
    let expected_words = words(&expected);
    let mut parts = Vec::new();
    e2e::wait_until(&h.emu, &ask.chat_id, |ms| {
        parts = ms
            .iter()
            .filter(|m| m.sender == "bot" && m.reply_to.as_deref() == Some(&ask.message_id))
            .cloned()
            .collect();
        let seen: usize = parts.iter().map(|p| words(&p.text).len()).sum();
        parts.iter().all(|p| !p.streaming) && seen >= expected_words.len()
    })
    .await;
    assert!(
        parts.len() >= 2,
        "split into several parts: {:?}",
        parts
            .iter()
            .map(|p| (p.msg_type.clone(), p.text.len(), p.content.len()))
            .collect::<Vec<_>>()
    );
    let joined: Vec<String> = parts.iter().flat_map(|p| words(&p.text)).collect();
    assert_eq!(
        joined,
        words(&expected),
        "every word arrives, once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_tables_never_break_the_card() {
    let h = streaming_with(echo(5), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "echo-table 5");
    let replies = h.replies(&ask).await;
    let all: String = replies.iter().map(|r| r.text.clone()).collect();
    for t in 1..=5 {
        assert!(all.contains(&format!("Table {t}")), "{all}");
    }
    let errors: u64 = h.gw().accounts()[0]
        .client()
        .stats()
        .iter()
        .map(|e| e.errors.get(&230099).copied().unwrap_or(0))
        .sum();
    assert_eq!(errors, 0, "no 230099 from the platform");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_mode_sends_each_block_as_its_own_message() {
    let h = streaming_with(echo(10), ReplyMode::Block).await;
    let ask = h.dm(
        "ou_a",
        "first paragraph here\n\nsecond paragraph here\n\nthird paragraph here",
    );
    let replies = h.replies_n(&ask, 3).await;
    let texts: Vec<&str> = replies.iter().map(|r| r.text.trim()).collect();
    assert_eq!(
        texts,
        vec![
            "first paragraph here",
            "second paragraph here",
            "third paragraph here"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_in_reach_a_vision_model_and_images_out_are_sent() {
    let llm = Llm::start(Script::stream(Flavor::OpenAi, "A small square.", 2, 10)).await;
    let h = streaming_with(model_agent(&llm, Flavor::OpenAi), ReplyMode::Streaming).await;
    let png = b"\x89PNG\r\n\x1a\n0000000000000000";
    let img = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        msg_type: Some("image".into()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(png)),
        ..Default::default()
    });
    h.replies(&img).await;
    let body = llm.requests().pop().unwrap().to_string();
    assert!(
        body.contains("image_url") && body.contains("data:image/png;base64,"),
        "{body}"
    );

    let h = streaming_with(echo(0), ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "echo-image");
    let replies = h.replies_n(&ask, 2).await;
    assert!(replies.iter().any(|m| m.msg_type == "image"), "{replies:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_agent_answers() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agent.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ninput=$(cat)\nprintf 'command agent got: '\nprintf '%s' \"$input\" | grep -o '\"text\":\"[^\"]*\"' | head -1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = AgentConfig {
        kind: AgentType::Command,
        command: Some(vec![script.display().to_string()]),
        ..Default::default()
    };
    let h = streaming_with(agent, ReplyMode::Static).await;
    let ask = h.dm("ou_a", "run the tests");
    let reply = &h.replies(&ask).await[0];
    assert!(
        reply.text.contains("command agent got") && reply.text.contains("run the tests"),
        "{}",
        reply.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_agent_answers() {
    let app = axum::Router::new().route(
        "/turn",
        axum::routing::post(|axum::Json(body): axum::Json<serde_json::Value>| async move {
            axum::Json(serde_json::json!({"text": format!("http agent got: {}", body["text"].as_str().unwrap_or(""))}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/turn", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let agent = AgentConfig {
        kind: AgentType::Http,
        url: Some(url),
        ..Default::default()
    };
    let h = streaming_with(agent, ReplyMode::Streaming).await;
    let ask = h.dm("ou_a", "ping over http");
    let reply = &h.replies(&ask).await[0];
    assert!(
        reply.text.contains("http agent got: ping over http"),
        "{}",
        reply.text
    );
}
