//! Scan-to-create app registration: the device flow on the accounts host
//! (`POST {accounts}/oauth/v1/app/registration`, form-encoded, no auth).
//!
//! [`begin`] returns a user code and a link to show (as a QR code);
//! [`wait_for_approval`] polls until the user approved, switching to the
//! Lark accounts host when the platform reports `tenant_brand = "lark"`.
//! Poll answers with HTTP 400 and an RFC 8628 `error` are normal results.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::response::snippet;
use crate::{Domain, Error};

const PATH: &str = "/oauth/v1/app/registration";
const ROUTE: &str = "POST /oauth/v1/app/registration";

/// A started registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Secret code for polling.
    pub device_code: String,
    /// Code shown to the user.
    pub user_code: String,
    /// Landing page.
    pub verification_uri: String,
    /// Landing page with the user code (show as a QR code).
    pub verification_uri_complete: String,
    /// Poll interval (default 5 s).
    pub interval: Duration,
    /// Lifetime of the device code (`expires_in` or `expire_in`, default 600 s).
    pub expires_in: Duration,
}

/// The new app's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Approved {
    /// The new app id (`cli_…`).
    pub client_id: String,
    /// The new app secret.
    pub client_secret: String,
    /// The scanning user's `open_id` within the new app.
    pub open_id: String,
    /// `feishu` or `lark`.
    pub tenant_brand: String,
}

impl std::fmt::Debug for Approved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approved")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("open_id", &self.open_id)
            .field("tenant_brand", &self.tenant_brand)
            .finish()
    }
}

impl Approved {
    /// The Open Platform to use with these credentials: Lark or Feishu by
    /// `tenant_brand` when `accounts` is an official host, else `accounts`
    /// itself (the emulator serves both on one base URL).
    pub fn open_domain(&self, accounts: &Domain) -> Domain {
        match (accounts.brand(), self.tenant_brand.as_str()) {
            (None, _) => accounts.clone(),
            (Some(_), "lark") => Domain::lark(),
            (Some(_), _) => Domain::feishu(),
        }
    }
}

/// One poll's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// `authorization_pending`: keep polling.
    Pending,
    /// `slow_down`: add 5 s to the interval.
    SlowDown,
    /// `access_denied`: the user declined.
    Denied,
    /// `expired_token` / `invalid_grant`: start again.
    Expired,
    /// The user is on Lark: continue on the Lark accounts host.
    SwitchToLark,
    /// Done.
    Approved(Approved),
    /// Any other error.
    Failed {
        /// The `error` code.
        error: String,
        /// `error_description`.
        description: String,
    },
}

fn registration_error(error: &str, description: &str) -> Error {
    Error::Config(format!("app registration: {error}: {description}"))
}

async fn post(
    http: &reqwest::Client,
    accounts: &Domain,
    form: &[(&str, &str)],
) -> Result<Value, Error> {
    let resp = http.post(accounts.url(PATH)).form(form).send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(Error::Decode {
            endpoint: ROUTE,
            detail: format!("HTTP {status}: {}", snippet(&body)),
        }),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn seconds(v: &Value, keys: &[&str], default: u64) -> Duration {
    let secs = keys
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// `action=init`: the supported auth methods (optional step).
pub async fn init(http: &reqwest::Client, accounts: &Domain) -> Result<Vec<String>, Error> {
    let v = post(http, accounts, &[("action", "init")]).await?;
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(registration_error(error, &text(&v, "error_description")));
    }
    #[derive(Deserialize)]
    struct Init {
        #[serde(default)]
        supported_auth_methods: Vec<String>,
    }
    serde_json::from_value::<Init>(v)
        .map(|i| i.supported_auth_methods)
        .map_err(|e| Error::Decode {
            endpoint: ROUTE,
            detail: e.to_string(),
        })
}

/// `action=begin`: starts the flow for a `PersonalAgent` app.
pub async fn begin(http: &reqwest::Client, accounts: &Domain) -> Result<Registration, Error> {
    let v = post(
        http,
        accounts,
        &[
            ("action", "begin"),
            ("archetype", "PersonalAgent"),
            ("auth_method", "client_secret"),
            ("request_user_info", "open_id tenant_brand"),
        ],
    )
    .await?;
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(registration_error(error, &text(&v, "error_description")));
    }
    let device_code = text(&v, "device_code");
    if device_code.is_empty() {
        return Err(Error::Decode {
            endpoint: ROUTE,
            detail: "begin answer without device_code".into(),
        });
    }
    Ok(Registration {
        device_code,
        user_code: text(&v, "user_code"),
        verification_uri: text(&v, "verification_uri"),
        verification_uri_complete: text(&v, "verification_uri_complete"),
        interval: seconds(&v, &["interval"], 5),
        expires_in: seconds(&v, &["expires_in", "expire_in"], 600),
    })
}

/// `action=poll`: one poll.
pub async fn poll(
    http: &reqwest::Client,
    accounts: &Domain,
    device_code: &str,
) -> Result<PollOutcome, Error> {
    let v = post(
        http,
        accounts,
        &[("action", "poll"), ("device_code", device_code)],
    )
    .await?;
    Ok(classify_poll(&v))
}

fn classify_poll(v: &Value) -> PollOutcome {
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return match error {
            "authorization_pending" => PollOutcome::Pending,
            "slow_down" => PollOutcome::SlowDown,
            "access_denied" => PollOutcome::Denied,
            "expired_token" | "invalid_grant" => PollOutcome::Expired,
            other => PollOutcome::Failed {
                error: other.to_string(),
                description: text(v, "error_description"),
            },
        };
    }
    let user = v.get("user_info").cloned().unwrap_or(Value::Null);
    let approved = Approved {
        client_id: text(v, "client_id"),
        client_secret: text(v, "client_secret"),
        open_id: text(&user, "open_id"),
        tenant_brand: text(&user, "tenant_brand"),
    };
    if !approved.client_id.is_empty() && !approved.client_secret.is_empty() {
        PollOutcome::Approved(approved)
    } else if approved.tenant_brand == "lark" {
        PollOutcome::SwitchToLark
    } else {
        PollOutcome::Failed {
            error: "unexpected_answer".into(),
            description: "poll answer without credentials".into(),
        }
    }
}

/// Polls until approved, denied, expired or cancelled. Sleeps one interval
/// before each poll (+5 s on `slow_down`, capped at 60 s; +1 s after a
/// network error) and polls again at once on the Lark accounts host when
/// the platform reports a Lark user.
pub async fn wait_for_approval(
    http: &reqwest::Client,
    accounts: &Domain,
    registration: &Registration,
    cancel: &CancellationToken,
) -> Result<Approved, Error> {
    let deadline = tokio::time::Instant::now() + registration.expires_in;
    let mut accounts = accounts.clone();
    let mut interval = registration.interval;
    let mut switched = false;
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(registration_error("cancelled", "stopped by the caller")),
            _ = tokio::time::sleep(wait) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(registration_error("expired_token", "the code expired"));
        }
        wait = interval;
        match poll(http, &accounts, &registration.device_code).await {
            Ok(PollOutcome::Pending) => {}
            Ok(PollOutcome::SlowDown) => {
                interval = (interval + Duration::from_secs(5)).min(Duration::from_secs(60));
                wait = interval;
            }
            Ok(PollOutcome::SwitchToLark) if !switched => {
                switched = true;
                accounts = accounts.switch_to_lark();
                wait = Duration::ZERO;
            }
            Ok(PollOutcome::SwitchToLark) => {}
            Ok(PollOutcome::Approved(approved)) => return Ok(approved),
            Ok(PollOutcome::Denied) => {
                return Err(registration_error("access_denied", "the user declined"))
            }
            Ok(PollOutcome::Expired) => {
                return Err(registration_error("expired_token", "the code expired"))
            }
            Ok(PollOutcome::Failed { error, description }) => {
                return Err(registration_error(&error, &description))
            }
            Err(e) if matches!(e, Error::Http(_)) => {
                tracing::warn!(error = %e, "registration poll failed; retrying");
                wait = interval + Duration::from_secs(1);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn poll_answers() {
        assert_eq!(
            classify_poll(&json!({"error": "authorization_pending"})),
            PollOutcome::Pending
        );
        assert_eq!(
            classify_poll(&json!({"error": "invalid_grant"})),
            PollOutcome::Expired
        );
        assert_eq!(
            classify_poll(
                &json!({"client_id": "cli_1", "client_secret": "", "user_info": {"tenant_brand": "lark"}})
            ),
            PollOutcome::SwitchToLark
        );
        let PollOutcome::Approved(a) = classify_poll(&json!({
            "client_id": "cli_1", "client_secret": "s3",
            "user_info": {"open_id": "ou_1", "tenant_brand": "feishu"}
        })) else {
            panic!()
        };
        assert_eq!(a.open_id, "ou_1");
        assert!(!format!("{a:?}").contains("s3"));
        assert_eq!(
            a.open_domain(&Domain::feishu().accounts()),
            Domain::feishu()
        );
    }
}
