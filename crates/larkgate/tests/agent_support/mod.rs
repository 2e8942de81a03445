//! Shared helpers for the agent tests: a scripted HTTP server on a real
//! loopback socket that records what it receives, and a runner that collects
//! an agent's events.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use larkgate::agent::{
    build, Agent, AgentConfig, AgentError, AgentEvent, AgentRequest, Attachment, AttachmentKind,
    HistoryTurn, Role,
};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Generous bound for things that should happen promptly (a hang guard, not
/// a performance assertion).
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// What the scripted server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `200 text/event-stream` with these body writes, then end.
    Sse(Vec<String>),
    /// `200 text/event-stream` with these writes, then keep the connection
    /// open (a comment every 50 ms) until the client goes away.
    SseThenHold(Vec<String>),
    /// This status, content type and body.
    Status(u16, &'static str, String),
    /// Never answer (no headers).
    Hang,
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Path and query.
    pub uri: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: serde_json::Value,
}

struct Shared {
    reply: Reply,
    requests: Mutex<Vec<Recorded>>,
    closed: AtomicBool,
    closed_notify: Notify,
}

/// A scripted server on 127.0.0.1 (any path, POST).
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Server {
    /// Starts a server answering every request with `reply`.
    pub async fn start(reply: Reply) -> Server {
        let shared = Arc::new(Shared {
            reply,
            requests: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { url, shared }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The only request received.
    pub fn request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request");
        requests[0].clone()
    }

    /// Waits until a held-open response body was dropped because the client
    /// closed the connection.
    pub async fn wait_closed(&self) {
        let wait = async {
            loop {
                let notified = self.shared.closed_notify.notified();
                if self.shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(HANG_GUARD, wait)
            .await
            .expect("the server never saw the connection close");
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    shared.requests.lock().unwrap().push(Recorded {
        uri: uri.to_string(),
        headers,
        body,
    });
    match shared.reply.clone() {
        Reply::Sse(writes) => sse(stream::iter(writes.into_iter().map(Bytes::from)).boxed()),
        Reply::SseThenHold(writes) => {
            let guard = CloseGuard(shared.clone());
            let keep_alive = stream::unfold(guard, |guard| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Bytes::from_static(b": keep-alive\n\n"), guard))
            });
            sse(stream::iter(writes.into_iter().map(Bytes::from))
                .chain(keep_alive)
                .boxed())
        }
        Reply::Status(code, content_type, body) => (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::Hang => std::future::pending().await,
    }
}

fn sse(body: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body.map(Ok::<_, Infallible>)))
        .unwrap()
}

/// Marks the connection closed when the response body is dropped.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.closed_notify.notify_waiters();
    }
}

/// Builds an agent from a TOML `agents.<name>` table body.
pub fn agent(toml_text: &str) -> Arc<dyn Agent> {
    agent_in(toml_text, std::path::Path::new("/"))
}

/// Like [`agent`], with a config directory.
pub fn agent_in(toml_text: &str, base_dir: &std::path::Path) -> Arc<dyn Agent> {
    let cfg: AgentConfig = toml::from_str(toml_text).expect("agent config parses");
    build("test", &cfg, base_dir, &test_env).expect("agent builds")
}

/// The environment the tests' agents see.
pub fn test_env(name: &str) -> Option<String> {
    match name {
        "TEST_API_KEY" => Some("  sk-from-env\n".to_string()),
        _ => None,
    }
}

/// Runs one turn to the end; returns the events and the result.
pub async fn run(
    agent: &dyn Agent,
    request: AgentRequest,
) -> (Vec<AgentEvent>, Result<(), AgentError>) {
    run_with(agent, request, CancellationToken::new()).await
}

/// Runs one turn with `cancel`.
pub async fn run_with(
    agent: &dyn Agent,
    request: AgentRequest,
    cancel: CancellationToken,
) -> (Vec<AgentEvent>, Result<(), AgentError>) {
    let (tx, mut rx) = mpsc::channel(16);
    let turn = agent.run(request, cancel, tx);
    let collect = async {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    };
    let (result, events) = tokio::time::timeout(HANG_GUARD, async { tokio::join!(turn, collect) })
        .await
        .expect("the turn hung");
    (events, result)
}

/// Starts a turn on its own task; events arrive on the returned receiver.
pub fn spawn_turn(
    agent: Arc<dyn Agent>,
    request: AgentRequest,
    cancel: CancellationToken,
) -> (
    mpsc::Receiver<AgentEvent>,
    tokio::task::JoinHandle<Result<(), AgentError>>,
) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move { agent.run(request, cancel, tx).await });
    (rx, task)
}

/// The next event, within the hang guard.
pub async fn next_event(rx: &mut mpsc::Receiver<AgentEvent>) -> Option<AgentEvent> {
    tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .expect("no event came")
}

/// The result of a spawned turn, within the hang guard.
pub async fn finish(
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
) -> Result<(), AgentError> {
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .expect("the turn did not end")
        .expect("the turn panicked")
}

/// The text deltas, concatenated.
pub fn text_of(events: &[AgentEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Delta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// How many text deltas there are.
pub fn delta_count(events: &[AgentEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Delta(_)))
        .count()
}

/// A 1×1 red PNG.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A request with history, a system prompt override and a PNG attachment
/// written into `dir`.
pub fn rich_request(dir: &std::path::Path) -> AgentRequest {
    let png = dir.join("photo.png");
    std::fs::write(&png, TINY_PNG).unwrap();
    AgentRequest {
        session_id: "s-1".into(),
        account: "default".into(),
        chat_id: "oc_chat".into(),
        chat_type: "p2p".into(),
        sender_open_id: "ou_sender".into(),
        sender_name: Some("Ada".into()),
        text: "What is in this picture?".into(),
        history: vec![
            HistoryTurn {
                role: Role::Assistant,
                text: "Welcome!".into(),
            },
            HistoryTurn {
                role: Role::User,
                text: "hi".into(),
            },
            HistoryTurn {
                role: Role::Assistant,
                text: "hello".into(),
            },
        ],
        attachments: vec![Attachment {
            kind: AttachmentKind::Image,
            path: png,
            name: "photo.png".into(),
            mime: Some("image/png".into()),
            transcript: None,
        }],
        system_prompt: Some("Group prompt".into()),
    }
}

/// A request with just `text`.
pub fn text_request(text: &str) -> AgentRequest {
    AgentRequest {
        session_id: "s-1".into(),
        text: text.into(),
        ..AgentRequest::default()
    }
}
