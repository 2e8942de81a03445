//! The `lark-emulator` command line: start, print where things are, run
//! until Ctrl-C.

use std::time::Duration;

use crate::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: lark-emulator [--port P] [--app-id ID --app-secret S] [--bot-name NAME]
                     [--token-ttl SECS] [--redelivery-ms MS] [--max-fragment-bytes N]
                     [--app-rate-limit N] [--no-chat-rate-limit] [--gateway-admin-url URL]";

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not a number"))
}

/// Parses command-line flags (without the program name) into a config.
pub fn parse_args(args: &[String]) -> Result<EmulatorConfig, String> {
    let mut cfg = EmulatorConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--port" => cfg.port = number(value(&mut it, flag)?, flag)?,
            "--app-id" => cfg.app_id = value(&mut it, flag)?.clone(),
            "--app-secret" => cfg.app_secret = value(&mut it, flag)?.clone(),
            "--bot-name" => cfg.bot_name = value(&mut it, flag)?.clone(),
            "--token-ttl" => {
                cfg.token_ttl = Duration::from_secs(number(value(&mut it, flag)?, flag)?)
            }
            "--redelivery-ms" => {
                cfg.redelivery_after = Duration::from_millis(number(value(&mut it, flag)?, flag)?)
            }
            "--max-fragment-bytes" => {
                cfg.max_fragment_bytes = Some(number(value(&mut it, flag)?, flag)?)
            }
            "--app-rate-limit" => cfg.app_rate_limit = Some(number(value(&mut it, flag)?, flag)?),
            "--no-chat-rate-limit" => cfg.per_chat_rate = None,
            "--gateway-admin-url" => cfg.ui_gateway_admin_url = Some(value(&mut it, flag)?.clone()),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

/// What the emulator prints at startup.
pub fn banner(emu: &Emulator) -> String {
    let app = emu.default_app();
    let base = emu.base_url();
    format!(
        "lark-emulator listening on {base}
  Feishu base URL : {base}
  Lark base URL   : {lark}
  default app     : app_id={id} app_secret={secret}
  bot             : {name} ({open_id})
  chat page       : {ui}
control API:
  POST {base}/_emulator/messages                     a user sends a message
  GET  {base}/_emulator/chats                        chats
  GET  {base}/_emulator/chats/{{chat_id}}/messages     a chat (?wait_version=N long-polls)
  POST {base}/_emulator/cards/{{message_id}}/action    press a card button
  GET  {base}/_emulator/apps   POST {base}/_emulator/apps
  PUT  {base}/_emulator/apps/{{app_id}}/webhook
  POST {base}/_emulator/faults    GET {base}/_emulator/stats
  POST {base}/_emulator/registrations/approve",
        lark = emu.lark_base_url(),
        ui = emu.ui_url(),
        id = app.app_id,
        secret = app.app_secret,
        name = app.bot_name,
        open_id = app.bot_open_id,
    )
}

/// Prints `banner` once Ctrl-C is being listened for (so an early Ctrl-C is
/// caught), then waits for it.
pub async fn announce_then_wait_for_interrupt(banner: &str) -> Result<(), String> {
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("listening for Ctrl-C: {e}"))?;
    println!("{banner}");
    #[cfg(unix)]
    interrupt.recv().await;
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    Ok(())
}

/// Runs the emulator from command-line flags until Ctrl-C.
pub async fn run_cli(args: Vec<String>) -> Result<(), String> {
    let cfg = parse_args(&args)?;
    let emu = Emulator::start(cfg).await.map_err(|e| e.to_string())?;
    announce_then_wait_for_interrupt(&banner(&emu)).await?;
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_set_the_config() {
        let cfg = parse_args(&args("--port 9000 --app-id cli_0123456789abcdef --app-secret s --max-fragment-bytes 64 --no-chat-rate-limit --gateway-admin-url http://127.0.0.1:1")).unwrap();
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.app_id, "cli_0123456789abcdef");
        assert_eq!(cfg.app_secret, "s");
        assert_eq!(cfg.max_fragment_bytes, Some(64));
        assert_eq!(cfg.per_chat_rate, None);
        assert_eq!(
            cfg.ui_gateway_admin_url.as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert!(parse_args(&args("--port"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_args(&args("--port x"))
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_args(&args("--what"))
            .unwrap_err()
            .contains("unknown argument"));
    }
}
