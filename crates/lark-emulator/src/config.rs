//! [`EmulatorConfig`]: ports, timers and limits, all overridable by tests.

use std::time::Duration;

/// App id of the default app (deterministic so docs can show it).
pub const DEFAULT_APP_ID: &str = "cli_a1b2c3d4e5f60001";
/// App secret of the default app.
pub const DEFAULT_APP_SECRET: &str = "emulatorsecretemulatorsecret0001";
/// Bot name of the default app.
pub const DEFAULT_BOT_NAME: &str = "Emulator Bot";

/// How the emulator behaves. `Default` mirrors the real platform; tests
/// shorten the timers.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// TCP port on 127.0.0.1 (0 = pick a free one).
    pub port: u16,
    /// Lifetime of a tenant/app access token (platform: 2 h).
    pub token_ttl: Duration,
    /// A token with at least this much life left is returned again instead of
    /// a new one (platform: 30 min).
    pub token_reuse_margin: Duration,
    /// An event not acked with code 200 within this time is redelivered
    /// (platform: 3 s). Also the webhook request timeout.
    pub redelivery_after: Duration,
    /// Redeliveries after the first attempt before an event is dropped
    /// (platform: 4).
    pub max_redeliveries: u32,
    /// Delays between webhook retries after a failed POST
    /// (platform: 15 s, 5 min, 1 h, 6 h).
    pub webhook_retry_schedule: Vec<Duration>,
    /// App-wide API rate (requests per second, token bucket with that burst);
    /// `None` = unlimited. Excess gets HTTP 429 + code 99991400.
    pub app_rate_limit: Option<u32>,
    /// Sends/replies per second into one chat (platform: 5, code 230020).
    pub per_chat_rate: Option<u32>,
    /// Card PATCHes per second per message (platform: 5, code 230020).
    pub per_message_patch_rate: Option<u32>,
    /// CardKit operations per second per card entity (platform: 10).
    pub per_card_rate: Option<u32>,
    /// Split event payloads over this many bytes into fragments
    /// (`None` = never split).
    pub max_fragment_bytes: Option<usize>,
    /// Streaming mode of a card entity closes itself after this long
    /// (platform: 10 min).
    pub streaming_auto_close: Duration,
    /// `PingInterval` (seconds) in the `ClientConfig` of discovery and pongs.
    pub ping_interval_secs: u64,
    /// `ReconnectInterval` (seconds) in the `ClientConfig`.
    pub reconnect_interval_secs: u64,
    /// `ReconnectNonce` (seconds) in the `ClientConfig`.
    pub reconnect_nonce_secs: u64,
    /// `ReconnectCount` in the `ClientConfig` (negative = unlimited).
    pub reconnect_count: i64,
    /// Long connections allowed per app (platform: 50).
    pub max_connections_per_app: usize,
    /// `interval` (seconds) returned by the registration `begin` step.
    pub registration_interval_secs: u64,
    /// `expires_in` (seconds) of a registration device code.
    pub registration_expires_in_secs: u64,
    /// Default app id (`cli_` + 16 hex).
    pub app_id: String,
    /// Default app secret.
    pub app_secret: String,
    /// Default app's bot name.
    pub bot_name: String,
    /// Base URL of a gateway's admin API (`http://127.0.0.1:PORT`) that the
    /// chat page uses to list and approve pairing requests; `None` = the page
    /// says no gateway is attached. Changeable later with
    /// `Emulator::set_ui_gateway_admin_url`.
    pub ui_gateway_admin_url: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            token_ttl: Duration::from_secs(7200),
            token_reuse_margin: Duration::from_secs(1800),
            redelivery_after: Duration::from_secs(3),
            max_redeliveries: 4,
            webhook_retry_schedule: vec![
                Duration::from_secs(15),
                Duration::from_secs(300),
                Duration::from_secs(3600),
                Duration::from_secs(6 * 3600),
            ],
            app_rate_limit: None,
            per_chat_rate: Some(5),
            per_message_patch_rate: Some(5),
            per_card_rate: Some(10),
            max_fragment_bytes: None,
            streaming_auto_close: Duration::from_secs(600),
            ping_interval_secs: 120,
            reconnect_interval_secs: 120,
            reconnect_nonce_secs: 30,
            reconnect_count: -1,
            max_connections_per_app: 50,
            registration_interval_secs: 5,
            registration_expires_in_secs: 600,
            app_id: DEFAULT_APP_ID.to_string(),
            app_secret: DEFAULT_APP_SECRET.to_string(),
            bot_name: DEFAULT_BOT_NAME.to_string(),
            ui_gateway_admin_url: None,
        }
    }
}

impl EmulatorConfig {
    /// The `ClientConfig` JSON sent in discovery responses and pongs.
    pub fn client_config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ReconnectCount": self.reconnect_count,
            "ReconnectInterval": self.reconnect_interval_secs,
            "ReconnectNonce": self.reconnect_nonce_secs,
            "PingInterval": self.ping_interval_secs,
        })
    }
}
