//! The HTTP backends (`openai`, `anthropic`, `http`) against scripted servers
//! on real loopback sockets.

mod agent_support;

use agent_support::*;
use base64::Engine as _;
use larkgate::agent::{AgentErrorKind, AgentEvent, AttachmentKind, OutboundMedia};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One SSE `data:` event carrying `value`.
fn data(value: Value) -> String {
    format!("data: {value}\n\n")
}

/// An SSE event with a name.
fn named(event: &str, value: Value) -> String {
    format!("event: {event}\ndata: {value}\n\n")
}

/// Splits `text` into writes of about `n` bytes (on character boundaries),
/// so events and lines straddle network reads.
fn split_writes(text: &str, n: usize) -> Vec<String> {
    let mut writes = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if current.len() >= n {
            writes.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        writes.push(current);
    }
    writes
}

fn openai_delta(text: &str) -> String {
    data(json!({"object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

fn openai_script(texts: &[&str]) -> String {
    let mut script = data(json!({"choices": [{"index": 0,
        "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}));
    script.push_str(": keep-alive comment\r\n\r\n");
    for text in texts {
        script.push_str(&openai_delta(text));
    }
    script.push_str(&data(
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ));
    script.push_str(&data(json!({"choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})));
    script.push_str("data: [DONE]\n\n");
    script
}

fn openai_config(url: &str, extra: &str) -> String {
    format!("type = \"openai\"\nbaseUrl = \"{url}/v1\"\nmodel = \"gpt-test\"\napiKeyEnv = \"TEST_API_KEY\"\n{extra}")
}

fn png_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(TINY_PNG)
}

#[tokio::test]
async fn openai_streams_deltas_and_sends_history_system_images_and_auth() {
    let texts = ["Hello", ", wor", "ld 你好", "\n\n```rust\nfn x() {}\n```"];
    let server = Server::start(Reply::Sse(split_writes(&openai_script(&texts), 7))).await;
    let config = openai_config(
        &server.url,
        "systemPrompt = \"Agent prompt\"\ntemperature = 0.5\nmaxTokens = 100\nheaders = { X-Test = \"yes\" }",
    );
    let dir = tempfile::tempdir().unwrap();
    let (events, result) = run(&*agent(&config), rich_request(dir.path())).await;
    result.unwrap();
    assert_eq!(text_of(&events), texts.concat());
    assert!(delta_count(&events) >= texts.len());
    assert!(events.contains(&AgentEvent::Usage {
        input_tokens: 12,
        output_tokens: 5
    }));

    let request = server.request();
    assert_eq!(request.uri, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], "Bearer sk-from-env");
    assert_eq!(request.headers["x-test"], "yes");
    let body = request.body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Group prompt"},
            {"role": "assistant", "content": "Welcome!"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", png_base64())}},
            ]},
        ])
    );
}

#[tokio::test]
async fn openai_without_vision_or_options_sends_plain_text_and_no_key() {
    let server = Server::start(Reply::Sse(vec![openai_script(&["ok"])])).await;
    let config = format!(
        "type = \"openai\"\nbaseUrl = \"{}/v1/\"\nmodel = \"m\"\nvision = false\nsystemPrompt = \"Agent prompt\"",
        server.url
    );
    let dir = tempfile::tempdir().unwrap();
    let mut request = rich_request(dir.path());
    request.system_prompt = None;
    let (events, result) = run(&*agent(&config), request).await;
    result.unwrap();
    assert_eq!(text_of(&events), "ok");
    let request = server.request();
    assert!(request.headers.get("authorization").is_none());
    let body = request.body;
    assert!(body.get("temperature").is_none() && body.get("max_tokens").is_none());
    assert_eq!(body["messages"][0]["content"], "Agent prompt");
    assert_eq!(
        body["messages"][4]["content"],
        "What is in this picture?\n\n[the user sent an image: photo.png]"
    );
}

#[tokio::test]
async fn openai_error_statuses_are_classified_with_the_backends_message() {
    let cases = [
        (401, AgentErrorKind::Auth),
        (403, AgentErrorKind::Auth),
        (429, AgentErrorKind::RateLimited),
        (500, AgentErrorKind::Unavailable),
        (503, AgentErrorKind::Unavailable),
        (404, AgentErrorKind::Config),
        (400, AgentErrorKind::Protocol),
    ];
    for (status, kind) in cases {
        let body = json!({"error": {"message": "Incorrect key sk-from-env given", "type": "x"}});
        let server =
            Server::start(Reply::Status(status, "application/json", body.to_string())).await;
        let (events, result) =
            run(&*agent(&openai_config(&server.url, "")), text_request("hi")).await;
        let err = result.unwrap_err();
        assert!(events.is_empty());
        assert_eq!(err.kind, kind, "status {status}: {err}");
        assert!(err.message.contains(&format!("HTTP {status}")), "{err}");
        assert!(
            err.message.contains("Incorrect key <redacted> given"),
            "{err}"
        );
        assert!(!err.message.contains("sk-from-env"), "{err}");
    }
}

#[tokio::test]
async fn openai_malformed_stream_is_a_protocol_error() {
    let script = format!("{}data: {{\"choices\": [\n\n", openai_delta("before"));
    let server = Server::start(Reply::Sse(vec![script])).await;
    let (events, result) = run(&*agent(&openai_config(&server.url, "")), text_request("hi")).await;
    assert_eq!(text_of(&events), "before");
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Protocol, "{err}");
    assert!(err.message.contains("unreadable stream event"), "{err}");
}

#[tokio::test]
async fn openai_stream_cut_short_is_unavailable() {
    let server = Server::start(Reply::Sse(vec![openai_delta("partial")])).await;
    let (events, result) = run(&*agent(&openai_config(&server.url, "")), text_request("hi")).await;
    assert_eq!(text_of(&events), "partial");
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Unavailable);
}

#[tokio::test]
async fn openai_error_inside_the_stream_is_classified() {
    let error =
        data(json!({"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}));
    let server = Server::start(Reply::Sse(vec![error])).await;
    let (_, result) = run(&*agent(&openai_config(&server.url, "")), text_request("hi")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::RateLimited);
    assert!(err.message.contains("Rate limit reached"), "{err}");
}

/// Cancels a turn after its first delta: the turn ends as Cancelled and the
/// server sees its connection closed.
async fn assert_cancel_closes_the_stream(config: String, server: &Server, first: &str) {
    let cancel = CancellationToken::new();
    let (mut rx, task) = spawn_turn(agent(&config), text_request("hi"), cancel.clone());
    assert_eq!(
        next_event(&mut rx).await,
        Some(AgentEvent::Delta(first.into()))
    );
    cancel.cancel();
    let err = finish(task).await.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Cancelled, "{err}");
    server.wait_closed().await;
}

#[tokio::test]
async fn openai_cancel_mid_stream_closes_the_connection() {
    let server = Server::start(Reply::SseThenHold(vec![openai_delta("first")])).await;
    assert_cancel_closes_the_stream(openai_config(&server.url, ""), &server, "first").await;
}

#[tokio::test]
async fn openai_turn_timeout_ends_a_stalled_stream() {
    let server = Server::start(Reply::SseThenHold(vec![openai_delta("first")])).await;
    let config = openai_config(&server.url, "timeoutSecs = 1");
    let (events, result) = run(&*agent(&config), text_request("hi")).await;
    assert_eq!(text_of(&events), "first");
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Timeout);
    assert!(err.message.contains("timeoutSecs"), "{err}");
    server.wait_closed().await;
}

#[tokio::test]
async fn openai_first_byte_timeout() {
    let server = Server::start(Reply::Hang).await;
    let config = openai_config(&server.url, "connectTimeoutSecs = 1");
    let (_, result) = run(&*agent(&config), text_request("hi")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Timeout);
    assert!(err.message.contains("connectTimeoutSecs"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = openai_config(&format!("http://{addr}"), "");
    let (_, result) = run(&*agent(&config), text_request("hi")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Unavailable, "{err}");
    assert!(err.message.contains(&addr.to_string()), "{err}");
}

fn anthropic_config(url: &str, extra: &str) -> String {
    format!("type = \"anthropic\"\nbaseUrl = \"{url}\"\nmodel = \"claude-test\"\napiKey = \"sk-inline\"\n{extra}")
}

fn anthropic_delta(text: &str) -> String {
    named(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    )
}

fn anthropic_start() -> String {
    named(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-test", "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    )
}

fn anthropic_script(texts: &[&str]) -> String {
    let mut script = anthropic_start();
    script.push_str(&named(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    script.push_str(&named("ping", json!({"type": "ping"})));
    for text in texts {
        script.push_str(&anthropic_delta(text));
    }
    script.push_str(&named(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    script.push_str(&named(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 7}}),
    ));
    script.push_str(&named("message_stop", json!({"type": "message_stop"})));
    script
}

#[tokio::test]
async fn anthropic_streams_deltas_and_sends_the_messages_request() {
    let texts = ["Bonjour", " le", " monde 🌍"];
    let server = Server::start(Reply::Sse(split_writes(&anthropic_script(&texts), 11))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = anthropic_config(&server.url, "temperature = 1.0");
    let (events, result) = run(&*agent(&config), rich_request(dir.path())).await;
    result.unwrap();
    assert_eq!(text_of(&events), texts.concat());
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Usage {
            input_tokens: 25,
            output_tokens: 7
        })
    );

    let request = server.request();
    assert_eq!(request.uri, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "sk-inline");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert!(request.headers.get("authorization").is_none());
    let body = request.body;
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["stream"], true);
    assert_eq!(body["temperature"], 1.0);
    assert_eq!(body["system"], "Group prompt");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}},
                {"type": "text", "text": "What is in this picture?"},
            ]},
        ])
    );
}

#[tokio::test]
async fn anthropic_base_url_with_v1_and_max_tokens() {
    let server = Server::start(Reply::Sse(vec![anthropic_script(&["x"])])).await;
    let config = anthropic_config(&format!("{}/v1", server.url), "maxTokens = 50");
    let (_, result) = run(&*agent(&config), text_request("hi")).await;
    result.unwrap();
    let request = server.request();
    assert_eq!(request.uri, "/v1/messages");
    assert_eq!(request.body["max_tokens"], 50);
    assert!(request.body.get("system").is_none());
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn anthropic_errors_are_classified() {
    let api_error = |kind: &str, message: &str| {
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
    };
    let statuses = [
        (401, "authentication_error", AgentErrorKind::Auth),
        (429, "rate_limit_error", AgentErrorKind::RateLimited),
        (529, "overloaded_error", AgentErrorKind::Unavailable),
    ];
    for (status, kind_name, kind) in statuses {
        let body = api_error(kind_name, "the message");
        let server = Server::start(Reply::Status(status, "application/json", body)).await;
        let (_, result) = run(
            &*agent(&anthropic_config(&server.url, "")),
            text_request("hi"),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, kind, "{err}");
        assert!(
            err.message.contains(&format!("HTTP {status}")) && err.message.contains("the message"),
            "{err}"
        );
    }

    let mid_stream = format!(
        "{}{}{}",
        anthropic_start(),
        anthropic_delta("so far"),
        named(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        )
    );
    let server = Server::start(Reply::Sse(vec![mid_stream])).await;
    let (events, result) = run(
        &*agent(&anthropic_config(&server.url, "")),
        text_request("hi"),
    )
    .await;
    assert_eq!(text_of(&events), "so far");
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Unavailable);
    assert!(err.message.contains("Overloaded"), "{err}");

    let malformed = format!(
        "{}event: content_block_delta\ndata: {{oops\n\n",
        anthropic_start()
    );
    let server = Server::start(Reply::Sse(vec![malformed])).await;
    let (_, result) = run(
        &*agent(&anthropic_config(&server.url, "")),
        text_request("hi"),
    )
    .await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Protocol);

    let cut = format!("{}{}", anthropic_start(), anthropic_delta("half"));
    let server = Server::start(Reply::Sse(vec![cut])).await;
    let (_, result) = run(
        &*agent(&anthropic_config(&server.url, "")),
        text_request("hi"),
    )
    .await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Unavailable);
}

#[tokio::test]
async fn anthropic_cancel_mid_stream_closes_the_connection() {
    let script = format!("{}{}", anthropic_start(), anthropic_delta("first"));
    let server = Server::start(Reply::SseThenHold(vec![script])).await;
    assert_cancel_closes_the_stream(anthropic_config(&server.url, ""), &server, "first").await;
}

#[tokio::test]
async fn http_agent_posts_the_turn_and_reads_a_json_answer() {
    let answer = json!({"text": "Hi Ada", "media": [{"url": "https://cdn.test/a.png"}],
        "usage": {"input_tokens": 3, "output_tokens": 2}});
    let server = Server::start(Reply::Status(200, "application/json", answer.to_string())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "  tok-file \n").unwrap();
    let config = format!(
        "type = \"http\"\nurl = \"{}/turn\"\napiKeyFile = \"key.txt\"\nsystemPrompt = \"Agent prompt\"\nheaders = {{ X-Extra = \"1\" }}",
        server.url
    );
    let mut request = rich_request(dir.path());
    request.system_prompt = None;
    let (events, result) = run(&*agent_in(&config, dir.path()), request).await;
    result.unwrap();
    assert_eq!(
        events,
        [
            AgentEvent::Delta("Hi Ada".into()),
            AgentEvent::Media(OutboundMedia {
                kind: AttachmentKind::Image,
                source: "https://cdn.test/a.png".into(),
                name: None
            }),
            AgentEvent::Usage {
                input_tokens: 3,
                output_tokens: 2
            },
        ]
    );
    let recorded = server.request();
    assert_eq!(recorded.uri, "/turn");
    assert_eq!(recorded.headers["authorization"], "Bearer tok-file");
    assert_eq!(recorded.headers["x-extra"], "1");
    assert!(recorded.headers["accept"]
        .to_str()
        .unwrap()
        .contains("text/event-stream"));
    let png = dir.path().join("photo.png");
    assert_eq!(
        recorded.body,
        json!({
            "version": 1,
            "session_id": "s-1",
            "account": "default",
            "chat": {"chat_id": "oc_chat", "chat_type": "p2p"},
            "sender": {"open_id": "ou_sender", "name": "Ada"},
            "text": "What is in this picture?",
            "history": [
                {"role": "assistant", "text": "Welcome!"},
                {"role": "user", "text": "hi"},
                {"role": "assistant", "text": "hello"},
            ],
            "attachments": [{"kind": "image", "path": png, "name": "photo.png", "mime": "image/png"}],
            "system_prompt": "Agent prompt",
        })
    );
}

#[tokio::test]
async fn http_agent_reads_an_sse_answer() {
    let script = [
        data(json!({"delta": "Hel"})),
        data(json!({"delta": "lo"})),
        data(json!({"media": {"url": "https://cdn.test/r.pdf", "name": "r.pdf"}})),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let server = Server::start(Reply::Sse(split_writes(&script, 5))).await;
    let config = format!(
        "type = \"http\"\nurl = \"{}/\"\napiKey = \"tok\"",
        server.url
    );
    let (events, result) = run(&*agent(&config), text_request("hi")).await;
    result.unwrap();
    assert_eq!(text_of(&events), "Hello");
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Media(OutboundMedia {
            kind: AttachmentKind::File,
            source: "https://cdn.test/r.pdf".into(),
            name: Some("r.pdf".into())
        }))
    );
    assert_eq!(server.request().headers["authorization"], "Bearer tok");
}

#[tokio::test]
async fn http_agent_errors() {
    let config = |url: &str| format!("type = \"http\"\nurl = \"{url}\"");

    let stream_error = data(json!({"error": "the model is down"}));
    let server = Server::start(Reply::Sse(vec![data(json!({"delta": "a"})), stream_error])).await;
    let (events, result) = run(&*agent(&config(&server.url)), text_request("hi")).await;
    assert_eq!(text_of(&events), "a");
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Unavailable);
    assert!(err.message.contains("the model is down"), "{err}");

    let server = Server::start(Reply::Status(
        502,
        "text/html",
        "<html>bad gateway</html>".into(),
    ))
    .await;
    let (_, result) = run(&*agent(&config(&server.url)), text_request("hi")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Unavailable);
    assert!(err.message.ends_with("HTTP 502 Bad Gateway"), "{err}");

    let local = json!({"text": "x", "media": [{"path": "/etc/passwd"}]}).to_string();
    let server = Server::start(Reply::Status(200, "application/json", local)).await;
    let (_, result) = run(&*agent(&config(&server.url)), text_request("hi")).await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Protocol);

    let server = Server::start(Reply::Status(200, "application/json", "{not json".into())).await;
    let (_, result) = run(&*agent(&config(&server.url)), text_request("hi")).await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Protocol);

    let server = Server::start(Reply::Status(
        200,
        "text/plain; charset=utf-8",
        "plain answer".into(),
    ))
    .await;
    let (events, result) = run(&*agent(&config(&server.url)), text_request("hi")).await;
    result.unwrap();
    assert_eq!(text_of(&events), "plain answer");
}

#[tokio::test]
async fn http_agent_cancel_mid_stream_closes_the_connection() {
    let server = Server::start(Reply::SseThenHold(vec![data(json!({"delta": "first"}))])).await;
    let config = format!("type = \"http\"\nurl = \"{}\"", server.url);
    assert_cancel_closes_the_stream(config, &server, "first").await;
}
