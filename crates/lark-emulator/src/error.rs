//! Errors of the Rust control API and of platform endpoints.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error of the control API (Rust or HTTP).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listener failed.
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// Requested port.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// No such app/chat/message/registration.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is malformed or not allowed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A network step (webhook verification) failed.
    #[error("webhook check failed: {0}")]
    Webhook(String),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// A platform error answer: HTTP status + `{code, msg}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Platform code.
    pub code: i64,
    /// Platform message.
    pub msg: String,
}

impl ApiError {
    /// HTTP 400 with `code` and `msg`.
    pub fn bad(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            msg: msg.into(),
        }
    }

    /// Any status.
    pub fn with_status(status: u16, code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            msg: msg.into(),
        }
    }

    /// 230001 invalid parameter.
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::bad(230001, msg)
    }

    /// 230099 card content failure with a sub-code in the message.
    pub fn card_failed(sub_code: i64, what: &str) -> ApiError {
        ApiError::bad(
            230099,
            format!("Failed to create card content, ext=ErrCode: {sub_code}; ErrMsg: {what}; "),
        )
    }

    /// 9499 body not parseable.
    pub fn bad_body(why: impl std::fmt::Display) -> ApiError {
        ApiError::bad(9499, format!("Bad Request: {why}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({ "code": self.code, "msg": self.msg })),
        )
            .into_response()
    }
}

/// Result of a platform handler.
pub type ApiResult<T = serde_json::Value> = Result<T, ApiError>;

/// `{code:0, msg:"success", data}` or the error.
pub fn reply(result: ApiResult) -> Response {
    match result {
        Ok(data) => {
            axum::Json(json!({ "code": 0, "msg": "success", "data": data })).into_response()
        }
        Err(e) => e.into_response(),
    }
}
