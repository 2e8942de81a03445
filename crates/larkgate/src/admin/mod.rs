//! The admin HTTP listener: health, metrics and the operator API.

pub mod http;
pub mod metrics;
