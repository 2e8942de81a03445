//! Property tests: every frame round-trips; arbitrary bytes never panic the decoders.

use lark_wire::{webhook, Frame, Header};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    ("[a-z_]{0,12}", ".{0,16}").prop_map(|(k, v)| Header::new(k, v))
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<i32>(),
        0..2i32,
        prop::collection::vec(header(), 0..6),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
        prop::option::of(".{0,8}"),
    )
        .prop_map(
            |(seq_id, log_id, service, method, headers, payload, log_id_new)| Frame {
                seq_id,
                log_id,
                service,
                method,
                headers,
                payload,
                log_id_new,
                ..Frame::default()
            },
        )
}

proptest! {
    #[test]
    fn frames_round_trip(f in frame()) {
        let back = Frame::decode_bytes(&f.to_bytes()).unwrap();
        prop_assert_eq!(back, f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Frame::decode_bytes(&bytes);
        let _ = lark_wire::Envelope::parse(&bytes);
    }

    #[test]
    fn webhook_encryption_round_trips(key in ".{0,32}", iv in any::<[u8; 16]>(), body in ".{0,300}") {
        let enc = webhook::encrypt(&key, iv, body.as_bytes());
        prop_assert_eq!(webhook::decrypt(&key, &enc).unwrap(), body);
    }

    #[test]
    fn arbitrary_ciphertext_never_panics(s in "[A-Za-z0-9+/=]{0,200}") {
        let _ = webhook::decrypt("k", &s);
    }
}
