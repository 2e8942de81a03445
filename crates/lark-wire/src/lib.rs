#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod card;
pub mod custom_bot;
pub mod envelope;
pub mod events;
pub mod fragments;
pub mod frame;
pub mod frame_ref;
pub mod session;
pub mod webhook;

pub use envelope::{Content, Envelope, EventHeader, MessageReceive};
pub use events::Event;
pub use frame::{Frame, FrameError, FrameType, Header};
pub use frame_ref::{AckTemplate, FrameRef};

/// Lowercase hex of bytes.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
