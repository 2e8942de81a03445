//! Running the real `larkgate` binary against a lark-emulator started in the
//! test process, with a temp dir holding the config, the store and the logs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lark_emulator::{AppInfo, Emulator, EmulatorConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// Generous hang guard; never a performance assertion.
pub const GUARD: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_larkgate")
}

/// A command for the binary with a clean, test-friendly environment.
pub fn larkgate(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LARKGATE_CONFIG")
        .env_remove("LARKGATE_LOG")
        .env_remove("LARK_APP_ID")
        .env_remove("LARK_APP_SECRET")
        .env_remove("FEISHU_APP_ID")
        .env_remove("FEISHU_APP_SECRET")
        .env_remove("LARK_DOMAIN")
        .env_remove("FEISHU_DOMAIN")
        .env_remove("LARKGATE_SETUP_DOMAIN")
        .env_remove("LARKGATE_SETUP_LARK_DOMAIN")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary in `dir` with `args` to completion.
pub async fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = tokio::time::timeout(GUARD, larkgate(dir).args(args).output())
        .await
        .expect("command finished in time")
        .expect("command runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Lines a child printed on one stream, readable while it runs.
#[derive(Clone, Default)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

impl Lines {
    /// Collects `stream` line by line in the background.
    pub fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> Lines {
        let lines = Lines::default();
        let me = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                me.lines.lock().unwrap().push(line);
                me.changed.notify_waiters();
            }
        });
        lines
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a line containing `needle`; returns it.
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let notified = self.changed.notified();
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no line with {needle:?} in time; so far:\n{}",
                self.text()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

/// The emulator, a temp dir with a config for its default app, and the
/// admin port the config names.
pub struct Env {
    pub emu: Emulator,
    pub app: AppInfo,
    pub dir: tempfile::TempDir,
    pub admin_port: u16,
}

impl Env {
    /// An emulator and a config with the given `[channels.lark]` extras.
    pub async fn start(account_extra: &str) -> Env {
        Env::start_with(EmulatorConfig::default(), account_extra).await
    }

    /// Like [`Env::start`] with an emulator config.
    pub async fn start_with(emu_cfg: EmulatorConfig, account_extra: &str) -> Env {
        let emu = Emulator::start(emu_cfg).await.expect("emulator");
        let app = emu.default_app();
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env {
            admin_port: free_port(),
            emu,
            app,
            dir,
        };
        let secret = env.app.app_secret.clone();
        env.write_config(&secret, account_extra);
        env
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("larkgate.toml")
    }

    /// (Re)writes the config with `secret` as the app secret.
    pub fn write_config(&self, secret: &str, account_extra: &str) {
        let text = format!(
            r#"# test config
[channels.lark]
appId = "{app_id}"
appSecret = "{secret}"
domain = "{base}"
replyMode = "static"
typingIndicator = false
{account_extra}

[agents.echo]
type = "echo"
chunkDelayMs = 0

[store]
url = "sqlite://larkgate.db"

[admin]
enabled = true
listen = "127.0.0.1:{port}"

[webhook]
listen = "127.0.0.1:0"

[log]
dir = "logs"
"#,
            app_id = self.app.app_id,
            base = self.emu.base_url(),
            port = self.admin_port,
        );
        std::fs::write(self.config(), text).expect("write config");
    }

    /// Runs a command to completion in the temp dir.
    pub async fn run(&self, args: &[&str]) -> Output {
        run_in(self.dir.path(), args).await
    }

    /// Starts `larkgate <args>` (e.g. `run`) and waits until every account
    /// is settled (the "started in" line).
    pub async fn gateway(&self, args: &[&str]) -> Gateway {
        let mut child = larkgate(self.dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn larkgate");
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        let gw = Gateway {
            child,
            stdout,
            stderr,
        };
        gw.stderr.wait_for("started in").await;
        gw
    }

    /// A DM from `sender` to the bot.
    pub fn dm(&self, sender: &str, text: &str) -> lark_emulator::SentMessage {
        self.emu
            .send_message(lark_emulator::UserMessage {
                chat_type: Some("p2p".into()),
                sender_open_id: Some(sender.into()),
                text: Some(text.into()),
                ..Default::default()
            })
            .expect("send")
    }

    /// The bot's finished replies to `sent`, once there is at least one.
    pub async fn replies(
        &self,
        sent: &lark_emulator::SentMessage,
    ) -> Vec<lark_emulator::ChatMessageView> {
        let deadline = tokio::time::Instant::now() + GUARD;
        let mut version = 0;
        loop {
            let view = self
                .emu
                .wait_chat(&sent.chat_id, version, Duration::from_secs(5))
                .await
                .expect("chat");
            version = view.version;
            let replies: Vec<_> = view
                .messages
                .into_iter()
                .filter(|m| m.sender == "bot" && m.reply_to.as_deref() == Some(&sent.message_id))
                .collect();
            if !replies.is_empty() && replies.iter().all(|m| !m.streaming) {
                return replies;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reply to {} in time",
                sent.message_id
            );
        }
    }

    /// `GET /api/status` of the running gateway.
    pub async fn admin_status(&self) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/status", self.admin_port))
            .send()
            .await
            .expect("admin answers")
            .json()
            .await
            .expect("json")
    }

    /// Every file in the log dir, concatenated.
    pub fn log_files(&self) -> String {
        let dir = self.dir.path().join("logs");
        let mut out = String::new();
        for entry in std::fs::read_dir(dir).expect("log dir").flatten() {
            out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        out
    }
}

/// A running `larkgate run`.
pub struct Gateway {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Gateway {
    /// Sends a signal to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id().expect("running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit; returns its code.
    pub async fn wait(&mut self) -> Option<i32> {
        tokio::time::timeout(GUARD, self.child.wait())
            .await
            .expect("exited in time")
            .expect("wait")
            .code()
    }
}

/// Waits until `cond` holds on the admin status (polled; the guard only
/// stops a hang).
pub async fn until_status(
    env: &Env,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let s = env.admin_status().await;
        if cond(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
