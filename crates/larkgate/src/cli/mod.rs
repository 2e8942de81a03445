//! The `larkgate` command line.
//!
//! [`main`] parses the arguments (clap), runs the command on one small
//! multi-thread tokio runtime and turns the outcome into the exit code:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure at run time (network, platform error, larkgate not running) |
//! | 2 | usage or configuration error (every problem printed, one per line) |
//! | 3 | `status --probe` found a problem |
//!
//! The peers' spellings are kept as aliases: `gateway run`, `channels
//! status` and `message send` take the same arguments as `run`, `status` and
//! `send`.

mod args;
mod config_cmd;
mod logs;
mod pairing;
mod run;
mod send;
mod setup;
mod status;
mod webhook;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::{ChannelsCommand, Command, GatewayCommand, MessageCommand, WebhookCommand};

use crate::config::{Config, LoadedConfig};

/// Why a command failed, and which exit code that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: network, platform error, larkgate not running.
    Runtime,
    /// 2: wrong usage or an unusable configuration.
    Usage,
    /// 3: `status --probe` found a problem.
    Probe,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Runtime => 1,
            Exit::Usage => 2,
            Exit::Probe => 3,
        }
    }
}

/// A failed command: what to tell the person, and the exit code.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The exit code's kind.
    pub exit: Exit,
    /// What went wrong and what to do (may span several lines).
    pub message: String,
}

impl Failure {
    /// Exit 1 with `message`.
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Runtime,
            message: message.into(),
        }
    }

    /// Exit 2 with `message`.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// Exit 3 with `message`.
    pub fn probe(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Probe,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;

/// Parses the process arguments, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.exit.code())
        }
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> Outcome {
    // One thread runs everything: a gateway's work is a stream of small
    // steps waiting on sockets, and handing them between worker threads cost
    // more CPU (wake-ups, context switches) than the steps themselves.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("larkgate")
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    let config = cli.config;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(a) | Command::Gateway(GatewayCommand::Run(a)) => {
                run::run(config.as_deref(), a).await
            }
            Command::Status(a) | Command::Channels(ChannelsCommand::Status(a)) => {
                status::status(config.as_deref(), a).await
            }
            Command::Send(a) | Command::Message(MessageCommand::Send(a)) => {
                send::send(config.as_deref(), a).await
            }
            Command::Pairing(c) => pairing::pairing(config.as_deref(), c).await,
            Command::Config(c) => config_cmd::config(config.as_deref(), c),
            Command::Setup(a) => setup::setup(config.as_deref(), a).await,
            Command::Webhook(WebhookCommand::Send(a)) => webhook::send(a).await,
            Command::Logs(a) => logs::logs(config.as_deref(), a).await,
            Command::Emulator(a) => {
                let _sigint = catch_sigint()?;
                lark_emulator::run_cli(a.to_args())
                    .await
                    .map_err(Failure::runtime)
            }
            Command::Demo(a) => {
                let _sigint = catch_sigint()?;
                crate::demo::run(crate::demo::DemoOptions {
                    port: a.port,
                    agent: a.agent,
                    config,
                })
                .await
                .map_err(Failure::runtime)
            }
        }
    })
}

/// Replaces SIGINT's default action (kill) for the rest of the process:
/// `emulator` and `demo` print their banner before they listen for Ctrl-C,
/// and a Ctrl-C in between must not kill them without cleanup.
fn catch_sigint() -> Result<tokio::signal::unix::Signal, Failure> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Failure::runtime(format!("cannot handle signals: {e}")))
}

/// The config file a command works on: `--config`, else
/// `$LARKGATE_CONFIG` (clap reads it into `--config`), else `./larkgate.toml`.
fn config_path(given: Option<&Path>) -> PathBuf {
    given.map_or_else(Config::default_path, Path::to_path_buf)
}

/// Loads the configuration; every issue becomes one line of an exit-2
/// failure. Warnings are returned for the caller to show.
fn load_config(path: Option<&Path>) -> Result<LoadedConfig, Failure> {
    Config::load(path).map_err(|e| {
        Failure::usage(format!(
            "the configuration has {} problem(s):\n{e}",
            e.issues.len()
        ))
    })
}

/// Prints configuration warnings on stderr.
fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The enabled account named `name`, or the first enabled one.
fn pick_account<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<&'a crate::config::AccountConfig, Failure> {
    let enabled = || config.accounts.iter().filter(|a| a.enabled);
    match name {
        Some(name) => enabled().find(|a| a.name == name).ok_or_else(|| {
            let names: Vec<&str> = enabled().map(|a| a.name.as_str()).collect();
            Failure::usage(format!(
                "--account {name}: no enabled account of that name (enabled: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        }),
        None => enabled().next().ok_or_else(|| {
            Failure::usage(
                "no enabled account: set channels.lark.appId and appSecret \
                 (or run `larkgate setup`)",
            )
        }),
    }
}

/// A REST client builder for an account, as the gateway configures it.
fn client_builder(
    account: &crate::config::AccountConfig,
) -> Result<lark_client::ClientBuilder, Failure> {
    let domain = lark_client::Domain::parse(&account.domain)
        .map_err(|e| Failure::usage(format!("account {}: {e}", account.name)))?;
    Ok(
        lark_client::Client::builder(&account.app_id, account.app_secret.expose())
            .domain(domain)
            .proxy(account.proxy.clone()),
    )
}

/// A REST client for an account.
fn client_for(account: &crate::config::AccountConfig) -> Result<lark_client::Client, Failure> {
    client_builder(account)?
        .build()
        .map_err(|e| Failure::usage(format!("account {}: {e}", account.name)))
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    crate::gateway::now_ms()
}

/// `3h 5m`, `42s`: a short human duration.
fn human_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Left-aligned columns for a small table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_secs(42), "42s");
        assert_eq!(human_secs(125), "2m 5s");
        assert_eq!(human_secs(3 * 3600 + 5 * 60 + 9), "3h 5m");
        assert_eq!(human_secs(2 * 86_400 + 3600), "2d 1h");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long-cell".into(), "x".into()],
                vec!["y".into(), "".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong-cell  x\ny");
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Exit::Runtime.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Probe.code(), 3);
    }
}
