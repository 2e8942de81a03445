//! The long connection: endpoint discovery, the WebSocket (through the
//! client's proxy), a [`lark_wire::session::Session`] driving pings, pong
//! config, the watchdog and acks, and a supervisor that reconnects with the
//! server's jitter and interval.
//!
//! Deliveries arrive on a `tokio::sync::mpsc::Receiver<Delivery>`; the
//! connection's state is readable at any time through a [`HealthHandle`].

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use lark_wire::session::{
    classify_discovery, classify_handshake, Action, ClientConfig, Failure, Session,
};
use rand::Rng;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::delivery::{AckHandle, Delivery, Source};
use crate::proxy::connect_tcp;
use crate::response::snippet;
use crate::{Client, Error};

/// The discovery route (counted in [`Client::stats`]).
pub const DISCOVERY_ROUTE: &str = "POST /callback/ws/endpoint";

/// Longest supervisor backoff (too many connections, reconnect budget spent).
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Longest a delivery waits for room in a full queue before it is refused.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Why a delivery was not queued.
enum Refusal {
    /// The consumer is behind.
    Full,
    /// The consumer is gone.
    Closed,
}

/// Timer overrides and queue size. The defaults follow the server.
#[derive(Clone, Debug)]
pub struct WsOptions {
    /// Ping every this long instead of the server's `PingInterval` (the
    /// watchdog fires after two intervals of silence).
    pub ping_interval_override: Option<Duration>,
    /// Wait this long between reconnect attempts instead of `ReconnectInterval`.
    pub reconnect_interval_override: Option<Duration>,
    /// Jitter before the first reconnect attempt at most this long instead of
    /// `ReconnectNonce`.
    pub max_nonce_override: Option<Duration>,
    /// Deliveries buffered for the consumer; when full, a new event waits up
    /// to a second for room, then is answered with code 500 so that the
    /// platform redelivers it later.
    pub queue: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            ping_interval_override: None,
            reconnect_interval_override: None,
            max_nonce_override: None,
            queue: 256,
        }
    }
}

/// The connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsState {
    /// First connection attempt in progress.
    Connecting,
    /// Connected and serving.
    Connected,
    /// Lost or never established; retrying.
    Reconnecting,
    /// Stopped on request (or the consumer went away).
    Stopped,
    /// Stopped for good: bad credentials, forbidden, long connection not
    /// enabled. Needs the operator.
    Failed,
}

/// A health snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Current state.
    pub state: WsState,
    /// When the current connection was established.
    pub connected_since: Option<SystemTime>,
    /// When the last frame of any kind arrived.
    pub last_frame_at: Option<SystemTime>,
    /// Connections lost so far (each one led to a reconnect).
    pub reconnects: u64,
    /// Consecutive failed connection attempts (reset after a healthy session).
    pub failed_attempts: u32,
    /// The most recent error (kept after recovery, for diagnosis).
    pub last_error: Option<String>,
    /// Timers from discovery or the latest pong.
    pub config: ClientConfig,
    /// The ping interval in force (override or server).
    pub ping_interval: Duration,
    /// Deliveries handed to the consumer.
    pub deliveries: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: WsState::Connecting,
            connected_since: None,
            last_frame_at: None,
            reconnects: 0,
            failed_attempts: 0,
            last_error: None,
            config: ClientConfig::default(),
            ping_interval: Duration::from_secs(ClientConfig::default().ping_interval),
            deliveries: 0,
        }
    }
}

/// A cheap, clonable view of the connection's health.
#[derive(Clone, Debug)]
pub struct HealthHandle(watch::Receiver<Health>);

impl HealthHandle {
    /// The current snapshot.
    pub fn snapshot(&self) -> Health {
        self.0.borrow().clone()
    }

    /// Waits until `pred` holds; `None` when the connection task ended first
    /// without it holding.
    pub async fn wait_for(&self, pred: impl FnMut(&Health) -> bool) -> Option<Health> {
        let mut rx = self.0.clone();
        rx.wait_for(pred).await.ok().map(|h| h.clone())
    }
}

/// The long-connection client of one app.
#[derive(Debug)]
pub struct WsClient {
    client: Client,
    opts: WsOptions,
}

impl WsClient {
    /// A long connection for `client`'s app.
    pub fn new(client: Client, opts: WsOptions) -> WsClient {
        WsClient { client, opts }
    }

    /// Starts the connection task; deliveries arrive on the receiver, which
    /// closes when the task ends (stopped or failed).
    pub fn start(self, shutdown: CancellationToken) -> (mpsc::Receiver<Delivery>, HealthHandle) {
        let (tx, rx) = mpsc::channel(self.opts.queue.max(1));
        let health = self.start_with(tx, shutdown);
        (rx, health)
    }

    /// Like [`WsClient::start`], feeding an existing channel (so that webhook
    /// and long connection share one pipeline).
    pub fn start_with(
        self,
        tx: mpsc::Sender<Delivery>,
        shutdown: CancellationToken,
    ) -> HealthHandle {
        let (health_tx, health_rx) = watch::channel(Health::default());
        let runner = Runner {
            client: self.client,
            opts: self.opts,
            tx,
            health: health_tx,
            shutdown,
            config: ClientConfig::default(),
        };
        tokio::spawn(runner.run());
        HealthHandle(health_rx)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Connection {
    socket: Socket,
    service: i32,
}

/// Why a session ended.
enum SessionEnd {
    Shutdown,
    ConsumerGone,
    Lost { healthy: bool, reason: String },
}

struct Runner {
    client: Client,
    opts: WsOptions,
    tx: mpsc::Sender<Delivery>,
    health: watch::Sender<Health>,
    shutdown: CancellationToken,
    config: ClientConfig,
}

impl Runner {
    async fn run(mut self) {
        let final_state = self.supervise().await;
        self.health.send_modify(|h| {
            h.state = final_state;
            h.connected_since = None;
        });
    }

    /// Connects, serves, reconnects; returns the terminal state.
    async fn supervise(&mut self) -> WsState {
        let mut failed_attempts = 0u32;
        let shutdown = self.shutdown.clone();
        loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return WsState::Stopped,
                r = self.connect() => r,
            };
            let delay = match attempt {
                Ok(conn) => match self.serve(conn).await {
                    SessionEnd::Shutdown | SessionEnd::ConsumerGone => return WsState::Stopped,
                    SessionEnd::Lost { healthy, reason } => {
                        if healthy {
                            failed_attempts = 0;
                        }
                        tracing::warn!(%reason, "long connection lost; reconnecting");
                        self.health.send_modify(|h| {
                            h.state = WsState::Reconnecting;
                            h.connected_since = None;
                            h.reconnects += 1;
                            h.failed_attempts = failed_attempts;
                            h.last_error = Some(reason);
                        });
                        self.jitter()
                    }
                },
                Err(err) => {
                    let failure = match &err {
                        Error::Ws { failure, .. } => *failure,
                        _ => Failure::Retryable,
                    };
                    if failure == Failure::Fatal {
                        tracing::error!(error = %err, "long connection refused; not retrying");
                        self.health
                            .send_modify(|h| h.last_error = Some(err.to_string()));
                        return WsState::Failed;
                    }
                    failed_attempts = failed_attempts.saturating_add(1);
                    let (delay, note) = self.retry_delay(failure, failed_attempts);
                    let message = format!("{err}{note}; next attempt in {delay:?}");
                    tracing::warn!(error = %message, "long connection attempt failed");
                    self.health.send_modify(|h| {
                        h.state = WsState::Reconnecting;
                        h.failed_attempts = failed_attempts;
                        h.last_error = Some(message);
                    });
                    delay
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return WsState::Stopped,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn reconnect_interval(&self) -> Duration {
        self.opts
            .reconnect_interval_override
            .unwrap_or(Duration::from_secs(self.config.reconnect_interval))
    }

    /// Random delay before the first attempt after a lost connection.
    fn jitter(&self) -> Duration {
        let max = self
            .opts
            .max_nonce_override
            .unwrap_or(Duration::from_secs(self.config.reconnect_nonce));
        if max.is_zero() {
            return Duration::ZERO;
        }
        max.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// The wait after a failed attempt: the reconnect interval, doubled
    /// (capped at 10 min) when the platform refuses more connections or
    /// the server's `ReconnectCount` budget is spent. The SDKs give up in
    /// those cases; a gateway keeps trying, visibly, instead.
    fn retry_delay(&self, failure: Failure, failed_attempts: u32) -> (Duration, &'static str) {
        let interval = self.reconnect_interval();
        let backoff = |n: u32| interval.saturating_mul(1 << n.min(5)).min(MAX_BACKOFF);
        let budget = self.config.reconnect_count;
        if failure == Failure::TooManyConnections {
            (
                backoff(failed_attempts),
                " (too many connections for this app)",
            )
        } else if budget >= 0 && i64::from(failed_attempts) > budget {
            let over = u32::try_from(i64::from(failed_attempts) - budget).unwrap_or(u32::MAX);
            (backoff(over), " (reconnect budget spent; backing off)")
        } else {
            (interval, "")
        }
    }

    async fn connect(&mut self) -> Result<Connection, Error> {
        let (raw_url, config) = self.discover().await?;
        self.config = config;
        let timeout = self.client.timeout();
        let (socket, service) = tokio::time::timeout(timeout, self.dial(&raw_url))
            .await
            .map_err(|_| {
                retryable(
                    None,
                    format!("WebSocket connect timed out after {timeout:?}"),
                )
            })??;
        Ok(Connection { socket, service })
    }

    /// `POST {domain}/callback/ws/endpoint`, counted in the client's stats.
    async fn discover(&self) -> Result<(String, ClientConfig), Error> {
        discover_counted(&self.client).await
    }

    /// TCP (direct or through the proxy), then the WebSocket handshake on
    /// the discovery URL exactly as given. Returns the socket and the
    /// `service_id` from the URL.
    async fn dial(&self, raw_url: &str) -> Result<(Socket, i32), Error> {
        let fatal = |msg: String| Error::Ws {
            code: None,
            msg,
            failure: Failure::Fatal,
        };
        let url =
            Url::parse(raw_url).map_err(|e| retryable(None, format!("WebSocket URL: {e}")))?;
        let url = &url;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(fatal(format!("WebSocket URL scheme {:?}", url.scheme())));
        }
        let host = url
            .host_str()
            .ok_or_else(|| fatal("WebSocket URL without host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| fatal("WebSocket URL without port".into()))?;
        let proxy = self.client.proxy().for_ws(url)?;
        let tcp = connect_tcp(host, port, proxy.as_ref())
            .await
            .map_err(|e| retryable(None, format!("connect {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match tokio_tungstenite::client_async_tls_with_config(
            raw_url,
            tcp,
            Some(socket_config()),
            None,
        )
        .await
        {
            Ok((socket, _)) => Ok((socket, service_id(url))),
            Err(tungstenite::Error::Http(resp)) => Err(handshake_error(&resp)),
            Err(e) => Err(retryable(None, format!("WebSocket handshake: {e}"))),
        }
    }

    /// Queues a delivery for the consumer. A full queue first waits up to
    /// [`QUEUE_WAIT`] (a burst read from the socket can outrun a fast
    /// consumer that has not been scheduled yet); a consumer still behind
    /// after that is slow, and the event is refused (its ack handle,
    /// dropped, answers 500 so the platform redelivers it later).
    async fn hand_over(&self, delivery: Delivery) -> Result<(), Refusal> {
        let delivery = match self.tx.try_send(delivery) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Refusal::Closed),
            Err(mpsc::error::TrySendError::Full(d)) => d,
        };
        match tokio::time::timeout(QUEUE_WAIT, self.tx.reserve()).await {
            Ok(Ok(permit)) => {
                permit.send(delivery);
                Ok(())
            }
            Ok(Err(_)) => Err(Refusal::Closed),
            Err(_) => Err(Refusal::Full),
        }
    }

    /// Serves one connected socket until it is lost or shut down.
    async fn serve(&mut self, conn: Connection) -> SessionEnd {
        let Connection { socket, service } = conn;
        let (mut sink, mut stream) = socket.split();
        let mut session = Session::new(service, self.config, now());
        session.set_ping_interval_override(self.opts.ping_interval_override);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let mut healthy = false;
        self.health.send_modify(|h| {
            h.state = WsState::Connected;
            h.connected_since = Some(SystemTime::now());
            h.config = self.config;
            h.ping_interval = session.ping_interval();
        });
        tracing::info!(service, "long connection established");
        loop {
            let deadline = tokio::time::Instant::from_std(session.next_deadline());
            let actions = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                    return SessionEnd::Shutdown;
                }
                Some(bytes) = ack_rx.recv() => {
                    if let Err(e) = write_acks(&mut sink, bytes, &mut ack_rx).await {
                        return lost(healthy, format!("writing an ack: {e}"));
                    }
                    continue;
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(bytes))) => {
                        if !healthy {
                            healthy = true;
                            self.health.send_modify(|h| h.failed_attempts = 0);
                        }
                        // Waiters are woken by the first frame only; later
                        // times are read when asked (no wake-up per frame).
                        self.health.send_if_modified(|h| {
                            h.last_frame_at.replace(SystemTime::now()).is_none()
                        });
                        session.on_bytes(&bytes, now())
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| format!(" ({} {})", f.code, f.reason)).unwrap_or_default();
                        return lost(healthy, format!("server closed the connection{why}"));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return lost(healthy, format!("socket error: {e}")),
                    None => return lost(healthy, "socket closed".into()),
                },
                _ = tokio::time::sleep_until(deadline) => session.tick(now()),
            };
            for action in actions {
                match action {
                    Action::Send(frame) => {
                        if let Err(e) = sink.send(Message::Binary(frame.to_bytes().into())).await {
                            return lost(healthy, format!("writing a ping: {e}"));
                        }
                    }
                    Action::Deliver { ack, payload, card } => {
                        let received_at = std::time::Instant::now();
                        let delivery = Delivery {
                            payload,
                            source: Source::Ws,
                            card,
                            received_at,
                            ack: AckHandle::ws(ack, received_at, ack_tx.clone()),
                        };
                        match self.hand_over(delivery).await {
                            Ok(()) => {
                                self.health.send_if_modified(|h| {
                                    h.deliveries += 1;
                                    false // a count read when asked
                                });
                            }
                            Err(Refusal::Full) => {
                                tracing::warn!("delivery queue full; event refused for redelivery");
                            }
                            Err(Refusal::Closed) => return SessionEnd::ConsumerGone,
                        }
                    }
                    Action::ConfigUpdated(config) => {
                        self.config = config;
                        self.health.send_modify(|h| {
                            h.config = config;
                            h.ping_interval = session.ping_interval();
                        });
                    }
                    Action::Reconnect => {
                        return lost(
                            healthy,
                            format!(
                                "no frame for two ping intervals ({:?})",
                                session.ping_interval() * 2
                            ),
                        );
                    }
                    Action::Discard(reason) => {
                        tracing::warn!(%reason, "frame discarded");
                    }
                }
            }
        }
    }
}

/// Writes an ack and every other ack already waiting, with one flush (one
/// write to the socket for a burst of events).
async fn write_acks<S>(
    sink: &mut S,
    first: Vec<u8>,
    more: &mut mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    sink.feed(Message::Binary(first.into())).await?;
    while let Ok(bytes) = more.try_recv() {
        sink.feed(Message::Binary(bytes.into())).await?;
    }
    sink.flush().await
}

/// Socket buffers sized for events of a few KiB: tungstenite zero-fills its
/// read buffer before every read (128 KiB by default), a cost paid per
/// wake-up that dominated at low event rates.
fn socket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn lost(healthy: bool, reason: String) -> SessionEnd {
    SessionEnd::Lost { healthy, reason }
}

fn retryable(code: Option<i64>, msg: String) -> Error {
    Error::Ws {
        code,
        msg,
        failure: Failure::Retryable,
    }
}

/// Asks the platform for a long-connection endpoint without connecting: the
/// check `status --probe` makes that the app may use the long connection
/// (credentials, bot capability, connection limit). The answer's ticket is
/// left unused. Counted in [`Client::stats`] like every discovery.
pub async fn probe_discovery(client: &Client) -> Result<(), Error> {
    discover_counted(client).await.map(drop)
}

/// Discovery, recorded under [`DISCOVERY_ROUTE`].
async fn discover_counted(client: &Client) -> Result<(String, ClientConfig), Error> {
    let result = discover_once(client).await;
    client.record(DISCOVERY_ROUTE, result.as_ref().map(|_| ()));
    result
}

/// `POST {domain}/callback/ws/endpoint` (`locale: zh`): the URL to dial and
/// the server's timers.
async fn discover_once(client: &Client) -> Result<(String, ClientConfig), Error> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        code: i64,
        #[serde(default)]
        msg: String,
        data: Option<Endpoint>,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        #[serde(rename = "URL", default)]
        url: String,
        #[serde(rename = "ClientConfig")]
        client_config: Option<ClientConfig>,
    }
    let resp = client
        .http()
        .post(client.domain().url("/callback/ws/endpoint"))
        .header("locale", "zh")
        .timeout(client.timeout())
        .json(&serde_json::json!({
            "AppID": client.app_id(),
            "AppSecret": client.app_secret(),
        }))
        .send()
        .await
        .map_err(|e| retryable(None, format!("discovery: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| retryable(None, format!("discovery body: {e}")))?;
    if status != 200 {
        return Err(retryable(
            Some(i64::from(status)),
            format!("discovery HTTP {status}: {}", snippet(&body)),
        ));
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|e| retryable(None, format!("discovery answer: {e}")))?;
    if let Some(failure) = classify_discovery(answer.code) {
        return Err(Error::Ws {
            code: Some(answer.code),
            msg: format!("discovery code {}: {}", answer.code, answer.msg),
            failure,
        });
    }
    let endpoint = answer
        .data
        .ok_or_else(|| retryable(None, "discovery answer without data".into()))?;
    if endpoint.url.is_empty() {
        return Err(retryable(None, "discovery answer without URL".into()));
    }
    Ok((endpoint.url, endpoint.client_config.unwrap_or_default()))
}

/// `service_id` from the endpoint URL's query (0 when absent).
fn service_id(url: &Url) -> i32 {
    let found = url
        .query_pairs()
        .find(|(k, _)| k == "service_id")
        .and_then(|(_, v)| v.parse().ok());
    if found.is_none() {
        tracing::warn!("endpoint URL has no numeric service_id; pinging with service 0");
    }
    found.unwrap_or(0)
}

/// Classifies a refused handshake from `handshake-status`,
/// `handshake-autherrcode` and `handshake-msg`.
fn handshake_error(resp: &tungstenite::http::Response<Option<Vec<u8>>>) -> Error {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let status = header("handshake-status").and_then(|v| v.parse::<i64>().ok());
    let autherrcode = header("handshake-autherrcode").and_then(|v| v.parse::<i64>().ok());
    let msg = header("handshake-msg").unwrap_or_default();
    let http = resp.status().as_u16();
    let failure = classify_handshake(http, status, autherrcode);
    Error::Ws {
        code: autherrcode.or(status).or(Some(i64::from(http))),
        msg: format!(
            "handshake refused: HTTP {http}, status {}, autherrcode {}: {msg}",
            status.map_or("-".into(), |s| s.to_string()),
            autherrcode.map_or("-".into(), |s| s.to_string()),
        ),
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_id_from_the_url() {
        let u = Url::parse("wss://h/ws/v2?device_id=d&service_id=42&ticket=x").unwrap();
        assert_eq!(service_id(&u), 42);
        assert_eq!(service_id(&Url::parse("ws://h/ws").unwrap()), 0);
    }

    #[test]
    fn handshake_codes_are_classified() {
        let resp = tungstenite::http::Response::builder()
            .status(400)
            .header("Handshake-Status", "514")
            .header("Handshake-Autherrcode", "1000040350")
            .header("Handshake-Msg", "exceed conn limit")
            .body(None)
            .unwrap();
        let e = handshake_error(&resp);
        assert_eq!(e.code(), Some(1000040350));
        assert!(matches!(
            e,
            Error::Ws {
                failure: Failure::TooManyConnections,
                ..
            }
        ));
        let resp = tungstenite::http::Response::builder()
            .status(403)
            .body(None)
            .unwrap();
        assert!(matches!(
            handshake_error(&resp),
            Error::Ws {
                failure: Failure::Fatal,
                ..
            }
        ));
    }
}
