//! The REST client: one per app. It owns the token cache, the learned rate
//! limits, the retry policy and the per-endpoint counters; the typed
//! endpoints live in `im`, `cardkit`, `info` and `download`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::Method;
use serde_json::Value;

use crate::proxy::ProxySettings;
use crate::ratelimit::{Bucket, RateLimiter, Scope};
use crate::response::{check_envelope, Meta};
use crate::stats::{EndpointStats, Stats};
use crate::{Domain, Error, ErrorClass, TokenCache};

/// A Feishu/Lark app's REST client. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    app_id: String,
    app_secret: String,
    domain: Domain,
    http: reqwest::Client,
    proxy: ProxySettings,
    tokens: TokenCache,
    limiter: RateLimiter,
    stats: Arc<Stats>,
    policy: RetryPolicy,
}

#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    timeout: Duration,
    download_timeout: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    max_rate_limit_wait: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("app_id", &self.inner.app_id)
            .field("app_secret", &"<redacted>")
            .field("domain", &self.inner.domain)
            .finish()
    }
}

/// Builds a [`Client`].
#[must_use]
pub struct ClientBuilder {
    app_id: String,
    app_secret: String,
    domain: Domain,
    proxy: ProxySettings,
    proxy_url: Option<String>,
    no_proxy: Option<String>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("app_id", &self.app_id)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The platform (default Feishu).
    pub fn domain(mut self, domain: Domain) -> Self {
        self.domain = domain;
        self
    }

    /// An explicit proxy (`http://`, `https://`, `socks5://`, `socks5h://`,
    /// credentials allowed in the URL), or `None` for a direct connection.
    /// Ambient proxy variables are never applied unless
    /// [`ClientBuilder::proxy_from_env`] is called.
    pub fn proxy(mut self, url: Option<String>) -> Self {
        self.proxy_url = url.filter(|u| !u.trim().is_empty());
        self.proxy = ProxySettings::direct();
        self
    }

    /// Use `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` from the
    /// environment (off by default).
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy_url = None;
        self.proxy = ProxySettings::from_env();
        self
    }

    /// Hosts that bypass the explicit proxy (comma-separated; `None`, the
    /// default, reads `NO_PROXY`).
    pub fn no_proxy(mut self, list: Option<String>) -> Self {
        self.no_proxy = list;
        self
    }

    /// Total timeout of one JSON request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// Total timeout of one resource download (default 10 min).
    pub fn download_timeout(mut self, timeout: Duration) -> Self {
        self.policy.download_timeout = timeout;
        self
    }

    /// Attempts per call for retryable and rate-limited failures (default 3,
    /// at least 1). A token refresh after 99991663 and friends is extra.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.max_attempts = attempts.max(1);
        self
    }

    /// First backoff delay; later ones triple, with ±25 % jitter (default 500 ms).
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.policy.backoff_base = base;
        self
    }

    /// The longest a call waits for a platform rate-limit reset before it
    /// gives up with the rate-limit error (default 60 s).
    pub fn max_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.policy.max_rate_limit_wait = wait;
        self
    }

    /// Builds the client (no network I/O yet).
    pub fn build(self) -> Result<Client, Error> {
        if self.app_id.trim().is_empty() || self.app_secret.is_empty() {
            return Err(Error::Config("app_id and app_secret are required".into()));
        }
        let proxy = match &self.proxy_url {
            Some(url) => ProxySettings::explicit(url)?,
            None => self.proxy,
        }
        .with_no_proxy(self.no_proxy);
        let builder = reqwest::Client::builder()
            .user_agent(concat!("larkgate-lark-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.policy.timeout.min(Duration::from_secs(10)));
        let http = proxy
            .apply(builder)?
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        let stats = Arc::new(Stats::default());
        let tokens = TokenCache::new(
            http.clone(),
            self.domain.clone(),
            &self.app_id,
            &self.app_secret,
        )
        .with_stats(stats.clone());
        Ok(Client {
            inner: Arc::new(Inner {
                app_id: self.app_id,
                app_secret: self.app_secret,
                domain: self.domain,
                http,
                proxy,
                tokens,
                limiter: RateLimiter::default(),
                stats,
                policy: self.policy,
            }),
        })
    }
}

/// A request body.
pub(crate) enum Body {
    Empty,
    Json(Value),
    Multipart(Vec<FormField>),
}

/// One multipart field; rebuilt for every attempt.
pub(crate) enum FormField {
    Text(&'static str, String),
    File {
        name: &'static str,
        file_name: String,
        bytes: Bytes,
    },
}

/// One REST call, described once and replayed by the retry loop.
pub(crate) struct Call {
    pub method: Method,
    /// Route template, such as `"POST /im/v1/messages"` (the stats key and
    /// the rate-limit bucket).
    pub route: &'static str,
    /// Path under `/open-apis`, such as `"/im/v1/messages"`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    /// The target of per-target limits (chat, message, card).
    pub target: Option<String>,
}

impl Call {
    pub fn new(method: Method, route: &'static str, path: String) -> Call {
        Call {
            method,
            route,
            path,
            query: Vec::new(),
            body: Body::Empty,
            target: None,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Call {
        self.query.push((key, value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Call {
        self.body = Body::Json(body);
        self
    }

    pub fn multipart(mut self, fields: Vec<FormField>) -> Call {
        self.body = Body::Multipart(fields);
        self
    }

    pub fn target(mut self, target: &str) -> Call {
        self.target = Some(target.to_string());
        self
    }

    fn bucket(&self) -> Bucket {
        Bucket {
            route: self.route,
            target: self.target.clone(),
        }
    }
}

/// A successful answer: the JSON body, or the raw response of a download.
pub(crate) enum Answer {
    Json(Value),
    Raw(reqwest::Response),
}

/// Percent-encodes one path segment (ids come from users and events).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A fresh idempotency key (32 hex chars), so that retries of one call
/// share it and never double a message.
pub fn new_uuid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Client {
    /// Starts building a client for one app.
    pub fn builder(app_id: &str, app_secret: &str) -> ClientBuilder {
        ClientBuilder {
            app_id: app_id.to_string(),
            app_secret: app_secret.to_string(),
            domain: Domain::feishu(),
            proxy: ProxySettings::direct(),
            proxy_url: None,
            no_proxy: None,
            policy: RetryPolicy {
                timeout: Duration::from_secs(30),
                download_timeout: Duration::from_secs(600),
                max_attempts: 3,
                backoff_base: Duration::from_millis(500),
                max_rate_limit_wait: Duration::from_secs(60),
            },
        }
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// The platform.
    pub fn domain(&self) -> &Domain {
        &self.inner.domain
    }

    /// Calls and error codes per endpoint since the client was built.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.inner.stats.snapshot()
    }

    /// A valid tenant access token (cached; for probes).
    pub async fn tenant_token(&self) -> Result<String, Error> {
        self.inner.tokens.get().await
    }

    /// The underlying HTTP client (same proxy settings).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn app_secret(&self) -> &str {
        &self.inner.app_secret
    }

    pub(crate) fn proxy(&self) -> &ProxySettings {
        &self.inner.proxy
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.policy.timeout
    }

    pub(crate) fn record(&self, route: &'static str, outcome: Result<(), &Error>) {
        self.inner.stats.record(route, outcome);
    }

    /// Runs a JSON call through the retry loop; returns the whole body.
    pub(crate) async fn call_json(&self, call: &Call) -> Result<Value, Error> {
        match self.execute(call, false).await? {
            Answer::Json(v) => Ok(v),
            Answer::Raw(_) => Err(Error::Decode {
                endpoint: call.route,
                detail: "binary answer to a JSON call".into(),
            }),
        }
    }

    /// Runs a download through the retry loop; returns the 2xx response
    /// with its body unread.
    pub(crate) async fn call_raw(&self, call: &Call) -> Result<reqwest::Response, Error> {
        match self.execute(call, true).await? {
            Answer::Raw(r) => Ok(r),
            Answer::Json(_) => Err(Error::Decode {
                endpoint: call.route,
                detail: "JSON answer to a download".into(),
            }),
        }
    }

    /// The retry loop: rate-limit permit, token, one attempt, then decide.
    async fn execute(&self, call: &Call, raw: bool) -> Result<Answer, Error> {
        let policy = self.inner.policy;
        let bucket = call.bucket();
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.inner
                .limiter
                .acquire(&bucket, policy.max_rate_limit_wait)
                .await?;
            let result = match self.inner.tokens.get().await {
                Ok(token) => {
                    let r = self.attempt(call, &token, raw).await;
                    self.record(call.route, r.as_ref().map(|_| ()));
                    r.map_err(|e| (e, Some(token)))
                }
                Err(e) => Err((e, None)),
            };
            let (err, token) = match result {
                Ok(answer) => return Ok(answer),
                Err(pair) => pair,
            };
            if err.is_token_invalid() && !refreshed {
                // The cached token was rejected: forget it, retry once.
                refreshed = true;
                attempt -= 1;
                if let Some(t) = token {
                    self.inner.tokens.invalidate(&t).await;
                }
                continue;
            }
            let wait = match err.class() {
                ErrorClass::RateLimited(_) => {
                    // Every caller of this bucket waits until the reset,
                    // this one only if the wait is acceptable.
                    let wait = err.retry_after().unwrap_or_else(|| self.backoff(attempt));
                    let scope = if err.code() == Some(99991400) || err.status() == Some(429) {
                        Scope::Route
                    } else {
                        Scope::Target
                    };
                    self.inner.limiter.block(&bucket, scope, wait);
                    if wait > policy.max_rate_limit_wait {
                        return Err(err);
                    }
                    Duration::ZERO
                }
                ErrorClass::Retryable => self.backoff(attempt),
                _ => return Err(err),
            };
            if attempt >= policy.max_attempts {
                return Err(err);
            }
            tracing::debug!(route = call.route, attempt, ?wait, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// `base × 3^(attempt-1)`, ±25 % jitter, at most 30 s.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.inner.policy.backoff_base;
        let exp = base.saturating_mul(3u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(Duration::from_secs(30));
        capped.mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
    }

    async fn attempt(&self, call: &Call, token: &str, raw: bool) -> Result<Answer, Error> {
        let policy = self.inner.policy;
        let mut req = self
            .inner
            .http
            .request(
                call.method.clone(),
                self.inner.domain.url(&format!("/open-apis{}", call.path)),
            )
            .bearer_auth(token)
            .timeout(if raw {
                policy.download_timeout
            } else {
                policy.timeout
            });
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        req = match &call.body {
            Body::Empty => req,
            Body::Json(v) => req.json(v),
            Body::Multipart(fields) => req.multipart(form(fields)?),
        };
        let resp = req.send().await?;
        let meta = Meta::new(resp.status().as_u16(), resp.headers());
        if meta.exhausted {
            if let Some(reset) = meta.reset {
                self.inner
                    .limiter
                    .block(&call.bucket(), Scope::Route, reset);
            }
        }
        if raw && resp.status().is_success() {
            return Ok(Answer::Raw(resp));
        }
        let body = resp.bytes().await?;
        check_envelope(&meta, &body, call.route).map(Answer::Json)
    }
}

fn form(fields: &[FormField]) -> Result<reqwest::multipart::Form, Error> {
    let mut form = reqwest::multipart::Form::new();
    for field in fields {
        form = match field {
            FormField::Text(name, value) => form.text(*name, value.clone()),
            FormField::File {
                name,
                file_name,
                bytes,
            } => {
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(bytes.clone()),
                    bytes.len() as u64,
                )
                .file_name(file_name.clone())
                .mime_str("application/octet-stream")
                .map_err(|e| Error::Config(format!("multipart: {e}")))?;
                form.part(*name, part)
            }
        };
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("om_abc-1.2~"), "om_abc-1.2~");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn uuids_are_fresh_and_short() {
        let (a, b) = (new_uuid(), new_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn builder_rejects_bad_config_and_redacts() {
        assert!(Client::builder("", "s").build().is_err());
        let err = Client::builder("cli_a", "s")
            .proxy(Some("gopher://x".into()))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        let c = Client::builder("cli_a", "very-secret").build().unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn backoff_grows_with_jitter() {
        let c = Client::builder("cli_a", "s")
            .retry_backoff(Duration::from_millis(100))
            .build()
            .unwrap();
        for _ in 0..50 {
            let first = c.backoff(1);
            let third = c.backoff(3);
            assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
            assert!(third >= Duration::from_millis(675) && third <= Duration::from_millis(1125));
        }
    }
}
