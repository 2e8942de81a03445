//! Frames written by the official Python SDK's own protobuf module
//! (`tools/gen_sdk_frames.py`): we decode them to the same fields and encode
//! our own frames to the same bytes.

use lark_wire::frame::{ack_payload, METHOD_CONTROL, METHOD_DATA};
use lark_wire::{Frame, FrameRef, FrameType, Header};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn ping_is_byte_identical() {
    assert_eq!(Frame::ping(7).to_bytes(), fixture("ping"));
}

#[test]
fn pong_with_config_is_byte_identical() {
    let json =
        br#"{"PingInterval":120,"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30}"#;
    let bytes = fixture("pong_config");
    assert_eq!(Frame::pong(7, Some(json.to_vec())).to_bytes(), bytes);
    let f = Frame::decode_bytes(&bytes).unwrap();
    assert_eq!(f.frame_type(), FrameType::Pong);
    assert_eq!(f.method, METHOD_CONTROL);
}

#[test]
fn event_fragment_decodes_and_re_encodes() {
    let bytes = fixture("event_fragment");
    let f = Frame::decode_bytes(&bytes).unwrap();
    assert_eq!(f.seq_id, 123456789012);
    assert_eq!(f.log_id, 987654321);
    assert_eq!(f.service, 33554678);
    assert_eq!(f.method, METHOD_DATA);
    assert_eq!(f.header("message_id"), Some("msg_1"));
    assert_eq!(f.header("sum"), Some("2"));
    assert_eq!(f.header("seq"), Some("1"));
    assert_eq!(f.log_id_new.as_deref(), Some("log-new-1"));
    assert_eq!(
        std::str::from_utf8(f.payload.as_deref().unwrap()).unwrap(),
        r#"{"schema":"2.0","text":"你好"}"#
    );
    assert_eq!(f.to_bytes(), bytes);
}

#[test]
fn ack_is_byte_identical() {
    let event = Frame {
        seq_id: 11,
        log_id: 22,
        service: 7,
        method: METHOD_DATA,
        headers: [
            "type=event",
            "message_id=m1",
            "sum=1",
            "seq=0",
            "trace_id=t1",
        ]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            Header::new(k, v)
        })
        .collect(),
        payload: Some(b"{...event...}".to_vec()),
        ..Frame::default()
    };
    assert_eq!(
        event.to_ack(5, ack_payload(200, None)).to_bytes(),
        fixture("ack")
    );
    // The receive path writes the same ack from the event's bytes.
    let received = event.to_bytes();
    let ack = FrameRef::decode(&received)
        .unwrap()
        .ack_template()
        .ack(200, 5, None);
    assert_eq!(ack, fixture("ack"));
}

#[test]
fn event_fragment_reads_in_place() {
    let bytes = fixture("event_fragment");
    let f = FrameRef::decode(&bytes).unwrap();
    assert_eq!((f.seq_id, f.service), (123456789012, 33554678));
    assert_eq!(
        f.header("trace_id"),
        Frame::decode_bytes(&bytes).unwrap().header("trace_id")
    );
    assert_eq!(f.to_frame().to_bytes(), bytes);
}
