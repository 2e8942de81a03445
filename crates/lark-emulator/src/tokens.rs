//! Tenant/app access tokens: issuing with the reuse rule, expiry, checks.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ids;
use crate::state::{Core, State, TokenEntry};

/// Token endpoints routes (for stats).
pub const TENANT_ROUTE: &str = "POST /open-apis/auth/v3/tenant_access_token/internal";
/// App token route.
pub const APP_ROUTE: &str = "POST /open-apis/auth/v3/app_access_token/internal";

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    app_secret: String,
}

impl State {
    /// Checks app credentials: 10003 unknown app / missing fields, 10014 wrong secret.
    pub fn check_credentials(
        &self,
        app_id: &str,
        app_secret: &str,
    ) -> Result<(), (i64, &'static str)> {
        if app_id.is_empty() || app_secret.is_empty() {
            return Err((10003, "invalid param"));
        }
        match self.apps.get(app_id) {
            None => Err((10003, "invalid param")),
            Some(app) if app.info.app_secret != app_secret => Err((10014, "app secret invalid")),
            Some(_) => Ok(()),
        }
    }

    /// The app's current token if it has at least `margin` left, else a new
    /// one (the old one stays valid until its own expiry).
    pub fn issue_token(&mut self, core: &Core, app_id: &str) -> (String, u64) {
        let now = Instant::now();
        let current = self.apps.get(app_id).and_then(|a| a.current_token.clone());
        if let Some(tok) = current {
            if let Some(entry) = self.tokens.get(&tok) {
                let left = entry.expires.saturating_duration_since(now);
                if left >= core.cfg.token_reuse_margin && !left.is_zero() {
                    return (tok, left.as_secs());
                }
            }
        }
        if self.tokens.len() > 4096 {
            self.tokens.retain(|_, e| e.expires > now);
        }
        let tok = ids::token();
        self.tokens.insert(
            tok.clone(),
            TokenEntry {
                app_id: app_id.to_string(),
                expires: now + core.cfg.token_ttl,
            },
        );
        if let Some(app) = self.apps.get_mut(app_id) {
            app.current_token = Some(tok.clone());
        }
        (tok, core.cfg.token_ttl.as_secs())
    }

    /// Resolves an `Authorization` header to the app id.
    pub fn check_token(&mut self, authorization: Option<&str>) -> Result<String, ApiError> {
        let missing = || {
            ApiError::bad(
                99991661,
                "Missing access token for authorization. Please make a request with token attached.",
            )
        };
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        if token.starts_with("u-") {
            return Err(ApiError::bad(
                99991668,
                "Invalid access token for authorization (user access token not accepted).",
            ));
        }
        if !token.starts_with("t-") {
            return Err(ApiError::bad(
                99991671,
                "Invalid token: must start with t- or u-",
            ));
        }
        let invalid = || {
            ApiError::bad(
                99991663,
                "Invalid access token for authorization. Please make a request with token attached.",
            )
        };
        let entry = self.tokens.get(token).ok_or_else(invalid)?;
        if entry.expires <= Instant::now() {
            self.tokens.remove(token);
            return Err(invalid());
        }
        Ok(entry.app_id.clone())
    }
}

fn token_response(core: &Core, body: &[u8], route: &str, with_app_token: bool) -> Response {
    let creds: Credentials = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(_) => return Json(json!({"code": 10003, "msg": "invalid param"})).into_response(),
    };
    let mut st = core.lock();
    if let Some(app) = st.apps.get_mut(&creds.app_id) {
        app.counters.api_call(route);
    }
    if let Err((code, msg)) = st.check_credentials(&creds.app_id, &creds.app_secret) {
        return Json(json!({"code": code, "msg": msg})).into_response();
    }
    let (token, expire) = st.issue_token(core, &creds.app_id);
    let mut out: Value =
        json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire});
    if with_app_token {
        out["app_access_token"] = Value::String(token);
    }
    Json(out).into_response()
}

/// `POST /open-apis/auth/v3/tenant_access_token/internal`.
pub async fn tenant_token(AxState(core): AxState<Arc<Core>>, body: Bytes) -> Response {
    token_response(&core, &body, TENANT_ROUTE, false)
}

/// `POST /open-apis/auth/v3/app_access_token/internal`.
pub async fn app_token(AxState(core): AxState<Arc<Core>>, body: Bytes) -> Response {
    token_response(&core, &body, APP_ROUTE, true)
}
