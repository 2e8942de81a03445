//! `larkgate setup`: create the bot by scanning a QR code (the app
//! registration device flow), write its credentials into the config, and
//! say what is left to do in the developer console.
//!
//! The poll loop is written here rather than taken from
//! `lark_client::registration::wait_for_approval` so that the person sees
//! each step (the switch to Lark included) and so that the Lark accounts
//! host can be given for tests (`--lark-domain`).

use std::path::Path;
use std::time::Duration;

use lark_client::registration::{self, Approved, PollOutcome, Registration};
use lark_client::{Client, Domain, Error, ProxySettings};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use super::args::SetupArgs;
use super::config_cmd::write_template;
use super::{config_path, Failure, Outcome};
use crate::config::edit::{self, EditError};
use crate::config::load::absolute;
use crate::config::Format;
use crate::diagnose;

/// Never poll faster than this, whatever the server says.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// `slow_down` adds this much.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Longest poll interval.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// HTTP timeout of one registration call.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The scopes a messaging bot needs (asked for in the console).
const SCOPES: &[&str] = &[
    "im:message",
    "im:message:send_as_bot",
    "im:message.p2p_msg:readonly",
    "im:message.group_at_msg:readonly",
    "im:resource",
    "im:message.reactions:write_only",
    "cardkit:card:write",
];

/// Feishu or Lark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Brand {
    Feishu,
    Lark,
}

impl Brand {
    fn app_name(self) -> &'static str {
        match self {
            Brand::Feishu => "Feishu",
            Brand::Lark => "Lark",
        }
    }
}

/// Where the flow talks to, per brand.
#[derive(Clone, Debug)]
struct Hosts {
    feishu_accounts: Domain,
    lark_accounts: Domain,
    feishu_open: Domain,
    lark_open: Domain,
    /// A custom base URL was given (tests, the emulator): write it as the
    /// account's domain instead of `feishu`/`lark`.
    custom: bool,
}

impl Hosts {
    fn from_args(args: &SetupArgs) -> Result<Hosts, Failure> {
        let parse = |s: &str, flag: &str| {
            Domain::parse(s).map_err(|e| Failure::usage(format!("{flag}: {e}")))
        };
        match &args.domain {
            Some(base) => {
                let feishu = parse(base, "--domain")?;
                let lark = match &args.lark_domain {
                    Some(l) => parse(l, "--lark-domain")?,
                    None => parse(&format!("{}/lark", feishu.base()), "--domain")?,
                };
                Ok(Hosts {
                    feishu_accounts: feishu.clone(),
                    lark_accounts: lark.clone(),
                    feishu_open: feishu,
                    lark_open: lark,
                    custom: true,
                })
            }
            None => Ok(Hosts {
                feishu_accounts: Domain::feishu().accounts(),
                lark_accounts: Domain::lark().accounts(),
                feishu_open: Domain::feishu(),
                lark_open: Domain::lark(),
                custom: false,
            }),
        }
    }

    fn accounts(&self, brand: Brand) -> &Domain {
        match brand {
            Brand::Feishu => &self.feishu_accounts,
            Brand::Lark => &self.lark_accounts,
        }
    }

    fn open(&self, brand: Brand) -> &Domain {
        match brand {
            Brand::Feishu => &self.feishu_open,
            Brand::Lark => &self.lark_open,
        }
    }

    /// The account's `domain` value.
    fn config_domain(&self, brand: Brand) -> String {
        match (self.custom, brand) {
            (true, _) => self.open(brand).base().to_string(),
            (false, Brand::Feishu) => "feishu".into(),
            (false, Brand::Lark) => "lark".into(),
        }
    }
}

pub(super) async fn setup(path: Option<&Path>, args: SetupArgs) -> Outcome {
    let file = config_path(path);
    let hosts = Hosts::from_args(&args)?;
    let start = if args.lark {
        Brand::Lark
    } else {
        Brand::Feishu
    };
    let proxy = match &args.proxy {
        Some(url) => {
            ProxySettings::explicit(url).map_err(|e| Failure::usage(format!("--proxy: {e}")))?
        }
        None => ProxySettings::direct(),
    };
    let http = proxy
        .http_client(HTTP_TIMEOUT)
        .map_err(|e| Failure::usage(format!("HTTP client: {e}")))?;
    let accounts = hosts.accounts(start);
    let reg = registration::begin(&http, accounts).await.map_err(|e| {
        Failure::runtime(format!(
            "cannot start the registration at {accounts}: {}",
            diagnose::explain(&e)
        ))
    })?;
    show_code(&reg, args.name.as_deref(), start);
    let (approved, brand) = wait_for_approval(&http, &hosts, start, &reg).await?;
    println!();
    println!(
        "Approved: app {} created on {}.",
        approved.client_id,
        brand.app_name()
    );
    let written = write_credentials(&file, &args, &hosts, brand, &approved)?;
    println!("{written}");
    check_bot(&hosts, brand, &approved, &args).await;
    println!();
    println!("{}", next_steps(&hosts, brand, &approved.client_id));
    Ok(())
}

/// The link with the suggested bot name (the page treats it as a hint).
fn link_with_name(link: &str, name: Option<&str>) -> String {
    match (url::Url::parse(link), name) {
        (Ok(mut url), Some(name)) => {
            url.query_pairs_mut().append_pair("name", name);
            url.to_string()
        }
        _ => link.to_string(),
    }
}

/// The QR code in Unicode half blocks (two modules per character row).
fn qr_text(link: &str) -> Option<String> {
    let code = QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn show_code(reg: &Registration, name: Option<&str>, brand: Brand) {
    let link = link_with_name(&reg.verification_uri_complete, name);
    println!(
        "Scan this QR code with the {} app to create the bot:",
        brand.app_name()
    );
    println!();
    if let Some(qr) = qr_text(&link) {
        println!("{qr}");
    }
    println!();
    println!("Or open: {link}");
    println!("Code: {}", reg.user_code);
    println!(
        "The code is valid for {} minutes. Waiting for your approval... (Ctrl-C to cancel)",
        reg.expires_in.as_secs().div_ceil(60)
    );
}

/// Polls until approved; switches to the Lark accounts host once when the
/// platform reports a Lark user.
async fn wait_for_approval(
    http: &reqwest::Client,
    hosts: &Hosts,
    start: Brand,
    reg: &Registration,
) -> Result<(Approved, Brand), Failure> {
    let deadline = tokio::time::Instant::now() + reg.expires_in;
    let mut brand = start;
    let mut interval = reg.interval.max(MIN_POLL_INTERVAL);
    let mut wait = interval;
    loop {
        tokio::time::sleep(wait).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::runtime(
                "the code expired before it was approved; run `larkgate setup` again",
            ));
        }
        wait = interval;
        match registration::poll(http, hosts.accounts(brand), &reg.device_code).await {
            Ok(PollOutcome::Pending) => {}
            Ok(PollOutcome::SlowDown) => {
                interval = (interval + SLOW_DOWN_STEP).min(MAX_POLL_INTERVAL);
                wait = interval;
            }
            Ok(PollOutcome::SwitchToLark) if brand == Brand::Feishu => {
                brand = Brand::Lark;
                wait = Duration::ZERO;
                println!(
                    "This is a Lark account; continuing on {}.",
                    hosts.accounts(brand)
                );
            }
            Ok(PollOutcome::SwitchToLark) => {}
            Ok(PollOutcome::Approved(approved)) => {
                let brand = match approved.tenant_brand.as_str() {
                    "lark" => Brand::Lark,
                    "feishu" => Brand::Feishu,
                    _ => brand,
                };
                return Ok((approved, brand));
            }
            Ok(PollOutcome::Denied) => {
                return Err(Failure::runtime(
                    "the registration was declined in the app; nothing was written",
                ))
            }
            Ok(PollOutcome::Expired) => {
                return Err(Failure::runtime(
                    "the code expired; run `larkgate setup` again",
                ))
            }
            Ok(PollOutcome::Failed { error, description }) => {
                return Err(Failure::runtime(format!(
                    "the platform ended the registration: {error}: {description}"
                )))
            }
            Err(e @ Error::Http(_)) => {
                eprintln!("warning: polling failed ({e}); retrying");
                wait = interval + Duration::from_secs(1);
            }
            Err(e) => {
                return Err(Failure::runtime(format!(
                    "polling the registration failed: {}",
                    diagnose::explain(&e)
                )))
            }
        }
    }
}

/// `channels.lark` or `channels.lark.accounts.<name>` (quoted when needed).
fn account_prefix(account: Option<&str>) -> String {
    match account {
        None => "channels.lark".into(),
        Some(name) => format!(
            "channels.lark.accounts.{}",
            toml_edit::Key::new(name).display_repr()
        ),
    }
}

/// A value that `config set` stores as this exact string.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn edit_failure(e: EditError) -> Failure {
    match e {
        EditError::Io { .. } => Failure::runtime(e.to_string()),
        other => Failure::usage(format!("cannot write the credentials: {other}")),
    }
}

/// Sets one key; a value the key cannot take stops the setup.
fn set(file: &Path, key: &str, value: &str) -> Result<(), Failure> {
    edit::set(file, key, value).map(drop).map_err(edit_failure)
}

/// Whether `key` holds something other than an empty string or list.
fn is_set(file: &Path, key: &str) -> Result<bool, Failure> {
    Ok(edit::get(file, key)
        .map_err(edit_failure)?
        .is_some_and(|v| !matches!(v.trim(), "" | "[]" | "\"\"")))
}

/// Writes the secret to `path`, readable only by its owner.
fn write_secret_file(path: &Path, secret: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| Failure::runtime(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(fail)?;
    // An existing file keeps its mode on open: tighten it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    f.write_all(secret.as_bytes()).map_err(fail)?;
    f.write_all(b"\n").map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// How the config refers to `target`: relative to the config's directory
/// when inside it, else absolute.
fn path_for_config(config_file: &Path, target: &Path) -> String {
    let dir = absolute(config_file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    target
        .strip_prefix(&dir)
        .unwrap_or(target)
        .display()
        .to_string()
}

/// Writes appId, the secret (inline or as a file), domain, name, and the
/// scanning person into allowFrom; returns what to tell the person.
fn write_credentials(
    file: &Path,
    args: &SetupArgs,
    hosts: &Hosts,
    brand: Brand,
    approved: &Approved,
) -> Result<String, Failure> {
    if !file.exists() && Format::of_path(file) == Format::Toml {
        write_template(file).map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
    }
    let prefix = account_prefix(args.account.as_deref());
    let key = |k: &str| format!("{prefix}.{k}");
    let mut said = Vec::new();
    match &args.secret_file {
        Some(secret_path) => {
            let target = absolute(secret_path);
            write_secret_file(&target, &approved.client_secret)?;
            if is_set(file, &key("appSecret"))? {
                set(file, &key("appSecret"), "\"\"")?;
            }
            set(
                file,
                &key("appSecretFile"),
                &quoted(&path_for_config(file, &target)),
            )?;
            said.push(format!(
                "the app secret is in {} (mode 0600), referenced as {}",
                target.display(),
                key("appSecretFile")
            ));
        }
        None => {
            if is_set(file, &key("appSecretFile"))? {
                set(file, &key("appSecretFile"), "\"\"")?;
            }
            set(file, &key("appSecret"), &quoted(&approved.client_secret))?;
            said.push(format!("{} is set", key("appSecret")));
        }
    }
    if is_set(file, &key("appIdFile"))? {
        set(file, &key("appIdFile"), "\"\"")?;
    }
    set(file, &key("appId"), &quoted(&approved.client_id))?;
    set(file, &key("domain"), &quoted(&hosts.config_domain(brand)))?;
    if let Some(name) = &args.name {
        set(file, &key("name"), &quoted(name))?;
    }
    if !approved.open_id.is_empty() {
        let inherited = args.account.is_some() && is_set(file, "channels.lark.allowFrom")?;
        if !is_set(file, &key("allowFrom"))? && !inherited {
            set(
                file,
                &key("allowFrom"),
                &format!("[{}]", quoted(&approved.open_id)),
            )?;
            said.push(format!(
                "you ({}) may DM the bot without pairing ({})",
                approved.open_id,
                key("allowFrom")
            ));
        } else {
            said.push(format!(
                "add {} to {} to DM the bot without pairing",
                approved.open_id,
                key("allowFrom")
            ));
        }
    }
    Ok(format!(
        "Wrote {} ({}.appId = {}, domain = {}): {}.",
        file.display(),
        prefix,
        approved.client_id,
        hosts.config_domain(brand),
        said.join("; ")
    ))
}

/// Asks the platform about the new bot; a failure is only reported (the app
/// may still need a published version).
async fn check_bot(hosts: &Hosts, brand: Brand, approved: &Approved, args: &SetupArgs) {
    let client = Client::builder(&approved.client_id, &approved.client_secret)
        .domain(hosts.open(brand).clone())
        .proxy(args.proxy.clone())
        .max_attempts(1)
        .build();
    let result = match client {
        Ok(client) => client.bot_info().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(bot) => println!(
            "The bot answers: {} ({}), activate_status {}.",
            bot.app_name, bot.open_id, bot.activate_status
        ),
        Err(e) => println!(
            "The bot does not answer yet: {} (finish the steps below, then `larkgate status --probe`).",
            diagnose::explain(&e)
        ),
    }
}

/// What is left to do in the developer console.
fn next_steps(hosts: &Hosts, brand: Brand, app_id: &str) -> String {
    let open = hosts.open(brand).base().to_string();
    let console = match (hosts.custom, brand) {
        (false, Brand::Feishu) => "https://open.feishu.cn".to_string(),
        (false, Brand::Lark) => "https://open.larksuite.com".to_string(),
        (true, _) => open,
    };
    format!(
        "Steps left in the developer console ({console}/app/{app_id}):
  1. Start the gateway first: `larkgate run`. The console saves the long-connection
     mode only while a client is connected.
  2. Events & Callbacks > Event configuration: choose \"Receive events through
     persistent connection\" and add the event im.message.receive_v1. Under Callback
     configuration choose the same mode and add card.action.trigger (the Stop button).
  3. Permissions & Scopes: add
       {scopes}
     or open {console}/app/{app_id}/auth?q={q}&op_from=larkgate&token_type=tenant
  4. Version Management & Release: create a version and publish it.
Then check everything with `larkgate status --probe`.",
        scopes = SCOPES.join("\n       "),
        q = SCOPES.join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_are_quoted_when_needed() {
        assert_eq!(account_prefix(None), "channels.lark");
        assert_eq!(
            account_prefix(Some("support")),
            "channels.lark.accounts.support"
        );
        assert_eq!(
            account_prefix(Some("team a")),
            "channels.lark.accounts.\"team a\""
        );
    }

    #[test]
    fn the_link_carries_the_suggested_name() {
        let l = link_with_name(
            "https://a.example/page/launcher?user_code=AB-CD",
            Some("My bot"),
        );
        assert_eq!(
            l,
            "https://a.example/page/launcher?user_code=AB-CD&name=My+bot"
        );
        assert_eq!(link_with_name("not a url", Some("x")), "not a url");
    }

    #[test]
    fn the_qr_code_is_drawn_in_half_blocks() {
        let qr = qr_text("https://accounts.feishu.cn/page/launcher?user_code=ABCD-EFGH").unwrap();
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('▀') || qr.contains('▄') || qr.contains('█'));
    }

    #[test]
    fn config_domain_follows_the_brand() {
        let args = SetupArgs {
            lark: false,
            name: None,
            account: None,
            secret_file: None,
            proxy: None,
            domain: None,
            lark_domain: None,
        };
        let official = Hosts::from_args(&args).unwrap();
        assert_eq!(official.config_domain(Brand::Lark), "lark");
        assert_eq!(official.config_domain(Brand::Feishu), "feishu");
        let custom = Hosts::from_args(&SetupArgs {
            domain: Some("http://127.0.0.1:9/".into()),
            ..args
        })
        .unwrap();
        assert_eq!(custom.config_domain(Brand::Lark), "http://127.0.0.1:9/lark");
        assert_eq!(custom.accounts(Brand::Feishu).base(), "http://127.0.0.1:9");
    }

    #[test]
    fn secret_paths_are_relative_to_the_config_when_inside() {
        let cfg = Path::new("/srv/bot/larkgate.toml");
        assert_eq!(
            path_for_config(cfg, Path::new("/srv/bot/secrets/s.txt")),
            "secrets/s.txt"
        );
        assert_eq!(path_for_config(cfg, Path::new("/etc/s.txt")), "/etc/s.txt");
    }
}
