#![no_main]
//! Arbitrary strings as the `encrypt` field of a webhook body.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = lark_wire::webhook::decrypt("fuzz key", s);
    }
});
