//! End-to-end harness: lark-emulator and the gateway in one process, talking
//! over real loopback sockets (long connection, REST).

#![allow(dead_code)]

pub mod llm;

use std::time::Duration;

use lark_emulator::{AppInfo, ChatMessageView, Emulator, EmulatorConfig, SentMessage, UserMessage};
use larkgate::config::*;
use larkgate::gateway::{self, Gateway, RunOptions};
use larkgate::secret::Secret;
use tokio_util::sync::CancellationToken;

/// Generous hang guard; never a performance assertion.
pub const GUARD: Duration = Duration::from_secs(30);

/// An account for the emulator's app with test-friendly defaults.
pub fn account(emu: &Emulator, app: &AppInfo, name: &str) -> AccountConfig {
    AccountConfig {
        domain: emu.base_url(),
        dm_policy: DmPolicy::Open,
        group_policy: GroupPolicy::Open,
        reply_mode: ReplyMode::Static,
        typing_indicator: false,
        ..AccountConfig::new(name, &app.app_id, Secret::new(app.app_secret.clone()))
    }
}

/// A whole configuration around `accounts`, storing in `dir`.
pub fn config(dir: &std::path::Path, accounts: Vec<AccountConfig>) -> Config {
    let mut agents = std::collections::BTreeMap::new();
    agents.insert(
        "echo".to_string(),
        larkgate::agent::AgentConfig {
            chunk_delay_ms: Some(0),
            ..Default::default()
        },
    );
    Config {
        path: Some(dir.join("larkgate.toml")),
        accounts,
        agents,
        store: StoreConfig {
            url: format!("sqlite://{}", dir.join("larkgate.db").display()),
        },
        admin: AdminConfig {
            enabled: false,
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
        },
        webhook: WebhookListenConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 1 << 20,
        },
        log: LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            dir: None,
        },
    }
}

/// An emulator, a gateway, and the temp dir holding the store.
pub struct Harness {
    pub emu: Emulator,
    pub app: AppInfo,
    pub dir: tempfile::TempDir,
    pub gw: Option<Gateway>,
    pub shutdown: CancellationToken,
    pub config: Config,
}

impl Harness {
    /// Emulator + gateway with one account adjusted by `tune`.
    pub async fn start(tune: impl FnOnce(&mut AccountConfig)) -> Harness {
        Harness::start_with(|_, c| tune(&mut c.accounts[0])).await
    }

    /// Emulator + gateway with the whole configuration adjusted by `tune`.
    pub async fn start_with(tune: impl FnOnce(&Emulator, &mut Config)) -> Harness {
        let emu = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let app = emu.default_app();
        let dir = tempfile::tempdir().expect("tempdir");
        let acct = account(&emu, &app, "default");
        let mut config = config(dir.path(), vec![acct]);
        tune(&emu, &mut config);
        let mut h = Harness {
            emu,
            app,
            dir,
            gw: None,
            shutdown: CancellationToken::new(),
            config,
        };
        h.boot().await;
        h
    }

    /// (Re)starts the gateway on the same store.
    pub async fn boot(&mut self) {
        self.shutdown = CancellationToken::new();
        let gw = gateway::start(
            self.config.clone(),
            RunOptions::default(),
            self.shutdown.clone(),
        )
        .await
        .expect("gateway starts");
        tokio::time::timeout(GUARD, gw.wait_ready())
            .await
            .expect("ready");
        self.gw = Some(gw);
    }

    /// Stops the gateway gracefully.
    pub async fn stop(&mut self) {
        if let Some(gw) = self.gw.take() {
            gw.stop().await;
        }
    }

    pub fn gw(&self) -> &Gateway {
        self.gw.as_ref().expect("running")
    }

    /// A user DMs the bot.
    pub fn dm(&self, sender: &str, text: &str) -> SentMessage {
        self.emu
            .send_message(UserMessage {
                chat_type: Some("p2p".into()),
                sender_open_id: Some(sender.into()),
                text: Some(text.into()),
                ..Default::default()
            })
            .expect("send")
    }

    /// A user writes in a group (created on first use).
    pub fn group(&self, chat_id: &str, sender: &str, text: &str, mention: bool) -> SentMessage {
        self.emu
            .send_message(UserMessage {
                chat_type: Some("group".into()),
                chat_id: Some(chat_id.into()),
                sender_open_id: Some(sender.into()),
                text: Some(text.into()),
                mentions_bot: mention,
                ..Default::default()
            })
            .expect("send")
    }

    /// Sends any message.
    pub fn send(&self, msg: UserMessage) -> SentMessage {
        self.emu.send_message(msg).expect("send")
    }

    /// The bot's replies to `message_id`, once there is at least one
    /// finished one (waits on the chat's version, no polling).
    pub async fn replies(&self, sent: &SentMessage) -> Vec<ChatMessageView> {
        self.replies_n(sent, 1).await
    }

    /// Waits until `n` finished bot replies to `sent` exist.
    pub async fn replies_n(&self, sent: &SentMessage, n: usize) -> Vec<ChatMessageView> {
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
            if replies.len() >= n && replies.iter().all(|m| !m.streaming) {
                return replies;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reply to {} ({:?}) in time; replies so far: {replies:?}",
                sent.message_id,
                sent
            );
        }
    }

    /// All bot messages in a chat right now.
    pub fn bot_messages(&self, chat_id: &str) -> Vec<ChatMessageView> {
        self.emu
            .chat_messages(chat_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.sender == "bot")
            .collect()
    }

    /// Whether the bot replied to `sent`, judged after a later message that
    /// is answered (`barrier`) proves the earlier one was dispatched.
    pub async fn ignored_before(&self, sent: &SentMessage, barrier: &SentMessage) -> bool {
        self.replies(barrier).await;
        !self
            .emu
            .chat_messages(&sent.chat_id)
            .unwrap_or_default()
            .iter()
            .any(|m| m.sender == "bot" && m.reply_to.as_deref() == Some(&sent.message_id))
    }
}

/// Waits until `cond` holds (checked every 20 ms; the guard only stops a hang).
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits on a chat's version until `pred` holds for its messages.
pub async fn wait_until(
    emu: &Emulator,
    chat_id: &str,
    mut pred: impl FnMut(&[ChatMessageView]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut version = 0;
    loop {
        let view = emu
            .wait_chat(chat_id, version, Duration::from_secs(5))
            .await
            .expect("chat");
        version = view.version;
        if pred(&view.messages) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat {chat_id} never reached the expected state"
        );
    }
}

/// Whether the bot replied to `message_id` among `messages`.
pub fn replied_to(messages: &[ChatMessageView], message_id: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.sender == "bot" && m.reply_to.as_deref() == Some(message_id))
        .count()
}
