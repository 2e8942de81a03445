//! The command line's shape (clap derive) and its help texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Connects AI agents to Feishu and Lark bots.";

const LONG_ABOUT: &str = "\
Connects AI agents to Feishu (China) and Lark (international) bots: events
arrive over the long connection (or webhooks), agents answer, replies are
streamed into cards.

First steps:
  larkgate config init            write a commented larkgate.toml
  larkgate setup                  create the bot by scanning a QR code
  larkgate run                    connect and answer
  larkgate status --probe         check credentials and the connection";

const AFTER_HELP: &str = "\
Aliases (the peers' spellings): `gateway run` = run, `channels status` =
status, `message send` = send.

Exit codes:
  0  success
  1  failure at run time (network, platform error, larkgate not running)
  2  usage or configuration error (every problem on its own line, naming the key)
  3  status --probe found a problem

Environment: LARKGATE_CONFIG (the config file), LARKGATE_LOG (a tracing filter
that overrides log.level), LARK_APP_ID / LARK_APP_SECRET / LARK_DOMAIN (fill the
default account where the file leaves them unset).";

/// `larkgate`: the gateway and its operator commands.
#[derive(Debug, Parser)]
#[command(
    name = "larkgate",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// The config file (default ./larkgate.toml).
    #[arg(long, global = true, env = "LARKGATE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway until SIGINT/SIGTERM.
    #[command(after_help = "\
Example: larkgate run --config /etc/larkgate/larkgate.toml --verbose

The first SIGINT/SIGTERM stops taking events, lets running turns finish within
--drain-timeout (then closes them as interrupted), flushes the store and exits
0. A second signal exits at once (130).")]
    Run(RunArgs),
    /// `gateway run`: the same as run (the peers' spelling).
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Show each account's connection as the running gateway sees it.
    #[command(after_help = "\
Examples:
  larkgate status              ask the running gateway (admin.listen)
  larkgate status --json       the same as JSON
  larkgate status --probe      check each account against the platform: token,
                               bot info, long-connection endpoint (exit 3 on a problem)

Without --probe it exits 1 when no larkgate answers at admin.listen.")]
    Status(StatusArgs),
    /// `channels status`: the same as status (the peers' spelling).
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Send a message as the bot.
    #[command(after_help = "\
The id's kind is inferred: oc_… chat, ou_… open_id, on_… union_id, an email
address, anything else a user_id. Prints the new message_id.

Examples:
  larkgate send --to oc_84983ff6516d731e5b5f68d4ea2e1da5 --message 'deploy done'
  larkgate send --to someone@example.com --card card.json
  larkgate send --reply-to om_dc13264520392913993dd051dba21dcf --image chart.png")]
    Send(SendArgs),
    /// `message send`: the same as send (the peers' spelling).
    #[command(subcommand)]
    Message(MessageCommand),
    /// List, approve or reject pairing codes of unknown DM senders.
    #[command(subcommand)]
    Pairing(PairingCommand),
    /// Create, check, read and change the config file (comments are kept).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create the bot by scanning a QR code and write its credentials.
    #[command(after_help = "\
Shows a QR code (and its link) to scan with the Feishu or Lark app, waits for
your approval, then writes appId and appSecret (or appSecretFile) into the
config and lists the steps left in the developer console.

Examples:
  larkgate setup
  larkgate setup --lark --name 'Helpdesk' --secret-file helpdesk_secret.txt
  larkgate setup --account support")]
    Setup(SetupArgs),
    /// Incoming-webhook (custom) bots: send to a group's hook URL.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Print the current log file.
    #[command(after_help = "\
Example: larkgate logs -f        follow new lines (across the daily rollover)")]
    Logs(LogsArgs),
    /// Run a local Feishu/Lark emulator (for development, no tenant needed).
    #[command(after_help = "\
Example: larkgate emulator --port 9000
Then point an account at it: domain = \"http://127.0.0.1:9000\".")]
    Emulator(EmulatorArgs),
    /// Emulator + gateway + a chat page in one command, to try larkgate.
    #[command(after_help = "\
Example: larkgate demo --port 9000      then open http://127.0.0.1:9000/
With OPENAI_API_KEY or ANTHROPIC_API_KEY set, a model answers; else echo.")]
    Demo(DemoArgs),
}

/// `gateway …`.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway (same as `larkgate run`).
    Run(RunArgs),
}

/// `channels …`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Show the accounts' connections (same as `larkgate status`).
    Status(StatusArgs),
}

/// `message …`.
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Send a message (same as `larkgate send`).
    Send(SendArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Log at debug level (LARKGATE_LOG overrides).
    #[arg(long, short)]
    pub verbose: bool,
    /// Log format, overriding log.format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    /// Seconds running turns get to finish on shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub drain_timeout: u64,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Check each enabled account against the platform instead of asking the
    /// running gateway.
    #[arg(long)]
    pub probe: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `send`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("content")
        .required(true)
        .args(["message", "card", "image", "file"])
))]
pub struct SendArgs {
    /// The receiver: oc_ chat, ou_ open_id, on_ union_id, or an email.
    #[arg(long, value_name = "ID", required_unless_present = "reply_to")]
    pub to: Option<String>,
    /// Text to send.
    #[arg(long, short, value_name = "TEXT")]
    pub message: Option<String>,
    /// A card (JSON file, card 1.0 or 2.0).
    #[arg(long, value_name = "FILE")]
    pub card: Option<PathBuf>,
    /// An image to upload and send.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// A file to upload and send.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The account to send as (default: the first enabled one).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Reply to this message (om_…) instead of sending to --to.
    #[arg(long, value_name = "MESSAGE_ID", conflicts_with = "to")]
    pub reply_to: Option<String>,
}

/// `pairing …`.
#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// List pending pairing codes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a code: its sender may talk to the bot from now on.
    #[command(after_help = "Example: larkgate pairing approve K7MX-Q2PA")]
    Approve {
        /// The code the sender received (case, spaces and dashes do not matter).
        code: String,
    },
    /// Reject a code.
    Reject {
        /// The code.
        code: String,
    },
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented starter config (every key with its default).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Load the config and report every problem (exit 2 when there is one).
    Validate,
    /// Print one key's value (dotted, e.g. channels.lark.dmPolicy).
    #[command(after_help = "\
Secrets (appSecret, encryptKey, verificationToken, admin.token, agents' apiKey,
headers and env) print as <redacted> unless --show-secrets is given.

Example: larkgate config get channels.lark.appId")]
    Get {
        /// The dotted key.
        key: String,
        /// Print secret values too.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Change one key, keeping the file's comments and layout.
    #[command(after_help = "\
Values are typed by the key: true/false, numbers, lists as `a, b` or
'[\"a\", \"b\"]'. A change that makes the key invalid is refused and nothing
is written (exit 2).

Examples:
  larkgate config set channels.lark.appId cli_a1b2c3d4e5f6a7b8
  larkgate config set channels.lark.dmPolicy allowlist
  larkgate config set channels.lark.allowFrom 'ou_1, ou_2'
  larkgate config set 'channels.lark.groups.\"oc_1\".requireMention' false")]
    Set {
        /// The dotted key.
        key: String,
        /// The new value.
        value: String,
    },
}

/// `setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Start on Lark (international) instead of Feishu. A Lark user scanning
    /// the Feishu code is switched over automatically.
    #[arg(long)]
    pub lark: bool,
    /// The bot's name (suggested on the approval page; written as `name`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Write the credentials as channels.lark.accounts.NAME (default: channels.lark).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Write the app secret to this file (mode 0600) and reference it as
    /// appSecretFile, instead of writing it into the config.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// A proxy for reaching the platform (http://, socks5://).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Accounts and open host base URL (tests and the emulator).
    #[arg(long, hide = true, env = "LARKGATE_SETUP_DOMAIN", value_name = "URL")]
    pub domain: Option<String>,
    /// The Lark accounts host when --domain is given (default: DOMAIN/lark).
    #[arg(
        long,
        hide = true,
        env = "LARKGATE_SETUP_LARK_DOMAIN",
        value_name = "URL"
    )]
    pub lark_domain: Option<String>,
}

/// `webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send a text or card through a custom bot's hook URL.
    #[command(after_help = "\
Example:
  larkgate webhook send --url https://open.feishu.cn/open-apis/bot/v2/hook/xxxx \\
      --secret \"$HOOK_SECRET\" --text 'build #42 passed'")]
    Send(WebhookSendArgs),
}

/// `webhook send`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("content")
        .required(true)
        .args(["text", "card"])
))]
pub struct WebhookSendArgs {
    /// The hook URL (…/open-apis/bot/v2/hook/TOKEN).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The signing secret, when the bot has signature verification on.
    #[arg(
        long,
        value_name = "S",
        env = "LARKGATE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// Text to send.
    #[arg(long, value_name = "T")]
    pub text: Option<String>,
    /// A card (JSON file).
    #[arg(long, value_name = "FILE")]
    pub card: Option<PathBuf>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they are written.
    #[arg(long, short)]
    pub follow: bool,
}

/// `emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The default app's id.
    #[arg(long, value_name = "ID", requires = "app_secret")]
    pub app_id: Option<String>,
    /// The default app's secret.
    #[arg(long, value_name = "S", requires = "app_id")]
    pub app_secret: Option<String>,
    /// The bot's name.
    #[arg(long, value_name = "NAME")]
    pub bot_name: Option<String>,
}

impl EmulatorArgs {
    /// The flags `lark_emulator::run_cli` takes.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec!["--port".to_string(), self.port.to_string()];
        let pairs = [
            ("--app-id", &self.app_id),
            ("--app-secret", &self.app_secret),
            ("--bot-name", &self.bot_name),
        ];
        for (flag, value) in pairs {
            if let Some(v) = value {
                out.push(flag.to_string());
                out.push(v.clone());
            }
        }
        out
    }
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the emulator and its chat page (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// An agent from the config (--config) instead of the default.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn aliases_parse_like_the_commands() {
        let c = Cli::try_parse_from(["larkgate", "gateway", "run", "--verbose"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Gateway(GatewayCommand::Run(RunArgs { verbose: true, .. }))
        ));
        let c = Cli::try_parse_from(["larkgate", "message", "send", "--to", "oc_1", "-m", "hi"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Message(MessageCommand::Send(_))
        ));
        let c = Cli::try_parse_from(["larkgate", "channels", "status", "--probe"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Channels(ChannelsCommand::Status(StatusArgs { probe: true, .. }))
        ));
    }

    #[test]
    fn send_needs_one_content_and_a_target() {
        assert!(Cli::try_parse_from(["larkgate", "send", "--to", "oc_1"]).is_err());
        assert!(Cli::try_parse_from([
            "larkgate", "send", "--to", "oc_1", "-m", "a", "--card", "c"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["larkgate", "send", "-m", "a"]).is_err());
        assert!(Cli::try_parse_from(["larkgate", "send", "--reply-to", "om_1", "-m", "a"]).is_ok());
    }

    #[test]
    fn emulator_flags_pass_through() {
        let c = Cli::try_parse_from([
            "larkgate",
            "emulator",
            "--port",
            "0",
            "--app-id",
            "cli_x",
            "--app-secret",
            "s",
        ])
        .unwrap();
        let Command::Emulator(a) = c.command else {
            panic!("not emulator")
        };
        assert_eq!(
            a.to_args(),
            ["--port", "0", "--app-id", "cli_x", "--app-secret", "s"]
        );
    }
}
