#![no_main]
//! Arbitrary bytes as a pbbp2 frame; a decoded frame must re-encode and decode to itself.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = lark_wire::Frame::decode_bytes(data) {
        let again = lark_wire::Frame::decode_bytes(&frame.to_bytes()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
