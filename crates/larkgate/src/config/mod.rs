//! Configuration: the file (TOML or JSON), environment variables, and
//! validation with errors that name the key and the fix.
//!
//! # The file
//!
//! TOML or JSON, chosen by extension (`.json` is JSON, anything else TOML),
//! found at `--config`, else `$LARKGATE_CONFIG`, else `./larkgate.toml`
//! ([`Config::default_path`]). Keys are the ones users know from the peers:
//! the bot lives under `channels.lark` (or its alias `channels.feishu`),
//! agents under `agents.<name>`, then `store`, `admin`, `webhook`, `log`.
//! [`init_template`] is a commented starter file with every key.
//!
//! # Accounts
//!
//! `channels.lark` itself is the account named `default` when it has an
//! app id (in the file, via `appIdFile`, or from the environment).
//! `channels.lark.accounts.<name>` defines more; each inherits every key
//! set at the `channels.lark` level that it does not set itself (a
//! `groups` table is replaced as a whole, not merged). The app secret is
//! inherited only together with the app id: an account naming its own app
//! must give its own secret.
//!
//! # Environment
//!
//! `LARK_APP_ID`/`FEISHU_APP_ID`, `LARK_APP_SECRET`/`FEISHU_APP_SECRET` and
//! `LARK_DOMAIN`/`FEISHU_DOMAIN` fill the default account **only where the
//! file leaves the key unset** (an empty string counts as unset). A variable
//! that loses to the file is reported as a warning. Without any file at the
//! default path, the environment alone can configure one bot.
//!
//! # Validation
//!
//! Loading collects every problem before failing: unknown keys (with the
//! nearest valid name), values of the wrong type or outside their choices,
//! missing credentials, app ids that do not start with `cli_`, agents that
//! are not defined, a DM allowlist nobody is on, webhook mode without
//! `encryptKey` or `verificationToken`, one app connected twice, two webhook
//! accounts on one path, syntax errors with line and column. Each
//! [`ConfigIssue`] names the key and the fix; secret values never appear in
//! messages. Relative paths (`appSecretFile`, `store.url` SQLite files,
//! `log.dir`, agents' `apiKeyFile` and `cwd`) start at the config file's
//! directory. A secret file that other users can read is a warning.
//!
//! [`model`] holds the resolved shape the rest of the gateway uses;
//! [`edit`] changes single keys while keeping the file's comments.

mod account;
mod agents;
pub mod edit;
mod issues;
pub(crate) mod load;
pub mod model;
mod schema;
mod table;

use std::path::{Path, PathBuf};

pub use issues::{ConfigError, ConfigIssue};
pub use model::*;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "LARKGATE_CONFIG";

/// The format of a configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// JSON for a `.json` extension (any case), TOML otherwise.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// A valid configuration and what is worth telling the user about it.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// Things that do not stop the gateway but are probably mistakes
    /// (`key: message`), e.g. a secret file others can read.
    pub warnings: Vec<String>,
}

impl Config {
    /// `./larkgate.toml`.
    pub fn default_path() -> PathBuf {
        PathBuf::from("larkgate.toml")
    }

    /// Loads the file at `path`, else `$LARKGATE_CONFIG`, else
    /// [`Config::default_path`], with the process environment. A missing
    /// file at the default path is read as empty (the environment may be
    /// enough); a missing file that was asked for is an error.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a function.
    pub fn load_with_env(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigError> {
        let (path, asked) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match env(CONFIG_ENV).filter(|v| !v.is_empty()) {
                Some(p) => (PathBuf::from(p), true),
                None => (Config::default_path(), false),
            },
        };
        let base_dir = base_dir_of(&path);
        let format = Format::of_path(&path);
        let source = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => load_text(&text, format, Some(&path), &source, &base_dir, env),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !asked => {
                load_text("", format, None, &source, &base_dir, env).map_err(|mut err| {
                    err.issues.insert(
                        0,
                        ConfigIssue {
                            key: source.clone(),
                            message: "not found; create it with `larkgate config init`, pass \
                                      --config, or set LARKGATE_CONFIG"
                                .into(),
                        },
                    );
                    err
                })
            }
            Err(e) => Err(ConfigError::single(
                source,
                format!("cannot read: {e}; check the path given to --config or LARKGATE_CONFIG"),
            )),
        }
    }

    /// Reads a configuration from text. Relative paths start at `base_dir`;
    /// `env` stands for the process environment (tests pass their own).
    pub fn from_str(
        text: &str,
        format: Format,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigError> {
        load_text(text, format, None, "(config)", base_dir, env)
    }
}

/// Parses and builds; `source` names the text in syntax errors.
fn load_text(
    text: &str,
    format: Format,
    path: Option<&Path>,
    source: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let root = load::parse(text, format, source)?;
    load::build(&root, path, base_dir, env)
}

/// The directory relative paths in the file at `path` start from.
fn base_dir_of(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// A commented starter `larkgate.toml` showing every key with its default.
pub fn init_template() -> &'static str {
    include_str!("template.toml")
}

#[cfg(test)]
mod tests {
    use super::schema::*;
    use super::table::Keys;
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn app_env(name: &str) -> Option<String> {
        match name {
            "LARK_APP_ID" => Some("cli_template".into()),
            "LARK_APP_SECRET" => Some("s3cret".into()),
            _ => None,
        }
    }

    #[test]
    fn template_names_every_key() {
        let template = init_template();
        let lists: [(&str, Keys); 7] = [
            ("channels.lark", ACCOUNT_KEYS),
            ("groups", GROUP_KEYS),
            ("store", STORE_KEYS),
            ("admin", ADMIN_KEYS),
            ("webhook", WEBHOOK_KEYS),
            ("log", LOG_KEYS),
            ("top", TOP_KEYS),
        ];
        for (table, keys) in lists {
            for (key, _) in keys {
                let as_key = format!("{key} =");
                let as_section = format!("{key}]");
                let as_subsection = format!("{key}.");
                assert!(
                    template.contains(&as_key)
                        || template.contains(&as_section)
                        || template.contains(&as_subsection),
                    "{table}.{key} is missing from the template"
                );
            }
        }
    }

    #[test]
    fn template_defaults_are_the_real_defaults() {
        let dir = Path::new("/srv/bot");
        let from_template = Config::from_str(init_template(), Format::Toml, dir, &app_env)
            .unwrap_or_else(|e| panic!("template does not load:\n{e}"));
        let from_nothing = Config::from_str("", Format::Toml, dir, &app_env).unwrap();
        assert_eq!(
            format!("{:?}", from_template.config),
            format!("{:?}", from_nothing.config)
        );
        assert!(
            from_template.warnings.is_empty(),
            "{:?}",
            from_template.warnings
        );
    }

    #[test]
    fn every_schema_key_parses_with_a_value_of_its_kind() {
        use super::table::Kind;
        fn sample(kind: Kind) -> Option<serde_json::Value> {
            Some(match kind {
                Kind::Bool => serde_json::json!(true),
                Kind::Uint => serde_json::json!(5000),
                Kind::Str | Kind::Secret => serde_json::json!("x"),
                Kind::List => serde_json::json!(["ou_a"]),
                Kind::Choice(names) => serde_json::json!(names[names.len() - 1]),
                Kind::Table => return None,
            })
        }
        let mut account = serde_json::Map::new();
        for (key, kind) in ACCOUNT_KEYS {
            if let Some(v) = sample(*kind) {
                account.insert(key.to_string(), v);
            }
        }
        // Values that must look a certain way.
        account.insert("appId".into(), "cli_a".into());
        account.remove("appIdFile");
        account.remove("appSecretFile");
        account.insert("domain".into(), "lark".into());
        account.insert("webhookPath".into(), "/hook".into());
        account.insert("proxy".into(), "http://127.0.0.1:3128".into());
        account.insert("agent".into(), "echo".into());
        let mut group = serde_json::Map::new();
        for (key, kind) in GROUP_KEYS {
            if let Some(v) = sample(*kind) {
                group.insert(key.to_string(), v);
            }
        }
        group.insert("agent".into(), "echo".into());
        account.insert("groups".into(), serde_json::json!({ "oc_1": group }));
        let doc = serde_json::json!({
            "channels": { "lark": account },
            "store": { "url": "sqlite://x.db" },
            "admin": { "enabled": true, "listen": "127.0.0.1:1", "token": "t" },
            "webhook": { "listen": "127.0.0.1:2", "maxBodyBytes": 4096 },
            "log": { "format": "json", "level": "debug", "dir": "l" },
        });
        let loaded = Config::from_str(&doc.to_string(), Format::Json, Path::new("/d"), &no_env)
            .unwrap_or_else(|e| panic!("{e}"));
        let a = &loaded.config.accounts[0];
        assert_eq!(a.stream_interval_ms, 5000);
        assert_eq!(a.group("oc_1").and_then(|g| g.require_mention), Some(true));
    }
}
