//! The legacy stream, used when CardKit is refused: an interactive message
//! whose whole card is replaced with `PATCH /im/v1/messages/:id`.

use lark_client::{Error, OutgoingMessage};
use lark_wire::card::{self, CardOptions};

use super::send::Replier;
use super::Outbound;

/// Time between two PATCHes of one message (the platform allows 5 per
/// second per message; every PATCH re-renders the whole card).
pub const PATCH_INTERVAL_MS: u64 = 1_500;
/// The shortest gap before the final PATCH.
pub(crate) const PATCH_MIN_GAP_MS: u64 = 250;

/// An interactive message being patched.
#[derive(Debug)]
pub(crate) struct PatchCard {
    /// The message.
    pub message_id: String,
}

/// Sends the first card (with the Stop button) as part `index`.
pub(crate) async fn open(
    r: &mut Replier<'_>,
    index: usize,
    display: &str,
    opts: &CardOptions,
) -> Result<PatchCard, Error> {
    let body = card::legacy_patch_card(display, true, opts);
    let message_id = r
        .send_indexed(index, &OutgoingMessage::card_json(&body), true)
        .await?;
    Ok(PatchCard { message_id })
}

/// Replaces the card with the text so far.
pub(crate) async fn push(
    out: &Outbound,
    p: &PatchCard,
    display: &str,
    opts: &CardOptions,
) -> Result<(), Error> {
    let body = card::legacy_patch_card(display, true, opts);
    out.client
        .patch_card(&p.message_id, &body.to_string())
        .await
}

/// The final card: full text, no Stop button, the summary.
pub(crate) async fn close(
    out: &Outbound,
    p: &PatchCard,
    text: &str,
    summary: &str,
) -> Result<(), Error> {
    let opts = CardOptions {
        summary: Some(summary.to_string()),
        ..CardOptions::default()
    };
    let body = card::legacy_patch_card(text, false, &opts);
    out.client
        .patch_card(&p.message_id, &body.to_string())
        .await
}
