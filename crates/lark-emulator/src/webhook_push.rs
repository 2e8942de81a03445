//! Webhook mode: events POSTed to the app's URL, encrypted and signed when
//! the app has an encrypt key, retried on failure.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;

use crate::error::Error;
use crate::ids;
use crate::model::WebhookConfig;
use crate::state::{now_ms, CallbackOutcome, Core, OutEvent};

impl Core {
    /// POSTs `payload` as the platform would; returns `(status, body)`.
    pub async fn post_webhook(
        &self,
        webhook: &WebhookConfig,
        payload: &[u8],
    ) -> Result<(u16, Bytes), String> {
        let timeout = self.lock().redelivery_after;
        let mut request = self
            .http
            .post(&webhook.url)
            .timeout(timeout)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Request-Id", ids::hex(32));
        let body = match webhook.encrypt_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => {
                let iv: [u8; 16] = rand::random();
                let encrypted = lark_wire::webhook::encrypt(key, iv, payload);
                let body = serde_json::to_vec(&json!({ "encrypt": encrypted })).unwrap_or_default();
                let timestamp = (now_ms() / 1000).to_string();
                let nonce = ids::alnum(16);
                let signature = lark_wire::webhook::signature(&timestamp, &nonce, key, &body);
                request = request
                    .header("X-Lark-Request-Timestamp", timestamp)
                    .header("X-Lark-Request-Nonce", nonce)
                    .header("X-Lark-Signature", signature);
                body
            }
            None => payload.to_vec(),
        };
        let response = request.body(body).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Delivers one event by webhook with the retry schedule (callbacks are
    /// tried once: their answer matters only within the 3-s window).
    pub async fn push_webhook(
        self: Arc<Core>,
        app_id: String,
        webhook: WebhookConfig,
        mut event: OutEvent,
    ) {
        let schedule = self.cfg.webhook_retry_schedule.clone();
        let mut attempt = 0usize;
        loop {
            let started = Instant::now();
            let result = self.post_webhook(&webhook, &event.payload).await;
            {
                let mut st = self.lock();
                let Some(app) = st.apps.get_mut(&app_id) else {
                    return;
                };
                match &result {
                    Ok((status, body)) if *status == 200 => {
                        app.counters.ack_code("http_200");
                        app.counters.stats.events_acked += 1;
                        app.counters.ack_latency(started.elapsed());
                        if let Some(reply) = event.reply.take() {
                            let _ = reply.send(CallbackOutcome::Response(body.to_vec()));
                        }
                        return;
                    }
                    Ok((status, _)) => app.counters.ack_code(&format!("http_{status}")),
                    Err(_) => app.counters.ack_code("http_error"),
                }
                if let Some(reply) = event.reply.take() {
                    let why = match result {
                        Ok((status, _)) => format!("HTTP {status}"),
                        Err(e) => e,
                    };
                    let _ = reply.send(CallbackOutcome::Failed(why));
                    return;
                }
                if attempt >= schedule.len() || attempt as u32 >= self.cfg.max_redeliveries {
                    app.counters.stats.events_dropped += 1;
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(schedule[attempt]) => {}
                _ = self.cancel.cancelled() => return,
            }
            attempt += 1;
            let mut st = self.lock();
            if let Some(app) = st.apps.get_mut(&app_id) {
                app.counters.stats.events_redelivered += 1;
                app.counters.stats.events_delivered += 1;
            }
        }
    }

    /// Sets (or clears) an app's webhook; with `verify`, first POSTs the
    /// `url_verification` challenge and requires the echo.
    pub async fn set_webhook(
        self: &Arc<Self>,
        app_id: &str,
        webhook: Option<WebhookConfig>,
    ) -> Result<(), Error> {
        let token = {
            let mut st = self.lock();
            let app = st.app_mut(app_id)?;
            if let Some(t) = webhook.as_ref().and_then(|w| w.verification_token.clone()) {
                app.verification_token = t;
            }
            app.verification_token.clone()
        };
        if let Some(w) = webhook.as_ref().filter(|w| w.verify) {
            let challenge = ids::hex(16);
            let body = json!({"challenge": challenge, "token": token, "type": "url_verification"});
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let (status, answer) = self.post_webhook(w, &bytes).await.map_err(Error::Webhook)?;
            let echoed = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| {
                    v.get("challenge")
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                });
            if status != 200 || echoed.as_deref() != Some(challenge.as_str()) {
                return Err(Error::Webhook(format!(
                    "url_verification: HTTP {status}, challenge echoed: {}",
                    echoed.is_some()
                )));
            }
        }
        let mut st = self.lock();
        st.app_mut(app_id)?.webhook = webhook;
        // Events that waited for a receiver go out now.
        self.flush_backlog(&mut st, app_id);
        Ok(())
    }
}
