//! What happens to an event: [`plan`] decides from the envelope alone
//! (normalize, staleness, policy) before the event is recorded, so an event
//! that needs nothing more is recorded once, already in its final state;
//! [`carry_out`] then acts on the plan once the record exists: messages are
//! answered as commands, queued as turns on their session, or get a pairing
//! code; refusals and other events are logged. Runs in arrival order per
//! account.

use std::sync::Arc;

use lark_wire::envelope::{MessageHead, MessageReceive};
use lark_wire::{Envelope, Event};

use super::account::{now_ms, AccountRuntime};
use super::turn::TurnJob;
use crate::inbound::normalize::{is_bot_sender, is_p2p, mentions, parse_time_ms};
use crate::inbound::{normalize, Normalized};
use crate::policy::{self, pairing, Decision, MessageFacts, Refusal};
use crate::session::commands::help_text;
use crate::session::{self, parse_command, Command, Place, Submitted};
use crate::store::{InboundState, PairingOutcome};

/// What to do with an event, decided before it is recorded.
pub(crate) enum Plan {
    /// A message to act on after the record: answer it (or, for an unknown
    /// DM sender under pairing, check approval and maybe send a code).
    Answer {
        /// The message.
        message: Box<Normalized>,
        /// Policy asked for pairing (the approval lookup comes later).
        pair: bool,
    },
    /// A message not to answer, and why.
    Refuse {
        /// The message's ids.
        message: MessageIds,
        /// The policy's reason.
        refusal: Refusal,
    },
    /// A message older than the cut-off.
    Stale {
        /// The message's ids.
        message: MessageIds,
        /// How old it is, in seconds.
        age_secs: i64,
    },
    /// Any other event: logged, nothing to answer.
    Note(Box<Event>, String),
}

impl Plan {
    /// The state the event is recorded in.
    pub(crate) fn state(&self) -> InboundState {
        match self {
            Plan::Answer { .. } => InboundState::Pending,
            Plan::Refuse { refusal, .. } => InboundState::Dropped(refusal.as_str().into()),
            Plan::Stale { .. } => InboundState::Dropped("stale".into()),
            Plan::Note(..) => InboundState::Done,
        }
    }

    /// The message's and its chat's ids, when the event is a message.
    pub(crate) fn message_and_chat(&self) -> Option<(&str, &str)> {
        match self {
            Plan::Answer { message, .. } => Some((&message.message_id, &message.chat_id)),
            Plan::Refuse { message, .. } | Plan::Stale { message, .. } => {
                Some((&message.message_id, &message.chat_id))
            }
            Plan::Note(..) => None,
        }
    }
}

/// What a message not answered is known by (for its record and the log).
pub(crate) struct MessageIds {
    /// `om_…`.
    pub(crate) message_id: String,
    /// `oc_…`.
    pub(crate) chat_id: String,
    /// The sender's `ou_…`.
    pub(crate) sender_open_id: String,
}

impl MessageIds {
    fn of(message_id: &str, chat_id: &str, sender_open_id: &str) -> MessageIds {
        MessageIds {
            message_id: message_id.to_owned(),
            chat_id: chat_id.to_owned(),
            sender_open_id: sender_open_id.to_owned(),
        }
    }
}

/// Decides what to do with an event (no I/O). (Most of a busy group's
/// traffic never gets here: the inbox refuses it with [`refuse_early`].)
pub(crate) fn plan(rt: &AccountRuntime, env: &Envelope) -> Plan {
    match Event::from_envelope(env) {
        Event::MessageReceived(m) => plan_message(rt, &m),
        other => Plan::Note(Box::new(other), env.header.event_type.clone()),
    }
}

/// The plan for a message that is stale, or refused whatever its content
/// says (the policy gives the same refusal with and without an `@all`,
/// which only the content can tell), judged on its [`MessageHead`] alone:
/// most of a busy group's traffic is refused (no mention), and is then
/// never read whole or normalized (content parsed, mentions resolved).
pub(crate) fn refuse_early(rt: &AccountRuntime, head: &MessageHead<'_>) -> Option<Plan> {
    let m = &head.message;
    let sender = &head.sender.sender_id.open_id;
    let ids = || MessageIds::of(&m.message_id, &m.chat_id, sender);
    if let Some(age_secs) = stale_age_secs(rt, &m.create_time) {
        return Some(Plan::Stale {
            message: ids(),
            age_secs,
        });
    }
    let bot_open_id = rt.bot_open_id();
    let decide = |mention_all| {
        let facts = MessageFacts {
            p2p: is_p2p(&m.chat_type),
            chat_id: &m.chat_id,
            sender_open_id: sender,
            sender_is_bot: is_bot_sender(&head.sender.sender_type),
            mentions_bot: mentions(
                m.mentions.iter().map(|x| x.id.open_id.as_ref()),
                &bot_open_id,
            ),
            mention_all,
        };
        policy::decide(&rt.cfg, &facts, false)
    };
    match decide(false) {
        Decision::Refuse(refusal) if decide(true) == Decision::Refuse(refusal) => {
            Some(Plan::Refuse {
                message: ids(),
                refusal,
            })
        }
        _ => None,
    }
}

/// How old a message sent at `create_time` is, if older than the cut-off.
fn stale_age_secs(rt: &AccountRuntime, create_time: &str) -> Option<i64> {
    let created_ms = parse_time_ms(create_time);
    let age_ms = now_ms() - created_ms;
    (created_ms > 0 && age_ms > rt.cfg.stale_after_secs as i64 * 1000).then_some(age_ms / 1000)
}

/// Staleness, then policy on the normalized message.
fn plan_message(rt: &AccountRuntime, m: &MessageReceive) -> Plan {
    let msg = &m.message;
    if let Some(age_secs) = stale_age_secs(rt, &msg.create_time) {
        return Plan::Stale {
            message: MessageIds::of(&msg.message_id, &msg.chat_id, &m.sender.sender_id.open_id),
            age_secs,
        };
    }
    let n = normalize(m, &rt.bot_open_id());
    match policy::decide(&rt.cfg, &facts(&n), false) {
        Decision::Allow => Plan::Answer {
            message: Box::new(n),
            pair: false,
        },
        Decision::Pair => Plan::Answer {
            message: Box::new(n),
            pair: true,
        },
        Decision::Refuse(refusal) => Plan::Refuse {
            message: MessageIds {
                message_id: n.message_id,
                chat_id: n.chat_id,
                sender_open_id: n.sender_open_id,
            },
            refusal,
        },
    }
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
        match Envelope::parse(row.payload.as_bytes()) {
            Ok(env) => {
                let plan = plan(rt, &env);
                carry_out(rt, row.id, plan, row.received_at_ms, false).await;
            }
            Err(e) => set_state(rt, row.id, InboundState::Dropped(format!("malformed: {e}"))).await,
        }
    }
}

/// Records a row's new state; a failure is logged (the row is then handled
/// again after a restart, which the outbound uuids make harmless).
pub(crate) async fn set_state(rt: &AccountRuntime, id: i64, state: InboundState) {
    if let Err(e) = rt.shared.store.set_inbound_state(id, state).await {
        tracing::error!("[lark] [{}] cannot update inbox row {id}: {e}", rt.cfg.name);
    }
}

/// Acts on the plan of the recorded event `id`. `recorded_final` says the
/// row was written in the plan's final state already (a fresh event), so
/// refusals and notes cost no further write; a replayed row still needs it.
pub(crate) async fn carry_out(
    rt: &Arc<AccountRuntime>,
    id: i64,
    plan: Plan,
    received_at_ms: i64,
    recorded_final: bool,
) {
    let name = rt.cfg.name.as_str();
    let final_state = plan.state();
    match plan {
        Plan::Answer { message, pair } => {
            return answer(rt, id, *message, pair, received_at_ms).await
        }
        Plan::Refuse {
            message: n,
            refusal,
        } => {
            if refusal.is_access_denial() {
                tracing::info!(
                    "[lark] [{name}] not answering {} in {}: {} (sender open_id {}; add it to allowFrom/groupAllowFrom to allow)",
                    n.message_id, n.chat_id, refusal.as_str(), n.sender_open_id
                );
            } else {
                tracing::debug!(
                    "[lark] [{name}] ignoring {}: {}",
                    n.message_id,
                    refusal.as_str()
                );
            }
            rt.shared
                .metrics
                .events_dropped
                .inc(&[name, refusal.as_str()]);
        }
        Plan::Stale {
            message: n,
            age_secs,
        } => {
            tracing::info!(
                "[lark] [{name}] dropping message {} from {}: sent {age_secs} s ago, older than staleAfterSecs ({})",
                n.message_id, n.sender_open_id, rt.cfg.stale_after_secs
            );
            rt.shared.metrics.events_dropped.inc(&[name, "stale"]);
        }
        Plan::Note(event, event_type) => note(name, &event, &event_type),
    }
    if !recorded_final {
        set_state(rt, id, final_state).await;
    }
}

fn note(name: &str, event: &Event, event_type: &str) {
    match event {
        Event::BotAdded(b) => tracing::info!(
            "[lark] [{name}] added to chat {} ({}) by {}; it answers there if groupPolicy admits it",
            b.chat_id, b.name, b.operator_id.open_id
        ),
        Event::BotRemoved(b) => tracing::info!("[lark] [{name}] removed from chat {}", b.chat_id),
        _ => tracing::debug!("[lark] [{name}] event {event_type} needs no answer"),
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

async fn answer(rt: &Arc<AccountRuntime>, id: i64, n: Normalized, pair: bool, received_at_ms: i64) {
    let approved = pair
        && rt
            .shared
            .store
            .is_approved(&rt.cfg.name, &n.sender_open_id)
            .await
            .unwrap_or(false);
    if pair && !approved {
        let rt = rt.clone();
        tokio::spawn(async move { pair_sender(&rt, id, &n).await });
        return;
    }
    match parse_command(&n.text) {
        Some(cmd) => command(rt, id, n, cmd).await,
        None => enqueue(rt, id, n, received_at_ms).await,
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

async fn pair_sender(rt: &Arc<AccountRuntime>, id: i64, n: &Normalized) {
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
