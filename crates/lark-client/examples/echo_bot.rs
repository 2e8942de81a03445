//! Replies to every text message with the same text, over the long connection.
//!
//! ```text
//! cargo run -p lark-client --example echo_bot -- --domain URL --app-id ID --app-secret SECRET [--proxy URL]
//! ```

use std::process::ExitCode;

use lark_client::{Client, Domain, OutgoingMessage, WsClient, WsOptions};
use lark_wire::{Content, Envelope};
use tokio_util::sync::CancellationToken;

struct Args {
    domain: Domain,
    app_id: String,
    app_secret: String,
    proxy: Option<String>,
}

const USAGE: &str =
    "usage: echo_bot --domain feishu|lark|URL --app-id ID --app-secret SECRET [--proxy URL]";

fn parse_args() -> Result<Args, String> {
    let mut domain = Domain::feishu();
    let (mut app_id, mut app_secret, mut proxy) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--domain" => domain = Domain::parse(&value()?)?,
            "--app-id" => app_id = Some(value()?),
            "--app-secret" => app_secret = Some(value()?),
            "--proxy" => proxy = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        domain,
        app_id: app_id.ok_or(USAGE)?,
        app_secret: app_secret.ok_or(USAGE)?,
        proxy,
    })
}

/// The text of a received text message, with its message id.
fn text_message(payload: &[u8]) -> Option<(String, String)> {
    let receive = Envelope::parse(payload).ok()?.message_receive()?;
    match Content::parse(&receive.message.message_type, &receive.message.content) {
        Content::Text(text) => Some((receive.message.message_id, text)),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = match Client::builder(&args.app_id, &args.app_secret)
        .domain(args.domain)
        .proxy(args.proxy)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let (mut deliveries, health) = WsClient::new(client.clone(), WsOptions::default()).start(stop);
    eprintln!("connecting as {}", client.app_id());
    while let Some(delivery) = deliveries.recv().await {
        let message = text_message(&delivery.payload);
        // Ack at once; the reply's uuid (derived from the message id) keeps a
        // redelivered event from producing a second echo within an hour.
        delivery.ack.ack(None);
        let Some((message_id, text)) = message else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            let uuid = format!("echo-{message_id}");
            match client
                .reply_message(
                    &message_id,
                    &OutgoingMessage::text(&text),
                    false,
                    Some(&uuid),
                )
                .await
            {
                Ok(sent) => eprintln!("echoed {message_id} as {}", sent.message_id),
                Err(e) => eprintln!("reply to {message_id} failed: {e}"),
            }
        });
    }
    let h = health.snapshot();
    eprintln!(
        "stopped: {:?} {}",
        h.state,
        h.last_error.unwrap_or_default()
    );
    match h.state {
        lark_client::WsState::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}
