//! A scripted model endpoint on loopback: OpenAI Chat Completions or
//! Anthropic Messages, streamed as SSE with a pause between chunks, recording
//! every request and noticing when the client goes away (for /stop tests).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

/// Which wire format to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `POST /chat/completions`, `data: {choices:[{delta:{content}}]}`, `[DONE]`.
    OpenAi,
    /// `POST /v1/messages`, `content_block_delta` events.
    Anthropic,
}

/// What the endpoint does.
#[derive(Clone, Debug)]
pub struct Script {
    /// Wire format.
    pub flavor: Flavor,
    /// The answer, cut into this many chunks.
    pub text: String,
    /// Chunks.
    pub chunks: usize,
    /// Pause between chunks.
    pub pause: Duration,
    /// After the chunks, keep the stream open until the client leaves.
    pub hold: bool,
    /// Answer with this HTTP status and error body instead.
    pub fail: Option<u16>,
}

impl Script {
    /// A streamed answer of `text` in `chunks` pieces, `pause_ms` apart.
    pub fn stream(flavor: Flavor, text: &str, chunks: usize, pause_ms: u64) -> Script {
        Script {
            flavor,
            text: text.into(),
            chunks,
            pause: Duration::from_millis(pause_ms),
            hold: false,
            fail: None,
        }
    }
}

struct Shared {
    script: Script,
    requests: Mutex<Vec<Value>>,
    closed: AtomicBool,
}

/// A running scripted endpoint.
pub struct Llm {
    /// Base URL (`http://127.0.0.1:PORT`); OpenAI clients append `/chat/completions`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Llm {
    /// Starts it.
    pub async fn start(script: Script) -> Llm {
        let shared = Arc::new(Shared {
            script,
            requests: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Llm { url, shared }
    }

    /// Request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Whether a streaming response was abandoned by the client.
    pub fn client_left(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn frame(flavor: Flavor, piece: &str) -> String {
    match flavor {
        Flavor::OpenAi => format!(
            "data: {}\n\n",
            json!({"choices":[{"index":0,"delta":{"content":piece}}]})
        ),
        Flavor::Anthropic => format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":piece}})
        ),
    }
}

fn start_frames(flavor: Flavor) -> Vec<String> {
    match flavor {
        Flavor::OpenAi => vec![],
        Flavor::Anthropic => vec![
            format!("event: message_start\ndata: {}\n\n", json!({"type":"message_start","message":{"usage":{"input_tokens":5}}})),
            format!("event: content_block_start\ndata: {}\n\n", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
        ],
    }
}

fn end_frames(flavor: Flavor) -> Vec<String> {
    match flavor {
        Flavor::OpenAi => vec!["data: [DONE]\n\n".into()],
        Flavor::Anthropic => vec![
            format!("event: message_delta\ndata: {}\n\n", json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}})),
            format!("event: message_stop\ndata: {}\n\n", json!({"type":"message_stop"})),
        ],
    }
}

/// Marks the response abandoned when its body is dropped early.
struct Guard(Arc<Shared>, bool);

impl Guard {
    fn complete(&mut self) {
        self.1 = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.closed.store(true, Ordering::SeqCst);
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().unwrap().push(body);
    let script = shared.script.clone();
    if let Some(status) = script.fail {
        let err = json!({"error": {"message": "scripted failure", "type": "server_error"}});
        return (StatusCode::from_u16(status).unwrap(), axum::Json(err)).into_response();
    }
    let mut frames = start_frames(script.flavor);
    frames.extend(pieces(&script.text, script.chunks).iter().map(|p| frame(script.flavor, p)));
    let hold = script.hold;
    if !hold {
        frames.extend(end_frames(script.flavor));
    }
    let guard = Guard(shared.clone(), false);
    let pause = script.pause;
    let body = stream::unfold((frames.into_iter(), guard, true), move |(mut it, mut guard, first)| async move {
        if !first {
            tokio::time::sleep(pause).await;
        }
        match it.next() {
            Some(f) => Some((Bytes::from(f), (it, guard, false))),
            None if hold => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Bytes::from_static(b": keep-alive\n\n"), (it, guard, false)))
            }
            None => {
                guard.complete();
                None
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body.map(Ok::<_, Infallible>)))
        .unwrap()
}
