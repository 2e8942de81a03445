//! Builds the long connection's ping, pong and ack frames, prints their bytes,
//! and decodes them back: the smallest use of `lark-wire`.

use lark_wire::frame::{ack_payload, METHOD_DATA};
use lark_wire::{Frame, Header};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let event = Frame {
        seq_id: 11,
        log_id: 22,
        service: 7,
        method: METHOD_DATA,
        headers: vec![
            Header::new("type", "event"),
            Header::new("message_id", "m1"),
        ],
        payload: Some(br#"{"schema":"2.0"}"#.to_vec()),
        ..Frame::default()
    };
    let frames = [
        ("ping", Frame::ping(7)),
        (
            "pong",
            Frame::pong(7, Some(br#"{"PingInterval":120}"#.to_vec())),
        ),
        ("ack", event.to_ack(3, ack_payload(200, None))),
    ];
    for (name, frame) in frames {
        let bytes = frame.to_bytes();
        let back = Frame::decode_bytes(&bytes).expect("our own frame decodes");
        println!("{name}: {} ({:?})", hex(&bytes), back.frame_type());
    }
}
