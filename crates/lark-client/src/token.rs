//! The tenant access token cache.
//!
//! A token is reused until it has less than [`REFRESH_MARGIN`] left (the
//! platform hands out a fresh 2-hour token from then on). Concurrent callers
//! share one refresh: the cache is behind an async mutex held across the fetch.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::response::{check_envelope, Meta};
use crate::stats::Stats;
use crate::{Domain, Error};

/// The route template under which token fetches are counted.
pub const TOKEN_ROUTE: &str = "POST /auth/v3/tenant_access_token/internal";

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
    stats: Option<Arc<Stats>>,
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
            stats: None,
        }
    }

    /// Counts token fetches in the client's endpoint statistics.
    pub(crate) fn with_stats(mut self, stats: Arc<Stats>) -> TokenCache {
        self.stats = Some(stats);
        self
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
        let result = self.fetch_once().await;
        if let Some(stats) = &self.stats {
            stats.record(TOKEN_ROUTE, result.as_ref().map(|_| ()));
        }
        result
    }

    async fn fetch_once(&self) -> Result<Cached, Error> {
        let resp = self
            .http
            .post(
                self.domain
                    .url("/open-apis/auth/v3/tenant_access_token/internal"),
            )
            .json(&serde_json::json!({"app_id": self.app_id, "app_secret": self.app_secret}))
            .send()
            .await?;
        let meta = Meta::new(resp.status().as_u16(), resp.headers());
        let body = resp.bytes().await?;
        let value = check_envelope(&meta, &body, TOKEN_ROUTE)?;
        let parsed: TokenResponse = serde_json::from_value(value).map_err(|e| Error::Decode {
            endpoint: TOKEN_ROUTE,
            detail: e.to_string(),
        })?;
        if parsed.tenant_access_token.is_empty() {
            return Err(Error::Decode {
                endpoint: TOKEN_ROUTE,
                detail: "no tenant_access_token".into(),
            });
        }
        Ok(Cached {
            token: parsed.tenant_access_token,
            fetched_at: Instant::now(),
            lifetime: Duration::from_secs(parsed.expire),
        })
    }
}
