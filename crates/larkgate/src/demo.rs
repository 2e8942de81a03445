//! `larkgate demo`: the emulator, a gateway connected to it over the real
//! long connection, and the emulator's chat page, in one command, with no
//! tenant and no API key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lark_emulator::{Emulator, EmulatorConfig};
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentConfig, AgentType};
use crate::config::*;
use crate::gateway::{self, Gateway, RunOptions};
use crate::secret::Secret;

/// What `larkgate demo` was asked for.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Emulator (and chat page) port; 0 picks a free one.
    pub port: u16,
    /// An agent from `config` to use instead of the default.
    pub agent: Option<String>,
    /// A config file to take that agent from.
    pub config: Option<PathBuf>,
}

/// A running demo.
pub struct Demo {
    /// The platform.
    pub emulator: Emulator,
    /// The gateway.
    pub gateway: Gateway,
    /// The chat page.
    pub url: String,
    /// Which agent answers, in words.
    pub agent: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

/// The agent the demo uses: `--agent` from a config, else a model when an
/// API key is in the environment, else echo. Returns the agent and how to
/// describe it.
fn pick_agent(
    opts: &DemoOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(AgentConfig, String), String> {
    if let Some(name) = &opts.agent {
        let loaded = Config::load(opts.config.as_deref()).map_err(|e| e.to_string())?;
        let cfg =
            loaded.config.agents.get(name).cloned().ok_or_else(|| {
                format!("--agent {name}: no [agents.{name}] in the configuration")
            })?;
        return Ok((cfg, format!("{name} (from the configuration)")));
    }
    if env("OPENAI_API_KEY").is_some_and(|k| !k.is_empty()) {
        let model = env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
        let cfg = AgentConfig {
            kind: AgentType::Openai,
            base_url: env("OPENAI_BASE_URL"),
            model: Some(model.clone()),
            api_key_env: Some("OPENAI_API_KEY".into()),
            ..Default::default()
        };
        return Ok((cfg, format!("openai {model} (OPENAI_API_KEY is set)")));
    }
    if env("ANTHROPIC_API_KEY").is_some_and(|k| !k.is_empty()) {
        let model = env("ANTHROPIC_MODEL").unwrap_or_else(|| "claude-sonnet-4-5".into());
        let cfg = AgentConfig {
            kind: AgentType::Anthropic,
            base_url: env("ANTHROPIC_BASE_URL"),
            model: Some(model.clone()),
            api_key_env: Some("ANTHROPIC_API_KEY".into()),
            ..Default::default()
        };
        return Ok((cfg, format!("anthropic {model} (ANTHROPIC_API_KEY is set)")));
    }
    let echo = AgentConfig {
        kind: AgentType::Echo,
        chunk_delay_ms: Some(60),
        ..Default::default()
    };
    Ok((
        echo,
        "echo (set OPENAI_API_KEY or ANTHROPIC_API_KEY to talk to a model)".into(),
    ))
}

/// The demo's account: DMs by pairing (Alice is pre-approved), groups open
/// with a mention required, one session per topic, streamed replies.
fn demo_account(emu: &Emulator) -> AccountConfig {
    let app = emu.default_app();
    AccountConfig {
        bot_name: Some(app.bot_name.clone()),
        domain: emu.base_url(),
        dm_policy: DmPolicy::Pairing,
        allow_from: vec![lark_emulator::DEMO_ALICE.open_id.into()],
        group_policy: GroupPolicy::Open,
        session_scope: SessionScope::Topic,
        agent: "demo".into(),
        reply_mode: ReplyMode::Streaming,
        ..AccountConfig::new("demo", &app.app_id, Secret::new(app.app_secret))
    }
}

/// Starts the demo.
pub async fn start(opts: DemoOptions) -> Result<Demo, String> {
    let env = |k: &str| std::env::var(k).ok();
    let (agent, agent_desc) = pick_agent(&opts, &env)?;
    let emulator = Emulator::start(EmulatorConfig {
        port: opts.port,
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|e| {
        format!(
            "cannot start the emulator on port {}: {e} (try --port)",
            opts.port
        )
    })?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut agents = BTreeMap::new();
    agents.insert("demo".to_string(), agent);
    let config = Config {
        path: Some(dir.path().join("larkgate.toml")),
        accounts: vec![demo_account(&emulator)],
        agents,
        store: StoreConfig {
            url: format!("sqlite://{}", dir.path().join("demo.db").display()),
        },
        admin: AdminConfig {
            enabled: true,
            listen: "127.0.0.1:0".parse().expect("literal address"),
            token: None,
        },
        webhook: WebhookListenConfig {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            max_body_bytes: 1 << 20,
        },
        log: LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            dir: None,
        },
    };
    let shutdown = CancellationToken::new();
    let gateway = gateway::start(config, RunOptions::default(), shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;
    gateway.wait_ready().await;
    emulator.set_ui_gateway_admin_url(gateway.admin_addr().map(|a| format!("http://{a}")));
    let url = emulator.ui_url();
    Ok(Demo {
        emulator,
        gateway,
        url,
        agent: agent_desc,
        shutdown,
        _dir: dir,
    })
}

impl Demo {
    /// What to tell the person who started it.
    pub fn banner(&self) -> String {
        let app = self.emulator.default_app();
        let admin = self
            .gateway
            .admin_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        format!(
            "larkgate demo is running.\n\n  Open {url} and chat as a Feishu user (DM, group, topics).\n\n  \
             Agent:    {agent}\n  Emulator: {base} (app {app_id}, control API {base}/_emulator)\n  \
             Gateway:  {admin}/healthz  {admin}/metrics\n\nPress Ctrl-C to stop.",
            url = self.url,
            agent = self.agent,
            base = self.emulator.base_url(),
            app_id = app.app_id,
        )
    }

    /// Stops the gateway, then the emulator.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.gateway.stop().await;
        self.emulator.shutdown().await;
    }
}

/// `larkgate demo`: start, print the URL, serve until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<(), String> {
    let demo = start(opts).await?;
    lark_emulator::announce_then_wait_for_interrupt(&demo.banner()).await?;
    demo.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_choice_follows_the_environment() {
        let none = |_: &str| None;
        let (a, d) = pick_agent(&DemoOptions::default(), &none).unwrap();
        assert_eq!(a.kind, AgentType::Echo);
        assert!(d.starts_with("echo"));
        let openai = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk-x".to_string()),
            "OPENAI_MODEL" => Some("qwen".to_string()),
            _ => None,
        };
        let (a, d) = pick_agent(&DemoOptions::default(), &openai).unwrap();
        assert_eq!(a.kind, AgentType::Openai);
        assert_eq!(a.model.as_deref(), Some("qwen"));
        assert!(d.contains("OPENAI_API_KEY"));
        let anthropic = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "k".to_string());
        assert_eq!(
            pick_agent(&DemoOptions::default(), &anthropic)
                .unwrap()
                .0
                .kind,
            AgentType::Anthropic
        );
    }
}
