//! The app registration device flow (`POST /oauth/v1/app/registration`:
//! init / begin / poll), approved through the control API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::error::Error;
use crate::ids;
use crate::model::{ApproveRegistration, ApprovedRegistration, NewApp};
use crate::state::{Core, Registration};

/// Marks requests that came in through the Lark host (`/lark` prefix).
#[derive(Clone, Copy, Debug)]
pub struct LarkHost;

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let pick = || {
        (0..4)
            .map(|_| LETTERS[rand::random::<usize>() % LETTERS.len()] as char)
            .collect::<String>()
    };
    format!("{}-{}", pick(), pick())
}

impl Core {
    fn registration_begin(&self, base: &str) -> Value {
        let device_code = ids::alnum(40);
        let code = user_code();
        let expires_in = self.cfg.registration_expires_in_secs;
        self.lock().registrations.insert(
            device_code.clone(),
            Registration {
                device_code: device_code.clone(),
                user_code: code.clone(),
                expires: Instant::now() + Duration::from_secs(expires_in),
                approved: None,
            },
        );
        json!({
            "device_code": device_code,
            "user_code": code,
            "verification_uri": format!("{base}/page/launcher"),
            "verification_uri_complete": format!("{base}/page/launcher?user_code={code}"),
            "interval": self.cfg.registration_interval_secs,
            "expires_in": expires_in,
            "expire_in": expires_in,
        })
    }

    fn registration_poll(&self, device_code: &str, lark_host: bool) -> Response {
        let mut st = self.lock();
        if let Some(error) = st.faults.take_registration() {
            return oauth_error(&error, "injected by the emulator");
        }
        let Some(reg) = st.registrations.get(device_code) else {
            return oauth_error("invalid_grant", "unknown device_code");
        };
        let Some((app_id, brand, open_id)) = reg.approved.clone() else {
            if reg.expires <= Instant::now() {
                return oauth_error("expired_token", "the device code has expired");
            }
            return oauth_error("authorization_pending", "waiting for the user to confirm");
        };
        let secret = st
            .apps
            .get(&app_id)
            .map(|a| a.info.app_secret.clone())
            .unwrap_or_default();
        // A Lark tenant's secret is only handed out by the Lark accounts host.
        let secret = if brand == "lark" && !lark_host {
            String::new()
        } else {
            secret
        };
        Json(json!({
            "client_id": app_id,
            "client_secret": secret,
            "user_info": {"open_id": open_id, "tenant_brand": brand},
        }))
        .into_response()
    }

    /// Approves a pending registration: creates the app and the user.
    pub fn approve_registration(
        &self,
        req: ApproveRegistration,
    ) -> Result<ApprovedRegistration, Error> {
        let brand = req.tenant_brand.unwrap_or_else(|| "feishu".to_string());
        let mut st = self.lock();
        let device_code = st
            .registrations
            .values()
            .find(|r| {
                req.device_code.as_deref() == Some(r.device_code.as_str())
                    || req.user_code.as_deref() == Some(r.user_code.as_str())
            })
            .map(|r| r.device_code.clone())
            .ok_or_else(|| Error::NotFound("registration (user_code / device_code)".into()))?;
        let reg = st
            .registrations
            .get(&device_code)
            .ok_or_else(|| Error::NotFound("registration".into()))?;
        if let Some((app_id, _, open_id)) = reg.approved.clone() {
            let app = st.app(&app_id)?.info.clone();
            return Ok(ApprovedRegistration {
                app,
                user_open_id: open_id,
            });
        }
        if reg.expires <= Instant::now() {
            return Err(Error::Invalid("the registration has expired".into()));
        }
        let app = st.create_app(
            NewApp {
                app_id: None,
                app_secret: None,
                bot_name: req.bot_name,
                brand: Some(brand.clone()),
            },
            false,
        )?;
        let open_id = st.ensure_user(None, Some("Registrant"));
        if let Some(reg) = st.registrations.get_mut(&device_code) {
            reg.approved = Some((app.app_id.clone(), brand, open_id.clone()));
        }
        Ok(ApprovedRegistration {
            app,
            user_open_id: open_id,
        })
    }
}

/// `POST /oauth/v1/app/registration` (form-encoded `action=init|begin|poll`).
pub async fn registration(
    AxState(core): AxState<Arc<Core>>,
    lark: Option<Extension<LarkHost>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        );
    };
    match form.get("action").map(String::as_str) {
        Some("init") => Json(json!({"supported_auth_methods": ["client_secret"]})).into_response(),
        Some("begin") => {
            let base = if lark.is_some() {
                format!("{}/lark", core.base_url)
            } else {
                core.base_url.clone()
            };
            Json(core.registration_begin(&base)).into_response()
        }
        Some("poll") => match form.get("device_code") {
            Some(code) => core.registration_poll(code, lark.is_some()),
            None => oauth_error("invalid_request", "device_code is required"),
        },
        _ => oauth_error("invalid_request", "action must be init, begin or poll"),
    }
}

/// `GET /page/launcher?user_code=`: a page where a person approves.
pub async fn launcher(Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let code: String = q
        .get("user_code")
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html><meta charset="utf-8"><title>Create bot app</title>
<h1>Create a bot app (emulator)</h1><p>User code: <b id="c">{code}</b></p>
<button onclick="go('feishu')">Approve (Feishu)</button> <button onclick="go('lark')">Approve (Lark)</button>
<pre id="out"></pre>
<script>
async function go(brand) {{
  const r = await fetch('/_emulator/registrations/approve', {{method: 'POST',
    headers: {{'Content-Type': 'application/json'}},
    body: JSON.stringify({{user_code: document.getElementById('c').textContent, tenant_brand: brand}})}});
  document.getElementById('out').textContent = JSON.stringify(await r.json(), null, 2);
}}
</script>"#
    ))
}
