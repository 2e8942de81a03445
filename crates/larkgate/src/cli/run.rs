//! `larkgate run`: load the config, start logging and the gateway, serve
//! until a signal, stop gracefully.

use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::args::{LogFormatArg, RunArgs};
use super::{load_config, Failure, Outcome};
use crate::config::{Config, LogFormat};
use crate::gateway::{self, Gateway, RunError, RunOptions};
use crate::logging;

/// The exit code after a second signal (128 + SIGINT, what shells expect).
const FORCED_EXIT: i32 = 130;

pub(super) async fn run(path: Option<&Path>, args: RunArgs) -> Outcome {
    let loaded = load_config(path)?;
    let mut config = loaded.config;
    if let Some(format) = args.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    let _log = logging::init(&config.log, args.verbose, config.log.dir.as_deref());
    log_startup(&config, &loaded.warnings);
    let mut signals = Signals::install()?;
    let shutdown = CancellationToken::new();
    let opts = RunOptions {
        drain_timeout: Some(Duration::from_secs(args.drain_timeout)),
        ..RunOptions::default()
    };
    let gw = gateway::start(config, opts, shutdown.clone())
        .await
        .map_err(start_failure)?;
    if let Some(addr) = gw.admin_addr() {
        tracing::info!("admin: http://{addr}/healthz, /metrics, /api/status");
    }
    if let Some(addr) = gw.webhook_addr() {
        tracing::info!("webhook listener on http://{addr}");
    }
    let first = tokio::select! {
        _ = gw.wait_ready() => {
            log_ready(&gw);
            release_startup_pages();
            signals.next().await
        }
        sig = signals.next() => sig,
    };
    tracing::info!(
        "{first}: stopping (no new events; running turns get {}s to finish; send the signal again to exit at once)",
        args.drain_timeout
    );
    tokio::spawn(async move {
        let again = signals.next().await;
        tracing::warn!("{again} again: exiting at once");
        eprintln!("larkgate: {again} again, exiting at once");
        std::process::exit(FORCED_EXIT);
    });
    shutdown.cancel();
    gw.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// What the first lines of the log say.
fn log_startup(config: &Config, warnings: &[String]) {
    tracing::info!(
        "larkgate {} starting (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    match &config.path {
        Some(p) => tracing::info!("config: {}", p.display()),
        None => tracing::info!("config: none (from the environment)"),
    }
    for w in warnings {
        tracing::warn!("config: {w}");
    }
    match &config.log.dir {
        Some(dir) => tracing::info!(
            "log file: {}/{}.YYYY-MM-DD",
            dir.display(),
            logging::FILE_PREFIX
        ),
        None => tracing::info!("log file: off (log.dir is empty)"),
    }
    tracing::info!("store: {}", redact_url(&config.store.url));
    let enabled: Vec<&str> = config
        .accounts
        .iter()
        .filter(|a| a.enabled)
        .map(|a| a.name.as_str())
        .collect();
    tracing::info!(
        "{} enabled account(s): {}; agents: {}",
        enabled.len(),
        enabled.join(", "),
        config.agents.keys().cloned().collect::<Vec<_>>().join(", ")
    );
}

/// Hands the start-up code's pages back to the kernel (see
/// [`crate::footprint`]); a refusal only costs memory, so it is logged.
fn release_startup_pages() {
    match crate::footprint::release_startup_pages() {
        Ok(bytes) => tracing::debug!("released {} KiB of start-up code pages", bytes / 1024),
        Err(e) => tracing::debug!("cannot release start-up code pages: {e}"),
    }
}

fn log_ready(gw: &Gateway) {
    let states: Vec<String> = gw
        .accounts()
        .iter()
        .map(|a| {
            let s = a.status();
            format!("{} {}", s.name, state_word(&s.state))
        })
        .collect();
    tracing::info!("started in {:?}: {}", gw.uptime(), states.join(", "));
}

fn state_word(s: &gateway::AccountState) -> String {
    match s {
        gateway::AccountState::Starting => "starting".into(),
        gateway::AccountState::Ready => "ready".into(),
        gateway::AccountState::Degraded(why) => format!("degraded ({why})"),
        gateway::AccountState::Failed(why) => format!("failed ({why})"),
        gateway::AccountState::Stopped => "stopped".into(),
    }
}

/// A database URL without its password.
pub(super) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("<redacted>"));
            u.to_string().replace("%3Credacted%3E", "<redacted>")
        }
        _ => url.to_string(),
    }
}

fn start_failure(e: RunError) -> Failure {
    let message = format!("cannot start: {e}");
    tracing::error!("{message}");
    match e {
        RunError::NoAccounts | RunError::Agent { .. } => Failure::usage(message),
        _ => Failure::runtime(message),
    }
}

/// SIGINT and SIGTERM.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, Failure> {
        let install = |kind| {
            signal(kind).map_err(|e| Failure::runtime(format!("cannot handle signals: {e}")))
        };
        Ok(Signals {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal; returns its name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://bot:hunter2@db:5432/larkgate"),
            "postgres://bot:<redacted>@db:5432/larkgate"
        );
        assert_eq!(
            redact_url("sqlite:///srv/larkgate.db"),
            "sqlite:///srv/larkgate.db"
        );
    }
}
