//! What happens to a recorded event: messages are normalized, checked
//! against policy, answered as commands or queued as turns on their session;
//! other events are logged and closed. Runs in arrival order per account.

use std::sync::Arc;

use lark_wire::envelope::MessageReceive;
use lark_wire::{Envelope, Event};

use super::account::{now_ms, AccountRuntime};
use super::turn::TurnJob;
use crate::inbound::{normalize, Normalized};
use crate::policy::{self, pairing, Decision, MessageFacts};
use crate::session::commands::help_text;
use crate::session::{self, parse_command, Command, Place, Submitted};
use crate::store::{InboundState, NewInbound, PairingOutcome};

/// Handles a freshly recorded event.
pub(crate) async fn dispatch(rt: &Arc<AccountRuntime>, id: i64, row: NewInbound) {
    handle(rt, id, &row.payload, row.received_at_ms).await;
}

/// Handles again what was recorded but not finished before the last stop.
pub(crate) async fn replay_unfinished(rt: &Arc<AccountRuntime>) {
    let rows = match rt.shared.store.unfinished_inbound(&rt.cfg.name).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(
                "[lark] [{}] cannot read unfinished messages: {e}",
                rt.cfg.name
            );
            return;
        }
    };
    if !rows.is_empty() {
        tracing::info!(
            "[lark] [{}] resuming {} unfinished event(s)",
            rt.cfg.name,
            rows.len()
        );
    }
    for row in rows {
        handle(rt, row.id, &row.payload, row.received_at_ms).await;
    }
}

/// Records a row's new state; a failure is logged (the row is then handled
/// again after a restart, which the outbound uuids make harmless).
pub(crate) async fn set_state(rt: &AccountRuntime, id: i64, state: InboundState) {
    if let Err(e) = rt.shared.store.set_inbound_state(id, state).await {
        tracing::error!("[lark] [{}] cannot update inbox row {id}: {e}", rt.cfg.name);
    }
}

async fn handle(rt: &Arc<AccountRuntime>, id: i64, payload: &str, received_at_ms: i64) {
    let env = match Envelope::parse(payload.as_bytes()) {
        Ok(env) => env,
        Err(e) => return set_state(rt, id, InboundState::Dropped(format!("malformed: {e}"))).await,
    };
    let name = &rt.cfg.name;
    match Event::from_envelope(&env) {
        Event::MessageReceived(m) => on_message(rt, id, &m, received_at_ms).await,
        Event::BotAdded(b) => {
            tracing::info!(
                "[lark] [{name}] added to chat {} ({}) by {}; it answers there if groupPolicy admits it",
                b.chat_id, b.name, b.operator_id.open_id
            );
            set_state(rt, id, InboundState::Done).await;
        }
        Event::BotRemoved(b) => {
            tracing::info!("[lark] [{name}] removed from chat {}", b.chat_id);
            set_state(rt, id, InboundState::Done).await;
        }
        other => {
            tracing::debug!(
                "[lark] [{name}] event {} needs no answer",
                env.header.event_type
            );
            drop(other);
            set_state(rt, id, InboundState::Done).await;
        }
    }
}

fn facts(n: &Normalized) -> MessageFacts<'_> {
    MessageFacts {
        p2p: n.p2p,
        chat_id: &n.chat_id,
        sender_open_id: &n.sender_open_id,
        sender_is_bot: n.sender_is_bot,
        mentions_bot: n.mentions_bot,
        mention_all: n.mention_all,
    }
}

/// The session key of a normalized message under the account's (or group's) scope.
pub(crate) fn session_key_of(rt: &AccountRuntime, n: &Normalized) -> String {
    let scope = rt
        .cfg
        .group(&n.chat_id)
        .and_then(|g| g.session_scope)
        .unwrap_or(rt.cfg.session_scope);
    session::session_key(
        scope,
        &Place {
            chat_id: &n.chat_id,
            p2p: n.p2p,
            sender_open_id: &n.sender_open_id,
            thread_id: n.thread_id.as_deref(),
            root_id: n.root_id.as_deref(),
        },
    )
}

async fn on_message(rt: &Arc<AccountRuntime>, id: i64, m: &MessageReceive, received_at_ms: i64) {
    let name = rt.cfg.name.as_str();
    let n = normalize(m, &rt.bot_open_id());
    let age_ms = now_ms() - n.create_time_ms;
    if n.create_time_ms > 0 && age_ms > rt.cfg.stale_after_secs as i64 * 1000 {
        tracing::info!(
            "[lark] [{name}] dropping message {} from {}: sent {} s ago, older than staleAfterSecs ({})",
            n.message_id, n.sender_open_id, age_ms / 1000, rt.cfg.stale_after_secs
        );
        rt.shared.metrics.events_dropped.inc(&[name, "stale"]);
        return set_state(rt, id, InboundState::Dropped("stale".into())).await;
    }
    let mut decision = policy::decide(&rt.cfg, &facts(&n), false);
    if decision == Decision::Pair
        && rt
            .shared
            .store
            .is_approved(name, &n.sender_open_id)
            .await
            .unwrap_or(false)
    {
        decision = Decision::Allow;
    }
    match decision {
        Decision::Refuse(r) => {
            if r.is_access_denial() {
                tracing::info!(
                    "[lark] [{name}] not answering {} in {}: {} (sender open_id {}; add it to allowFrom/groupAllowFrom to allow)",
                    n.message_id, n.chat_id, r.as_str(), n.sender_open_id
                );
            } else {
                tracing::debug!("[lark] [{name}] ignoring {}: {}", n.message_id, r.as_str());
            }
            rt.shared.metrics.events_dropped.inc(&[name, r.as_str()]);
            set_state(rt, id, InboundState::Dropped(r.as_str().into())).await;
        }
        Decision::Pair => {
            let rt = rt.clone();
            tokio::spawn(async move { pair(&rt, id, &n).await });
        }
        Decision::Allow => match parse_command(&n.text) {
            Some(cmd) => command(rt, id, n, cmd).await,
            None => enqueue(rt, id, n, received_at_ms).await,
        },
    }
}

async fn enqueue(rt: &Arc<AccountRuntime>, id: i64, n: Normalized, received_at_ms: i64) {
    let key = session_key_of(rt, &n);
    let generation = rt
        .shared
        .store
        .session_generation(&rt.cfg.name, &key)
        .await
        .unwrap_or(0);
    let job = TurnJob {
        inbound_id: id,
        session_key: key.clone(),
        generation,
        message: n,
        received_at_ms,
    };
    match rt.conversations().submit(&key, job) {
        Submitted::Running | Submitted::Queued { .. } => {}
        Submitted::Full(job) => {
            let name = rt.cfg.name.as_str();
            tracing::warn!(
                "[lark] [{name}] session {key} is full; telling {} to wait",
                job.message.sender_open_id
            );
            rt.shared.metrics.events_dropped.inc(&[name, "queue_full"]);
            let text = format!(
                "I'm still working on {} earlier message(s) here. Please wait for my reply and send this again.",
                rt.cfg.queue_limit
            );
            notice(rt, &job.message.message_id, &text).await;
            set_state(rt, id, InboundState::Dropped("queue_full".into())).await;
        }
        // Shutting down: the row stays pending and is answered after the restart.
        Submitted::Closed(_) => {}
    }
}

/// Sends a short system reply to `message_id`, at most once.
pub(crate) async fn notice(rt: &AccountRuntime, message_id: &str, text: &str) {
    let uuid = crate::render::part_uuid(&format!("{message_id}:notice"), 0);
    if let Err(e) = rt.outbound.notice(message_id, text, &uuid).await {
        tracing::warn!(
            "[lark] [{}] could not reply to {message_id}: {e}",
            rt.cfg.name
        );
    }
}

async fn command(rt: &Arc<AccountRuntime>, id: i64, n: Normalized, cmd: Command) {
    let key = session_key_of(rt, &n);
    let store = &rt.shared.store;
    let name = rt.cfg.name.as_str();
    let text = match cmd {
        Command::Stop => {
            let out = rt.conversations().stop(&key);
            for job in &out.dropped {
                set_state(rt, job.inbound_id, InboundState::Dropped("stopped".into())).await;
            }
            match (out.cancelled, out.dropped.len()) {
                (false, 0) => "Nothing is running.".to_string(),
                (true, 0) => "Stopped.".to_string(),
                (c, d) => format!(
                    "{}Dropped {d} waiting message(s).",
                    if c { "Stopped. " } else { "" }
                ),
            }
        }
        Command::New => match store.reset_session(name, &key).await {
            Ok(_) => "Started a new conversation. Earlier messages are forgotten.".to_string(),
            Err(e) => {
                tracing::error!("[lark] [{name}] /new failed: {e}");
                "Could not start a new conversation (storage error); please try again.".to_string()
            }
        },
        Command::Help => help_text().to_string(),
        Command::Status => status_text(rt, &key, &n).await,
    };
    let rt = rt.clone();
    tokio::spawn(async move {
        notice(&rt, &n.message_id, &text).await;
        set_state(&rt, id, InboundState::Done).await;
    });
}

async fn status_text(rt: &AccountRuntime, key: &str, n: &Normalized) -> String {
    let (agent_name, agent) = rt.agent_for(&n.chat_id);
    let generation = rt
        .shared
        .store
        .session_generation(&rt.cfg.name, key)
        .await
        .unwrap_or(0);
    let s = rt.conversations().status(key);
    format!(
        "Agent: {agent_name} ({})\nSession: {key} (#{generation})\nRunning: {}\nWaiting: {}",
        agent.kind(),
        if s.running { "yes" } else { "no" },
        s.waiting
    )
}

async fn pair(rt: &Arc<AccountRuntime>, id: i64, n: &Normalized) {
    let name = rt.cfg.name.as_str();
    let store = &rt.shared.store;
    let ttl = pairing::CODE_TTL.as_millis() as i64;
    let mut outcome = None;
    for _ in 0..3 {
        let code = pairing::generate_code();
        match store
            .create_pairing(
                name,
                &n.sender_open_id,
                &code,
                now_ms(),
                ttl,
                pairing::MAX_PENDING,
            )
            .await
        {
            Ok(o) => {
                outcome = Some(o);
                break;
            }
            Err(crate::store::StoreError::Conflict(_)) => continue,
            Err(e) => {
                tracing::error!("[lark] [{name}] pairing failed: {e}");
                break;
            }
        }
    }
    let text = match outcome {
        Some(PairingOutcome::Created(p)) | Some(PairingOutcome::Existing(p)) => {
            tracing::info!(
                "[lark] [{name}] pairing request from {}: code {} (approve with: larkgate pairing approve {})",
                n.sender_open_id, p.code, p.code
            );
            pairing::code_message(&p.code, &n.sender_open_id)
        }
        Some(PairingOutcome::TooMany) => {
            tracing::warn!(
                "[lark] [{name}] pairing request from {} refused: too many pending",
                n.sender_open_id
            );
            pairing::too_many_message()
        }
        None => return set_state(rt, id, InboundState::Failed("pairing store error".into())).await,
    };
    notice(rt, &n.message_id, &text).await;
    set_state(rt, id, InboundState::Done).await;
}
