//! The benchmark's bare client: connects over the long connection and acks
//! every event with a handler that does nothing (the counterpart of the
//! official SDKs' WSClient with an empty handler). See docs/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p lark-client --example bench_ingest -- --base-url URL --app-id ID --app-secret SECRET
//! ```

use std::process::ExitCode;

use lark_client::{Client, Domain, WsClient, WsOptions};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: bench_ingest --base-url URL --app-id ID --app-secret SECRET";

/// `(base URL, app id, app secret)` from `--flag value` pairs.
fn parse_args() -> Result<(String, String, String), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| format!("{flag} is required\n{USAGE}"))
    };
    Ok((
        value("--base-url")?,
        value("--app-id")?,
        value("--app-secret")?,
    ))
}

fn main() -> ExitCode {
    let (base_url, app_id, app_secret) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client = match Domain::parse(&base_url).and_then(|d| {
            Client::builder(&app_id, &app_secret)
                .domain(d)
                .build()
                .map_err(|e| e.to_string())
        }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        // Runs until the harness kills it: no graceful stop is needed.
        let (mut deliveries, _health) =
            WsClient::new(client, WsOptions::default()).start(CancellationToken::new());
        while let Some(delivery) = deliveries.recv().await {
            delivery.ack.ack(None);
        }
        ExitCode::SUCCESS
    })
}
