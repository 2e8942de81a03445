//! The long connection: endpoint discovery (`POST /callback/ws/endpoint`)
//! and the pbbp2 WebSocket server (pings, event frames, acks).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use lark_wire::frame::{Frame, FrameType, METHOD_CONTROL, METHOD_DATA};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::ids;
use crate::state::{Conn, Core, Ticket, WsOut};

/// Discovery route (for stats).
pub const DISCOVERY_ROUTE: &str = "POST /callback/ws/endpoint";
/// Code: more than the allowed connections for the app.
pub const EXCEED_CONN_LIMIT: i64 = 1_000_040_350;
/// Handshake auth sub-code the emulator uses for an unknown/used ticket.
pub const BAD_TICKET: i64 = 1_000_040_347;
/// How long a discovery ticket may wait before the handshake.
const TICKET_TTL: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct DiscoveryRequest {
    #[serde(rename = "AppID", default)]
    app_id: String,
    #[serde(rename = "AppSecret", default)]
    app_secret: String,
}

/// A refused handshake: status, auth sub-code, message.
struct Refused(u16, Option<i64>, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let Refused(status, autherrcode, msg) = self;
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN))
            .header("handshake-status", status.to_string())
            .header("handshake-msg", msg.clone());
        if let Some(code) = autherrcode {
            builder = builder.header("handshake-autherrcode", code.to_string());
        }
        builder
            .body(Body::from(msg))
            .unwrap_or_else(|_| StatusCode::FORBIDDEN.into_response())
    }
}

impl Core {
    fn discover(&self, body: &[u8]) -> serde_json::Value {
        let Ok(req) = serde_json::from_slice::<DiscoveryRequest>(body) else {
            return json!({"code": 10003, "msg": "invalid param"});
        };
        let mut st = self.lock();
        if let Some(app) = st.apps.get_mut(&req.app_id) {
            app.counters.api_call(DISCOVERY_ROUTE);
        }
        if let Some((code, msg)) = st.faults.take_discovery() {
            return json!({"code": code, "msg": msg});
        }
        if req.app_id.is_empty() || req.app_secret.is_empty() {
            return json!({"code": 1_000_040_344, "msg": "app_id or app_secret is null"});
        }
        if let Err((code, msg)) = st.check_credentials(&req.app_id, &req.app_secret) {
            return json!({"code": code, "msg": msg});
        }
        let Some(app) = st.apps.get(&req.app_id) else {
            return json!({"code": 10003, "msg": "invalid param"});
        };
        if app.conns.len() >= self.cfg.max_connections_per_app {
            return json!({"code": EXCEED_CONN_LIMIT, "msg": "exceed connection limit"});
        }
        let service_id = app.service_id;
        let now = Instant::now();
        if st.tickets.len() > 1024 {
            st.tickets.retain(|_, t| t.expires > now);
        }
        let ticket = ids::hex(32);
        let device_id = ids::digits(19);
        st.tickets.insert(
            ticket.clone(),
            Ticket {
                app_id: req.app_id,
                device_id: device_id.clone(),
                expires: now + TICKET_TTL,
            },
        );
        let url = format!(
            "{}?device_id={device_id}&service_id={service_id}&ticket={ticket}",
            self.ws_url
        );
        json!({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": self.cfg.client_config_json()}})
    }

    /// Checks a handshake and registers the connection.
    fn admit(
        &self,
        query: &HashMap<String, String>,
    ) -> Result<(u64, String, mpsc::UnboundedReceiver<WsOut>), Refused> {
        let mut st = self.lock();
        if let Some(r) = st.faults.take_refusal() {
            return Err(Refused(r.status, r.autherrcode, r.msg));
        }
        let bad_ticket = || Refused(514, Some(BAD_TICKET), "invalid or used ticket".to_string());
        let ticket_id = query.get("ticket").ok_or_else(bad_ticket)?;
        let ticket = st.tickets.remove(ticket_id).ok_or_else(bad_ticket)?;
        if ticket.expires <= Instant::now() || query.get("device_id") != Some(&ticket.device_id) {
            return Err(bad_ticket());
        }
        let limit = self.cfg.max_connections_per_app;
        let conn_id = st.next_conn;
        let app = st.apps.get_mut(&ticket.app_id).ok_or_else(bad_ticket)?;
        if app.conns.len() >= limit {
            return Err(Refused(
                514,
                Some(EXCEED_CONN_LIMIT),
                "exceed connection limit".to_string(),
            ));
        }
        app.conns.push(conn_id);
        app.counters.stats.connections_total += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        st.next_conn += 1;
        st.conns.insert(
            conn_id,
            Conn {
                app_id: ticket.app_id.clone(),
                tx,
            },
        );
        Ok((conn_id, ticket.app_id, rx))
    }

    /// Handles one binary frame from a client; returns a reply frame (pong).
    fn on_frame(&self, app_id: &str, bytes: &[u8]) -> Option<Bytes> {
        let frame = Frame::decode_bytes(bytes).ok()?;
        let mut st = self.lock();
        match frame.method {
            METHOD_CONTROL if frame.frame_type() == FrameType::Ping => {
                if let Some(app) = st.apps.get_mut(app_id) {
                    app.counters.stats.pings += 1;
                }
                let config = serde_json::to_vec(&self.cfg.client_config_json()).ok();
                Some(Bytes::from(Frame::pong(frame.service, config).to_bytes()))
            }
            METHOD_DATA => {
                self.on_ack(&mut st, app_id, &frame);
                None
            }
            _ => None,
        }
    }
}

async fn run_conn(
    core: Arc<Core>,
    socket: WebSocket,
    conn_id: u64,
    app_id: String,
    mut rx: mpsc::UnboundedReceiver<WsOut>,
) {
    {
        let mut st = core.lock();
        core.flush_backlog(&mut st, &app_id);
    }
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(WsOut::Frame(bytes)) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(WsOut::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(reply) = core.on_frame(&app_id, &bytes) {
                        if sink.send(Message::Binary(reply)).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = core.cancel.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    core.lock().remove_conn(conn_id);
}

/// `POST /callback/ws/endpoint`.
pub async fn discovery(AxState(core): AxState<Arc<Core>>, body: Bytes) -> Response {
    Json(core.discover(&body)).into_response()
}

/// `GET /ws/v2?device_id=&service_id=&ticket=` (WebSocket upgrade).
pub async fn upgrade(
    AxState(core): AxState<Arc<Core>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    match core.admit(&query) {
        Err(refused) => refused.into_response(),
        Ok((conn_id, app_id, rx)) => {
            let on_fail = Arc::clone(&core);
            ws.read_buffer_size(16 * 1024)
                .on_failed_upgrade(move |_| on_fail.lock().remove_conn(conn_id))
                .on_upgrade(move |socket| run_conn(core, socket, conn_id, app_id, rx))
        }
    }
}
