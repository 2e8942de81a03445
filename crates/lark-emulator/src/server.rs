//! The HTTP server: routes, the platform middleware (token check, call
//! counting, injected failures, app rate limit, `X-Tt-Logid`), background
//! tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, map_response, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::registration::LarkHost;
use crate::state::Core;
use crate::{bench, cardkit, control, ids, im, ratelimit, registration, tokens, ui, ws};

/// The app a request's token belongs to (set by the middleware).
#[derive(Clone, Debug)]
pub struct AppCtx(pub String);

/// Uploads up to 30 MB plus multipart overhead; base64 in the control API.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

fn route_key(req: &Request, matched: Option<&MatchedPath>) -> (String, String) {
    let method = req.method().as_str();
    let path = req.uri().path();
    let route = matched.map(|m| m.as_str()).unwrap_or(path);
    (format!("{method} {route}"), format!("{method} {path}"))
}

/// HTTP 429 + `x-ogw-ratelimit-*` + code 99991400.
fn rate_limited(limit: u32, reset: u64) -> Response {
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"code": 99991400, "msg": "request trigger frequency limit"})),
    )
        .into_response();
    let headers = res.headers_mut();
    headers.insert("x-ogw-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ogw-ratelimit-reset", HeaderValue::from(reset));
    res
}

/// Authenticated `/open-apis` routes.
async fn open_api_layer(
    AxState(core): AxState<Arc<Core>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let (route, actual) = route_key(&req, matched.as_ref());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let app_id = {
        let mut st = core.lock();
        let app_id = match st.check_token(auth.as_deref()) {
            Ok(id) => id,
            Err(e) => return e.into_response(),
        };
        if let Some(app) = st.apps.get_mut(&app_id) {
            app.counters.api_call(&route);
        }
        if let Some(err) = st.faults.take_call_failure(&route, &actual) {
            return err.into_response();
        }
        let limit = core.cfg.app_rate_limit;
        if let Some(app) = st.apps.get_mut(&app_id) {
            if let Err(reset) = ratelimit::take(&mut app.api_bucket, limit, Instant::now()) {
                return rate_limited(limit.unwrap_or(1), reset);
            }
        }
        app_id
    };
    req.extensions_mut().insert(AppCtx(app_id));
    next.run(req).await
}

/// Unauthenticated platform routes (tokens, discovery, registration).
async fn public_layer(
    AxState(core): AxState<Arc<Core>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let (route, actual) = route_key(&req, matched.as_ref());
    if let Some(err) = core.lock().faults.take_call_failure(&route, &actual) {
        return err.into_response();
    }
    next.run(req).await
}

async fn add_log_id(mut res: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&ids::log_id()) {
        res.headers_mut().insert("x-tt-logid", v);
    }
    res
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 404, "msg": "404 page not found"})),
    )
        .into_response()
}

/// The platform (one brand host).
fn platform(core: &Arc<Core>) -> Router<Arc<Core>> {
    let open = Router::new()
        .route("/open-apis/im/v1/messages", post(im::send))
        .route(
            "/open-apis/im/v1/messages/{message_id}",
            get(im::get)
                .put(im::edit)
                .patch(im::patch)
                .delete(im::recall),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/reply",
            post(im::reply_to),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/resources/{file_key}",
            get(im::resource),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/reactions",
            post(im::react).get(im::reactions),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}",
            delete(im::unreact),
        )
        .route("/open-apis/im/v1/images", post(im::upload_image))
        .route("/open-apis/im/v1/files", post(im::upload_file))
        .route("/open-apis/im/v1/chats/{chat_id}", get(im::chat))
        .route("/open-apis/contact/v3/users/{user_id}", get(im::user))
        .route("/open-apis/bot/v3/info", get(im::bot_info))
        .route("/open-apis/cardkit/v1/cards", post(cardkit::create))
        .route(
            "/open-apis/cardkit/v1/cards/id_convert",
            post(cardkit::id_convert),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}",
            put(cardkit::update),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}/settings",
            patch(cardkit::settings),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}/batch_update",
            post(cardkit::batch_update),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}/elements",
            post(cardkit::add),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}",
            put(cardkit::replace)
                .patch(cardkit::patch_element)
                .delete(cardkit::delete_element),
        )
        .route(
            "/open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content",
            put(cardkit::stream_content),
        )
        .route_layer(from_fn_with_state(Arc::clone(core), open_api_layer));
    let public = Router::new()
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(tokens::tenant_token),
        )
        .route(
            "/open-apis/auth/v3/app_access_token/internal",
            post(tokens::app_token),
        )
        .route("/callback/ws/endpoint", post(ws::discovery))
        .route(
            "/oauth/v1/app/registration",
            post(registration::registration),
        )
        .route_layer(from_fn_with_state(Arc::clone(core), public_layer));
    open.merge(public)
        .route("/page/launcher", get(registration::launcher))
}

fn control_routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/_emulator", get(control::index))
        .route("/_emulator/messages", post(control::post_message))
        .route(
            "/_emulator/messages/{message_id}/reactions",
            post(control::react),
        )
        .route(
            "/_emulator/messages/{message_id}/recall",
            post(control::recall),
        )
        .route("/_emulator/events", post(control::raw_event))
        .route(
            "/_emulator/cards/{message_id}/action",
            post(control::card_action),
        )
        .route("/_emulator/chats", get(control::chats))
        .route(
            "/_emulator/chats/{chat_id}/messages",
            get(control::chat_messages),
        )
        .route(
            "/_emulator/apps",
            get(control::apps).post(control::create_app),
        )
        .route(
            "/_emulator/apps/{app_id}/webhook",
            put(control::set_webhook).delete(control::clear_webhook),
        )
        .route("/_emulator/faults", post(control::faults))
        .route("/_emulator/stats", get(control::stats))
        .route("/_emulator/bench/push", post(bench::push))
        .route(
            "/_emulator/bench/timeline",
            get(bench::timeline).post(bench::timeline_switch),
        )
        .route("/_emulator/registrations/approve", post(control::approve))
}

/// Every route: the Feishu host at `/`, the Lark host at `/lark`, the
/// WebSocket at `/ws/v2`, the control API at `/_emulator`, the chat page at
/// `/` and `/ui`.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .merge(platform(&core))
        .nest("/lark", platform(&core).layer(Extension(LarkHost)))
        .route("/ws/v2", get(ws::upgrade))
        .merge(control_routes())
        .merge(ui::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(map_response(add_log_id))
        .with_state(core)
}

/// Background task: closes timed-out streaming cards, forgets old uuids,
/// expired tokens and registrations.
pub async fn sweeper(core: Arc<Core>) {
    let period = (core.cfg.streaming_auto_close / 2)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = core.cancel.cancelled() => return,
        }
        let now = Instant::now();
        let mut st = core.lock();
        st.auto_close_cards(now, core.cfg.streaming_auto_close);
        st.uuids
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < Duration::from_secs(3600));
        st.tokens.retain(|_, t| t.expires > now);
        st.tickets.retain(|_, t| t.expires > now);
        st.registrations
            .retain(|_, r| r.approved.is_some() || r.expires + Duration::from_secs(3600) > now);
    }
}
