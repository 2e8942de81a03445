//! Configuration loading, validation messages and editing, through the
//! public API. The environment is always injected: these tests never read
//! the real process environment.

use std::path::{Path, PathBuf};

use larkgate::config::{
    edit, Config, ConfigError, DmPolicy, Format, LoadedConfig, Mode, SessionScope,
};

const BASE: &str = "/srv/larkgate";

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_toml(text: &str) -> Result<LoadedConfig, ConfigError> {
    Config::from_str(text, Format::Toml, Path::new(BASE), &no_env)
}

fn ok(text: &str) -> LoadedConfig {
    load_toml(text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// Every issue of a config that must fail, as `key: message` lines.
fn issues(text: &str) -> Vec<String> {
    match load_toml(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.issues.iter().map(ToString::to_string).collect(),
    }
}

/// The one issue at `key`.
fn issue_at(text: &str, key: &str) -> String {
    let all = issues(text);
    let found: Vec<&String> = all
        .iter()
        .filter(|i| i.starts_with(&format!("{key}: ")))
        .collect();
    assert_eq!(found.len(), 1, "expected one issue at {key}, got {all:#?}");
    found[0].clone()
}

const MINIMAL: &str = r#"
[channels.lark]
appId = "cli_a1b2c3"
appSecret = "top-secret-value"
"#;

fn minimal_plus(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

// ---- one test per kind of mistake ----

#[test]
fn missing_app_secret_names_all_three_ways_to_set_it() {
    let text = "[channels.lark]\nappId = \"cli_a1b2c3\"\n";
    assert_eq!(
        issue_at(text, "channels.lark.appSecret"),
        "channels.lark.appSecret: not set; set it, or appSecretFile, or LARK_APP_SECRET"
    );
}

#[test]
fn missing_app_id_says_how_to_define_an_account() {
    let message = issue_at("", "channels.lark.appId");
    assert!(
        message.contains("not set; set it, or appIdFile, or LARK_APP_ID"),
        "{message}"
    );
    assert!(
        message.contains("channels.lark.accounts.<name>"),
        "{message}"
    );
}

#[test]
fn bad_choice_lists_the_valid_values() {
    let text = minimal_plus("dmPolicy = \"opne\"");
    let message = issue_at(&text, "channels.lark.dmPolicy");
    assert!(
        message.starts_with(
            "channels.lark.dmPolicy: \"opne\" is not one of open, allowlist, pairing, disabled"
        ),
        "{message}"
    );
    assert!(message.ends_with("did you mean \"open\"?"), "{message}");
}

#[test]
fn unknown_key_suggests_the_nearest_name() {
    let text = minimal_plus("requireMenton = false");
    assert_eq!(
        issue_at(&text, "channels.lark.requireMenton"),
        "channels.lark.requireMenton: unknown key; did you mean requireMention?"
    );
    let text = minimal_plus("[stroe]\nurl = \"sqlite://x.db\"");
    assert_eq!(
        issue_at(&text, "stroe"),
        "stroe: unknown key; did you mean store?"
    );
    let far = issue_at(&minimal_plus("[admin]\nzzzz = 1"), "admin.zzzz");
    assert_eq!(
        far,
        "admin.zzzz: unknown key; valid keys here: enabled, listen, token"
    );
}

#[test]
fn all_mistakes_are_reported_together() {
    let text = r#"
[channels.lark]
appId = "cli_a1b2c3"
dmPolicy = "opne"
requireMenton = true
historyLimit = -1
agent = "gpt"
[log]
format = "xml"
"#;
    let all = issues(text);
    for key in [
        "channels.lark.appSecret",
        "channels.lark.dmPolicy",
        "channels.lark.requireMenton",
        "channels.lark.historyLimit",
        "channels.lark.agent",
        "log.format",
    ] {
        assert!(
            all.iter().any(|i| i.starts_with(&format!("{key}: "))),
            "no issue at {key} in {all:#?}"
        );
    }
    let err = load_toml(text).unwrap_err();
    assert_eq!(err.to_string().lines().count(), err.issues.len());
}

#[test]
fn values_of_the_wrong_type_show_what_was_found() {
    let text = minimal_plus("requireMention = \"yes\"\nhistoryLimit = -1\nallowFrom = \"ou_1\"");
    assert_eq!(
        issue_at(&text, "channels.lark.requireMention"),
        "channels.lark.requireMention: expected true or false, got \"yes\""
    );
    assert_eq!(
        issue_at(&text, "channels.lark.historyLimit"),
        "channels.lark.historyLimit: expected a whole number (0 or more), got -1"
    );
    assert!(issue_at(&text, "channels.lark.allowFrom").contains("expected a list of strings"));
    let text = minimal_plus("groupAllowFrom = [\"ou_1\", 7]");
    assert_eq!(
        issue_at(&text, "channels.lark.groupAllowFrom[1]"),
        "channels.lark.groupAllowFrom[1]: expected a string, got 7"
    );
    let text = minimal_plus("queueLimit = 0");
    assert!(issue_at(&text, "channels.lark.queueLimit").contains("use at least 1"));
}

#[test]
fn app_id_must_look_like_an_app_id() {
    let text = "[channels.lark]\nappId = \"a1b2c3\"\nappSecret = \"s\"\n";
    let message = issue_at(text, "channels.lark.appId");
    assert!(
        message.contains("\"a1b2c3\" does not look like an app_id"),
        "{message}"
    );
    assert!(message.contains("cli_"), "{message}");
}

#[test]
fn undefined_agent_lists_the_defined_ones() {
    let text = minimal_plus("agent = \"gpt\"\n[agents.claude]\ntype = \"anthropic\"");
    assert_eq!(
        issue_at(&text, "channels.lark.agent"),
        "channels.lark.agent: \"gpt\" is not defined; define [agents.gpt] or use one of: claude, echo"
    );
    let text = minimal_plus("[channels.lark.groups.oc_1]\nagent = \"nope\"");
    assert!(issue_at(&text, "channels.lark.groups.oc_1.agent").contains("\"nope\" is not defined"));
}

#[test]
fn allowlist_without_anyone_on_it_is_refused() {
    let text = minimal_plus("dmPolicy = \"allowlist\"");
    let message = issue_at(&text, "channels.lark.allowFrom");
    assert!(
        message.contains("empty while dmPolicy is \"allowlist\""),
        "{message}"
    );
    assert!(
        message.contains("nobody could message the bot"),
        "{message}"
    );
    ok(&minimal_plus(
        "dmPolicy = \"allowlist\"\nallowFrom = [\"*\"]",
    ));
}

#[test]
fn webhook_mode_needs_an_encrypt_key_or_token() {
    let text = minimal_plus("mode = \"webhook\"");
    let message = issue_at(&text, "channels.lark.encryptKey");
    assert!(
        message.contains("not set while mode is \"webhook\""),
        "{message}"
    );
    assert!(message.contains("verificationToken"), "{message}");
    let loaded = ok(&minimal_plus(
        "mode = \"webhook\"\nverificationToken = \"tok\"",
    ));
    assert_eq!(loaded.config.accounts[0].mode, Mode::Webhook);
}

#[test]
fn one_app_in_two_accounts_is_refused() {
    let text = minimal_plus(
        "[channels.lark.accounts.second]\nappId = \"cli_a1b2c3\"\nappSecret = \"other\"",
    );
    let message = issue_at(&text, "channels.lark.accounts.second.appId");
    assert!(
        message.contains("\"cli_a1b2c3\" is also the app of channels.lark"),
        "{message}"
    );
    // A disabled duplicate connects nothing, so it is allowed.
    ok(&minimal_plus(
        "[channels.lark.accounts.second]\nappId = \"cli_a1b2c3\"\nappSecret = \"other\"\nenabled = false",
    ));
}

#[test]
fn two_webhook_accounts_on_one_path_are_refused() {
    let text = r#"
[channels.lark]
mode = "webhook"
verificationToken = "t"
[channels.lark.accounts.a]
appId = "cli_a"
appSecret = "s"
[channels.lark.accounts.b]
appId = "cli_b"
appSecret = "s"
"#;
    let message = issue_at(text, "channels.lark.accounts.b.webhookPath");
    assert!(message.contains("\"/lark/webhook\" is also the path of channels.lark.accounts.a"));
}

#[test]
fn toml_syntax_error_has_line_and_column_without_the_line_itself() {
    let text = "[channels.lark]\nappId = \"cli_a\"\nappSecret = \"hunter2\" oops\n";
    let err = load_toml(text).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    let message = err.to_string();
    assert!(
        message.starts_with("(config): TOML syntax error at line 3, column 23"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text = "{\n  \"channels\": {\n    \"lark\": { \"appId\": \"cli_a\", }\n  }\n}\n";
    let err = Config::from_str(text, Format::Json, Path::new(BASE), &no_env).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("(config): JSON syntax error at line 3, column"),
        "{message}"
    );
}

#[test]
fn secrets_never_appear_in_messages() {
    let secret = "sk-very-secret-981";
    let text = format!(
        r#"
[channels.lark]
appId = "cli_a1b2c3"
appSecret = ["{secret}"]
encryptKey = 12345981
[admin]
token = ["{secret}"]
[store]
url = "mysql://root:{secret}@db/larkgate"
[agents.gpt]
type = "openai"
apiKey = ["{secret}"]
"#
    );
    let all = issues(&text);
    assert!(all.len() >= 5, "{all:#?}");
    for issue in &all {
        assert!(!issue.contains(secret), "secret leaked: {issue}");
        assert!(!issue.contains("12345981"), "secret leaked: {issue}");
    }
    assert!(all
        .iter()
        .any(|i| i.starts_with("agents.gpt.apiKey: expected a string")));
    assert!(all
        .iter()
        .any(|i| i.starts_with("store.url: scheme \"mysql\" is not supported")));
}

#[test]
fn agent_entries_are_checked_against_the_agent_contract() {
    let text = minimal_plus("[agents.gpt]\ntype = \"openai\"\nmodle = \"x\"");
    assert_eq!(
        issue_at(&text, "agents.gpt.modle"),
        "agents.gpt.modle: unknown key; did you mean model?"
    );
    let text = minimal_plus("[agents.gpt]\nmodel = \"x\"");
    let message = issue_at(&text, "agents.gpt.type");
    assert!(
        message.contains("not set; set it to one of echo, openai"),
        "{message}"
    );
    let text = minimal_plus("[agents.gpt]\ntype = \"opnai\"");
    let message = issue_at(&text, "agents.gpt.type");
    assert!(
        message.contains("\"opnai\" is not one of echo, openai"),
        "{message}"
    );
    assert!(message.contains("did you mean \"openai\"?"), "{message}");
    let text = minimal_plus("[agents.gpt]\ntype = \"openai\"\ntemperature = \"hot\"");
    assert!(issue_at(&text, "agents.gpt.temperature").contains("invalid type"));
}

#[test]
fn other_mistakes_name_key_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "domain = \"larkk\"",
            "channels.lark.domain",
            "is not feishu, lark, or a base URL",
        ),
        (
            "webhookPath = \"hook\"",
            "channels.lark.webhookPath",
            "must start with /",
        ),
        (
            "proxy = \"127.0.0.1:3128\"",
            "channels.lark.proxy",
            "not a proxy URL",
        ),
        (
            "appIdFile = \"id.txt\"",
            "channels.lark.appIdFile",
            "set either appId or appIdFile, not both",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:18790\"",
            "admin.token",
            "reachable from other machines",
        ),
        (
            "[webhook]\nlisten = \"localhost\"",
            "webhook.listen",
            "is not an address",
        ),
        (
            "[log]\nlevel = \"info,larkgate=loud\"",
            "log.level",
            "is not a log filter",
        ),
        (
            "[channels.lark.groups]\noc_1 = 5",
            "channels.lark.groups.oc_1",
            "expected a table",
        ),
        (
            "[channels.feishu]\nappId = \"cli_b\"",
            "channels.feishu",
            "keep one",
        ),
    ];
    for (extra, key, fragment) in cases {
        let message = issue_at(&minimal_plus(extra), key);
        assert!(message.contains(fragment), "{key}: {message}");
    }
}

#[test]
fn unreadable_secret_file_names_the_path() {
    let text = "[channels.lark]\nappId = \"cli_a\"\nappSecretFile = \"missing/secret.txt\"\n";
    let message = issue_at(text, "channels.lark.appSecretFile");
    assert!(
        message.contains("/srv/larkgate/missing/secret.txt"),
        "{message}"
    );
    assert!(message.contains("cannot read"), "{message}");
}

#[test]
fn default_account_name_cannot_be_reused() {
    let text =
        minimal_plus("[channels.lark.accounts.default]\nappId = \"cli_other\"\nappSecret = \"x\"");
    assert!(issue_at(&text, "channels.lark.accounts.default").contains("rename this one"));
}

// ---- what loading produces ----

#[test]
fn defaults_fill_a_minimal_file() {
    let loaded = ok(MINIMAL);
    let c = &loaded.config;
    assert_eq!(c.accounts.len(), 1);
    let a = &c.accounts[0];
    assert_eq!(a.name, "default");
    assert_eq!(a.app_id, "cli_a1b2c3");
    assert_eq!(a.app_secret.expose(), "top-secret-value");
    assert_eq!(a.domain, "feishu");
    assert_eq!(a.webhook_path, "/lark/webhook");
    assert_eq!(a.dm_policy, DmPolicy::Pairing);
    assert!(a.require_mention);
    assert_eq!(a.agent, "echo");
    assert!(c.agents.contains_key("echo"));
    assert_eq!(c.store.url, "sqlite:///srv/larkgate/larkgate.db");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:18790");
    assert!(c.admin.enabled);
    assert_eq!(c.webhook.listen.to_string(), "127.0.0.1:18789");
    assert_eq!(c.webhook.max_body_bytes, 1024 * 1024);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.dir, Some(PathBuf::from("/srv/larkgate/logs")));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(!format!("{c:?}").contains("top-secret-value"));
}

#[test]
fn paths_start_at_the_config_directory() {
    let loaded = ok(&minimal_plus(
        "[store]\nurl = \"sqlite://data/state.db?mode=rwc\"\n[log]\ndir = \"\"",
    ));
    assert_eq!(
        loaded.config.store.url,
        "sqlite:///srv/larkgate/data/state.db?mode=rwc"
    );
    assert_eq!(loaded.config.log.dir, None);
    let pg = ok(&minimal_plus("[store]\nurl = \"postgres://u@db/larkgate\""));
    assert_eq!(pg.config.store.url, "postgres://u@db/larkgate");
}

#[test]
fn session_scope_accepts_the_peers_spellings() {
    for (written, scope) in [
        ("chat", SessionScope::Chat),
        ("group", SessionScope::Chat),
        ("group_sender", SessionScope::Sender),
        ("group_topic", SessionScope::Topic),
        ("group_topic_sender", SessionScope::TopicSender),
        ("topic_sender", SessionScope::TopicSender),
    ] {
        let loaded = ok(&minimal_plus(&format!("sessionScope = \"{written}\"")));
        assert_eq!(loaded.config.accounts[0].session_scope, scope, "{written}");
    }
    let message = issue_at(
        &minimal_plus("sessionScope = \"thread\""),
        "channels.lark.sessionScope",
    );
    assert!(
        message.contains("is not one of chat, sender, topic, topic_sender"),
        "{message}"
    );
}

#[test]
fn toml_and_json_give_the_same_config() {
    let toml = r#"
[channels.lark]
appId = "cli_a1b2c3"
appSecret = "s"
dmPolicy = "allowlist"
allowFrom = ["ou_1", "ou_2"]
requireMention = false
historyLimit = 12

[channels.lark.groups."oc_9"]
systemPrompt = "be brief"
replyMode = "streaming"

[channels.lark.accounts.b]
appId = "cli_b"
appSecret = "t"
agent = "gpt"

[agents.gpt]
type = "openai"
model = "gpt-4o-mini"
temperature = 0.5
headers = { X-Team = "x" }

[log]
format = "json"
"#;
    let json = r#"{
  "channels": { "lark": {
    "appId": "cli_a1b2c3", "appSecret": "s",
    "dmPolicy": "allowlist", "allowFrom": ["ou_1", "ou_2"],
    "requireMention": false, "historyLimit": 12,
    "groups": { "oc_9": { "systemPrompt": "be brief", "replyMode": "streaming" } },
    "accounts": { "b": { "appId": "cli_b", "appSecret": "t", "agent": "gpt" } }
  } },
  "agents": { "gpt": { "type": "openai", "model": "gpt-4o-mini", "temperature": 0.5,
                       "headers": { "X-Team": "x" } } },
  "log": { "format": "json" }
}"#;
    let a = Config::from_str(toml, Format::Toml, Path::new(BASE), &no_env).unwrap();
    let b = Config::from_str(json, Format::Json, Path::new(BASE), &no_env).unwrap();
    assert_eq!(format!("{:?}", a.config), format!("{:?}", b.config));
    assert_eq!(a.config.accounts.len(), 2);
}

#[test]
fn accounts_inherit_the_top_level() {
    let text = r#"
[channels.lark]
dmPolicy = "open"
requireMention = false
domain = "lark"
appSecret = "shared-only-with-inheriting-apps"
[channels.lark.groups.oc_1]
replyInThread = true

[channels.lark.accounts.sales]
appId = "cli_sales"
appSecret = "sales-secret"
requireMention = true

[channels.lark.accounts.ops]
appId = "cli_ops"
"#;
    let all = issues(text);
    // ops names its own app, so it does not inherit the top-level secret.
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0]
        .starts_with("channels.lark.accounts.ops.appSecret: not set; set it, or appSecretFile"));
    assert!(!all[0].contains("LARK_APP_SECRET"));

    let fixed = text.replace(
        "appId = \"cli_ops\"",
        "appId = \"cli_ops\"\nappSecret = \"ops\"",
    );
    let loaded = ok(&fixed);
    let names: Vec<&str> = loaded
        .config
        .accounts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    // No appId at the top level: no default account.
    assert_eq!(names, ["ops", "sales"]);
    let sales = &loaded.config.accounts[1];
    assert_eq!(sales.dm_policy, DmPolicy::Open);
    assert!(sales.require_mention, "own value wins");
    assert_eq!(sales.domain, "lark");
    assert_eq!(sales.app_secret.expose(), "sales-secret");
    assert_eq!(
        sales.group("oc_1").and_then(|g| g.reply_in_thread),
        Some(true)
    );
    let ops = &loaded.config.accounts[0];
    assert!(!ops.require_mention, "inherited");
}

#[test]
fn environment_fills_only_what_the_file_leaves_unset() {
    let env = env_of(&[
        ("LARK_APP_ID", "cli_from_env"),
        ("LARK_APP_SECRET", "env-secret"),
        ("LARK_DOMAIN", "lark"),
    ]);
    let loaded = Config::from_str("", Format::Toml, Path::new(BASE), &env).unwrap();
    let a = &loaded.config.accounts[0];
    assert_eq!(
        (a.name.as_str(), a.app_id.as_str()),
        ("default", "cli_from_env")
    );
    assert_eq!(a.app_secret.expose(), "env-secret");
    assert_eq!(a.domain, "lark");

    // Empty strings in the file count as unset.
    let text = "[channels.lark]\nappId = \"\"\nappSecret = \"file-secret\"\n";
    let loaded = Config::from_str(text, Format::Toml, Path::new(BASE), &env).unwrap();
    let a = &loaded.config.accounts[0];
    assert_eq!(a.app_id, "cli_from_env");
    assert_eq!(a.app_secret.expose(), "file-secret", "the file wins");
    assert_eq!(
        loaded.warnings,
        vec!["LARK_APP_SECRET: ignored: channels.lark.appSecret is set in the file and wins"]
    );

    let feishu = env_of(&[("FEISHU_APP_ID", "cli_f"), ("FEISHU_APP_SECRET", "f")]);
    let loaded = Config::from_str("", Format::Toml, Path::new(BASE), &feishu).unwrap();
    assert_eq!(loaded.config.accounts[0].app_id, "cli_f");

    let bad = env_of(&[("LARK_APP_ID", "nope"), ("LARK_APP_SECRET", "x")]);
    let err = Config::from_str("", Format::Toml, Path::new(BASE), &bad).unwrap_err();
    assert!(err.issues[0]
        .to_string()
        .starts_with("LARK_APP_ID: \"nope\" does not look like an app_id"));
}

#[test]
fn feishu_alias_works_and_errors_use_it() {
    let text = "[channels.feishu]\nappId = \"cli_a\"\nappSecret = \"s\"\ndmPolicy = \"x\"\n";
    assert!(issue_at(text, "channels.feishu.dmPolicy").contains("is not one of"));
    let loaded = ok(&text.replace("dmPolicy = \"x\"\n", ""));
    assert_eq!(loaded.config.accounts[0].app_id, "cli_a");
}

#[cfg(unix)]
#[test]
fn secret_files_are_read_trimmed_and_checked_for_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let secret = dir.path().join("keys/secret.txt");
    std::fs::write(&secret, "  from-file\n").unwrap();
    std::fs::write(dir.path().join("id.txt"), "cli_from_file\n").unwrap();
    let text = "[channels.lark]\nappIdFile = \"id.txt\"\nappSecretFile = \"keys/secret.txt\"\n";

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = Config::from_str(text, Format::Toml, dir.path(), &no_env).unwrap();
    let a = &loaded.config.accounts[0];
    assert_eq!(a.app_id, "cli_from_file");
    assert_eq!(a.app_secret.expose(), "from-file");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loaded = Config::from_str(text, Format::Toml, dir.path(), &no_env).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].starts_with("channels.lark.appSecretFile: "));
    assert!(loaded.warnings[0].contains("mode 644"));
    assert!(loaded.warnings[0].contains("chmod 600"));
    assert!(!loaded.warnings[0].contains("from-file"));
}

#[test]
fn warnings_flag_entries_that_can_never_match() {
    let loaded = ok(&minimal_plus(
        "allowFrom = [\"alice\", \"ou_1\", \"*\"]\n[channels.lark.groups.general]\nenabled = true",
    ));
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].starts_with("channels.lark.allowFrom[0]: \"alice\" is not an open_id")
    );
    assert!(loaded.warnings[1].starts_with("channels.lark.groups.general: this is not a chat_id"));
}

// ---- files ----

#[test]
fn load_finds_the_file_by_argument_or_variable_and_format_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bot.json");
    std::fs::write(
        &json,
        r#"{"channels":{"lark":{"appId":"cli_j","appSecret":"s"}}}"#,
    )
    .unwrap();
    let loaded = Config::load_with_env(Some(&json), &no_env).unwrap();
    assert_eq!(loaded.config.accounts[0].app_id, "cli_j");
    assert_eq!(loaded.config.path.as_deref(), Some(json.as_path()));
    let expected_db = format!("sqlite://{}/larkgate.db", dir.path().display());
    assert_eq!(loaded.config.store.url, expected_db);

    let path = json.display().to_string();
    let by_var = move |name: &str| (name == "LARKGATE_CONFIG").then(|| path.clone());
    let loaded = Config::load_with_env(None, &by_var).unwrap();
    assert_eq!(loaded.config.accounts[0].app_id, "cli_j");

    let missing = dir.path().join("nope.toml");
    let err = Config::load_with_env(Some(&missing), &no_env).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

const COMMENTED: &str = r#"# My bot.
[channels.lark]
# The app from the console.
appId = "cli_a1b2c3"   # keep this
appSecret = "s"
dmPolicy = "pairing"   # who may DM

# Groups.
[channels.lark.groups."oc_1"]
requireMention = true
"#;

#[test]
fn set_keeps_comments_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larkgate.toml");
    std::fs::write(&path, COMMENTED).unwrap();

    let report = edit::set_with_env(&path, "channels.lark.dmPolicy", "open", &no_env).unwrap();
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    edit::set_with_env(
        &path,
        "channels.lark.groups.\"oc_1\".requireMention",
        "false",
        &no_env,
    )
    .unwrap();
    edit::set_with_env(&path, "channels.lark.allowFrom", "ou_1, ou_2", &no_env).unwrap();
    edit::set_with_env(&path, "channels.lark.historyLimit", "12", &no_env).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let expected = r#"# My bot.
[channels.lark]
# The app from the console.
appId = "cli_a1b2c3"   # keep this
appSecret = "s"
dmPolicy = "open"   # who may DM
allowFrom = ["ou_1", "ou_2"]
historyLimit = 12

# Groups.
[channels.lark.groups."oc_1"]
requireMention = false
"#;
    assert_eq!(text, expected);

    assert_eq!(
        edit::get(&path, "channels.lark.dmPolicy")
            .unwrap()
            .as_deref(),
        Some("open")
    );
    assert_eq!(
        edit::get(&path, "channels.lark.historyLimit")
            .unwrap()
            .as_deref(),
        Some("12")
    );
    assert_eq!(
        edit::get(&path, "channels.lark.allowFrom")
            .unwrap()
            .as_deref(),
        Some(r#"["ou_1", "ou_2"]"#)
    );
    assert_eq!(edit::get(&path, "channels.lark.nothing").unwrap(), None);
    let loaded = Config::load_with_env(Some(&path), &no_env).unwrap();
    assert_eq!(loaded.config.accounts[0].history_limit, 12);
}

#[test]
fn set_refuses_a_change_that_breaks_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larkgate.toml");
    std::fs::write(&path, COMMENTED).unwrap();
    let refused = |key: &str, value: &str| match edit::set_with_env(&path, key, value, &no_env) {
        Err(edit::EditError::Invalid(e)) => e.to_string(),
        other => panic!("{key} = {value}: expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused("channels.lark.requireMenton", "false"),
        "channels.lark.requireMenton: unknown key; did you mean requireMention?"
    );
    assert!(refused("channels.lark.dmPolicy", "opne").contains("is not one of"));
    assert!(matches!(
        edit::set_with_env(&path, "channels.lark.requireMention", "maybe", &no_env),
        Err(edit::EditError::Key { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        COMMENTED,
        "nothing written"
    );

    // A change that leaves other problems is written, and they are reported.
    let report = edit::set_with_env(&path, "channels.lark.dmPolicy", "allowlist", &no_env).unwrap();
    assert_eq!(report.issues.len(), 1);
    assert_eq!(report.issues[0].key, "channels.lark.allowFrom");
}

#[test]
fn set_creates_files_and_follows_the_feishu_alias() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.toml");
    let report = edit::set_with_env(&path, "channels.lark.appId", "cli_new", &no_env).unwrap();
    assert_eq!(
        report.issues[0].to_string(),
        "channels.lark.appSecret: not set; set it, or appSecretFile, or LARK_APP_SECRET"
    );
    edit::set_with_env(&path, "channels.lark.appSecret", "12345", &no_env).unwrap();
    let loaded = Config::load_with_env(Some(&path), &no_env).unwrap();
    assert_eq!(
        loaded.config.accounts[0].app_secret.expose(),
        "12345",
        "secrets stay strings"
    );

    let feishu = dir.path().join("feishu.toml");
    std::fs::write(
        &feishu,
        "[channels.feishu]\nappId = \"cli_a\"\nappSecret = \"s\"\n",
    )
    .unwrap();
    edit::set_with_env(&feishu, "channels.lark.requireMention", "false", &no_env).unwrap();
    let text = std::fs::read_to_string(&feishu).unwrap();
    assert!(!text.contains("[channels.lark]"), "{text}");
    assert!(text.contains("requireMention = false"), "{text}");
}

#[test]
fn set_on_json_keeps_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larkgate.json");
    std::fs::write(
        &path,
        r#"{"channels":{"lark":{"appSecret":"s","appId":"cli_a","dmPolicy":"pairing"}},"agents":{"gpt":{"type":"openai"}}}"#,
    )
    .unwrap();
    edit::set_with_env(&path, "channels.lark.dmPolicy", "open", &no_env).unwrap();
    edit::set_with_env(&path, "agents.gpt.temperature", "0.2", &no_env).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let order = [
        "\"appSecret\"",
        "\"appId\"",
        "\"dmPolicy\": \"open\"",
        "\"agents\"",
        "\"temperature\": 0.2",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|s| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s} missing from {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        edit::get(&path, "agents.gpt.temperature")
            .unwrap()
            .as_deref(),
        Some("0.2")
    );
    let loaded = Config::load_with_env(Some(&path), &no_env).unwrap();
    assert_eq!(loaded.config.agents["gpt"].temperature, Some(0.2));
}

#[test]
fn template_is_a_valid_starting_point() {
    let env = env_of(&[("LARK_APP_ID", "cli_t"), ("LARK_APP_SECRET", "t")]);
    let loaded = Config::from_str(
        larkgate::config::init_template(),
        Format::Toml,
        Path::new(BASE),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.accounts[0].app_id, "cli_t");
    // Without credentials the template says exactly what is missing.
    let err = Config::from_str(
        larkgate::config::init_template(),
        Format::Toml,
        Path::new(BASE),
        &no_env,
    )
    .unwrap_err();
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["channels.lark.appId"]);
}

#[test]
fn without_a_file_the_environment_can_be_enough() {
    // The tests run in the crate directory, which has no larkgate.toml.
    assert!(!Path::new("larkgate.toml").exists());
    let env = env_of(&[("LARK_APP_ID", "cli_env"), ("LARK_APP_SECRET", "e")]);
    let loaded = Config::load_with_env(None, &env).unwrap();
    assert_eq!(loaded.config.path, None);
    assert_eq!(loaded.config.accounts[0].app_id, "cli_env");

    let err = Config::load_with_env(None, &no_env).unwrap_err();
    assert!(err.issues[0]
        .to_string()
        .starts_with("larkgate.toml: not found; create it"));
    assert_eq!(err.issues[1].key, "channels.lark.appId");
}

#[cfg(unix)]
#[test]
fn files_created_by_set_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.toml");
    edit::set_with_env(&path, "channels.lark.appSecret", "s", &no_env).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
