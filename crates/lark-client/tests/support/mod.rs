//! Scripted loopback fakes shared by the integration tests: a fake Open
//! Platform (REST, token, WS discovery and the long connection itself) that
//! records every request, and a tiny HTTP proxy (CONNECT + absolute-form).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use lark_client::Domain;
use lark_wire::frame::{Frame, FrameType, Header, METHOD_DATA};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Hang guard for every wait in the tests (never a performance threshold).
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds; panics after [`HANG_GUARD`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `fut` under the hang guard.
pub async fn guard<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .expect("hang guard")
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Stream the body in chunks without Content-Length.
    pub chunked: bool,
}

impl Reply {
    pub fn json(v: Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
            chunked: false,
        }
    }

    /// `{"code":0,"msg":"ok","data":data}`.
    pub fn ok(data: Value) -> Reply {
        Reply::json(json!({"code": 0, "msg": "ok", "data": data}))
    }

    /// `{"code":code,"msg":msg}` with an HTTP status.
    pub fn code(status: u16, code: i64, msg: &str) -> Reply {
        Reply::json(json!({"code": code, "msg": msg})).status(status)
    }

    pub fn bytes(body: &[u8], content_type: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.to_vec(),
            chunked: false,
        }
    }

    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn chunked(mut self) -> Reply {
        self.chunked = true;
        self
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body = if self.chunked {
            let chunks: Vec<Result<Bytes, std::io::Error>> = self
                .body
                .chunks(64)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Body::from_stream(futures_util::stream::iter(chunks))
        } else {
            Body::from(self.body)
        };
        builder.body(body).expect("valid scripted reply")
    }
}

/// One recorded HTTP request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON request body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Query pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// Form-encoded body pairs.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// Multipart fields: name -> (file name, bytes).
    pub fn multipart(&self) -> HashMap<String, (Option<String>, Vec<u8>)> {
        let ct = self.header("content-type").unwrap_or_default();
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .expect("multipart boundary")
            .trim_matches('"');
        let delimiter = format!("--{boundary}");
        let body = &self.body[..];
        let mut out = HashMap::new();
        for part in split(body, delimiter.as_bytes()).into_iter().skip(1) {
            if part.starts_with(b"--") {
                break;
            }
            let part = part.strip_prefix(b"\r\n").unwrap_or(part);
            let Some(head_end) = find(part, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&part[..head_end]).to_string();
            let mut content = &part[head_end + 4..];
            content = content.strip_suffix(b"\r\n").unwrap_or(content);
            let attr = |key: &str| {
                head.split(';')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix(&format!("{key}=\"")))
                    .map(|v| v.split('"').next().unwrap_or_default().to_string())
            };
            if let Some(name) = attr("name") {
                out.insert(name, (attr("filename"), content.to_vec()));
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, sep) {
        out.push(&hay[..i]);
        hay = &hay[i + sep.len()..];
    }
    out.push(hay);
    out
}

/// How the fake long-connection server answers pings.
#[derive(Clone, Debug)]
pub enum PongMode {
    /// Pong, with this `ClientConfig` JSON payload if any.
    Reply(Option<Vec<u8>>),
    /// Never answer (and send nothing): a half-dead connection.
    Silent,
}

/// A frame the fake WS server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub conn: usize,
    pub frame: Frame,
}

#[derive(Default)]
struct Shared {
    addr: Mutex<Option<SocketAddr>>,
    requests: Mutex<Vec<Recorded>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    tokens_issued: AtomicUsize,
    handshake_failures: Mutex<VecDeque<Reply>>,
    ws_conns: Mutex<Vec<mpsc::UnboundedSender<Option<Frame>>>>,
    ws_seen: Mutex<Vec<Seen>>,
    pong: Mutex<Option<PongMode>>,
    service_id: Mutex<i32>,
    client_config: Mutex<Option<Value>>,
}

/// The fake Open Platform.
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Fake {
    pub async fn start() -> Fake {
        let shared = Arc::new(Shared::default());
        *shared.service_id.lock().unwrap() = 77;
        let app = Router::new()
            .route("/ws/v2", get(ws_upgrade))
            .fallback(record_and_answer)
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { addr, shared }
    }

    pub fn domain(&self) -> Domain {
        Domain::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Scripts the answers of `METHOD /path` (full path, with `/open-apis`).
    /// Answers are used in order; the last one repeats.
    pub fn on(&self, method: &str, path: &str, replies: Vec<Reply>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .insert(format!("{method} {path}"), replies.into());
    }

    /// Every recorded request.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Recorded requests to `METHOD /path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    // ---- long connection ----

    /// The discovery answer pointing at this server's `/ws/v2`.
    pub fn endpoint_reply(&self, client_config: Value) -> Reply {
        let service = *self.shared.service_id.lock().unwrap();
        Reply::ok(json!({
            "URL": format!("ws://{}/ws/v2?device_id=dev1&service_id={service}&ticket=abc", self.addr),
            "ClientConfig": client_config,
        }))
    }

    /// The `ClientConfig` of the default discovery answer.
    pub fn set_client_config(&self, config: Value) {
        *self.shared.client_config.lock().unwrap() = Some(config);
    }

    pub fn set_pong(&self, mode: PongMode) {
        *self.shared.pong.lock().unwrap() = Some(mode);
    }

    /// The next WS handshakes fail with these answers, in order.
    pub fn fail_handshakes(&self, replies: Vec<Reply>) {
        *self.shared.handshake_failures.lock().unwrap() = replies.into();
    }

    pub fn ws_connections(&self) -> usize {
        self.shared.ws_conns.lock().unwrap().len()
    }

    /// Frames received from clients.
    pub fn ws_seen(&self) -> Vec<Seen> {
        self.shared.ws_seen.lock().unwrap().clone()
    }

    pub fn pings(&self) -> Vec<Seen> {
        self.ws_seen()
            .into_iter()
            .filter(|s| s.frame.frame_type() == FrameType::Ping)
            .collect()
    }

    /// Data frames (acks) received from clients.
    pub fn acks(&self) -> Vec<Seen> {
        self.ws_seen()
            .into_iter()
            .filter(|s| s.frame.method == METHOD_DATA)
            .collect()
    }

    /// Sends a frame on the newest connection.
    pub fn push(&self, frame: Frame) {
        let conns = self.shared.ws_conns.lock().unwrap();
        conns
            .last()
            .expect("a WS connection")
            .send(Some(frame))
            .unwrap();
    }

    /// Closes the newest connection from the server side.
    pub fn close_newest(&self) {
        let conns = self.shared.ws_conns.lock().unwrap();
        let _ = conns.last().expect("a WS connection").send(None);
    }
}

/// A data frame as the platform sends it.
pub fn event_frame(
    seq_id: u64,
    kind: &str,
    message_id: &str,
    sum: u32,
    seq: u32,
    payload: &[u8],
) -> Frame {
    Frame {
        seq_id,
        log_id: seq_id + 1000,
        service: 77,
        method: METHOD_DATA,
        headers: vec![
            Header::new("type", kind),
            Header::new("message_id", message_id),
            Header::new("sum", sum.to_string()),
            Header::new("seq", seq.to_string()),
            Header::new("trace_id", format!("trace-{message_id}")),
            Header::new("instance_id", "inst-9"),
        ],
        payload: Some(payload.to_vec()),
        log_id_new: Some(format!("lognew-{seq_id}")),
        ..Frame::default()
    }
}

async fn record_and_answer(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body,
        at: Instant::now(),
    };
    s.requests.lock().unwrap().push(rec.clone());
    let key = format!("{} {}", rec.method, rec.path);
    let scripted = {
        let mut scripts = s.scripts.lock().unwrap();
        scripts.get_mut(&key).and_then(|q| {
            if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            }
        })
    };
    if let Some(reply) = scripted {
        if rec.path == "/open-apis/auth/v3/tenant_access_token/internal" {
            s.tokens_issued.fetch_add(1, Ordering::SeqCst);
        }
        return reply.into_response();
    }
    match rec.path.as_str() {
        "/open-apis/auth/v3/tenant_access_token/internal" => {
            let n = s.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(json!({"code": 0, "msg": "ok", "tenant_access_token": format!("t-{n}"), "expire": 7200}))
                .into_response()
        }
        "/callback/ws/endpoint" => {
            let addr = s.addr.lock().unwrap().expect("addr");
            let service = *s.service_id.lock().unwrap();
            let config = s.client_config.lock().unwrap().clone().unwrap_or(
                json!({"PingInterval": 120, "ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30}),
            );
            Reply::ok(json!({
                "URL": format!("ws://{addr}/ws/v2?device_id=dev1&service_id={service}&ticket=abc"),
                "ClientConfig": config,
            }))
            .into_response()
        }
        _ => Reply::ok(json!({})).into_response(),
    }
}

async fn ws_upgrade(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    let failure = s.handshake_failures.lock().unwrap().pop_front();
    if let Some(reply) = failure {
        return reply.into_response();
    }
    ws.on_upgrade(move |socket| serve_ws(s, socket))
}

async fn serve_ws(s: Arc<Shared>, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Frame>>();
    let conn = {
        let mut conns = s.ws_conns.lock().unwrap();
        conns.push(tx);
        conns.len() - 1
    };
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Some(frame)) => {
                    if sink.send(Message::Binary(frame.to_bytes().into())).await.is_err() { return; }
                }
                _ => { let _ = sink.send(Message::Close(None)).await; return; }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let Ok(frame) = Frame::decode_bytes(&bytes) else { continue };
                    let is_ping = frame.frame_type() == FrameType::Ping;
                    let service = frame.service;
                    s.ws_seen.lock().unwrap().push(Seen { conn, frame });
                    if is_ping {
                        let mode = s.pong.lock().unwrap().clone().unwrap_or(PongMode::Reply(None));
                        if let PongMode::Reply(payload) = mode {
                            let pong = Frame::pong(service, payload);
                            if sink.send(Message::Binary(pong.to_bytes().into())).await.is_err() { return; }
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

// ---- a tiny HTTP proxy: CONNECT tunnels and absolute-form forwarding ----

/// A recording loopback proxy.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    /// `CONNECT host:port` or `GET http://…` request lines seen.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = proxy_one(client, log).await;
                });
            }
        });
        Proxy { url, seen }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn proxy_one(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(client.read_u8().await?);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    log.lock().unwrap().push(line.clone());
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    if method == "CONNECT" {
        let mut upstream = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    } else {
        let url = url::Url::parse(target).map_err(std::io::Error::other)?;
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(80)
        );
        let mut upstream = TcpStream::connect(host).await?;
        upstream.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    }
    Ok(())
}

// ---- a tiny SOCKS5 proxy (no auth, CONNECT only) ----

/// A recording loopback SOCKS5 proxy.
#[derive(Clone)]
pub struct Socks5 {
    pub url: String,
    /// `host:port` targets requested.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Socks5 {
    pub async fn start() -> Socks5 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("socks5h://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = socks5_one(client, log).await;
                });
            }
        });
        Socks5 { url, seen }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn socks5_one(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    client.write_all(&[5, 0]).await?;
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await?;
    let host = match head[3] {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).to_string()
        }
        _ => return Err(std::io::Error::other("address type")),
    };
    let port = client.read_u16().await?;
    let target = format!("{host}:{port}");
    log.lock().unwrap().push(target.clone());
    let mut upstream = TcpStream::connect(target).await?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
