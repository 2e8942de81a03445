//! Pushes events through the emulator to a raw pbbp2 client that acks each
//! one, and prints events/s and the process CPU time per event (client and
//! emulator together, so an upper bound for the emulator).
//!
//! `cargo run --release -p lark-emulator --example throughput -- [EVENTS]`

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use lark_emulator::{process_cpu_secs, Emulator, EmulatorConfig, UserMessage};
use lark_wire::frame::{ack_payload, Frame, METHOD_DATA};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let app = emu.default_app();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let discovery: serde_json::Value = http
        .post(format!("{}/callback/ws/endpoint", emu.base_url()))
        .json(&serde_json::json!({"AppID": app.app_id, "AppSecret": app.app_secret}))
        .send()
        .await?
        .json()
        .await?;
    let url = discovery["data"]["URL"]
        .as_str()
        .ok_or("no URL")?
        .to_string();
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (mut sink, mut stream) = ws.split();
    let client = tokio::spawn(async move {
        let mut acked = 0usize;
        while acked < events {
            let Some(Ok(Message::Binary(bytes))) = stream.next().await else {
                break;
            };
            let Ok(frame) = Frame::decode_bytes(&bytes) else {
                continue;
            };
            if frame.method == METHOD_DATA {
                let ack = frame.to_ack(0, ack_payload(200, None));
                if sink
                    .send(Message::Binary(ack.to_bytes().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                acked += 1;
            }
        }
        acked
    });
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    for i in 0..events {
        emu.send_message(UserMessage {
            text: Some(format!("message {i}")),
            ..Default::default()
        })?;
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let acked = client.await?;
    while emu.stats().apps[&app.app_id].events_acked < acked as u64 {
        tokio::task::yield_now().await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu0;
    let s = &emu.stats().apps[&app.app_id];
    println!(
        "{acked} events in {wall:.2} s: {:.0} events/s, {:.1} µs CPU/event (client included), ack p50 {:.2} ms p99 {:.2} ms",
        acked as f64 / wall,
        cpu * 1e6 / acked as f64,
        s.ack_latency.p50_ms,
        s.ack_latency.p99_ms
    );
    emu.shutdown().await;
    Ok(())
}
