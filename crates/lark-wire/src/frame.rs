//! The pbbp2 `Frame`/`Header` codec used by the long connection.
//!
//! The schema is proto2: fields 1–4 of `Frame` and both fields of `Header`
//! are `required` and are therefore always encoded, even when zero (the
//! official Node and Python decoders reject frames that lack them).

use prost::Message;

/// Frame `method` for control frames (ping / pong).
pub const METHOD_CONTROL: i32 = 0;
/// Frame `method` for data frames (events, card callbacks and their acks).
pub const METHOD_DATA: i32 = 1;

/// Largest frame we agree to decode (one WebSocket message).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// One `key`/`value` header of a frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Header {
    /// Header name, such as `type` or `message_id`.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Header value; always a string on the wire.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// One WebSocket binary message of the long connection.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Frame {
    /// Sequence id chosen by the server; echoed in acks.
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    /// Log id chosen by the server; echoed in acks.
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    /// Service id (from the `service_id` URL parameter in pings).
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    /// [`METHOD_CONTROL`] or [`METHOD_DATA`].
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    /// Ordered headers.
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    /// Payload encoding (unused by the platform today).
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    /// Payload type (unused by the platform today).
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    /// The payload: event JSON (or a fragment of it), ack JSON, or config JSON.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    /// Newer textual log id.
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The message is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// A proto2 `required` field (1–4) is absent; the bits of the missing
    /// field numbers are set (bit N for field N).
    #[error("pbbp2 frame lacks required fields (mask {0:#06b})")]
    MissingRequired(u8),
    /// The bytes are not a valid pbbp2 frame.
    #[error("malformed pbbp2 frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The bytes are not a valid pbbp2 frame (read in place, see
    /// [`crate::frame_ref`]).
    #[error("malformed pbbp2 frame: {0}")]
    Invalid(&'static str),
}

/// Walks the top-level fields and returns a mask of required fields absent.
fn missing_required(mut buf: &[u8]) -> Result<u8, prost::DecodeError> {
    use prost::encoding::{decode_key, skip_field, DecodeContext};
    let mut seen = 0u8;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if (1..=4).contains(&tag) {
            seen |= 1 << tag;
        }
        skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
    }
    Ok(0b11110 & !seen)
}

/// The `type` header of a frame, in the platform's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// Client liveness probe.
    Ping,
    /// Server reply to a ping, possibly carrying a `ClientConfig`.
    Pong,
    /// An event (or new-style callback) delivery.
    Event,
    /// A card callback delivery.
    Card,
    /// Any other value.
    Other,
}

impl FrameType {
    /// The type a `type` header value names.
    pub fn of(value: Option<&str>) -> FrameType {
        match value {
            Some("ping") => FrameType::Ping,
            Some("pong") => FrameType::Pong,
            Some("event") => FrameType::Event,
            Some("card") => FrameType::Card,
            _ => FrameType::Other,
        }
    }
}

impl Frame {
    /// Decodes one frame from a WebSocket binary message.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let frame = Frame::decode(bytes)?;
        let missing = missing_required(bytes)?;
        if missing != 0 {
            return Err(FrameError::MissingRequired(missing));
        }
        Ok(frame)
    }

    /// Encodes the frame to bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// The client ping for the given service id.
    pub fn ping(service: i32) -> Frame {
        Frame {
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new("type", "ping")],
            ..Frame::default()
        }
    }

    /// A server pong, optionally carrying a `ClientConfig` JSON payload.
    pub fn pong(service: i32, config_json: Option<Vec<u8>>) -> Frame {
        Frame {
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new("type", "pong")],
            payload: config_json,
            ..Frame::default()
        }
    }

    /// The value of the first header called `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_str())
    }

    /// Sets header `key`, replacing an existing one.
    pub fn set_header(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|h| h.key == key) {
            Some(h) => h.value = value,
            None => self.headers.push(Header::new(key, value)),
        }
    }

    /// The frame's `type` header.
    pub fn frame_type(&self) -> FrameType {
        FrameType::of(self.header("type"))
    }

    /// The ack for this data frame: the frame echoed with `biz_rt` added and
    /// the payload replaced by `ack_payload` (see [`ack_payload`]).
    pub fn to_ack(&self, biz_rt_ms: u64, ack_payload: Vec<u8>) -> Frame {
        let headers_only = Frame {
            headers: self.headers.clone(),
            payload_encoding: self.payload_encoding.clone(),
            payload_type: self.payload_type.clone(),
            payload: None,
            log_id_new: self.log_id_new.clone(),
            ..*self
        };
        headers_only.into_ack(biz_rt_ms, ack_payload)
    }

    /// [`Frame::to_ack`] for a frame no longer needed: its headers are
    /// reused, not copied.
    pub fn into_ack(mut self, biz_rt_ms: u64, ack_payload: Vec<u8>) -> Frame {
        self.headers.reserve_exact(1);
        self.set_header("biz_rt", biz_rt_ms.to_string());
        self.payload = Some(ack_payload);
        self
    }
}

impl Header {
    /// A header from key and value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Header {
        Header {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The ack payload JSON: `{"code":200}`, or with `data` = base64 of a
/// callback response body (for `card.action.trigger`).
pub fn ack_payload(code: u16, response_body: Option<&[u8]>) -> Vec<u8> {
    use base64::Engine;
    match response_body {
        None => format!("{{\"code\":{code}}}").into_bytes(),
        Some(body) => {
            let data = base64::engine::general_purpose::STANDARD.encode(body);
            format!("{{\"code\":{code},\"data\":\"{data}\"}}").into_bytes()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ping_matches_the_minimal_vector() {
        assert_eq!(
            Frame::ping(7).to_bytes(),
            hex("08001000180720002a0c0a0474797065120470696e67")
        );
    }

    #[test]
    fn go_style_ping_with_empty_optionals_decodes() {
        let bytes = hex("08001000180720002a0c0a0474797065120470696e6732003a004a00");
        let f = Frame::decode_bytes(&bytes).unwrap();
        assert_eq!(f.frame_type(), FrameType::Ping);
        assert_eq!(f.service, 7);
        assert_eq!(f.payload_encoding.as_deref(), Some(""));
        assert_eq!(f.log_id_new.as_deref(), Some(""));
    }

    #[test]
    fn pong_with_config_matches_the_vector() {
        let json = br#"{"PingInterval":120,"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30}"#;
        assert_eq!(json.len(), 84);
        let mut expected = hex("08001000180720002a0c0a04747970651204706f6e674254");
        expected.extend_from_slice(json);
        assert_eq!(Frame::pong(7, Some(json.to_vec())).to_bytes(), expected);
    }

    /// The event frame of the ack test vector (also used by `frame_ref`).
    pub(crate) fn vector_event() -> Frame {
        Frame {
            seq_id: 11,
            log_id: 22,
            service: 7,
            method: METHOD_DATA,
            headers: vec![
                Header::new("type", "event"),
                Header::new("message_id", "m1"),
                Header::new("sum", "1"),
                Header::new("seq", "0"),
                Header::new("trace_id", "t1"),
            ],
            payload: Some(b"{}".to_vec()),
            ..Frame::default()
        }
    }

    #[test]
    fn ack_matches_the_vector() {
        let ack = vector_event().to_ack(5, ack_payload(200, None));
        assert_eq!(ack.to_bytes(), hex("080b1016180720012a0d0a047479706512056576656e742a100a0a6d6573736167655f696412026d312a080a0373756d1201312a080a037365711201302a0e0a0874726163655f6964120274312a0b0a0662697a5f7274120135420c7b22636f6465223a3230307d"));
    }

    #[test]
    fn missing_required_field_is_rejected() {
        // Only a header (field 5): fields 1-4 missing.
        let bytes = hex("2a0c0a0474797065120470696e67");
        assert!(matches!(
            Frame::decode_bytes(&bytes),
            Err(FrameError::MissingRequired(0b11110))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Frame::decode_bytes(&[0xff, 0xff, 0xff]).is_err());
        assert!(Frame::decode_bytes(&[0x42, 0x7f]).is_err());
    }

    #[test]
    fn ack_payload_carries_base64_callback_body() {
        let p = ack_payload(200, Some(br#"{"toast":{"type":"info"}}"#));
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["code"], 200);
        assert_eq!(v["data"], "eyJ0b2FzdCI6eyJ0eXBlIjoiaW5mbyJ9fQ==");
    }
}
