//! The tenant access token cache.
//!
//! A token is reused until it has less than [`REFRESH_MARGIN`] left (the
//! platform hands out a fresh 2-hour token from then on). Concurrent callers
//! share one refresh: the cache is behind an async mutex held across the fetch.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Domain, Error};

/// Refresh when less than this is left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30 * 60);

struct Cached {
    token: String,
    fetched_at: Instant,
    lifetime: Duration,
}

/// Fetches and caches `tenant_access_token` for one app.
pub struct TokenCache {
    http: reqwest::Client,
    domain: Domain,
    app_id: String,
    app_secret: String,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("domain", &self.domain)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    tenant_access_token: String,
    #[serde(default)]
    expire: u64,
}

impl TokenCache {
    /// A cache for one app.
    pub fn new(
        http: reqwest::Client,
        domain: Domain,
        app_id: &str,
        app_secret: &str,
    ) -> TokenCache {
        TokenCache {
            http,
            domain,
            app_id: app_id.to_string(),
            app_secret: app_secret.to_string(),
            cached: Mutex::new(None),
        }
    }

    /// A valid token, fetched when none is cached or the cached one is near expiry.
    pub async fn get(&self) -> Result<String, Error> {
        let mut slot = self.cached.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.fetched_at.elapsed() + REFRESH_MARGIN < c.lifetime {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *slot = Some(fresh);
        Ok(token)
    }

    /// Forgets `token` (after 99991663 and friends) unless a newer one replaced it.
    pub async fn invalidate(&self, token: &str) {
        let mut slot = self.cached.lock().await;
        if slot.as_ref().is_some_and(|c| c.token == token) {
            *slot = None;
        }
    }

    async fn fetch(&self) -> Result<Cached, Error> {
        let resp = self
            .http
            .post(
                self.domain
                    .url("/open-apis/auth/v3/tenant_access_token/internal"),
            )
            .json(&serde_json::json!({"app_id": self.app_id, "app_secret": self.app_secret}))
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: TokenResponse = resp.json().await?;
        if body.code != 0 || body.tenant_access_token.is_empty() {
            return Err(Error::Api {
                code: body.code,
                msg: body.msg,
                status,
            });
        }
        Ok(Cached {
            token: body.tenant_access_token,
            fetched_at: Instant::now(),
            lifetime: Duration::from_secs(body.expire),
        })
    }
}
