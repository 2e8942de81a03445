//! The client's one error type, classified for retry decisions.

use std::time::Duration;

/// How the caller should react to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: retry with backoff.
    Retryable,
    /// Rate limited: wait this long, then retry.
    RateLimited(Duration),
    /// Credentials or token: fix configuration (or refresh the token once).
    Auth,
    /// Anything else: do not retry.
    Fatal,
}

/// An error from the platform or the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The platform answered with a non-zero `code`.
    #[error("feishu API error {code}: {msg}")]
    Api {
        /// The platform's error code.
        code: i64,
        /// Its message.
        msg: String,
        /// The HTTP status.
        status: u16,
    },
    /// Network failure, timeout, or an unreadable body.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
}

/// Token error codes after which a fresh token is fetched and the call retried once.
pub const TOKEN_INVALID_CODES: [i64; 3] = [99991663, 99991664, 99991671];

impl Error {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            // Timeouts, refused connections and cut-off bodies are all transient.
            Error::Http(_) => ErrorClass::Retryable,
            Error::Api { code, status, .. } => classify(*code, *status),
        }
    }
}

/// Classifies a platform code and HTTP status.
pub fn classify(code: i64, status: u16) -> ErrorClass {
    match code {
        99991400 | 230020 => ErrorClass::RateLimited(Duration::from_secs(1)),
        _ if status == 429 => ErrorClass::RateLimited(Duration::from_secs(1)),
        10003 | 10014 | 99991661..=99991672 => ErrorClass::Auth,
        1 | 99991401 => ErrorClass::Retryable,
        _ if status >= 500 => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(matches!(
            classify(99991400, 200),
            ErrorClass::RateLimited(_)
        ));
        assert!(matches!(classify(0, 429), ErrorClass::RateLimited(_)));
        assert_eq!(classify(99991663, 200), ErrorClass::Auth);
        assert_eq!(classify(10014, 400), ErrorClass::Auth);
        assert_eq!(classify(5, 503), ErrorClass::Retryable);
        assert_eq!(classify(230001, 400), ErrorClass::Fatal);
    }
}
