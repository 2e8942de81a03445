//! Micro-benchmarks of the wire formats: the pbbp2 frame codec (decode an
//! event frame, encode its ack; and the receive path's in-place reading:
//! read the frame, take its ack template, write the ack), event envelope parsing (a ~1 KiB
//! `im.message.receive_v1`, and the head of it the gateway reads of every
//! message, by the scanner and by serde), and webhook decryption with
//! signature check.
//!
//! `cargo bench -p lark-wire --bench wire`; figures in docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lark_wire::frame::{ack_payload, Frame, Header, METHOD_DATA};
use lark_wire::{envelope, webhook, Content, Envelope, FrameRef};

/// A message event of realistic size (about 1 KiB of JSON).
const EVENT: &str = r#"{"schema":"2.0","header":{"event_id":"5e3702a84e847582be8db7fb73283c02","token":"v=","create_time":"1608725989000","event_type":"im.message.receive_v1","tenant_key":"736588c9260f175e","app_id":"cli_a1b2c3d4e5f6a7b8"},"event":{"sender":{"sender_id":{"union_id":"on_8ed6aa67826108097d9ee143816345","user_id":"e33ggbyz","open_id":"ou_84aad35d084aa403a838cf73ee18467"},"sender_type":"user","tenant_key":"736588c9260f175e"},"message":{"message_id":"om_5ce6d572455d361153b7cb51da133945","root_id":"om_5ce6d572455d361153b7cb5xxfsdfsdfdsf","parent_id":"om_5ce6d572455d361153b7cb5xxfsdfsdfdsf","create_time":"1609073151345","update_time":"1609073151345","chat_id":"oc_5ce6d572455d361153b7xx51da133945","thread_id":"omt_d4be107c616","chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 hello, can you summarise the discussion above and list the open questions?\"}","mentions":[{"key":"@_user_1","id":{"union_id":"on_8ed6aa67826108097d9ee143816345","user_id":"e33ggbyz","open_id":"ou_84aad35d084aa403a838cf73ee18467"},"name":"Bot","tenant_key":"736588c9260f175e"}],"user_agent":"Mozilla/5.0"}}}"#;

/// The event frame the platform sends for `EVENT`.
fn event_frame() -> Vec<u8> {
    Frame {
        seq_id: 42,
        log_id: 42,
        service: 7,
        method: METHOD_DATA,
        headers: vec![
            Header::new("type", "event"),
            Header::new("message_id", "b0f2c6a4e1d94e3c8f5a7b6c5d4e3f21"),
            Header::new("sum", "1"),
            Header::new("seq", "0"),
            Header::new("trace_id", "1f2e3d4c5b6a79881f2e3d4c5b6a7988"),
            Header::new("timestamp", "1700000000000"),
        ],
        payload: Some(EVENT.as_bytes().to_vec()),
        ..Frame::default()
    }
    .to_bytes()
}

fn frames(c: &mut Criterion) {
    let bytes = event_frame();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_event", |b| {
        b.iter(|| Frame::decode_bytes(black_box(&bytes)).expect("valid frame"))
    });
    let frame = Frame::decode_bytes(&bytes).expect("valid frame");
    g.bench_function("encode_ack", |b| {
        b.iter(|| {
            black_box(&frame)
                .to_ack(0, ack_payload(200, None))
                .to_bytes()
        })
    });
    g.bench_function("read_event_in_place", |b| {
        b.iter(|| {
            let f = FrameRef::decode(black_box(&bytes)).expect("valid frame");
            (
                f.header("message_id"),
                f.header("sum"),
                f.header("seq"),
                f.payload,
            )
        })
    });
    g.bench_function("ack_in_place", |b| {
        b.iter(|| {
            let f = FrameRef::decode(black_box(&bytes)).expect("valid frame");
            f.ack_template().ack(200, 0, None)
        })
    });
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(EVENT.len() as u64));
    g.bench_function("parse_message_receive", |b| {
        b.iter(|| {
            let env = Envelope::parse(black_box(EVENT.as_bytes())).expect("valid envelope");
            let receive = env.message_receive().expect("a message event");
            Content::parse(&receive.message.message_type, &receive.message.content)
        })
    });
    // What the gateway reads of every message before deciding to answer.
    g.bench_function("peek_message", |b| {
        b.iter(|| envelope::peek_message(black_box(EVENT.as_bytes())).expect("a message"))
    });
    g.bench_function("peek_message_with_serde", |b| {
        b.iter(|| {
            envelope::peek_message_with_serde(black_box(EVENT.as_bytes())).expect("a message")
        })
    });
    g.finish();
}

fn webhooks(c: &mut Criterion) {
    let key = "test key";
    let body = format!(
        r#"{{"encrypt":"{}"}}"#,
        webhook::encrypt(key, [7; 16], EVENT.as_bytes())
    );
    let encrypted: serde_json::Value = serde_json::from_str(&body).expect("json");
    let encrypt = encrypted["encrypt"].as_str().expect("string").to_string();
    let (ts, nonce) = ("1700000000", "nonce-1234");
    let sig = webhook::signature(ts, nonce, key, body.as_bytes());
    let mut g = c.benchmark_group("webhook");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("verify_and_decrypt", |b| {
        b.iter(|| {
            webhook::verify_signature(ts, nonce, key, black_box(body.as_bytes()), &sig)
                .expect("signature");
            webhook::decrypt(key, black_box(&encrypt)).expect("decrypts")
        })
    });
    g.finish();
}

criterion_group!(benches, frames, envelopes, webhooks);
criterion_main!(benches);
