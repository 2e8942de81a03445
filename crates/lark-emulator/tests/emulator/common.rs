//! Helpers shared by the emulator's integration tests (real loopback sockets).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lark_emulator::{AppInfo, Emulator, EmulatorConfig};
use lark_wire::frame::{ack_payload, Frame, METHOD_DATA};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Hang guard for anything awaited in tests.
pub const HANG: Duration = Duration::from_secs(20);

/// Starts an emulator with `tweak` applied to a test-friendly config.
pub async fn start(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut cfg = EmulatorConfig {
        per_chat_rate: None,
        ..EmulatorConfig::default()
    };
    tweak(&mut cfg);
    Emulator::start(cfg).await.expect("emulator starts")
}

/// Awaits with the hang guard.
pub async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f).await.expect("operation hung")
}

/// Polls `cond` until true (hang guard).
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    guard(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A response: status, headers, JSON body.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(-1)
    }
}

/// A REST caller for one app.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

pub async fn post_json(base: &str, path: &str, body: &Value) -> Reply {
    let res = http()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("request");
    to_reply(res).await
}

pub async fn to_reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn tenant_token(base: &str, app: &AppInfo) -> String {
    let r = post_json(
        base,
        "/open-apis/auth/v3/tenant_access_token/internal",
        &json!({"app_id": app.app_id, "app_secret": app.app_secret}),
    )
    .await;
    assert_eq!(r.code(), 0, "token: {}", r.body);
    r.body["tenant_access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

impl Api {
    pub async fn new(emu: &Emulator, app: &AppInfo) -> Api {
        let base = emu.base_url();
        let token = tenant_token(&base, app).await;
        Api {
            base,
            token,
            http: http(),
        }
    }

    /// A call; the future owns its URL so callers may pass temporaries.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> impl Future<Output = Reply> + 'static {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { to_reply(req.send().await.expect("request")).await }
    }

    /// Sends text to a chat; returns the reply.
    pub async fn send_text(&self, chat_id: &str, text: &str) -> Reply {
        self.call(
            "POST",
            "/open-apis/im/v1/messages?receive_id_type=chat_id",
            Some(json!({"receive_id": chat_id, "msg_type": "text", "content": json!({"text": text}).to_string()})),
        )
        .await
    }

    pub async fn send(&self, chat_id: &str, msg_type: &str, content: &Value) -> Reply {
        self.call(
            "POST",
            "/open-apis/im/v1/messages?receive_id_type=chat_id",
            Some(json!({"receive_id": chat_id, "msg_type": msg_type, "content": content.to_string()})),
        )
        .await
    }
}

/// A raw long-connection client speaking pbbp2.
pub struct WsClient {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Discovery; returns the JSON reply.
pub async fn discover(base: &str, app: &AppInfo) -> Value {
    post_json(
        base,
        "/callback/ws/endpoint",
        &json!({"AppID": app.app_id, "AppSecret": app.app_secret}),
    )
    .await
    .body
}

pub fn query(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl WsClient {
    pub async fn connect(emu: &Emulator, app: &AppInfo) -> WsClient {
        let d = discover(&emu.base_url(), app).await;
        assert_eq!(d["code"], 0, "discovery: {d}");
        let url = d["data"]["URL"].as_str().expect("URL").to_string();
        WsClient::dial(&url).await.expect("handshake")
    }

    pub async fn dial(url: &str) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(WsClient { stream })
    }

    pub async fn send_frame(&mut self, frame: &Frame) {
        self.stream
            .send(Message::Binary(frame.to_bytes().into()))
            .await
            .expect("send");
    }

    /// The next pbbp2 frame, or None when the socket closed.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match guard(self.stream.next()).await? {
                Ok(Message::Binary(b)) => return Some(Frame::decode_bytes(&b).expect("frame")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next event: (last frame, reassembled payload JSON, fragments).
    pub async fn next_event(&mut self) -> (Frame, Value, usize) {
        let mut parts: Vec<Option<Vec<u8>>> = Vec::new();
        loop {
            let f = self.next_frame().await.expect("socket open");
            if f.method != METHOD_DATA {
                continue;
            }
            let sum: usize = f.header("sum").expect("sum").parse().expect("sum");
            let seq: usize = f.header("seq").expect("seq").parse().expect("seq");
            if parts.is_empty() {
                parts = vec![None; sum];
            }
            parts[seq] = f.payload.clone();
            if parts.iter().all(Option::is_some) {
                let bytes: Vec<u8> = parts.into_iter().flatten().flatten().collect();
                let v = serde_json::from_slice(&bytes).expect("event JSON");
                return (f, v, sum);
            }
        }
    }

    pub async fn ack(&mut self, frame: &Frame, code: u16, body: Option<&[u8]>) {
        let ack = frame.to_ack(1, ack_payload(code, body));
        self.send_frame(&ack).await;
    }
}

/// Sends a text message from a new user in p2p; returns the sent message.
pub fn user_says(emu: &Emulator, text: &str) -> lark_emulator::SentMessage {
    emu.send_message(lark_emulator::UserMessage {
        text: Some(text.to_string()),
        ..Default::default()
    })
    .expect("send_message")
}
