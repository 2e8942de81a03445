//! From text to [`Config`]: parse, read every section, check what spans
//! sections (agent names, duplicate apps and webhook paths), collect issues.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::account::{read_account, RawAccount};
use super::agents::read_agents;
use super::issues::{join_key, ConfigError, Issues};
use super::model::*;
use super::schema::*;
use super::table::Table;
use super::{Format, LoadedConfig};
use crate::agent::AgentConfig;

/// Default `admin.listen`.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:18790";
/// Default `webhook.listen`.
pub(crate) const DEFAULT_WEBHOOK_LISTEN: &str = "127.0.0.1:18789";
/// Default `webhook.maxBodyBytes` (1 MiB).
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default store file, beside the config.
pub(crate) const DEFAULT_DB_FILE: &str = "larkgate.db";
/// Default log directory, beside the config.
pub(crate) const DEFAULT_LOG_DIR: &str = "logs";

/// Parses `text` into a tree; a syntax error becomes one issue with the
/// line and column, keyed by `source` (the file).
pub(crate) fn parse(text: &str, format: Format, source: &str) -> Result<Value, ConfigError> {
    match format {
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            ConfigError::single(
                source,
                format!("TOML syntax error{at}: {}", e.message().trim_end()),
            )
        }),
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            let full = e.to_string();
            let message = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(m, _)| m);
            ConfigError::single(
                source,
                format!(
                    "JSON syntax error at line {}, column {}: {message}",
                    e.line(),
                    e.column()
                ),
            )
        }),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Builds the configuration from a parsed tree.
pub(crate) fn build(
    root: &Value,
    path: Option<&Path>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let issues = Issues::default();
    let empty = Map::new();
    let root_map = match root {
        Value::Object(map) => map,
        _ => {
            issues.error("(top level)", "expected a table of settings");
            &empty
        }
    };
    let root = Table::new(root_map, String::new(), &[TOP_KEYS], &issues);
    let agents = read_agents(root.map_of("agents"), base_dir, env, &issues);
    let accounts = read_accounts(&root, base_dir, env, &issues);
    check_accounts(&accounts, &agents, &issues);
    let config = Config {
        path: path.map(Path::to_path_buf),
        accounts: accounts.into_iter().map(|(_, a)| a).collect(),
        agents,
        store: read_store(&root, base_dir),
        admin: read_admin(&root),
        webhook: read_webhook(&root),
        log: read_log(&root, base_dir),
    };
    if config.accounts.iter().all(|a| !a.enabled) && !issues.has_errors() {
        issues.warn(
            "channels.lark",
            "no account is enabled; nothing will connect",
        );
    }
    let (errors, warnings) = issues.into_parts();
    if errors.is_empty() {
        Ok(LoadedConfig { config, warnings })
    } else {
        Err(ConfigError { issues: errors })
    }
}

/// `channels.lark` (or `channels.feishu`) and its accounts, each with the
/// dotted key it is reported under.
fn read_accounts(
    root: &Table<'_>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &Issues,
) -> Vec<(String, AccountConfig)> {
    let channels = root.table("channels", &[CHANNEL_KEYS]);
    let channel = channels.as_ref().and_then(|c| {
        if c.has("lark") && c.has("feishu") {
            issues.error(
                "channels.feishu",
                "channels.lark is set too; keep one (feishu is another name for lark)",
            );
        }
        let name = if c.has("lark") { "lark" } else { "feishu" };
        c.table(name, &[ACCOUNT_KEYS, TOP_ACCOUNT_EXTRA_KEYS])
    });
    let prefix = channel
        .as_ref()
        .map_or_else(|| "channels.lark".to_string(), |c| c.path().to_string());
    let mut top = channel
        .as_ref()
        .map(|c| read_account(c, base_dir))
        .unwrap_or_default();
    top.fill_from_env(env, issues);

    let mut named: Vec<(String, String, RawAccount)> = Vec::new();
    if let Some(map) = channel.as_ref().and_then(|c| c.map_of("accounts")) {
        let accounts_key = join_key(&prefix, "accounts");
        for (name, value) in map {
            let key = join_key(&accounts_key, name);
            let Value::Object(entry) = value else {
                issues.error(
                    key,
                    "expected a table of account settings (appId, appSecret, …)",
                );
                continue;
            };
            let t = Table::new(entry, key.clone(), &[ACCOUNT_KEYS], issues);
            named.push((name.clone(), key, read_account(&t, base_dir)));
        }
    }

    let mut accounts = Vec::new();
    if top.app_id.is_some() {
        if let Some((_, key, _)) = named.iter().find(|(n, _, _)| n == "default") {
            issues.error(
                key,
                format!("the name \"default\" belongs to the account at {prefix} itself; rename this one"),
            );
        }
        let account = top.clone().resolve("default", &prefix, true, issues);
        accounts.push((prefix.clone(), account));
    } else if named.is_empty() {
        issues.error(
            join_key(&prefix, "appId"),
            format!(
                "not set; set it, or appIdFile, or LARK_APP_ID, or define accounts as \
                 {prefix}.accounts.<name>"
            ),
        );
    }
    for (name, key, raw) in named {
        let account = raw.inherit(&top).resolve(&name, &key, false, issues);
        accounts.push((key, account));
    }
    accounts
}

/// Checks that span accounts: agent names exist, no app is connected twice,
/// no two webhook accounts share a path.
fn check_accounts(
    accounts: &[(String, AccountConfig)],
    agents: &BTreeMap<String, AgentConfig>,
    issues: &Issues,
) {
    let defined = || {
        agents
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let check_agent = |key: String, name: &str| {
        if !agents.contains_key(name) {
            issues.error(
                key,
                format!(
                    "{name:?} is not defined; define [{}] or use one of: {}",
                    join_key("agents", name),
                    defined()
                ),
            );
        }
    };
    let mut app_ids: HashMap<&str, &str> = HashMap::new();
    let mut webhook_paths: HashMap<&str, &str> = HashMap::new();
    for (key, account) in accounts {
        check_agent(join_key(key, "agent"), &account.agent);
        for (chat_id, group) in &account.groups {
            if let Some(agent) = &group.agent {
                let group_key = join_key(&join_key(key, "groups"), chat_id);
                check_agent(join_key(&group_key, "agent"), agent);
            }
        }
        if !account.enabled || account.app_id.is_empty() {
            continue;
        }
        if let Some(other) = app_ids.insert(&account.app_id, key) {
            issues.error(
                join_key(key, "appId"),
                format!(
                    "{:?} is also the app of {other}; an app can be connected once, so give \
                     each account its own app (or set enabled = false on one)",
                    account.app_id
                ),
            );
        }
        if account.mode == Mode::Webhook {
            if let Some(other) = webhook_paths.insert(&account.webhook_path, key) {
                issues.error(
                    join_key(key, "webhookPath"),
                    format!(
                        "{:?} is also the path of {other}; give each webhook account its own path",
                        account.webhook_path
                    ),
                );
            }
        }
    }
}

fn read_store(root: &Table<'_>, base_dir: &Path) -> StoreConfig {
    let default = || StoreConfig {
        url: sqlite_url(&base_dir.join(DEFAULT_DB_FILE), ""),
    };
    let Some(t) = root.table("store", &[STORE_KEYS]) else {
        return default();
    };
    let Some(url) = t.string("url") else {
        return default();
    };
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
        if file.starts_with(':') || file.is_empty() {
            return StoreConfig { url };
        }
        return StoreConfig {
            url: sqlite_url(&base_dir.join(file), query),
        };
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // The URL may hold a password: show only the scheme.
        let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
        t.issues().error(
            t.key("url"),
            format!(
                "scheme {scheme:?} is not supported; use sqlite://path/to/file.db (relative to \
                 this file) or postgres://user@host/database"
            ),
        );
    }
    StoreConfig { url }
}

/// `sqlite://` + an absolute path, with `%`, `?` and `#` escaped the way
/// sqlx decodes them.
fn sqlite_url(file: &Path, query: &str) -> String {
    let path = absolute(file)
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    if query.is_empty() {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?{query}")
    }
}

/// The absolute form of `path` (relative to the working directory).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn read_listen(t: Option<&Table<'_>>, default: &str) -> SocketAddr {
    let fallback = || {
        default
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let Some(t) = t else {
        return fallback();
    };
    let Some(listen) = t.string("listen") else {
        return fallback();
    };
    match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            t.issues().error(
                t.key("listen"),
                format!("{listen:?} is not an address; write IP:port, e.g. {default:?}"),
            );
            fallback()
        }
    }
}

fn read_admin(root: &Table<'_>) -> AdminConfig {
    let t = root.table("admin", &[ADMIN_KEYS]);
    let listen = read_listen(t.as_ref(), DEFAULT_ADMIN_LISTEN);
    let enabled = t.as_ref().and_then(|t| t.bool("enabled")).unwrap_or(true);
    let token = t.as_ref().and_then(|t| t.secret("token"));
    if enabled && token.is_none() && !listen.ip().is_loopback() {
        root.issues().error(
            "admin.token",
            format!(
                "not set while admin.listen ({listen}) is reachable from other machines; set \
                 a token, or listen on 127.0.0.1"
            ),
        );
    }
    AdminConfig {
        enabled,
        listen,
        token,
    }
}

fn read_webhook(root: &Table<'_>) -> WebhookListenConfig {
    let t = root.table("webhook", &[WEBHOOK_KEYS]);
    WebhookListenConfig {
        listen: read_listen(t.as_ref(), DEFAULT_WEBHOOK_LISTEN),
        max_body_bytes: t
            .as_ref()
            .and_then(|t| t.uint_min("maxBodyBytes", 1024))
            .map_or(DEFAULT_MAX_BODY_BYTES as usize, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
    }
}

fn read_log(root: &Table<'_>, base_dir: &Path) -> LogConfig {
    let t = root.table("log", &[LOG_KEYS]);
    let level = t.as_ref().and_then(|t| t.string("level"));
    if let (Some(t), Some(level)) = (&t, &level) {
        if let Err(e) = level.parse::<tracing_subscriber::filter::Targets>() {
            t.issues().error(
                t.key("level"),
                format!("{level:?} is not a log filter ({e}); use error, warn, info, debug, trace, or e.g. \"info,larkgate=debug\""),
            );
        }
    }
    // An explicit empty dir turns file logging off.
    let dir = match t.as_ref().filter(|t| t.has("dir")) {
        Some(t) => t.string("dir").map(|d| base_dir.join(d)),
        None => Some(base_dir.join(DEFAULT_LOG_DIR)),
    };
    LogConfig {
        format: t
            .as_ref()
            .and_then(|t| t.choice("format", LOG_FORMATS, LOG_FORMAT_NAMES))
            .unwrap_or_default(),
        level: level.unwrap_or_else(|| "info".into()),
        dir,
    }
}
