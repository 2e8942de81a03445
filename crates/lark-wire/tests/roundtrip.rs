//! Property tests: every frame round-trips; arbitrary bytes never panic the decoders.

use lark_wire::frame::ack_payload;
use lark_wire::{webhook, Frame, FrameRef, Header};
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
    fn frames_read_in_place_match_and_ack_alike(f in frame(), biz_rt in any::<u64>(), code in 100..600u16) {
        let bytes = f.to_bytes();
        let r = FrameRef::decode(&bytes).unwrap();
        prop_assert_eq!((r.seq_id, r.log_id, r.service, r.method), (f.seq_id, f.log_id, f.service, f.method));
        prop_assert_eq!(r.payload, f.payload.as_deref());
        let headers: Vec<(&str, &str)> = f.headers.iter().map(|h| (h.key.as_str(), h.value.as_str())).collect();
        prop_assert_eq!(r.headers().collect::<Vec<_>>(), headers);
        prop_assert_eq!(r.to_frame(), f.clone());
        // Frame::into_ack replaces an existing biz_rt in place; the template
        // drops it and appends the new one (the platform sends none).
        prop_assume!(f.header("biz_rt").is_none());
        let expected = f.into_ack(biz_rt, ack_payload(code, None)).to_bytes();
        prop_assert_eq!(r.ack_template().ack(code, biz_rt, None), expected);
    }

    #[test]
    fn in_place_reading_accepts_only_valid_frames(
        f in frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // A valid frame with one byte changed and its tail maybe cut off.
        let mut bytes = f.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(1 + cut.index(bytes.len()));
        if let Ok(r) = FrameRef::decode(&bytes) {
            let f = Frame::decode_bytes(&bytes).unwrap();
            prop_assert_eq!((r.seq_id, r.log_id, r.service, r.method), (f.seq_id, f.log_id, f.service, f.method));
            prop_assert_eq!(r.payload, f.payload.as_deref());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Frame::decode_bytes(&bytes);
        let _ = FrameRef::decode(&bytes).map(|r| r.ack_template().ack(200, 1, None));
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
