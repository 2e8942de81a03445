#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod bench;
mod cardkit;
mod cli;
mod config;
mod content;
mod control;
mod delivery;
mod error;
mod events;
mod faults;
mod ids;
mod im;
mod model;
mod ratelimit;
mod registration;
mod server;
mod state;
mod stats;
mod tokens;
mod ui;
mod users;
mod webhook_push;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use bench::process_cpu_secs;
pub use cli::{announce_then_wait_for_interrupt, run_cli};
pub use config::{EmulatorConfig, DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_BOT_NAME};
pub use error::Error;
pub use model::{
    AppInfo, AppStats, ApproveRegistration, ApprovedRegistration, CardPress, CardPressResult,
    ChatList, ChatMessageView, ChatSummary, ChatView, DeliveredEvent, Fault, ForwardedMessage,
    Latency, NewApp, RawEvent, ReactionView, SentMessage, Stats, UserMessage, UserReaction,
    WebhookConfig,
};

pub use ui::{DemoUser, DEMO_ALICE, DEMO_BOB, DEMO_GROUP_CHAT_ID, DEMO_TOPIC_CHAT_ID, DEMO_USERS};

use state::Core;

/// A running emulator bound to 127.0.0.1. Dropping it stops it.
pub struct Emulator {
    core: Arc<Core>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:`config.port` (0 = any free port) and serves.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        let port = config.port;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| Error::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { port, source })?;
        let core = Core::new(config, addr.port())?;
        let app = server::router(Arc::clone(&core));
        let cancel = core.cancel.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "emulator server stopped");
            }
        });
        tokio::spawn(Arc::clone(&core).redelivery_loop());
        tokio::spawn(server::sweeper(Arc::clone(&core)));
        Ok(Emulator {
            core,
            addr,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT` — the Feishu-brand base URL (open and accounts).
    pub fn base_url(&self) -> String {
        self.core.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/lark` — the same platform as the Lark brand's
    /// host (the registration flow hands out Lark secrets only here).
    pub fn lark_base_url(&self) -> String {
        format!("{}/lark", self.core.base_url)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &EmulatorConfig {
        &self.core.cfg
    }

    /// The default app (credentials from the config).
    pub fn default_app(&self) -> AppInfo {
        self.core.default_app()
    }

    /// All apps.
    pub fn apps(&self) -> Vec<AppInfo> {
        self.core.apps()
    }

    /// Creates another app (tenant).
    pub fn create_app(&self, req: NewApp) -> Result<AppInfo, Error> {
        self.core.create_app(req)
    }

    /// Sets (`Some`) or clears (`None`) an app's webhook; events then go by
    /// HTTP POST instead of the long connection.
    pub async fn set_webhook(
        &self,
        app_id: &str,
        webhook: Option<WebhookConfig>,
    ) -> Result<(), Error> {
        self.core.set_webhook(app_id, webhook).await
    }

    /// A user sends a message to a bot.
    pub fn send_message(&self, msg: UserMessage) -> Result<SentMessage, Error> {
        self.core.send_user_message(msg)
    }

    /// The messages of a chat as a user sees them, oldest first.
    pub fn chat_messages(&self, chat_id: &str) -> Result<Vec<ChatMessageView>, Error> {
        self.core.chat_view(chat_id).map(|v| v.messages)
    }

    /// A chat with its version.
    pub fn chat(&self, chat_id: &str) -> Result<ChatView, Error> {
        self.core.chat_view(chat_id)
    }

    /// Waits until the chat's version exceeds `after_version`, or `timeout`.
    pub async fn wait_chat(
        &self,
        chat_id: &str,
        after_version: u64,
        timeout: Duration,
    ) -> Result<ChatView, Error> {
        self.core.wait_chat(chat_id, after_version, timeout).await
    }

    /// All chats.
    pub fn chats(&self) -> ChatList {
        self.core.chat_list()
    }

    /// Pushes any event (v2.0 envelope) to an app.
    pub fn deliver_event(&self, event: RawEvent) -> Result<DeliveredEvent, Error> {
        self.core.deliver_event(event)
    }

    /// A user adds a reaction (`im.message.reaction.created_v1`).
    pub fn user_react(
        &self,
        message_id: &str,
        reaction: UserReaction,
    ) -> Result<DeliveredEvent, Error> {
        self.core.user_react(message_id, reaction)
    }

    /// A user recalls their message (`im.message.recalled_v1`).
    pub fn user_recall(&self, message_id: &str) -> Result<DeliveredEvent, Error> {
        self.core.user_recall(message_id)
    }

    /// A user presses a card button; returns the app's callback answer.
    pub async fn press_card_button(
        &self,
        message_id: &str,
        press: CardPress,
    ) -> Result<CardPressResult, Error> {
        self.core.press_card_button(message_id, press).await
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) -> Result<(), Error> {
        self.core.inject(fault)
    }

    /// Per-app counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Approves a pending app registration (device flow).
    pub fn approve_registration(
        &self,
        req: ApproveRegistration,
    ) -> Result<ApprovedRegistration, Error> {
        self.core.approve_registration(req)
    }

    /// Sets (`Some`) or clears (`None`) the gateway admin API base URL the
    /// chat page uses for pairing requests and the gateway's health (for a
    /// gateway started after the emulator). Pages pick it up when reloaded.
    pub fn set_ui_gateway_admin_url(&self, url: Option<String>) {
        self.core.ui.set_gateway_admin_url(url);
    }

    /// The chat page's URL (`{base_url}/`).
    pub fn ui_url(&self) -> String {
        format!("{}/", self.core.base_url)
    }

    /// Stops serving, closes connections and waits (briefly) for the server.
    pub async fn shutdown(mut self) {
        self.core.cancel.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.core.cancel.cancel();
    }
}
