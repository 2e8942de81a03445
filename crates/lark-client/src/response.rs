//! Reading the platform's answers: the `{"code","msg","data"}` envelope,
//! `X-Tt-Logid`, and the `x-ogw-ratelimit-*` headers.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::Error;

/// What the headers and status of a response say, independent of its body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub status: u16,
    pub log_id: Option<String>,
    /// `x-ogw-ratelimit-reset`, seconds until the window resets.
    pub reset: Option<Duration>,
    /// `x-ogw-ratelimit-remaining: 0` was sent: the window is used up.
    pub exhausted: bool,
}

impl Meta {
    pub fn new(status: u16, headers: &HeaderMap) -> Meta {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        Meta {
            status,
            log_id: text("x-tt-logid")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            reset: text("x-ogw-ratelimit-reset").and_then(parse_seconds),
            exhausted: text("x-ogw-ratelimit-remaining").and_then(|s| s.parse::<f64>().ok())
                == Some(0.0),
        }
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Seconds as an integer or a float (third-party servers send either);
/// negative, NaN and absurd values are ignored.
fn parse_seconds(s: &str) -> Option<Duration> {
    let secs: f64 = s.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Checks a JSON envelope: success is `code == 0` (or no `code` at all on a
/// 2xx answer); anything else becomes a typed error. Returns the whole body.
pub(crate) fn check_envelope(
    meta: &Meta,
    body: &[u8],
    endpoint: &'static str,
) -> Result<Value, Error> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_i64);
    match (code, parsed) {
        (Some(0), Some(v)) if meta.is_success() => Ok(v),
        (None, Some(v)) if meta.is_success() && v.is_object() => Ok(v),
        (Some(code), Some(v)) if code != 0 => Err(api_error(meta, code, &v)),
        (_, _) if !meta.is_success() => Err(Error::Status {
            status: meta.status,
            log_id: meta.log_id.clone(),
            retry_after: meta.reset,
        }),
        _ => Err(Error::Decode {
            endpoint,
            detail: format!("not a JSON object: {}", snippet(body)),
        }),
    }
}

fn api_error(meta: &Meta, code: i64, v: &Value) -> Error {
    let msg = v
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let log_id = meta.log_id.clone().or_else(|| {
        v.pointer("/error/log_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Error::Api {
        code,
        msg,
        status: meta.status,
        log_id,
        retry_after: meta.reset,
    }
}

/// The first 200 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// Deserializes `body[pointer]` into `T`, as a [`Error::Decode`] on failure.
pub(crate) fn field<T: serde::de::DeserializeOwned>(
    body: &Value,
    pointer: &str,
    endpoint: &'static str,
) -> Result<T, Error> {
    let v = body.pointer(pointer).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(|e| Error::Decode {
        endpoint,
        detail: format!("{pointer}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn meta(status: u16, pairs: &[(&'static str, &'static str)]) -> Meta {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Meta::new(status, &h)
    }

    #[test]
    fn headers_are_read() {
        let m = meta(
            429,
            &[
                ("X-Tt-Logid", "202401"),
                ("x-ogw-ratelimit-reset", "2.5"),
                ("x-ogw-ratelimit-remaining", "0"),
            ],
        );
        assert_eq!(m.log_id.as_deref(), Some("202401"));
        assert_eq!(m.reset, Some(Duration::from_millis(2500)));
        assert!(m.exhausted);
        assert_eq!(meta(200, &[("x-ogw-ratelimit-reset", "-3")]).reset, None);
    }

    #[test]
    fn envelopes() {
        let ok = meta(200, &[]);
        assert!(check_envelope(&ok, br#"{"code":0,"data":{}}"#, "e").is_ok());
        let e = check_envelope(&ok, br#"{"code":230001,"msg":"bad"}"#, "e").unwrap_err();
        assert_eq!(e.code(), Some(230001));
        let e = check_envelope(
            &meta(400, &[]),
            br#"{"code":300317,"msg":"seq","error":{"log_id":"L1"}}"#,
            "e",
        )
        .unwrap_err();
        assert_eq!(e.log_id(), Some("L1"));
        let e = check_envelope(&meta(502, &[]), b"<html>bad gateway</html>", "e").unwrap_err();
        assert!(matches!(e, Error::Status { status: 502, .. }));
        let e = check_envelope(&ok, b"not json", "e").unwrap_err();
        assert!(matches!(e, Error::Decode { .. }));
        // A 4xx with code 0 is still a failure.
        assert!(check_envelope(&meta(400, &[]), br#"{"code":0}"#, "e").is_err());
    }
}
