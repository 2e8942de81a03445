//! One bot: its client, its connection (long connection or webhook), its
//! inbox loop and its conversations. A failing account never stops the
//! others: it reports its state and keeps retrying.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use lark_client::{Client, Delivery, Domain, HealthHandle, WsClient, WsOptions};
use tokio::sync::{mpsc, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::turn::TurnJob;
use super::Shared;
use crate::agent::Agent;
use crate::config::{AccountConfig, Mode};
use crate::diagnose;
use crate::outbound::Outbound;
use crate::session::Conversations;

/// Where an account is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// Learning the bot's identity and connecting.
    Starting,
    /// Serving.
    Ready,
    /// Serving is impaired and being retried (the reason says why).
    Degraded(String),
    /// Stopped until the operator acts (wrong credentials, ...).
    Failed(String),
    /// Shut down.
    Stopped,
}

/// A snapshot for `/healthz` and `status`.
#[derive(Clone, Debug)]
pub struct AccountStatus {
    /// The account's name.
    pub name: String,
    /// `cli_…`.
    pub app_id: String,
    /// Long connection or webhook.
    pub mode: Mode,
    /// Life state.
    pub state: AccountState,
    /// The bot's open_id, once known.
    pub bot_open_id: Option<String>,
    /// The bot's name, once known.
    pub bot_name: Option<String>,
    /// The long connection's health (websocket mode).
    pub connection: Option<lark_client::Health>,
    /// When the last event arrived (unix ms, 0 = never).
    pub last_event_ms: i64,
    /// Sessions with a running turn.
    pub running_turns: usize,
    /// Messages waiting behind running turns.
    pub waiting: usize,
}

/// The bot as the platform knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotIdentity {
    /// `ou_…` of the bot: how mentions are recognised.
    pub open_id: String,
    /// The app's name.
    pub name: String,
}

/// One running account.
pub struct AccountRuntime {
    /// Its configuration.
    pub cfg: AccountConfig,
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: Client,
    pub(crate) outbound: Outbound,
    pub(crate) bot: RwLock<Option<BotIdentity>>,
    conversations: Conversations<TurnJob>,
    state: watch::Sender<AccountState>,
    ws_health: OnceLock<HealthHandle>,
    webhook: Mutex<Option<mpsc::Receiver<Delivery>>>,
    webhook_tx: mpsc::Sender<Delivery>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) last_event_ms: AtomicI64,
    /// The ingest path's metric series, looked up once.
    pub(crate) ingest_series: super::inbox::IngestSeries,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn build_client(cfg: &AccountConfig) -> Client {
    let domain = Domain::parse(&cfg.domain).unwrap_or_else(|_| Domain::feishu());
    Client::builder(&cfg.app_id, cfg.app_secret.expose())
        .domain(domain)
        .proxy(cfg.proxy.clone())
        .build()
        .unwrap_or_else(|e| {
            // Only a broken proxy URL fails here, and config validation
            // rejects those; fall back to a direct client rather than panic.
            tracing::error!(
                "[lark] [{}] client: {e}; connecting without proxy",
                cfg.name
            );
            Client::builder(&cfg.app_id, cfg.app_secret.expose())
                .domain(Domain::parse(&cfg.domain).unwrap_or_else(|_| Domain::feishu()))
                .build()
                .expect("a client without proxy always builds")
        })
}

impl AccountRuntime {
    pub(crate) fn new(
        cfg: AccountConfig,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
    ) -> Arc<AccountRuntime> {
        let client = build_client(&cfg);
        let (webhook_tx, webhook_rx) = mpsc::channel(256);
        let queue_limit = cfg.queue_limit;
        Arc::new_cyclic(|me: &Weak<AccountRuntime>| {
            let me = me.clone();
            let runner: crate::session::Runner<TurnJob> =
                Arc::new(move |job: TurnJob, cancel: CancellationToken| {
                    let me = me.clone();
                    Box::pin(async move {
                        if let Some(rt) = me.upgrade() {
                            super::turn::execute(&rt, job, cancel).await;
                        }
                    })
                });
            AccountRuntime {
                outbound: Outbound::new(client.clone(), shared.store.clone(), &cfg),
                client,
                shared,
                bot: RwLock::new(None),
                conversations: Conversations::new(runner, queue_limit),
                state: watch::channel(AccountState::Starting).0,
                ws_health: OnceLock::new(),
                webhook: Mutex::new(Some(webhook_rx)),
                webhook_tx,
                shutdown,
                shutting_down: AtomicBool::new(false),
                last_event_ms: AtomicI64::new(0),
                ingest_series: Default::default(),
                cfg,
            }
        })
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The REST client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn conversations(&self) -> &Conversations<TurnJob> {
        &self.conversations
    }

    pub(crate) fn set_state(&self, s: AccountState) {
        self.state.send_replace(s);
    }

    /// The bot's open_id ("" until known).
    pub(crate) fn bot_open_id(&self) -> String {
        self.bot
            .read()
            .ok()
            .and_then(|b| b.as_ref().map(|b| b.open_id.clone()))
            .unwrap_or_default()
    }

    /// The agent for a chat (the group's override, else the account's).
    pub(crate) fn agent_for(&self, chat_id: &str) -> (String, Arc<dyn Agent>) {
        let name = self
            .cfg
            .group(chat_id)
            .and_then(|g| g.agent.clone())
            .unwrap_or_else(|| self.cfg.agent.clone());
        match self.shared.agents.get(&name) {
            Some(a) => (name, a.clone()),
            None => {
                let echo = self.shared.agents.get("echo").cloned();
                ("echo".into(), echo.expect("the echo agent always exists"))
            }
        }
    }

    /// The HTTP route receiving this account's webhook events.
    pub(crate) fn webhook_router(&self, max_body_bytes: usize) -> axum::Router {
        let opts = lark_client::webhook::WebhookOptions {
            path: self.cfg.webhook_path.clone(),
            encrypt_key: self
                .cfg
                .encrypt_key
                .as_ref()
                .map(|s| s.expose().to_string()),
            verification_token: self
                .cfg
                .verification_token
                .as_ref()
                .map(|s| s.expose().to_string()),
            max_body_bytes,
            ..Default::default()
        };
        lark_client::webhook::router(opts, self.webhook_tx.clone())
    }

    /// A status snapshot.
    pub fn status(&self) -> AccountStatus {
        let bot = self.bot.read().ok().and_then(|b| b.clone());
        let (running_turns, waiting) = self.conversations.load();
        AccountStatus {
            name: self.cfg.name.clone(),
            app_id: self.cfg.app_id.clone(),
            mode: self.cfg.mode,
            state: self.state.borrow().clone(),
            bot_open_id: bot.as_ref().map(|b| b.open_id.clone()),
            bot_name: bot.map(|b| b.name),
            connection: self.ws_health.get().map(HealthHandle::snapshot),
            last_event_ms: self.last_event_ms.load(Ordering::Relaxed),
            running_turns,
            waiting,
        }
    }

    /// Waits until the account is ready or failed.
    pub async fn wait_settled(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx
            .wait_for(|s| {
                matches!(
                    s,
                    AccountState::Ready | AccountState::Failed(_) | AccountState::Stopped
                )
            })
            .await;
    }

    /// Stops taking new events.
    pub(crate) fn close_intake(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.conversations.close();
    }

    /// Cancels every running turn (shutdown past its deadline). Waiting
    /// messages stay pending in the store and are answered after a restart.
    pub(crate) async fn interrupt_all(&self) {
        let dropped = self.conversations.cancel_all();
        tracing::info!(
            "[lark] [{}] {} waiting message(s) kept for the next start",
            self.cfg.name,
            dropped.len()
        );
    }

    pub(crate) fn spawn(self: Arc<Self>, tasks: &TaskTracker, ws: WsOptions) {
        tasks.spawn(async move {
            self.run(ws).await;
            self.set_state(AccountState::Stopped);
        });
    }

    async fn run(self: &Arc<Self>, ws: WsOptions) {
        let mode = match self.cfg.mode {
            Mode::Websocket => "websocket",
            Mode::Webhook => "webhook",
        };
        tracing::info!(
            "[lark] [{}] starting provider ({}) in {mode} mode",
            self.cfg.name,
            self.cfg.app_id
        );
        if !self.identify().await {
            return;
        }
        self.outbound.close_orphan_cards().await;
        let deliveries = match self.cfg.mode {
            Mode::Websocket => {
                let (rx, health) =
                    WsClient::new(self.client.clone(), ws).start(self.shutdown.clone());
                let _ = self.ws_health.set(health.clone());
                self.clone().watch_connection(health);
                rx
            }
            Mode::Webhook => match self.webhook.lock().await.take() {
                Some(rx) => {
                    self.set_state(AccountState::Ready);
                    tracing::info!(
                        "[lark] [{}] ready: webhook at {}",
                        self.cfg.name,
                        self.cfg.webhook_path
                    );
                    rx
                }
                None => return,
            },
        };
        super::dispatch::replay_unfinished(self).await;
        super::inbox::run(self, deliveries).await;
    }

    /// Learns the bot's open_id (how mentions are recognised), retrying with
    /// backoff; falls back to the last known identity on transient errors.
    async fn identify(self: &Arc<Self>) -> bool {
        let store = &self.shared.store;
        let mut delay = Duration::from_secs(1);
        loop {
            match self.client.bot_info().await {
                Ok(info) => {
                    let _ = store
                        .kv_set(&self.cfg.name, "bot_open_id", &info.open_id)
                        .await;
                    let _ = store
                        .kv_set(&self.cfg.name, "bot_name", &info.app_name)
                        .await;
                    self.remember_bot(info.open_id, info.app_name);
                    return true;
                }
                Err(e) => {
                    let why = diagnose::explain(&e);
                    if !diagnose::needs_operator(&e) {
                        if let Ok(Some(open_id)) = store.kv_get(&self.cfg.name, "bot_open_id").await
                        {
                            let name = store
                                .kv_get(&self.cfg.name, "bot_name")
                                .await
                                .ok()
                                .flatten();
                            tracing::warn!("[lark] [{}] bot info unavailable ({why}); using the last known identity", self.cfg.name);
                            self.remember_bot(open_id, name.unwrap_or_default());
                            return true;
                        }
                    }
                    tracing::error!(
                        "[lark] [{}] cannot start: {why}; retrying in {delay:?}",
                        self.cfg.name
                    );
                    self.set_state(if diagnose::needs_operator(&e) {
                        AccountState::Failed(why)
                    } else {
                        AccountState::Degraded(why)
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.cancelled() => return false,
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    fn remember_bot(&self, open_id: String, name: String) {
        tracing::info!("[lark] [{}] bot is {name} ({open_id})", self.cfg.name);
        if let Ok(mut slot) = self.bot.write() {
            *slot = Some(BotIdentity { open_id, name });
        }
    }

    /// Mirrors the long connection's health into the account state and the log.
    fn watch_connection(self: Arc<Self>, health: HealthHandle) {
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let h = health.snapshot();
                if last != Some(h.state) {
                    self.log_transition(&h);
                    last = Some(h.state);
                }
                if matches!(
                    h.state,
                    lark_client::WsState::Stopped | lark_client::WsState::Failed
                ) {
                    break;
                }
                let state = h.state;
                if health.wait_for(|n| n.state != state).await.is_none() {
                    break;
                }
            }
        });
    }

    fn log_transition(&self, h: &lark_client::Health) {
        use lark_client::WsState::*;
        let name = &self.cfg.name;
        let err = h.last_error.clone().unwrap_or_default();
        match h.state {
            Connected => {
                tracing::info!("[lark] [{name}] connected; ready");
                self.set_state(AccountState::Ready);
            }
            Reconnecting => {
                tracing::warn!("[lark] [{name}] connection lost ({err}); reconnecting");
                self.set_state(AccountState::Degraded(format!("reconnecting: {err}")));
            }
            Failed => {
                tracing::error!("[lark] [{name}] connection failed for good: {err}");
                self.set_state(AccountState::Failed(err));
            }
            Stopped => tracing::info!("[lark] [{name}] connection closed"),
            Connecting => {}
        }
    }
}
