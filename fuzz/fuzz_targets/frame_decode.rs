#![no_main]
//! Arbitrary bytes as a pbbp2 frame; a decoded frame must re-encode and decode to itself,
//! and the receive path's in-place reading must accept only what `Frame` accepts, read
//! the same fields, and write an ack that decodes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = lark_wire::Frame::decode_bytes(data) {
        let again = lark_wire::Frame::decode_bytes(&frame.to_bytes()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
    if let Ok(view) = lark_wire::FrameRef::decode(data) {
        let frame = lark_wire::Frame::decode_bytes(data).expect("Frame accepts what FrameRef accepts");
        assert_eq!((view.seq_id, view.log_id, view.service, view.method), (frame.seq_id, frame.log_id, frame.service, frame.method));
        assert_eq!(view.payload, frame.payload.as_deref());
        let ack = view.ack_template().ack(200, 1, None);
        let ack = lark_wire::Frame::decode_bytes(&ack).expect("the ack decodes");
        assert!(ack.headers.iter().any(|h| h.key == "biz_rt" && h.value == "1"));
    }
});
