//! The running gateway: every enabled account connected, one store, the
//! agents, and the listeners (webhook, admin).
//!
//! [`start`] brings everything up and returns a [`Gateway`] handle (tests and
//! the demo use it directly); [`run`] is `start` followed by waiting for the
//! shutdown token and a graceful stop.

mod account;
mod cards;
mod dispatch;
mod inbox;
mod turn;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::metrics::Metrics;
use crate::agent::{self, Agent};
use crate::config::{Config, Mode};
use crate::store::{self, Store};

pub use account::{now_ms, AccountRuntime, AccountState, AccountStatus, BotIdentity};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// An agent could not be built from its configuration.
    #[error("agents.{name}: {message}")]
    Agent {
        /// The agent's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No account is enabled.
    #[error(
        "no enabled account: set channels.lark.appId/appSecret (or LARK_APP_ID/LARK_APP_SECRET)"
    )]
    NoAccounts,
}

/// Knobs that are not part of the user's configuration (tests, demo, benches).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Timer overrides for the long connection (tests use short intervals).
    pub ws: lark_client::WsOptions,
    /// Where downloaded media is kept (default: `media/` beside the store).
    pub media_dir: Option<PathBuf>,
    /// How long running turns may take to finish on shutdown (default 10 s).
    pub drain_timeout: Option<Duration>,
}

/// Shared by every account.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub agents: BTreeMap<String, Arc<dyn Agent>>,
    pub agent_configs: BTreeMap<String, crate::agent::AgentConfig>,
    pub media_dir: PathBuf,
    pub started: std::time::Instant,
}

impl Shared {
    /// URL prefixes the agent `name` may ask the gateway to fetch.
    pub fn media_allowlist(&self, name: &str) -> Vec<String> {
        self.agent_configs
            .get(name)
            .and_then(|c| c.media_url_allowlist.clone())
            .unwrap_or_default()
    }
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    accounts: Vec<Arc<AccountRuntime>>,
    shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    webhook_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    drain_timeout: Duration,
}

fn build_agents(config: &Config) -> Result<BTreeMap<String, Arc<dyn Agent>>, RunError> {
    let base = config
        .path
        .as_deref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let env = |k: &str| std::env::var(k).ok();
    let mut out = BTreeMap::new();
    for (name, cfg) in &config.agents {
        let built = agent::build(name, cfg, &base, &env).map_err(|e| RunError::Agent {
            name: name.clone(),
            message: e.message,
        })?;
        out.insert(name.clone(), built);
    }
    if !out.contains_key("echo") {
        let echo = agent::build("echo", &Default::default(), &base, &env).map_err(|e| {
            RunError::Agent {
                name: "echo".into(),
                message: e.message,
            }
        })?;
        out.insert("echo".into(), echo);
    }
    Ok(out)
}

fn default_media_dir(config: &Config) -> PathBuf {
    let base = config
        .path
        .as_deref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("media")
}

/// Binds `addr` and serves `app` until shutdown; returns the bound address.
async fn serve(
    tasks: &tokio_util::task::TaskTracker,
    addr: SocketAddr,
    app: axum::Router,
    shutdown: &CancellationToken,
) -> Result<SocketAddr, RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(bound)
}

/// Starts every enabled account and the listeners; returns once each account
/// has been started (connections keep healing in the background).
pub async fn start(
    config: Config,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> Result<Gateway, RunError> {
    let enabled: Vec<_> = config
        .accounts
        .iter()
        .filter(|a| a.enabled)
        .cloned()
        .collect();
    if enabled.is_empty() {
        return Err(RunError::NoAccounts);
    }
    let store = store::open(&config.store.url).await?;
    let shared = Arc::new(Shared {
        store,
        metrics: Arc::new(Metrics::new()),
        agents: build_agents(&config)?,
        agent_configs: config.agents.clone(),
        media_dir: opts
            .media_dir
            .clone()
            .unwrap_or_else(|| default_media_dir(&config)),
        started: std::time::Instant::now(),
    });
    let tasks = tokio_util::task::TaskTracker::new();
    let mut accounts = Vec::new();
    let mut webhook_routes = axum::Router::new();
    for cfg in enabled {
        let rt = AccountRuntime::new(cfg, shared.clone(), shutdown.child_token());
        if rt.cfg.mode == Mode::Webhook {
            webhook_routes = webhook_routes.merge(rt.webhook_router(config.webhook.max_body_bytes));
        }
        accounts.push(rt);
    }
    let webhook_addr = if accounts.iter().any(|a| a.cfg.mode == Mode::Webhook) {
        Some(serve(&tasks, config.webhook.listen, webhook_routes, &shutdown).await?)
    } else {
        None
    };
    let admin_addr = if config.admin.enabled {
        let state = crate::admin::http::AdminState {
            accounts: accounts.clone(),
            store: shared.store.clone(),
            metrics: shared.metrics.clone(),
            token: config.admin.token.clone(),
            started: shared.started,
        };
        Some(
            serve(
                &tasks,
                config.admin.listen,
                crate::admin::http::router(state),
                &shutdown,
            )
            .await?,
        )
    } else {
        None
    };
    for rt in &accounts {
        rt.clone().spawn(&tasks, opts.ws.clone());
    }
    Ok(Gateway {
        shared,
        accounts,
        shutdown,
        tasks,
        webhook_addr,
        admin_addr,
        drain_timeout: opts.drain_timeout.unwrap_or(Duration::from_secs(10)),
    })
}

impl Gateway {
    /// The accounts, in configuration order.
    pub fn accounts(&self) -> &[Arc<AccountRuntime>] {
        &self.accounts
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Where the webhook listener is bound, when an account uses webhooks.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook_addr
    }

    /// Where the admin listener is bound, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Since start.
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Waits until every account is connected and ready (or failed).
    pub async fn wait_ready(&self) {
        for a in &self.accounts {
            a.wait_settled().await;
        }
    }

    /// Graceful stop: no new events, running turns get the drain timeout to
    /// finish, then are cancelled (their cards close as interrupted).
    pub async fn stop(self) {
        self.shutdown.cancel();
        for a in &self.accounts {
            a.close_intake();
        }
        let drained = tokio::time::timeout(self.drain_timeout, async {
            for a in &self.accounts {
                a.conversations().wait().await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown: turns still running after {:?}; interrupting them",
                self.drain_timeout
            );
            for a in &self.accounts {
                a.interrupt_all().await;
            }
            for a in &self.accounts {
                a.conversations().wait().await;
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts the gateway and serves until `shutdown` fires, then stops gracefully.
pub async fn run(
    config: Config,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let gw = start(config, opts, shutdown.clone()).await?;
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    gw.stop().await;
    Ok(())
}
