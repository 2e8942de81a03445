//! `larkgate status [--probe] [--json]`: the running gateway's view of its
//! accounts (admin API), or a check of each account against the platform.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lark_client::{Client, Error};
use serde_json::{json, Value};

use super::args::StatusArgs;
use super::{client_builder, human_secs, load_config, print_warnings, table, Failure, Outcome};
use crate::config::{AccountConfig, Config, Mode};
use crate::diagnose;

/// After this long connected without a single event, suspect the event
/// subscription.
const SILENT_HINT_AFTER_SECS: u64 = 120;

/// How long to wait for the admin listener.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn status(path: Option<&Path>, args: StatusArgs) -> Outcome {
    let loaded = load_config(path)?;
    if !args.json {
        print_warnings(&loaded.warnings);
    }
    if args.probe {
        probe(&loaded.config, args.json).await
    } else {
        show_running(&loaded.config, args.json).await
    }
}

/// Where to reach the admin listener: a wildcard listen address is reached
/// on loopback.
fn admin_target(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}

/// `GET /api/status` of the running gateway.
async fn fetch_status(config: &Config) -> Result<Value, Failure> {
    if !config.admin.enabled {
        return Err(Failure::runtime(
            "admin.enabled is false, so the running gateway cannot be asked; \
             enable it, or use `larkgate status --probe`",
        ));
    }
    let addr = admin_target(config.admin.listen);
    let url = format!("http://{addr}/api/status");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(ADMIN_TIMEOUT)
        .build()
        .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?;
    let not_running = |e: &reqwest::Error| {
        Failure::runtime(format!(
            "larkgate is not running at {addr} (admin.listen): {}\n\
             start it with `larkgate run`, or check the platform side with `larkgate status --probe`",
            root_cause(e)
        ))
    };
    let resp = http.get(&url).send().await.map_err(|e| not_running(&e))?;
    if !resp.status().is_success() {
        return Err(Failure::runtime(format!(
            "{url} answered HTTP {}; is something else listening on admin.listen?",
            resp.status()
        )));
    }
    resp.json::<Value>()
        .await
        .map_err(|e| Failure::runtime(format!("{url}: not a larkgate status answer: {e}")))
}

async fn show_running(config: &Config, json: bool) -> Outcome {
    let body = fetch_status(config).await?;
    if json {
        println!("{}", pretty(&body));
        return Ok(());
    }
    let addr = admin_target(config.admin.listen);
    let uptime = body["uptime_secs"].as_u64().unwrap_or(0);
    println!(
        "larkgate at {addr}: {}, up {}",
        body["status"].as_str().unwrap_or("?"),
        human_secs(uptime)
    );
    let accounts = body["accounts"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = accounts.iter().map(account_row).collect();
    println!();
    println!(
        "{}",
        table(
            &[
                "ACCOUNT",
                "APP ID",
                "STATE",
                "CONNECTION",
                "LAST FRAME",
                "RECONNECTS",
                "LAST EVENT",
                "TURNS",
                "LAST ERROR",
            ],
            &rows
        )
    );
    for a in &accounts {
        let name = a["name"].as_str().unwrap_or("?");
        if let Some(detail) = a["detail"].as_str() {
            println!("\n{name}: {detail}");
        }
        if let Some(hint) = silent_hint(a, uptime) {
            println!("\n{name}: {hint}");
        }
    }
    Ok(())
}

fn age(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "never".to_string(), |s| format!("{} ago", human_secs(s)))
}

fn account_row(a: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let conn = &a["connection"];
    let (state, frame, reconnects, error) = if conn.is_null() {
        ("webhook".to_string(), "-".into(), "-".into(), "-".into())
    } else {
        let mut state = text(&conn["state"]);
        if conn["silent"].as_bool() == Some(true) {
            state.push_str(" (silent)");
        }
        (
            state,
            age(&conn["last_frame_age_secs"]),
            conn["reconnects"].as_u64().unwrap_or(0).to_string(),
            conn["last_error"].as_str().unwrap_or("-").to_string(),
        )
    };
    vec![
        text(&a["name"]),
        text(&a["app_id"]),
        text(&a["state"]),
        state,
        frame,
        reconnects,
        age(&a["last_event_age_secs"]),
        format!(
            "{} running, {} waiting",
            a["running_turns"].as_u64().unwrap_or(0),
            a["waiting"].as_u64().unwrap_or(0)
        ),
        error,
    ]
}

/// Connected for a while and not one event: the console's event
/// subscription is the usual cause.
fn silent_hint(account: &Value, uptime_secs: u64) -> Option<String> {
    let conn = &account["connection"];
    let connected = conn["state"].as_str() == Some("connected");
    let since = conn["connected_since"].as_u64();
    let connected_for = since
        .and_then(|s| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|now| now.as_secs().saturating_sub(s))
        })
        .unwrap_or(uptime_secs);
    (connected
        && account["last_event_age_secs"].is_null()
        && connected_for.min(uptime_secs) >= SILENT_HINT_AFTER_SECS)
        .then(|| {
            format!(
                "connected for {} but no event has arrived. In the developer console, \
                 Events & Callbacks must use \"receive events through persistent connection\" \
                 (long connection) and list im.message.receive_v1; the console saves that mode \
                 only while larkgate is connected. Publish a version after changing it.",
                human_secs(connected_for)
            )
        })
}

/// One check of an account.
struct Check {
    what: &'static str,
    outcome: CheckOutcome,
    detail: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckOutcome {
    Ok,
    Problem,
    Note,
}

impl CheckOutcome {
    fn word(self) -> &'static str {
        match self {
            CheckOutcome::Ok => "ok",
            CheckOutcome::Problem => "FAIL",
            CheckOutcome::Note => "note",
        }
    }
}

fn check(what: &'static str, outcome: CheckOutcome, detail: impl Into<String>) -> Check {
    Check {
        what,
        outcome,
        detail: detail.into(),
    }
}

/// A platform error in plain words, with a hint for network failures.
fn explain(client: &Client, e: &Error) -> String {
    match e {
        Error::Http(_) => format!(
            "cannot reach {}: {e} (check the network, channels.lark.proxy and channels.lark.domain)",
            client.domain()
        ),
        _ => diagnose::explain(e),
    }
}

/// What `activate_status` means when it is not 2.
fn activation(status: i64) -> &'static str {
    match status {
        0 => "the app is not installed in the tenant yet (publish a version and have it approved)",
        1 => "a tenant admin disabled the app",
        3 | 4 => "the app is installed but waits for a tenant admin to enable it",
        5 => "the app is disabled because its license expired",
        6 => "the app is disabled because the tenant's plan expired or was downgraded",
        _ => "the bot is not enabled in the tenant",
    }
}

/// Token, bot info and (long connection) discovery for one account.
async fn probe_account(account: &AccountConfig) -> Result<Vec<Check>, Failure> {
    let client = client_builder(account)?
        .max_attempts(1)
        .build()
        .map_err(|e| Failure::usage(format!("account {}: {e}", account.name)))?;
    let mut checks = Vec::new();
    if let Err(e) = client.tenant_token().await {
        checks.push(check("token", CheckOutcome::Problem, explain(&client, &e)));
        return Ok(checks);
    }
    checks.push(check(
        "token",
        CheckOutcome::Ok,
        "appId and appSecret accepted",
    ));
    match client.bot_info().await {
        Ok(bot) if bot.activate_status == 2 => checks.push(check(
            "bot",
            CheckOutcome::Ok,
            format!("{} ({}) is enabled", bot.app_name, bot.open_id),
        )),
        Ok(bot) => checks.push(check(
            "bot",
            CheckOutcome::Problem,
            format!(
                "{}: activate_status {} ({})",
                bot.app_name,
                bot.activate_status,
                activation(bot.activate_status)
            ),
        )),
        Err(e) => checks.push(check("bot", CheckOutcome::Problem, explain(&client, &e))),
    }
    match account.mode {
        Mode::Websocket => match lark_client::ws::probe_discovery(&client).await {
            Ok(()) => checks.push(check(
                "connection",
                CheckOutcome::Ok,
                "the long-connection endpoint is available",
            )),
            Err(e) => checks.push(check(
                "connection",
                CheckOutcome::Problem,
                format!("long connection: {}", explain(&client, &e)),
            )),
        },
        Mode::Webhook => checks.push(check(
            "connection",
            CheckOutcome::Note,
            format!(
                "webhook mode: the console's request URL must reach {} on this gateway",
                account.webhook_path
            ),
        )),
    }
    Ok(checks)
}

async fn probe(config: &Config, json: bool) -> Outcome {
    let accounts: Vec<&AccountConfig> = config.accounts.iter().filter(|a| a.enabled).collect();
    if accounts.is_empty() {
        return Err(Failure::usage(
            "no enabled account to probe: set channels.lark.appId and appSecret (or run `larkgate setup`)",
        ));
    }
    // The running gateway, if any, tells whether events arrive.
    let running = fetch_status(config).await.ok();
    let mut problems = 0;
    let mut report = Vec::new();
    for account in accounts {
        let mut checks = probe_account(account).await?;
        if let Some(hint) = running.as_ref().and_then(|body| {
            let uptime = body["uptime_secs"].as_u64().unwrap_or(0);
            body["accounts"]
                .as_array()?
                .iter()
                .find(|a| a["name"].as_str() == Some(account.name.as_str()))
                .and_then(|a| silent_hint(a, uptime))
        }) {
            checks.push(check("events", CheckOutcome::Note, hint));
        }
        problems += checks
            .iter()
            .filter(|c| c.outcome == CheckOutcome::Problem)
            .count();
        report.push((account, checks));
    }
    if json {
        let body: Vec<Value> = report
            .iter()
            .map(|(a, checks)| {
                json!({
                    "account": a.name,
                    "app_id": a.app_id,
                    "ok": checks.iter().all(|c| c.outcome != CheckOutcome::Problem),
                    "checks": checks.iter().map(|c| json!({
                        "check": c.what,
                        "result": c.outcome.word().to_lowercase(),
                        "detail": c.detail,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", pretty(&Value::Array(body)));
    } else {
        for (a, checks) in &report {
            println!("{} ({})", a.name, a.app_id);
            for c in checks {
                println!("  {:<4}  {:<10}  {}", c.outcome.word(), c.what, c.detail);
            }
        }
    }
    if problems > 0 {
        return Err(Failure::probe(format!(
            "{problems} problem(s) found (see above)"
        )));
    }
    if !json {
        println!("all checks passed");
    }
    Ok(())
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_admin_addresses_are_reached_on_loopback() {
        let a = admin_target("0.0.0.0:18790".parse().unwrap());
        assert_eq!(a.to_string(), "127.0.0.1:18790");
        let a = admin_target("[::]:1".parse().unwrap());
        assert_eq!(a.to_string(), "[::1]:1");
        let a = admin_target("127.0.0.2:5".parse().unwrap());
        assert_eq!(a.to_string(), "127.0.0.2:5");
    }

    #[test]
    fn silence_hint_needs_a_connected_quiet_while() {
        let quiet = json!({"connection": {"state": "connected", "connected_since": null}, "last_event_age_secs": null});
        assert!(silent_hint(&quiet, 10).is_none());
        let hint = silent_hint(&quiet, 600).unwrap();
        assert!(hint.contains("im.message.receive_v1") && hint.contains("persistent connection"));
        let heard = json!({"connection": {"state": "connected"}, "last_event_age_secs": 5});
        assert!(silent_hint(&heard, 600).is_none());
        let down = json!({"connection": {"state": "reconnecting"}, "last_event_age_secs": null});
        assert!(silent_hint(&down, 600).is_none());
    }

    #[test]
    fn rows_show_connection_and_reconnects() {
        let a = json!({
            "name": "default", "app_id": "cli_1", "state": "ready",
            "connection": {"state": "connected", "last_frame_age_secs": 3, "reconnects": 2, "last_error": null, "silent": false},
            "last_event_age_secs": null, "running_turns": 1, "waiting": 0
        });
        let row = account_row(&a);
        assert_eq!(row[3], "connected");
        assert_eq!(row[4], "3s ago");
        assert_eq!(row[5], "2");
        assert_eq!(row[6], "never");
        assert_eq!(row[8], "-");
    }
}
