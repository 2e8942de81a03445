//! `larkgate send`: a message as the bot, to a chat or a person, or as a
//! reply.

use std::path::Path;

use lark_client::{Client, OutgoingMessage, ReceiveIdType};

use super::args::SendArgs;
use super::{client_for, load_config, pick_account, print_warnings, Failure, Outcome};
use crate::diagnose;
use crate::outbound::media::file_type;

pub(super) async fn send(path: Option<&Path>, args: SendArgs) -> Outcome {
    let loaded = load_config(path)?;
    print_warnings(&loaded.warnings);
    let account = pick_account(&loaded.config, args.account.as_deref())?;
    let client = client_for(account)?;
    let msg = message(&client, &args).await?;
    let sent = match (&args.reply_to, &args.to) {
        (Some(message_id), _) => client.reply_message(message_id, &msg, false, None).await,
        (None, Some(to)) => {
            client
                .send_message(ReceiveIdType::infer(to), to, &msg, None)
                .await
        }
        (None, None) => return Err(Failure::usage("give --to ID or --reply-to MESSAGE_ID")),
    }
    .map_err(|e| platform("sending", &e))?;
    println!("{}", sent.message_id);
    Ok(())
}

/// The message to send, uploading an image or file first.
async fn message(client: &Client, args: &SendArgs) -> Result<OutgoingMessage, Failure> {
    if let Some(text) = &args.message {
        return Ok(OutgoingMessage::text(text));
    }
    if let Some(card) = &args.card {
        let raw = read(card).await?;
        let value: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| Failure::usage(format!("--card {}: not JSON: {e}", card.display())))?;
        if !value.is_object() {
            return Err(Failure::usage(format!(
                "--card {}: a card is a JSON object",
                card.display()
            )));
        }
        return Ok(OutgoingMessage::card_json(&value));
    }
    if let Some(image) = &args.image {
        let bytes = read(image).await?;
        let key = client
            .upload_image(bytes, &file_name(image))
            .await
            .map_err(|e| platform("uploading the image", &e))?;
        return Ok(OutgoingMessage::image(&key));
    }
    if let Some(file) = &args.file {
        let bytes = read(file).await?;
        let key = client
            .upload_file(file_type(&file_name(file)), &file_name(file), bytes, None)
            .await
            .map_err(|e| platform("uploading the file", &e))?;
        return Ok(OutgoingMessage::file(&key));
    }
    Err(Failure::usage(
        "give one of --message, --card, --image or --file",
    ))
}

async fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    tokio::fs::read(path)
        .await
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

fn platform(doing: &str, e: &lark_client::Error) -> Failure {
    Failure::runtime(format!("{doing} failed: {}", diagnose::explain(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_types_follow_the_extension() {
        let kind = |p: &str| file_type(&file_name(Path::new(p)));
        assert_eq!(kind("a/report.PDF"), "pdf");
        assert_eq!(kind("deck.pptx"), "ppt");
        assert_eq!(kind("voice.opus"), "opus");
        // Sent as a `file` message: an mp4 goes up as a generic file.
        assert_eq!(kind("clip.mp4"), "stream");
        assert_eq!(kind("noext"), "stream");
    }
}
