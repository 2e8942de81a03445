//! `larkgate config init|validate|get|set`.
//!
//! `get` prints secrets (appSecret, encryptKey, verificationToken,
//! admin.token, agents' apiKey, headers and env) as `<redacted>` unless
//! `--show-secrets` is given, also inside a table it prints. `set` never
//! echoes the value.

use std::io::Write as _;
use std::path::Path;

use super::args::ConfigCommand;
use super::{config_path, load_config, print_warnings, Failure, Outcome};
use crate::config::edit::{self, EditError};
use crate::config::{init_template, Format, Mode};

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "appSecret",
    "encryptKey",
    "verificationToken",
    "token",
    "apiKey",
];

/// Tables whose every value is treated as a secret (agents' HTTP headers and
/// environment).
const SECRET_TABLES: &[&str] = &["headers", "env"];

const REDACTED: &str = "\"<redacted>\"";

pub(super) fn config(path: Option<&Path>, cmd: ConfigCommand) -> Outcome {
    let file = config_path(path);
    match cmd {
        ConfigCommand::Init { force } => init(&file, force),
        ConfigCommand::Validate => validate(&file),
        ConfigCommand::Get { key, show_secrets } => get(&file, &key, show_secrets),
        ConfigCommand::Set { key, value } => set(&file, &key, &value),
    }
}

/// Writes the starter template, readable only by its owner (it will hold
/// the app secret).
pub(super) fn write_template(file: &Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file)?;
    f.write_all(init_template().as_bytes())?;
    f.sync_all()
}

fn init(file: &Path, force: bool) -> Outcome {
    if Format::of_path(file) == Format::Json {
        return Err(Failure::usage(format!(
            "{}: config init writes a commented TOML file; give a .toml path",
            file.display()
        )));
    }
    if file.exists() && !force {
        return Err(Failure::usage(format!(
            "{} already exists; pass --force to overwrite it",
            file.display()
        )));
    }
    write_template(file).map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
    println!("wrote {}", file.display());
    println!(
        "next: `larkgate setup` creates the bot by scanning a QR code, or set the \
         credentials with `larkgate config set channels.lark.appId cli_…` and \
         `larkgate config set channels.lark.appSecret …`"
    );
    Ok(())
}

fn validate(file: &Path) -> Outcome {
    let loaded = load_config(Some(file))?;
    print_warnings(&loaded.warnings);
    let config = &loaded.config;
    println!("{}: ok", file.display());
    for a in &config.accounts {
        println!(
            "  account {}: {} ({}, {}, agent {}){}",
            a.name,
            a.app_id,
            a.domain,
            match a.mode {
                Mode::Websocket => "long connection",
                Mode::Webhook => "webhook",
            },
            a.agent,
            if a.enabled { "" } else { " [disabled]" }
        );
    }
    println!(
        "  agents: {}",
        config.agents.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn edit_failure(e: EditError) -> Failure {
    match e {
        EditError::Io { .. } => Failure::runtime(e.to_string()),
        EditError::Invalid(issues) => {
            Failure::usage(format!("refused, nothing was written:\n{issues}"))
        }
        other => Failure::usage(other.to_string()),
    }
}

fn get(file: &Path, key: &str, show_secrets: bool) -> Outcome {
    match edit::get(file, key).map_err(edit_failure)? {
        Some(value) if show_secrets => {
            println!("{value}");
            Ok(())
        }
        Some(value) => {
            println!("{}", redact(key, &value));
            Ok(())
        }
        None => Err(Failure::runtime(format!(
            "{key} is not set in {}",
            file.display()
        ))),
    }
}

fn set(file: &Path, key: &str, value: &str) -> Outcome {
    let report = edit::set(file, key, value).map_err(edit_failure)?;
    println!("set {key} in {}", file.display());
    print_warnings(&report.warnings);
    if !report.issues.is_empty() {
        println!(
            "the file still has {} problem(s) before larkgate can run:",
            report.issues.len()
        );
        for issue in &report.issues {
            println!("  {issue}");
        }
    }
    Ok(())
}

/// Splits a dotted key into its segments (quotes removed), best effort.
fn segments(key: &str) -> Vec<String> {
    toml_edit::Key::parse(key.trim())
        .map(|keys| keys.iter().map(|k| k.get().to_string()).collect())
        .unwrap_or_else(|_| key.split('.').map(str::to_string).collect())
}

fn is_secret_path(segs: &[String]) -> bool {
    let last_is_secret = segs
        .last()
        .is_some_and(|k| SECRET_KEYS.contains(&k.as_str()));
    let in_secret_table = segs.len() >= 2
        && segs[..segs.len() - 1]
            .iter()
            .any(|k| SECRET_TABLES.contains(&k.as_str()));
    let is_secret_table = segs
        .last()
        .is_some_and(|k| SECRET_TABLES.contains(&k.as_str()));
    last_is_secret || in_secret_table || is_secret_table
}

/// `value` (as `config get` prints it) with secrets replaced.
fn redact(key: &str, value: &str) -> String {
    let segs = segments(key);
    if is_secret_path(&segs) {
        return if value.is_empty() {
            String::new()
        } else {
            "<redacted>".to_string()
        };
    }
    if !value.contains('=') {
        return value.to_string();
    }
    redact_table_text(&segs, value)
}

/// Replaces secret values in TOML table text: `key = value` lines whose key
/// (relative to `base`, under the current `[header]`) is secret.
fn redact_table_text(base: &[String], text: &str) -> String {
    let mut header: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let inner = trimmed.trim_matches(|c| c == '[' || c == ']');
            header = segments(inner);
            out.push(line.to_string());
            continue;
        }
        let Some((k, _)) = line.split_once('=').filter(|_| !trimmed.starts_with('#')) else {
            out.push(line.to_string());
            continue;
        };
        let mut path: Vec<String> = base.to_vec();
        path.extend(header.iter().cloned());
        path.extend(segments(k));
        if is_secret_path(&path) {
            out.push(format!("{}= {REDACTED}", k));
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_redacted() {
        assert_eq!(redact("channels.lark.appSecret", "s3cret"), "<redacted>");
        assert_eq!(redact("channels.lark.appSecret", ""), "");
        assert_eq!(redact("admin.token", "t0k"), "<redacted>");
        assert_eq!(
            redact("agents.gpt.headers.Authorization", "Bearer x"),
            "<redacted>"
        );
        assert_eq!(redact("channels.lark.appId", "cli_1"), "cli_1");
    }

    #[test]
    fn tables_keep_their_other_values() {
        let text = "appId = \"cli_1\"\nappSecret = \"s3cret\"\n\n[accounts.b]\nappSecret = \"other\"\nagent = \"echo\"";
        let out = redact("channels.lark", text);
        assert!(!out.contains("s3cret") && !out.contains("other"), "{out}");
        assert!(out.contains("appId = \"cli_1\"") && out.contains("agent = \"echo\""));
        let agents =
            "type = \"http\"\nheaders = { Authorization = \"Bearer x\" }\n[env]\nMODE = \"chat\"";
        let out = redact("agents.svc", agents);
        assert!(!out.contains("Bearer") && !out.contains("chat"), "{out}");
        assert!(out.contains("type = \"http\""));
    }
}
