//! The admin listener (loopback by default): `/healthz`, `/metrics` and a
//! small operator API (status, pairing, send). Write endpoints require the
//! bearer token when `admin.token` is set. Browsers on loopback pages (the
//! demo's chat page) may call it: CORS is allowed for `http://127.0.0.1:*`
//! and `http://localhost:*` origins only.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lark_client::{OutgoingMessage, ReceiveIdType, WsState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::metrics::{Exposition, Metrics};
use crate::gateway::{now_ms, AccountRuntime, AccountState};
use crate::secret::Secret;
use crate::store::Store;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The running accounts.
    pub accounts: Vec<Arc<AccountRuntime>>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Required bearer token for write endpoints.
    pub token: Option<Secret>,
    /// When the gateway started.
    pub started: std::time::Instant,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let write = Router::new()
        .route("/api/pairing/{code}/approve", post(approve))
        .route("/api/pairing/{code}/reject", post(reject))
        .route("/api/send", post(send))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/pairing", get(pairings))
        .merge(write)
        .layer(middleware::from_fn(loopback_cors))
        .with_state(state)
}

fn age_secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs())
}

fn unix_secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// Whether an account serves: ready, and (long connection) heard from
/// within three ping intervals.
fn account_ok(rt: &AccountRuntime) -> (bool, Value) {
    let s = rt.status();
    let (state, detail) = match &s.state {
        AccountState::Starting => ("starting", None),
        AccountState::Ready => ("ready", None),
        AccountState::Degraded(d) => ("degraded", Some(d.clone())),
        AccountState::Failed(d) => ("failed", Some(d.clone())),
        AccountState::Stopped => ("stopped", None),
    };
    let mut ok = s.state == AccountState::Ready;
    let mut conn = Value::Null;
    if let Some(h) = &s.connection {
        let silent_for = age_secs(h.last_frame_at);
        let limit = h.ping_interval.as_secs().saturating_mul(3).max(30);
        let silent = silent_for.is_some_and(|a| a > limit);
        ok &= h.state == WsState::Connected && !silent;
        conn = json!({
            "state": format!("{:?}", h.state).to_lowercase(),
            "connected_since": unix_secs(h.connected_since),
            "last_frame_age_secs": silent_for,
            "silent": silent,
            "reconnects": h.reconnects,
            "failed_attempts": h.failed_attempts,
            "last_error": h.last_error,
            "deliveries": h.deliveries,
        });
    }
    let last_event_age = (s.last_event_ms > 0).then(|| (now_ms() - s.last_event_ms).max(0) / 1000);
    let body = json!({
        "name": s.name,
        "app_id": s.app_id,
        "mode": match s.mode { crate::config::Mode::Websocket => "websocket", crate::config::Mode::Webhook => "webhook" },
        "state": state,
        "detail": detail,
        "ok": ok,
        "bot_open_id": s.bot_open_id,
        "bot_name": s.bot_name,
        "connection": conn,
        "last_event_age_secs": last_event_age,
        "running_turns": s.running_turns,
        "waiting": s.waiting,
    });
    (ok, body)
}

fn status_body(state: &AdminState) -> (bool, Value) {
    let mut all_ok = true;
    let accounts: Vec<Value> = state
        .accounts
        .iter()
        .map(|a| {
            let (ok, body) = account_ok(a);
            all_ok &= ok;
            body
        })
        .collect();
    let body = json!({
        "status": if all_ok { "ok" } else { "degraded" },
        "uptime_secs": state.started.elapsed().as_secs(),
        "accounts": accounts,
    });
    (all_ok, body)
}

async fn healthz(State(state): State<AdminState>) -> Response {
    let (ok, body) = status_body(&state);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn status(State(state): State<AdminState>) -> Json<Value> {
    Json(status_body(&state).1)
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut out = Exposition::default();
    state.metrics.render(&mut out);
    live_families(&state, &mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
        .into_response()
}

/// Families read from their owners at scrape time.
fn live_families(state: &AdminState, out: &mut Exposition) {
    let mut connected = Vec::new();
    let mut reconnects = Vec::new();
    let mut running = Vec::new();
    let mut waiting = Vec::new();
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    for a in &state.accounts {
        let s = a.status();
        let name = s.name.clone();
        let up = s.state == AccountState::Ready
            && s.connection
                .as_ref()
                .is_none_or(|h| h.state == WsState::Connected);
        connected.push((vec![name.clone()], f64::from(u8::from(up))));
        if let Some(h) = &s.connection {
            reconnects.push((vec![name.clone()], h.reconnects as f64));
        }
        running.push((vec![name.clone()], s.running_turns as f64));
        waiting.push((vec![name.clone()], s.waiting as f64));
        for e in a.client().stats() {
            calls.push((vec![name.clone(), e.endpoint.to_string()], e.calls as f64));
            for (code, n) in &e.errors {
                errors.push((
                    vec![name.clone(), e.endpoint.to_string(), code.to_string()],
                    *n as f64,
                ));
            }
        }
    }
    out.family(
        "larkgate_connected",
        "Whether the account is connected and ready.",
        "gauge",
        &["account"],
        &connected,
    );
    out.family(
        "larkgate_reconnects_total",
        "Long connections lost and re-established.",
        "counter",
        &["account"],
        &reconnects,
    );
    out.family(
        "larkgate_turns_running",
        "Sessions with a running agent turn.",
        "gauge",
        &["account"],
        &running,
    );
    out.family(
        "larkgate_queue_waiting",
        "Messages waiting behind running turns.",
        "gauge",
        &["account"],
        &waiting,
    );
    out.family(
        "larkgate_api_calls_total",
        "Platform API calls made, per endpoint.",
        "counter",
        &["account", "endpoint"],
        &calls,
    );
    out.family(
        "larkgate_api_errors_total",
        "Platform API errors, per endpoint and code.",
        "counter",
        &["account", "endpoint", "code"],
        &errors,
    );
}

async fn pairings(State(state): State<AdminState>) -> Response {
    match state.store.list_pairings(None, now_ms()).await {
        Ok(list) => Json(
            list.into_iter()
                .map(|p| json!({"code": p.code, "account": p.account, "open_id": p.open_id, "created_ms": p.created_ms, "expires_ms": p.expires_ms}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn approve(State(state): State<AdminState>, Path(code): Path<String>) -> Response {
    let code = crate::policy::pairing::normalize_code(&code);
    match state.store.approve_pairing(&code, now_ms()).await {
        Ok(Some(p)) => {
            tracing::info!(
                "[lark] [{}] pairing {} approved: {} may talk to the bot",
                p.account,
                p.code,
                p.open_id
            );
            Json(json!({"approved": {"code": p.code, "account": p.account, "open_id": p.open_id}}))
                .into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no pending pairing with that code (it may have expired)",
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn reject(State(state): State<AdminState>, Path(code): Path<String>) -> Response {
    let code = crate::policy::pairing::normalize_code(&code);
    match state.store.reject_pairing(&code).await {
        Ok(Some(p)) => {
            Json(json!({"rejected": {"code": p.code, "account": p.account, "open_id": p.open_id}}))
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no pending pairing with that code"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /api/send` body.
#[derive(Deserialize)]
struct SendBody {
    account: Option<String>,
    to: String,
    text: String,
}

async fn send(State(state): State<AdminState>, Json(body): Json<SendBody>) -> Response {
    let account = match &body.account {
        Some(name) => state.accounts.iter().find(|a| a.name() == name),
        None => state.accounts.first(),
    };
    let Some(account) = account else {
        return error(StatusCode::NOT_FOUND, "no such account");
    };
    let msg = OutgoingMessage::text(&body.text);
    match account
        .client()
        .send_message(ReceiveIdType::infer(&body.to), &body.to, &msg, None)
        .await
    {
        Ok(m) => Json(json!({"message_id": m.message_id, "chat_id": m.chat_id})).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, &crate::diagnose::explain(&e)),
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

async fn require_token(
    State(state): State<AdminState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if lark_wire::webhook::verify_token(token.expose(), given).is_err() {
            return error(
                StatusCode::UNAUTHORIZED,
                "admin token required (Authorization: Bearer …)",
            );
        }
    }
    next.run(req).await
}

fn loopback_origin(headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let s = origin.to_str().ok()?;
    let host = s
        .strip_prefix("http://")?
        .split(':')
        .next()
        .unwrap_or_default();
    matches!(host, "127.0.0.1" | "localhost").then(|| origin.clone())
}

async fn loopback_cors(req: Request, next: Next) -> Response {
    let origin = loopback_origin(req.headers());
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(o) = origin {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, authorization"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(o) = origin {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    resp
}
