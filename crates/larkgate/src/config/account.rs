//! Accounts: reading `channels.lark` and `channels.lark.accounts.<name>`,
//! inheritance from the top level, the environment, secret files, and the
//! checks that concern one account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::issues::{join_key, Issues};
use super::model::{
    AccountConfig, DmPolicy, GroupConfig, GroupPolicy, Mode, ReplyMode, SessionScope,
};
use super::schema::*;
use super::table::Table;
use crate::secret::Secret;

/// Where an app credential comes from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// Written in the file (or given by an environment variable). Held as
    /// a [`Secret`] so that no `Debug` output shows an app secret.
    Inline(Secret),
    /// Read from this file (already resolved against the config directory).
    File(PathBuf),
}

/// An app credential and the key (or variable) that set it, for messages.
#[derive(Clone, Debug)]
pub(crate) struct Cred {
    pub(crate) source: Source,
    pub(crate) key: String,
}

/// One account's keys as written: `None` where the file says nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawAccount {
    pub(crate) enabled: Option<bool>,
    pub(crate) app_id: Option<Cred>,
    pub(crate) app_secret: Option<Cred>,
    pub(crate) bot_name: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) mode: Option<Mode>,
    pub(crate) encrypt_key: Option<Secret>,
    pub(crate) verification_token: Option<Secret>,
    pub(crate) webhook_path: Option<String>,
    pub(crate) dm_policy: Option<DmPolicy>,
    pub(crate) allow_from: Option<Vec<String>>,
    pub(crate) group_policy: Option<GroupPolicy>,
    pub(crate) group_allow_from: Option<Vec<String>>,
    pub(crate) groups: Option<BTreeMap<String, GroupConfig>>,
    pub(crate) require_mention: Option<bool>,
    pub(crate) mention_all: Option<bool>,
    pub(crate) allow_bots: Option<bool>,
    pub(crate) session_scope: Option<SessionScope>,
    pub(crate) agent: Option<String>,
    pub(crate) system_prompt: Option<String>,
    pub(crate) reply_mode: Option<ReplyMode>,
    pub(crate) reply_in_thread: Option<bool>,
    pub(crate) typing_indicator: Option<bool>,
    pub(crate) typing_emoji: Option<String>,
    pub(crate) typing_delay_ms: Option<u64>,
    pub(crate) history_limit: Option<u64>,
    pub(crate) queue_limit: Option<u64>,
    pub(crate) stale_after_secs: Option<u64>,
    pub(crate) stream_interval_ms: Option<u64>,
    pub(crate) media_max_bytes: Option<u64>,
    pub(crate) proxy: Option<String>,
}

/// Default `webhookPath`.
pub(crate) const DEFAULT_WEBHOOK_PATH: &str = "/lark/webhook";
/// Default `typingEmoji`.
pub(crate) const DEFAULT_TYPING_EMOJI: &str = "Typing";
/// Default `typingDelayMs`: replies faster than this show no typing
/// reaction (and spend no API calls on one).
pub(crate) const DEFAULT_TYPING_DELAY_MS: u64 = 1000;
/// Default `historyLimit`.
pub(crate) const DEFAULT_HISTORY_LIMIT: u64 = 40;
/// Default `queueLimit`.
pub(crate) const DEFAULT_QUEUE_LIMIT: u64 = 10;
/// Default `staleAfterSecs`.
pub(crate) const DEFAULT_STALE_AFTER_SECS: u64 = 1800;
/// Default `streamIntervalMs`.
pub(crate) const DEFAULT_STREAM_INTERVAL_MS: u64 = 100;
/// Default `mediaMaxBytes` (20 MiB).
pub(crate) const DEFAULT_MEDIA_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// Environment variables that fill the default account, first found wins.
pub(crate) const ENV_APP_ID: &[&str] = &["LARK_APP_ID", "FEISHU_APP_ID"];
/// See [`ENV_APP_ID`].
pub(crate) const ENV_APP_SECRET: &[&str] = &["LARK_APP_SECRET", "FEISHU_APP_SECRET"];
/// See [`ENV_APP_ID`].
pub(crate) const ENV_DOMAIN: &[&str] = &["LARK_DOMAIN", "FEISHU_DOMAIN"];

/// Reads one account table. `base_dir` resolves relative file paths.
pub(crate) fn read_account(t: &Table<'_>, base_dir: &Path) -> RawAccount {
    RawAccount {
        enabled: t.bool("enabled"),
        app_id: read_cred(t, "appId", "appIdFile", base_dir),
        app_secret: read_cred(t, "appSecret", "appSecretFile", base_dir),
        bot_name: t.string("name"),
        domain: read_domain(t),
        mode: t.choice("mode", MODES, MODE_NAMES),
        encrypt_key: t.secret("encryptKey"),
        verification_token: t.secret("verificationToken"),
        webhook_path: read_webhook_path(t),
        dm_policy: t.choice("dmPolicy", DM_POLICIES, DM_POLICY_NAMES),
        allow_from: read_senders(t, "allowFrom"),
        group_policy: t.choice("groupPolicy", GROUP_POLICIES, GROUP_POLICY_NAMES),
        group_allow_from: read_senders(t, "groupAllowFrom"),
        groups: t.map_of("groups").map(|m| read_groups(t, m)),
        require_mention: t.bool("requireMention"),
        mention_all: t.bool("mentionAll"),
        allow_bots: t.bool("allowBots"),
        session_scope: t.choice("sessionScope", SESSION_SCOPES, SESSION_SCOPE_NAMES),
        agent: t.string("agent"),
        system_prompt: t.string("systemPrompt"),
        reply_mode: t.choice("replyMode", REPLY_MODES, REPLY_MODE_NAMES),
        reply_in_thread: t.bool("replyInThread"),
        typing_indicator: t.bool("typingIndicator"),
        typing_emoji: t.string("typingEmoji"),
        typing_delay_ms: t.uint("typingDelayMs"),
        history_limit: t.uint("historyLimit"),
        queue_limit: t.uint_min("queueLimit", 1),
        stale_after_secs: t.uint("staleAfterSecs"),
        stream_interval_ms: t.uint("streamIntervalMs"),
        media_max_bytes: t.uint("mediaMaxBytes"),
        proxy: read_proxy(t),
    }
}

/// `appId`/`appIdFile` or `appSecret`/`appSecretFile`: one or the other.
fn read_cred(t: &Table<'_>, inline: &str, file: &str, base_dir: &Path) -> Option<Cred> {
    let value = if inline == "appSecret" {
        t.secret(inline)
    } else {
        t.string(inline).map(Secret::new)
    };
    let path = t.string(file);
    match (value, path) {
        (Some(_), Some(_)) => {
            t.issues().error(
                t.key(file),
                format!("set either {inline} or {file}, not both"),
            );
            None
        }
        (Some(v), None) => Some(Cred {
            source: Source::Inline(v),
            key: t.key(inline),
        }),
        (None, Some(p)) => Some(Cred {
            source: Source::File(base_dir.join(p)),
            key: t.key(file),
        }),
        (None, None) => None,
    }
}

fn read_domain(t: &Table<'_>) -> Option<String> {
    let domain = t.string("domain")?;
    match lark_client::Domain::parse(&domain) {
        Ok(_) => Some(domain),
        Err(_) => {
            t.issues().error(
                t.key("domain"),
                format!(
                    "{domain:?} is not feishu, lark, or a base URL; use \"feishu\" (China), \
                     \"lark\" (international), or a URL such as https://open.example.com"
                ),
            );
            None
        }
    }
}

fn read_webhook_path(t: &Table<'_>) -> Option<String> {
    let path = t.string("webhookPath")?;
    if !path.starts_with('/') {
        t.issues().error(
            t.key("webhookPath"),
            format!("{path:?} must start with /, e.g. {DEFAULT_WEBHOOK_PATH:?}"),
        );
        return None;
    }
    Some(path)
}

fn read_proxy(t: &Table<'_>) -> Option<String> {
    let proxy = t.string("proxy")?;
    let schemes = ["http://", "https://", "socks5://", "socks5h://"];
    if !schemes.iter().any(|s| proxy.starts_with(s)) {
        t.issues().error(
            t.key("proxy"),
            "not a proxy URL; use http://host:port, https://…, socks5://… or socks5h://…",
        );
        return None;
    }
    Some(proxy)
}

/// A sender list; entries that cannot match an open_id are warned about.
fn read_senders(t: &Table<'_>, name: &str) -> Option<Vec<String>> {
    let senders = t.strings(name)?;
    for (i, s) in senders.iter().enumerate() {
        if s != "*" && !s.starts_with("ou_") {
            t.issues().warn(
                format!("{}[{i}]", t.key(name)),
                format!("{s:?} is not an open_id (ou_…) or \"*\"; it will never match"),
            );
        }
    }
    Some(senders)
}

fn read_groups(t: &Table<'_>, map: &Map<String, Value>) -> BTreeMap<String, GroupConfig> {
    let path = t.key("groups");
    let mut groups = BTreeMap::new();
    for (chat_id, value) in map {
        let key = join_key(&path, chat_id);
        let Value::Object(entry) = value else {
            t.issues().error(
                key,
                "expected a table of group settings, e.g. { requireMention = false }",
            );
            continue;
        };
        if chat_id != "*" && !chat_id.starts_with("oc_") {
            t.issues().warn(
                &key,
                "this is not a chat_id (oc_…); the group will never match",
            );
        }
        let g = Table::new(entry, key, &[GROUP_KEYS], t.issues());
        let config = GroupConfig {
            enabled: g.bool("enabled"),
            require_mention: g.bool("requireMention"),
            system_prompt: g.string("systemPrompt"),
            allow_from: read_senders(&g, "allowFrom"),
            reply_in_thread: g.bool("replyInThread"),
            session_scope: g.choice("sessionScope", SESSION_SCOPES, SESSION_SCOPE_NAMES),
            agent: g.string("agent"),
            reply_mode: g.choice("replyMode", REPLY_MODES, REPLY_MODE_NAMES),
        };
        groups.insert(chat_id.clone(), config);
    }
    groups
}

impl RawAccount {
    /// Fills the app credentials and domain from the environment where the
    /// file leaves them unset (file values win; a variable that loses is
    /// warned about).
    pub(crate) fn fill_from_env(&mut self, env: &dyn Fn(&str) -> Option<String>, issues: &Issues) {
        let first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
        };
        let fill = |slot: &mut Option<Cred>, names: &[&'static str]| {
            let Some((var, value)) = first(names) else {
                return;
            };
            match slot {
                Some(cred) => issues.warn(
                    var,
                    format!("ignored: {} is set in the file and wins", cred.key),
                ),
                None => {
                    *slot = Some(Cred {
                        source: Source::Inline(Secret::new(value)),
                        key: var.to_string(),
                    })
                }
            }
        };
        fill(&mut self.app_id, ENV_APP_ID);
        fill(&mut self.app_secret, ENV_APP_SECRET);
        if self.domain.is_none() {
            if let Some((var, domain)) = first(ENV_DOMAIN) {
                match lark_client::Domain::parse(&domain) {
                    Ok(_) => self.domain = Some(domain),
                    Err(_) => issues.error(
                        var,
                        format!("{domain:?} is not feishu, lark, or a base URL"),
                    ),
                }
            }
        }
    }

    /// This account's keys, with every key it leaves unset taken from
    /// `base` (the top level). The app secret is only inherited together
    /// with the app id: an account that names its own app needs its own
    /// secret.
    pub(crate) fn inherit(self, base: &RawAccount) -> RawAccount {
        let own_app = self.app_id.is_some();
        macro_rules! or_base {
            ($($field:ident),*) => {
                RawAccount {
                    $($field: self.$field.or_else(|| base.$field.clone()),)*
                    app_id: self.app_id.or_else(|| base.app_id.clone()),
                    app_secret: if own_app {
                        self.app_secret
                    } else {
                        self.app_secret.or_else(|| base.app_secret.clone())
                    },
                }
            };
        }
        or_base!(
            enabled,
            bot_name,
            domain,
            mode,
            encrypt_key,
            verification_token,
            webhook_path,
            dm_policy,
            allow_from,
            group_policy,
            group_allow_from,
            groups,
            require_mention,
            mention_all,
            allow_bots,
            session_scope,
            agent,
            system_prompt,
            reply_mode,
            reply_in_thread,
            typing_indicator,
            typing_emoji,
            typing_delay_ms,
            history_limit,
            queue_limit,
            stale_after_secs,
            stream_interval_ms,
            media_max_bytes,
            proxy
        )
    }

    /// The complete account, defaults applied and credentials read.
    /// `prefix` is the account's dotted key (`channels.lark` or
    /// `channels.lark.accounts.<name>`); `env_hint` says whether the
    /// environment could have supplied the credentials (default account).
    pub(crate) fn resolve(
        self,
        name: &str,
        prefix: &str,
        env_hint: bool,
        issues: &Issues,
    ) -> AccountConfig {
        let enabled = self.enabled.unwrap_or(true);
        let key = |k: &str| join_key(prefix, k);
        let env_or = |var: &str| {
            if env_hint {
                format!(", or {var}")
            } else {
                String::new()
            }
        };
        let app_id = match &self.app_id {
            Some(cred) if enabled => read_app_id(cred, issues),
            Some(Cred {
                source: Source::Inline(v),
                ..
            }) => v.expose().to_string(),
            _ if enabled => {
                issues.error(
                    key("appId"),
                    format!("not set; set it, or appIdFile{}", env_or("LARK_APP_ID")),
                );
                String::new()
            }
            _ => String::new(),
        };
        let app_secret = match &self.app_secret {
            Some(cred) if enabled => read_secret(cred, issues),
            _ if enabled => {
                issues.error(
                    key("appSecret"),
                    format!(
                        "not set; set it, or appSecretFile{}",
                        env_or("LARK_APP_SECRET")
                    ),
                );
                Secret::default()
            }
            _ => Secret::default(),
        };
        let mode = self.mode.unwrap_or_default();
        let dm_policy = self.dm_policy.unwrap_or_default();
        let allow_from = self.allow_from.unwrap_or_default();
        if enabled {
            if mode == Mode::Webhook
                && self.encrypt_key.is_none()
                && self.verification_token.is_none()
            {
                issues.error(
                    key("encryptKey"),
                    "not set while mode is \"webhook\", and neither is verificationToken, so \
                     anyone could post forged events; copy both from the developer console \
                     (Events & Callbacks > Encryption Strategy)",
                );
            }
            if dm_policy == DmPolicy::Allowlist && allow_from.is_empty() {
                issues.error(
                    key("allowFrom"),
                    "empty while dmPolicy is \"allowlist\", so nobody could message the bot; \
                     list open_ids (ou_…) or \"*\" for anyone, or set dmPolicy = \"pairing\"",
                );
            }
        }
        AccountConfig {
            name: name.to_string(),
            enabled,
            app_id,
            app_secret,
            bot_name: self.bot_name,
            domain: self.domain.unwrap_or_else(|| "feishu".into()),
            mode,
            encrypt_key: self.encrypt_key,
            verification_token: self.verification_token,
            webhook_path: self
                .webhook_path
                .unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.into()),
            dm_policy,
            allow_from,
            group_policy: self.group_policy.unwrap_or_default(),
            group_allow_from: self.group_allow_from.unwrap_or_default(),
            groups: self.groups.unwrap_or_default(),
            require_mention: self.require_mention.unwrap_or(true),
            mention_all: self.mention_all.unwrap_or(false),
            allow_bots: self.allow_bots.unwrap_or(false),
            session_scope: self.session_scope.unwrap_or_default(),
            agent: self.agent.unwrap_or_else(|| "echo".into()),
            system_prompt: self.system_prompt,
            reply_mode: self.reply_mode.unwrap_or_default(),
            reply_in_thread: self.reply_in_thread.unwrap_or(false),
            typing_indicator: self.typing_indicator.unwrap_or(true),
            typing_emoji: self
                .typing_emoji
                .unwrap_or_else(|| DEFAULT_TYPING_EMOJI.into()),
            typing_delay_ms: self.typing_delay_ms.unwrap_or(DEFAULT_TYPING_DELAY_MS),
            history_limit: to_usize(self.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT)),
            queue_limit: to_usize(self.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT)),
            stale_after_secs: self.stale_after_secs.unwrap_or(DEFAULT_STALE_AFTER_SECS),
            stream_interval_ms: self
                .stream_interval_ms
                .unwrap_or(DEFAULT_STREAM_INTERVAL_MS),
            media_max_bytes: self.media_max_bytes.unwrap_or(DEFAULT_MEDIA_MAX_BYTES),
            proxy: self.proxy,
        }
    }
}

impl AccountConfig {
    /// An account with every documented default: what a file that sets only
    /// `appId` and `appSecret` gives (for code that builds configurations,
    /// such as the demo and tests).
    pub fn new(name: &str, app_id: &str, app_secret: Secret) -> AccountConfig {
        let inline = |v: Secret, key: &str| Cred {
            source: Source::Inline(v),
            key: key.to_string(),
        };
        let raw = RawAccount {
            app_id: Some(inline(Secret::new(app_id), "appId")),
            app_secret: Some(inline(app_secret, "appSecret")),
            ..RawAccount::default()
        };
        raw.resolve(name, "channels.lark", false, &Issues::default())
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The app id, read from its file if need be, checked to look like one.
fn read_app_id(cred: &Cred, issues: &Issues) -> String {
    let Some(app_id) = read_source(cred, issues) else {
        return String::new();
    };
    if !app_id.starts_with("cli_") {
        issues.error(
            &cred.key,
            format!(
                "{app_id:?} does not look like an app_id (they start with cli_); copy the \
                 App ID from the developer console (Credentials & Basic Info)"
            ),
        );
    }
    app_id
}

/// The app secret, read from its file if need be; a file others can read
/// is warned about.
fn read_secret(cred: &Cred, issues: &Issues) -> Secret {
    if let Source::File(path) = &cred.source {
        warn_if_shared(path, &cred.key, issues);
    }
    Secret::new(read_source(cred, issues).unwrap_or_default())
}

/// The value of a credential: inline, or the trimmed contents of its file.
fn read_source(cred: &Cred, issues: &Issues) -> Option<String> {
    match &cred.source {
        Source::Inline(v) => Some(v.expose().to_string()),
        Source::File(path) => match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => {
                issues.error(
                    &cred.key,
                    format!("{} is empty; put the value in it", path.display()),
                );
                None
            }
            Ok(text) => Some(text.trim().to_string()),
            Err(e) => {
                issues.error(
                    &cred.key,
                    format!(
                        "cannot read {}: {e}; check the path (relative paths start at the \
                         config file's directory)",
                        path.display()
                    ),
                );
                None
            }
        },
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, key: &str, issues: &Issues) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            issues.warn(
                key,
                format!(
                    "{} can be read by other users (mode {mode:o}); run chmod 600 {}",
                    path.display(),
                    path.display()
                ),
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _key: &str, _issues: &Issues) {}
