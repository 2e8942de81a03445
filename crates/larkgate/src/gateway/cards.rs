//! Card button presses (`card.action.trigger`), answered within the
//! platform's 3 s: the Stop button on a streaming card does what `/stop`
//! does, for anyone the bot would answer in that chat. The answer is a toast (a streaming card cannot be replaced by a
//! callback response).

use std::sync::Arc;

use lark_wire::events::{CardActionResponse, Toast};
use lark_wire::{Envelope, Event};

use super::account::AccountRuntime;
use super::dispatch::set_state;
use crate::policy::{self, Decision, MessageFacts};
use crate::store::InboundState;

fn toast(kind: &str, text: &str) -> Vec<u8> {
    CardActionResponse {
        toast: Some(Toast {
            kind: kind.into(),
            content: text.into(),
        }),
        card: None,
    }
    .to_json()
}

/// Handles a card callback and returns the response body.
pub(crate) async fn handle(rt: &Arc<AccountRuntime>, env: &Envelope) -> Vec<u8> {
    let Event::CardAction(action) = Event::from_envelope(env) else {
        return CardActionResponse::default().to_json();
    };
    let Some(turn) = lark_wire::card::stop_action_turn(&action.action.value) else {
        tracing::debug!(
            "[lark] [{}] card action not for us: {}",
            rt.cfg.name,
            action.action.value
        );
        return CardActionResponse::default().to_json();
    };
    let (p2p, session) = parse_turn(turn);
    let operator = action.operator.open_id.as_str();
    // Only the person in a 1:1 chat sees its card; in groups, anyone the bot
    // would answer there may stop it.
    if !p2p && !may_stop(rt, operator, &action.open_chat_id) {
        tracing::info!(
            "[lark] [{}] {operator} pressed Stop but may not talk to the bot here",
            rt.cfg.name
        );
        return toast("warning", "You cannot stop this reply.");
    }
    let out = rt.conversations().stop(session);
    for job in &out.dropped {
        set_state(rt, job.inbound_id, InboundState::Dropped("stopped".into())).await;
    }
    if out.cancelled {
        toast("info", "Stopping…")
    } else {
        toast("info", "Nothing is running.")
    }
}

/// The Stop button's `turn` for a session: `p:` or `g:` (1:1 or group) and the session key.
pub(crate) fn stop_turn(p2p: bool, session_key: &str) -> String {
    format!("{}:{session_key}", if p2p { "p" } else { "g" })
}

fn parse_turn(turn: &str) -> (bool, &str) {
    match turn.split_once(':') {
        Some(("p", key)) => (true, key),
        Some(("g", key)) => (false, key),
        _ => (false, turn),
    }
}

/// Whether `operator` is someone the policy would answer in that group.
fn may_stop(rt: &AccountRuntime, operator: &str, chat_id: &str) -> bool {
    let facts = MessageFacts {
        p2p: false,
        chat_id,
        sender_open_id: operator,
        sender_is_bot: false,
        mentions_bot: true,
        mention_all: false,
    };
    policy::decide(&rt.cfg, &facts, false) == Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_round_trip() {
        assert_eq!(parse_turn(&stop_turn(true, "oc_1")), (true, "oc_1"));
        assert_eq!(
            parse_turn(&stop_turn(false, "oc_1/omt_2#ou_3")),
            (false, "oc_1/omt_2#ou_3")
        );
        assert_eq!(parse_turn("oc_legacy"), (false, "oc_legacy"));
    }
}
