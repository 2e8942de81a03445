//! Building an [`Agent`] from an `agents.<name>` entry, and checking the
//! entry first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::anthropic::AnthropicAgent;
use super::command::CommandAgent;
use super::echo::{EchoAgent, DEFAULT_CHUNK_DELAY};
use super::http::HttpAgent;
use super::openai::OpenAiAgent;
use super::transport::{HttpSettings, KeyHeader};
use super::turn::{Common, DEFAULT_TURN_TIMEOUT};
use super::{anthropic, openai};
use super::{Agent, AgentConfig, AgentError, AgentErrorKind, AgentType};
use crate::secret::Secret;

/// Longest `timeoutSecs` / `connectTimeoutSecs` accepted (one day).
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// Longest `chunkDelayMs` accepted.
const MAX_CHUNK_DELAY_MS: u64 = 10_000;

/// Builds the agent `name` from `cfg`: checks it ([`validate`]), reads its
/// API key (`apiKey`, else the `apiKeyEnv` variable looked up with `env`,
/// else the `apiKeyFile` relative to `base_dir`, trimmed), resolves `cwd` and
/// a relative program path (one with a `/`) against `base_dir`, and sets up
/// its HTTP client. Errors are [`AgentErrorKind::Config`].
pub fn build(
    name: &str,
    cfg: &AgentConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Agent>, AgentError> {
    let problems = validate(cfg);
    if !problems.is_empty() {
        return Err(AgentError::new(
            AgentErrorKind::Config,
            format!("agents.{name}: {}", problems.join("; ")),
        ));
    }
    let common = Common {
        name: name.to_string(),
        system_prompt: cfg.system_prompt.clone(),
        turn_timeout: cfg
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TURN_TIMEOUT),
    };
    let key = resolve_key(&common, cfg, base_dir, env)?;
    let model = cfg.model.clone().unwrap_or_default();
    let vision = cfg.vision.unwrap_or(true);
    Ok(match cfg.kind {
        AgentType::Echo => Arc::new(EchoAgent {
            chunk_delay: cfg
                .chunk_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_CHUNK_DELAY),
            common,
        }),
        AgentType::Openai => {
            let base = cfg.base_url.as_deref().unwrap_or(openai::DEFAULT_BASE_URL);
            Arc::new(OpenAiAgent {
                http: HttpSettings::new(&common, cfg, key, KeyHeader::Bearer)?,
                url: OpenAiAgent::endpoint(base),
                model,
                temperature: cfg.temperature,
                max_tokens: cfg.max_tokens,
                vision,
                common,
            })
        }
        AgentType::Anthropic => {
            let base = cfg
                .base_url
                .as_deref()
                .unwrap_or(anthropic::DEFAULT_BASE_URL);
            if key.is_none() {
                return Err(common.error(
                    AgentErrorKind::Config,
                    "needs an API key (apiKey, apiKeyEnv or apiKeyFile)",
                ));
            }
            Arc::new(AnthropicAgent {
                http: HttpSettings::new(&common, cfg, key, KeyHeader::XApiKey)?,
                url: AnthropicAgent::endpoint(base),
                model,
                temperature: cfg.temperature,
                max_tokens: cfg.max_tokens.unwrap_or(anthropic::DEFAULT_MAX_TOKENS),
                vision,
                common,
            })
        }
        AgentType::Http => Arc::new(HttpAgent {
            http: HttpSettings::new(&common, cfg, key, KeyHeader::Bearer)?,
            url: cfg.url.clone().unwrap_or_default(),
            common,
        }),
        AgentType::Command => Arc::new(command_agent(common, cfg, base_dir)),
    })
}

fn command_agent(common: Common, cfg: &AgentConfig, base_dir: &Path) -> CommandAgent {
    let argv = cfg.command.clone().unwrap_or_default();
    let (program, args) = match argv.split_first() {
        Some((program, args)) => (program.clone(), args.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let program = if program.contains('/') {
        base_dir.join(program)
    } else {
        PathBuf::from(program)
    };
    let cwd = cfg.cwd.as_ref().map(|c| base_dir.join(c));
    CommandAgent {
        media_base: cwd.clone().unwrap_or_else(|| base_dir.to_path_buf()),
        common,
        program,
        args,
        cwd,
        env: cfg.env.clone().unwrap_or_default(),
        output: cfg.output.unwrap_or_default(),
    }
}

/// The API key from `apiKey`, `apiKeyEnv` or `apiKeyFile` (trimmed).
fn resolve_key(
    common: &Common,
    cfg: &AgentConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, AgentError> {
    let config_error = |message: String| common.error(AgentErrorKind::Config, message);
    let value = if let Some(key) = &cfg.api_key {
        key.expose().trim().to_string()
    } else if let Some(var) = &cfg.api_key_env {
        env(var)
            .ok_or_else(|| {
                config_error(format!(
                    "apiKeyEnv: the environment variable {var} is not set"
                ))
            })?
            .trim()
            .to_string()
    } else if let Some(file) = &cfg.api_key_file {
        let path = base_dir.join(file);
        std::fs::read_to_string(&path)
            .map_err(|e| config_error(format!("apiKeyFile: cannot read {}: {e}", path.display())))?
            .trim()
            .to_string()
    } else {
        return Ok(None);
    };
    if value.is_empty() {
        return Err(config_error("the API key is empty".into()));
    }
    Ok(Some(Secret::new(value)))
}

/// Checks an `agents.<name>` entry; returns one human message per problem,
/// each naming the camelCase key (the config loader prefixes `agents.<name>.`).
pub fn validate(cfg: &AgentConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = type_name(cfg.kind);
    for (key, set) in keys_set(cfg) {
        if set && !allowed_keys(cfg.kind).contains(&key) {
            problems.push(format!("{key} is not used by type {kind}"));
        }
    }
    check_required(cfg, kind, &mut problems);
    check_values(cfg, &mut problems);
    problems
}

fn check_required(cfg: &AgentConfig, kind: &str, problems: &mut Vec<String>) {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    if matches!(cfg.kind, AgentType::Openai | AgentType::Anthropic) && blank(&cfg.model) {
        problems.push(format!("model is required for type {kind}"));
    }
    if cfg.kind == AgentType::Http && blank(&cfg.url) {
        problems.push("url is required for type http".into());
    }
    if cfg.kind == AgentType::Command
        && cfg
            .command
            .as_ref()
            .and_then(|c| c.first())
            .is_none_or(|p| p.trim().is_empty())
    {
        problems
            .push("command is required for type command (the program, then its arguments)".into());
    }
    let key_sources = [
        cfg.api_key.is_some(),
        cfg.api_key_env.is_some(),
        cfg.api_key_file.is_some(),
    ];
    match key_sources.iter().filter(|s| **s).count() {
        0 if cfg.kind == AgentType::Anthropic => {
            problems.push("apiKey, apiKeyEnv or apiKeyFile is required for type anthropic".into())
        }
        0 | 1 => {}
        _ => problems.push("set only one of apiKey, apiKeyEnv and apiKeyFile".into()),
    }
}

fn check_values(cfg: &AgentConfig, problems: &mut Vec<String>) {
    for (key, url) in [("baseUrl", &cfg.base_url), ("url", &cfg.url)] {
        if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) {
            if !is_url(url, &["http", "https"]) {
                problems.push(format!("{key} must be an http:// or https:// URL"));
            }
        }
    }
    if let Some(proxy) = &cfg.proxy {
        if !is_url(proxy, &["http", "https", "socks5", "socks5h"]) {
            problems.push("proxy must be an http://, https://, socks5:// or socks5h:// URL".into());
        }
    }
    if cfg
        .api_key
        .as_ref()
        .is_some_and(|k| k.expose().trim().is_empty())
    {
        problems.push("apiKey is empty".into());
    }
    if cfg
        .api_key_env
        .as_deref()
        .is_some_and(|v| v.trim().is_empty())
    {
        problems.push("apiKeyEnv is empty (it names an environment variable)".into());
    }
    if let Some(t) = cfg.temperature {
        if !(0.0..=2.0).contains(&t) {
            problems.push("temperature must be between 0 and 2".into());
        }
    }
    if cfg.max_tokens == Some(0) {
        problems.push("maxTokens must be at least 1".into());
    }
    for (key, secs) in [
        ("timeoutSecs", cfg.timeout_secs),
        ("connectTimeoutSecs", cfg.connect_timeout_secs),
    ] {
        if secs.is_some_and(|s| s == 0 || s > MAX_TIMEOUT_SECS) {
            problems.push(format!("{key} must be between 1 and {MAX_TIMEOUT_SECS}"));
        }
    }
    if cfg.chunk_delay_ms.is_some_and(|ms| ms > MAX_CHUNK_DELAY_MS) {
        problems.push(format!("chunkDelayMs must be at most {MAX_CHUNK_DELAY_MS}"));
    }
    for (name, value) in cfg.headers.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("headers: `{name}` is not a valid header name"));
        } else if HeaderValue::from_str(value).is_err() {
            problems.push(format!(
                "headers: the value of `{name}` is not a valid header value"
            ));
        }
    }
    for name in cfg.env.iter().flatten().map(|(k, _)| k) {
        if name.is_empty() || name.contains(['=', '\0']) {
            problems.push(format!("env: `{name}` is not a valid variable name"));
        }
    }
    for prefix in cfg.media_url_allowlist.iter().flatten() {
        if !(prefix.starts_with("https://") || prefix.starts_with("http://")) {
            problems.push(format!(
                "mediaUrlAllowlist: `{prefix}` must start with https:// or http://"
            ));
        }
    }
}

fn is_url(text: &str, schemes: &[&str]) -> bool {
    reqwest::Url::parse(text).is_ok_and(|u| schemes.contains(&u.scheme()) && u.host().is_some())
}

fn type_name(kind: AgentType) -> &'static str {
    match kind {
        AgentType::Echo => "echo",
        AgentType::Openai => "openai",
        AgentType::Anthropic => "anthropic",
        AgentType::Command => "command",
        AgentType::Http => "http",
    }
}

/// Every optional key (camelCase) and whether it is set.
fn keys_set(cfg: &AgentConfig) -> [(&'static str, bool); 20] {
    [
        ("baseUrl", cfg.base_url.is_some()),
        ("model", cfg.model.is_some()),
        ("apiKey", cfg.api_key.is_some()),
        ("apiKeyEnv", cfg.api_key_env.is_some()),
        ("apiKeyFile", cfg.api_key_file.is_some()),
        ("systemPrompt", cfg.system_prompt.is_some()),
        ("temperature", cfg.temperature.is_some()),
        ("maxTokens", cfg.max_tokens.is_some()),
        ("timeoutSecs", cfg.timeout_secs.is_some()),
        ("command", cfg.command.is_some()),
        ("cwd", cfg.cwd.is_some()),
        ("env", cfg.env.is_some()),
        ("url", cfg.url.is_some()),
        ("headers", cfg.headers.is_some()),
        ("vision", cfg.vision.is_some()),
        ("mediaUrlAllowlist", cfg.media_url_allowlist.is_some()),
        ("connectTimeoutSecs", cfg.connect_timeout_secs.is_some()),
        ("proxy", cfg.proxy.is_some()),
        ("output", cfg.output.is_some()),
        ("chunkDelayMs", cfg.chunk_delay_ms.is_some()),
    ]
}

/// The keys each type reads.
fn allowed_keys(kind: AgentType) -> &'static [&'static str] {
    const LLM: &[&str] = &[
        "baseUrl",
        "model",
        "apiKey",
        "apiKeyEnv",
        "apiKeyFile",
        "systemPrompt",
        "temperature",
        "maxTokens",
        "timeoutSecs",
        "headers",
        "vision",
        "connectTimeoutSecs",
        "proxy",
    ];
    match kind {
        AgentType::Echo => &["timeoutSecs", "chunkDelayMs"],
        AgentType::Openai | AgentType::Anthropic => LLM,
        AgentType::Command => &[
            "command",
            "cwd",
            "env",
            "systemPrompt",
            "timeoutSecs",
            "output",
            "mediaUrlAllowlist",
        ],
        AgentType::Http => &[
            "url",
            "apiKey",
            "apiKeyEnv",
            "apiKeyFile",
            "headers",
            "systemPrompt",
            "timeoutSecs",
            "connectTimeoutSecs",
            "proxy",
            "mediaUrlAllowlist",
        ],
    }
}
