//! The client's one error type, classified for retry decisions.
//!
//! Codes follow limits-and-errors.md §4: rate limits, token errors (refresh
//! and retry once), permission/configuration errors the operator must fix,
//! targets that are gone, transient server errors, and everything else.

use std::time::Duration;

/// How the caller should react to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: retry with backoff.
    Retryable,
    /// Rate limited: wait this long, then retry.
    RateLimited(Duration),
    /// Credentials or token: fix the app id/secret (the client already
    /// refreshed the token and retried once).
    Auth,
    /// Permission or configuration the operator must fix in the console:
    /// a missing scope, the app disabled, the bot not in the chat, an IP
    /// allow-list, the monthly quota. Retrying does not help.
    Config,
    /// Anything else (bad request, content rejected, target gone): do not retry.
    Fatal,
}

/// An error from the platform, the network or the client itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The platform answered with a non-zero `code`.
    #[error("feishu API error {code}: {msg}{}", log_suffix(.log_id))]
    Api {
        /// The platform's error code.
        code: i64,
        /// Its message.
        msg: String,
        /// The HTTP status.
        status: u16,
        /// `X-Tt-Logid` (or `error.log_id`), for support requests.
        log_id: Option<String>,
        /// The wait the platform asked for (`x-ogw-ratelimit-reset`).
        retry_after: Option<Duration>,
    },
    /// A non-success HTTP status whose body carried no platform code.
    #[error("HTTP {status} without a platform code{}", log_suffix(.log_id))]
    Status {
        /// The HTTP status.
        status: u16,
        /// `X-Tt-Logid`, when present.
        log_id: Option<String>,
        /// The wait the platform asked for (`x-ogw-ratelimit-reset`).
        retry_after: Option<Duration>,
    },
    /// The local rate limiter would have to wait longer than allowed: the
    /// platform said this endpoint is blocked until later.
    #[error("rate limited on {bucket}: blocked for another {wait:?}")]
    RateLimited {
        /// The endpoint bucket (route template, optionally with its target).
        bucket: String,
        /// How long the bucket stays blocked.
        wait: Duration,
    },
    /// Network failure, timeout, or a cut-off body.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A download was larger than the cap; nothing partial was kept.
    #[error("resource larger than the {limit}-byte cap")]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// A success response whose body did not have the expected shape.
    #[error("unexpected response from {endpoint}: {detail}")]
    Decode {
        /// The route template.
        endpoint: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A local file could not be written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Invalid client configuration (proxy URL, domain, arguments).
    #[error("configuration: {0}")]
    Config(String),
    /// The long connection failed (discovery or handshake).
    #[error("long connection: {msg}")]
    Ws {
        /// The platform code (discovery `code`, handshake status or
        /// `handshake-autherrcode`), when known.
        code: Option<i64>,
        /// What happened.
        msg: String,
        /// Retryable, too many connections, or fatal.
        failure: lark_wire::session::Failure,
    },
}

fn log_suffix(log_id: &Option<String>) -> String {
    log_id
        .as_deref()
        .map(|l| format!(" (log_id {l})"))
        .unwrap_or_default()
}

/// Token error codes after which a fresh token is fetched and the call retried once.
pub const TOKEN_INVALID_CODES: [i64; 4] = [99991663, 99991664, 99991665, 99991671];

/// Rate-limit codes (HTTP 429 is rate-limited too).
pub const RATE_LIMIT_CODES: [i64; 9] = [
    99991400, 230020, 11232, 11233, 11247, 232019, 1000004, 1000005, 190005,
];

/// Codes meaning the message, chat, user or card no longer exists.
pub const TARGET_GONE_CODES: [i64; 11] = [
    230011, 230110, 231003, 232009, 200740, 200750, 230029, 11236, 10029, 11213, 11231,
];

/// The wait assumed when a rate limit carries no `x-ogw-ratelimit-reset`.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

impl Error {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api {
                code,
                status,
                retry_after,
                ..
            } => with_wait(classify(*code, *status), *retry_after),
            Error::Status {
                status,
                retry_after,
                ..
            } => with_wait(classify(0, *status), *retry_after),
            Error::RateLimited { wait, .. } => ErrorClass::RateLimited(*wait),
            // A request that could not even be built will not build next time.
            Error::Http(e) if e.is_builder() => ErrorClass::Fatal,
            // Timeouts, refused connections and cut-off bodies are transient.
            Error::Http(_) => ErrorClass::Retryable,
            Error::Ws { failure, .. } => match failure {
                lark_wire::session::Failure::Retryable => ErrorClass::Retryable,
                lark_wire::session::Failure::TooManyConnections => ErrorClass::Config,
                lark_wire::session::Failure::Fatal => ErrorClass::Auth,
            },
            Error::Config(_) => ErrorClass::Config,
            Error::TooLarge { .. } | Error::Decode { .. } | Error::Io(_) => ErrorClass::Fatal,
        }
    }

    /// The platform code, when the platform gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::Ws { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } => Some(*status),
            Error::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// `X-Tt-Logid` of the failed request, when present.
    pub fn log_id(&self) -> Option<&str> {
        match self {
            Error::Api { log_id, .. } | Error::Status { log_id, .. } => log_id.as_deref(),
            _ => None,
        }
    }

    /// The wait the platform asked for (`x-ogw-ratelimit-reset`), or how long
    /// the local limiter is still blocked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } | Error::Status { retry_after, .. } => *retry_after,
            Error::RateLimited { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// Whether the target (message, chat, user, card entity) is gone:
    /// stop updating it and fall back to a fresh message.
    pub fn is_target_gone(&self) -> bool {
        self.code().is_some_and(|c| TARGET_GONE_CODES.contains(&c))
    }

    /// Whether this is a token error that a fresh token may cure.
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, Error::Api { code, .. } if TOKEN_INVALID_CODES.contains(code))
    }
}

fn with_wait(class: ErrorClass, retry_after: Option<Duration>) -> ErrorClass {
    match (class, retry_after) {
        (ErrorClass::RateLimited(_), Some(wait)) => ErrorClass::RateLimited(wait),
        (class, _) => class,
    }
}

/// Classifies a platform code and HTTP status (code 0 = status alone).
pub fn classify(code: i64, status: u16) -> ErrorClass {
    match code {
        _ if RATE_LIMIT_CODES.contains(&code) => ErrorClass::RateLimited(DEFAULT_RATE_LIMIT_WAIT),
        _ if status == 429 => ErrorClass::RateLimited(DEFAULT_RATE_LIMIT_WAIT),
        // Tokens and credentials.
        10003
        | 10014
        | 10015
        | 99991661
        | 99991663..=99991665
        | 99991668
        | 99991671
        | 99991677
        | 99991679 => ErrorClass::Auth,
        // Permission / configuration: the operator must act.
        99991672 | 99991673 | 99991676 | 99991662 | 99991401 | 99991403 | 11207 | 230002
        | 11201 | 232011 | 230006 | 11205 | 11240 | 230013 | 230027 | 230035 | 230053 | 300311
        | 234007 => ErrorClass::Config,
        // Transient server errors ("reduce frequency, retry later" and friends).
        1 | 1500 | 1503 | 1642 | 1663 | 1665 | 1668 | 2200 | 5000 | 10012 | 10013 | 10101
        | 10105 | 10500 | 1000003 | 190003 | 230049 | 232096 => ErrorClass::Retryable,
        _ if status >= 500 => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, status: u16) -> Error {
        Error::Api {
            code,
            msg: String::new(),
            status,
            log_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn classes_follow_the_table() {
        for code in RATE_LIMIT_CODES {
            assert!(matches!(classify(code, 400), ErrorClass::RateLimited(_)));
        }
        assert!(matches!(classify(0, 429), ErrorClass::RateLimited(_)));
        for code in TOKEN_INVALID_CODES {
            assert_eq!(classify(code, 200), ErrorClass::Auth);
        }
        assert_eq!(classify(10014, 400), ErrorClass::Auth);
        assert_eq!(classify(99991672, 400), ErrorClass::Config);
        assert_eq!(classify(99991401, 400), ErrorClass::Config);
        assert_eq!(classify(230002, 400), ErrorClass::Config);
        assert_eq!(classify(1500, 200), ErrorClass::Retryable);
        assert_eq!(classify(5, 503), ErrorClass::Retryable);
        assert_eq!(classify(230001, 400), ErrorClass::Fatal);
        assert_eq!(classify(230025, 400), ErrorClass::Fatal);
        assert_eq!(classify(230011, 400), ErrorClass::Fatal);
    }

    #[test]
    fn target_gone_is_fatal_but_distinguishable() {
        for code in [230011, 230110, 231003, 232009, 200740, 200750] {
            let e = api(code, 400);
            assert!(e.is_target_gone(), "{code}");
            assert_eq!(e.class(), ErrorClass::Fatal);
        }
        assert!(!api(230001, 400).is_target_gone());
    }

    #[test]
    fn platform_wait_overrides_the_default() {
        let e = Error::Api {
            code: 99991400,
            msg: "limit".into(),
            status: 429,
            log_id: Some("lg".into()),
            retry_after: Some(Duration::from_secs(52)),
        };
        assert_eq!(e.class(), ErrorClass::RateLimited(Duration::from_secs(52)));
        assert_eq!(e.code(), Some(99991400));
        assert_eq!(e.log_id(), Some("lg"));
        assert!(e.to_string().contains("log_id lg"));
        let s = Error::Status {
            status: 502,
            log_id: None,
            retry_after: None,
        };
        assert_eq!(s.class(), ErrorClass::Retryable);
        assert_eq!(s.code(), None);
    }
}
