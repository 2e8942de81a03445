#![no_main]
//! Arbitrary bytes as an event body, and message content of every type.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = lark_wire::Envelope::parse(data) {
        if let Some(m) = env.message_receive() {
            let _ = lark_wire::Content::parse(&m.message.message_type, &m.message.content);
        }
    }
    // The message head's fast scanner answers what serde answers.
    assert_eq!(
        lark_wire::envelope::peek_message(data),
        lark_wire::envelope::peek_message_with_serde(data)
    );
    if let Ok(s) = std::str::from_utf8(data) {
        for kind in ["text", "post", "system", "interactive", "file", "x"] {
            let _ = lark_wire::Content::parse(kind, s);
        }
    }
});
