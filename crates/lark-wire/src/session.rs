//! The long-connection session as a state machine: feed it frames and clock
//! ticks, execute the [`Action`]s it returns. No I/O, no clock of its own.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::fragments::Reassembler;
use crate::frame::{Frame, FrameType, METHOD_DATA};
use crate::frame_ref::{AckTemplate, FrameRef};

/// Timers from endpoint discovery or a pong (`ClientConfig`, seconds).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClientConfig {
    /// Max reconnect attempts; negative means unlimited.
    pub reconnect_count: i64,
    /// Seconds between reconnect attempts.
    pub reconnect_interval: u64,
    /// Upper bound of the random delay before the first reconnect attempt.
    pub reconnect_nonce: u64,
    /// Seconds between pings.
    pub ping_interval: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            reconnect_count: -1,
            reconnect_interval: 120,
            reconnect_nonce: 30,
            ping_interval: 120,
        }
    }
}

/// How a failed discovery or handshake must be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Try again after the reconnect interval.
    Retryable,
    /// Too many connections for this app (1000040350): do not retry blindly.
    TooManyConnections,
    /// Credentials wrong, app not allowed, mode not enabled: stop.
    Fatal,
}

/// Classifies the `code` of a `/callback/ws/endpoint` response.
pub fn classify_discovery(code: i64) -> Option<Failure> {
    match code {
        0 => None,
        1 | 1000040343 => Some(Failure::Retryable),
        1000040350 => Some(Failure::TooManyConnections),
        _ => Some(Failure::Fatal),
    }
}

/// Classifies a failed WebSocket handshake from its `handshake-status` and
/// `handshake-autherrcode` headers (falling back to the HTTP status).
pub fn classify_handshake(
    http_status: u16,
    status: Option<i64>,
    autherrcode: Option<i64>,
) -> Failure {
    match status.filter(|s| *s != 0).unwrap_or(i64::from(http_status)) {
        403 => Failure::Fatal,
        514 if autherrcode == Some(1000040350) => Failure::TooManyConnections,
        _ => Failure::Retryable,
    }
}

/// What the runner must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this frame on the socket.
    Send(Frame),
    /// A complete event or card callback: hand `payload` to the consumer and
    /// later answer with [`AckTemplate::ack`].
    Deliver {
        /// The frame that completed the message, without its payload
        /// (echoed in the ack).
        ack: AckTemplate,
        /// The whole event JSON.
        payload: Vec<u8>,
        /// `true` for `type = card` frames.
        card: bool,
    },
    /// The server sent new timers.
    ConfigUpdated(ClientConfig),
    /// Nothing arrived for two ping intervals: drop the socket and reconnect.
    Reconnect,
    /// A frame was refused (malformed, bad fragments); nothing else to do.
    Discard(String),
}

/// One connected socket's protocol state.
pub struct Session {
    service: i32,
    config: ClientConfig,
    next_ping: Instant,
    last_frame: Instant,
    fragments: Reassembler,
    ping_override: Option<Duration>,
}

impl Session {
    /// A session just connected at `now`; the first ping is due at once.
    pub fn new(service: i32, config: ClientConfig, now: Instant) -> Session {
        Session {
            service,
            config,
            next_ping: now,
            last_frame: now,
            fragments: Reassembler::new(Duration::from_secs(10), 16 * 1024 * 1024),
            ping_override: None,
        }
    }

    /// Pins the ping interval (and so the watchdog, two intervals) to
    /// `interval` whatever the server's `PingInterval` says; `None` follows
    /// the server again. For operators and tests.
    pub fn set_ping_interval_override(&mut self, interval: Option<Duration>) {
        self.ping_override = interval.filter(|i| !i.is_zero());
    }

    /// Current timers.
    pub fn config(&self) -> ClientConfig {
        self.config
    }

    /// When [`Session::tick`] should next be called.
    pub fn next_deadline(&self) -> Instant {
        self.next_ping.min(self.watchdog_deadline())
    }

    /// The ping interval in force (the override, else the server's).
    pub fn ping_interval(&self) -> Duration {
        self.ping_override
            .unwrap_or(Duration::from_secs(self.config.ping_interval.max(1)))
    }

    fn watchdog_deadline(&self) -> Instant {
        self.last_frame + self.ping_interval() * 2
    }

    /// Advances the clock: pings when due, the watchdog when silent.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        if now >= self.watchdog_deadline() {
            return vec![Action::Reconnect];
        }
        let mut out = Vec::new();
        if now >= self.next_ping {
            out.push(Action::Send(Frame::ping(self.service)));
            self.next_ping = now + self.ping_interval();
        }
        self.fragments.expire(now);
        out
    }

    /// Handles one inbound WebSocket binary message.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        self.last_frame = now;
        let frame = match FrameRef::decode(bytes) {
            Ok(f) => f,
            Err(e) => return vec![Action::Discard(e.to_string())],
        };
        match frame.frame_type() {
            FrameType::Pong => self.on_pong(&frame, now),
            kind @ (FrameType::Event | FrameType::Card) if frame.method == METHOD_DATA => {
                self.on_data(&frame, kind == FrameType::Card, now)
            }
            _ => Vec::new(),
        }
    }

    fn on_pong(&mut self, frame: &FrameRef<'_>, now: Instant) -> Vec<Action> {
        let Some(payload) = frame.payload.filter(|p| !p.is_empty()) else {
            return Vec::new();
        };
        match serde_json::from_slice::<ClientConfig>(payload) {
            Ok(cfg) => {
                self.config = cfg;
                self.next_ping = now + self.ping_interval();
                vec![Action::ConfigUpdated(cfg)]
            }
            Err(e) => vec![Action::Discard(format!("pong config: {e}"))],
        }
    }

    fn on_data(&mut self, frame: &FrameRef<'_>, card: bool, now: Instant) -> Vec<Action> {
        let (mut message_id, mut sum, mut seq) = ("", None, None);
        for (key, value) in frame.headers() {
            match key {
                "message_id" if message_id.is_empty() => message_id = value,
                "sum" if sum.is_none() => sum = Some(value),
                "seq" if seq.is_none() => seq = Some(value),
                _ => {}
            }
        }
        let payload = frame.payload.unwrap_or_default().to_vec();
        match self.fragments.push(message_id, sum, seq, payload, now) {
            Ok(Some(whole)) => vec![Action::Deliver {
                ack: frame.ack_template(),
                payload: whole,
                card,
            }],
            Ok(None) => Vec::new(),
            Err(e) => vec![Action::Discard(e.to_string())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Header, METHOD_CONTROL};

    fn data(message_id: &str, sum: &str, seq: &str, payload: &[u8]) -> Vec<u8> {
        Frame {
            seq_id: 1,
            method: METHOD_DATA,
            headers: vec![
                Header::new("type", "event"),
                Header::new("message_id", message_id),
                Header::new("sum", sum),
                Header::new("seq", seq),
            ],
            payload: Some(payload.to_vec()),
            ..Frame::default()
        }
        .to_bytes()
    }

    #[test]
    fn pings_now_then_every_interval() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        assert_eq!(s.tick(t0), vec![Action::Send(Frame::ping(7))]);
        assert!(s.tick(t0 + Duration::from_secs(119)).is_empty());
        assert_eq!(
            s.tick(t0 + Duration::from_secs(120)),
            vec![Action::Send(Frame::ping(7))]
        );
    }

    #[test]
    fn pong_config_changes_the_schedule() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        s.tick(t0);
        let cfg =
            br#"{"PingInterval":10,"ReconnectCount":3,"ReconnectInterval":5,"ReconnectNonce":1}"#;
        let pong = Frame::pong(7, Some(cfg.to_vec())).to_bytes();
        let acts = s.on_bytes(&pong, t0);
        assert!(matches!(
            acts[0],
            Action::ConfigUpdated(ClientConfig {
                ping_interval: 10,
                reconnect_count: 3,
                ..
            })
        ));
        assert_eq!(
            s.tick(t0 + Duration::from_secs(10)),
            vec![Action::Send(Frame::ping(7))]
        );
    }

    #[test]
    fn ping_override_survives_pong_config() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        s.set_ping_interval_override(Some(Duration::from_millis(200)));
        s.tick(t0);
        let cfg = br#"{"PingInterval":10}"#;
        s.on_bytes(&Frame::pong(7, Some(cfg.to_vec())).to_bytes(), t0);
        assert_eq!(s.ping_interval(), Duration::from_millis(200));
        assert_eq!(
            s.tick(t0 + Duration::from_millis(200)),
            vec![Action::Send(Frame::ping(7))]
        );
        assert_eq!(
            s.tick(t0 + Duration::from_millis(400)),
            vec![Action::Reconnect]
        );
    }

    #[test]
    fn watchdog_fires_after_two_silent_intervals() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        s.on_bytes(
            &Frame::pong(7, None).to_bytes(),
            t0 + Duration::from_secs(100),
        );
        assert_ne!(
            s.tick(t0 + Duration::from_secs(339)),
            vec![Action::Reconnect]
        );
        assert_eq!(
            s.tick(t0 + Duration::from_secs(340)),
            vec![Action::Reconnect]
        );
    }

    #[test]
    fn fragments_deliver_once_complete_and_ack_echoes() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        assert!(s.on_bytes(&data("m", "2", "1", b"world"), t0).is_empty());
        let acts = s.on_bytes(&data("m", "2", "0", b"hello "), t0);
        let Action::Deliver { ack, payload, card } = &acts[0] else {
            panic!("{acts:?}")
        };
        assert_eq!(payload, b"hello world");
        assert!(!card);
        let ack = Frame::decode_bytes(&ack.ack(200, 3, None)).unwrap();
        assert_eq!(ack.header("biz_rt"), Some("3"));
        assert_eq!(ack.header("seq"), Some("0"));
        assert_eq!(ack.payload.as_deref(), Some(&b"{\"code\":200}"[..]));
        assert_eq!(ack.seq_id, 1);
    }

    #[test]
    fn card_frames_are_delivered_not_dropped() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        let mut f = Frame::decode_bytes(&data("c", "1", "0", b"{}")).unwrap();
        f.set_header("type", "card");
        let acts = s.on_bytes(&f.to_bytes(), t0);
        assert!(matches!(acts[0], Action::Deliver { card: true, .. }));
    }

    #[test]
    fn malformed_frames_are_discarded_with_a_reason() {
        let t0 = Instant::now();
        let mut s = Session::new(7, ClientConfig::default(), t0);
        assert!(matches!(s.on_bytes(&[0xff], t0)[0], Action::Discard(_)));
        assert!(matches!(
            s.on_bytes(&data("m", "2", "5", b"x"), t0)[0],
            Action::Discard(_)
        ));
        let server_ping = Frame {
            method: METHOD_CONTROL,
            ..Frame::ping(7)
        }
        .to_bytes();
        assert!(s.on_bytes(&server_ping, t0).is_empty());
    }

    #[test]
    fn failure_classification() {
        assert_eq!(classify_discovery(0), None);
        assert_eq!(classify_discovery(1), Some(Failure::Retryable));
        assert_eq!(classify_discovery(1000040343), Some(Failure::Retryable));
        assert_eq!(
            classify_discovery(1000040350),
            Some(Failure::TooManyConnections)
        );
        assert_eq!(classify_discovery(10003), Some(Failure::Fatal));
        assert_eq!(classify_handshake(403, None, None), Failure::Fatal);
        assert_eq!(
            classify_handshake(400, Some(514), Some(1000040350)),
            Failure::TooManyConnections
        );
        assert_eq!(
            classify_handshake(400, Some(514), Some(1)),
            Failure::Retryable
        );
        assert_eq!(classify_handshake(502, Some(0), None), Failure::Retryable);
    }
}
