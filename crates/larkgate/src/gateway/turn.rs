//! One agent turn: gather the input (quoted parent, merged-forward children,
//! media), run the agent, stream the reply, keep the history, close the row.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lark_client::ResourceKind;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::account::{now_ms, AccountRuntime};
use crate::agent::{AgentErrorKind, AgentRequest, Attachment, HistoryTurn, Role};
use crate::inbound::normalize::render_content;
use crate::inbound::{MediaRef, Normalized, ResourceType};
use crate::outbound::ReplyPlan;
use crate::store::{InboundState, NewTurns};

/// Most merged-forward levels expanded.
const FORWARD_DEPTH: usize = 3;
/// Most merged-forward messages included.
const FORWARD_ITEMS: usize = 50;

/// A queued turn.
pub(crate) struct TurnJob {
    /// The inbox row it answers.
    pub inbound_id: i64,
    /// Its session.
    pub session_key: String,
    /// The session generation when it arrived (a later `/new` does not
    /// rewrite what it sees).
    pub generation: i64,
    /// The user's message.
    pub message: Normalized,
    /// When it was received (unix ms).
    pub received_at_ms: i64,
}

/// Runs one turn to completion (or cancellation).
pub(crate) async fn execute(rt: &Arc<AccountRuntime>, job: TurnJob, cancel: CancellationToken) {
    let name = rt.cfg.name.clone();
    let store = rt.shared.store.clone();
    let n = &job.message;
    // The first attempt at a row has nothing of an earlier one to find (no
    // sent parts, no open card), so the reply skips those lookups.
    let first_attempt = match store.begin_attempt(job.inbound_id).await {
        Ok(attempts) => attempts == 1,
        Err(e) => {
            tracing::error!(
                "[lark] [{name}] cannot update inbox row {}: {e}",
                job.inbound_id
            );
            false
        }
    };
    let typing = start_typing(rt, &n.message_id);

    let (text, attachments) = gather_input(rt, n).await;
    let history = store
        .history(
            &name,
            &job.session_key,
            job.generation,
            rt.cfg.history_limit,
        )
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(role, text)| HistoryTurn {
            role: if role == "assistant" {
                Role::Assistant
            } else {
                Role::User
            },
            text,
        })
        .collect();
    let (agent_name, agent) = rt.agent_for(&n.chat_id);
    let group = rt.cfg.group(&n.chat_id);
    let request = AgentRequest {
        session_id: format!("{name}:{}:{}", job.session_key, job.generation),
        account: name.clone(),
        chat_id: n.chat_id.clone(),
        chat_type: if n.p2p { "p2p" } else { "group" }.into(),
        sender_open_id: n.sender_open_id.clone(),
        sender_name: None,
        text: text.clone(),
        history,
        attachments,
        system_prompt: group
            .and_then(|g| g.system_prompt.clone())
            .or_else(|| rt.cfg.system_prompt.clone()),
    };
    let plan = ReplyPlan {
        mode: group
            .and_then(|g| g.reply_mode)
            .unwrap_or(rt.cfg.reply_mode),
        p2p: n.p2p,
        reply_to: n.message_id.clone(),
        chat_id: n.chat_id.clone(),
        reply_in_thread: group
            .and_then(|g| g.reply_in_thread)
            .unwrap_or(rt.cfg.reply_in_thread),
        uuid_base: n.message_id.clone(),
        inbound_id: job.inbound_id,
        first_attempt,
        mentions: n.mentioned.clone(),
        stop_turn: Some(super::cards::stop_turn(n.p2p, &job.session_key)),
        media_allowlist: rt.shared.media_allowlist(&agent_name),
    };
    let (tx, rx) = mpsc::channel(64);
    let agent_run = agent.run(request, cancel.clone(), tx);
    let report = rt.outbound.reply(plan, rx, agent_run).await;

    let mut turns = vec![("user", text.as_str())];
    if !report.text.is_empty() {
        turns.push(("assistant", report.text.as_str()));
    }
    stop_typing(rt, &n.message_id, typing).await;

    let metrics = &rt.shared.metrics;
    if let Some(first) = report.first_visible_ms {
        let ms = (first - job.received_at_ms).max(0) as u64;
        metrics
            .first_reply_latency
            .with(&[&name])
            .observe(std::time::Duration::from_millis(ms));
    }
    let total = (now_ms() - job.received_at_ms).max(0) as u64;
    metrics
        .reply_latency
        .with(&[&name])
        .observe(std::time::Duration::from_millis(total));
    let (outcome, state) = match &report.outcome {
        Ok(()) => ("ok", InboundState::Done),
        Err(e) if e.kind == AgentErrorKind::Cancelled => {
            if rt.shutting_down.load(Ordering::SeqCst) {
                (
                    "cancelled",
                    InboundState::Failed("interrupted by shutdown".into()),
                )
            } else {
                ("cancelled", InboundState::Done)
            }
        }
        Err(e) => {
            tracing::warn!(
                "[lark] [{name}] agent {agent_name} failed on {}: {}",
                n.message_id,
                e.message
            );
            ("error", InboundState::Failed(e.message.clone()))
        }
    };
    metrics.turns.inc(&[&name, &agent_name, outcome]);
    let history = NewTurns {
        account: &name,
        session_key: &job.session_key,
        generation: job.generation,
        turns: &turns,
        created_ms: now_ms(),
    };
    if let Err(e) = store.finish_turn(job.inbound_id, state, history).await {
        tracing::error!(
            "[lark] [{name}] cannot finish inbox row {}: {e}",
            job.inbound_id
        );
    }
}

/// The typing reaction of one turn: added in the background once the agent
/// has worked `typingDelayMs`, removed by [`stop_typing`].
struct Typing {
    /// Cancels the delay when the turn is over, or dropped (a turn cut off
    /// must not leave a reaction behind): a reaction not yet added never is.
    over: DropGuard,
    /// Resolves to the added reaction's id.
    task: tokio::task::JoinHandle<Option<String>>,
}

/// Starts the typing reaction's delay (if the account shows one).
fn start_typing(rt: &Arc<AccountRuntime>, message_id: &str) -> Option<Typing> {
    if !rt.cfg.typing_indicator {
        return None;
    }
    let client = rt.client.clone();
    let emoji = rt.cfg.typing_emoji.clone();
    let message_id = message_id.to_string();
    let name = rt.cfg.name.clone();
    let delay = Duration::from_millis(rt.cfg.typing_delay_ms);
    let done = CancellationToken::new();
    let over = done.clone().drop_guard();
    let task = tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::select! {
                () = done.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
        }
        // Once started, the request completes (so a reaction it adds is
        // known, and removed).
        match client.add_reaction(&message_id, &emoji).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!("[lark] [{name}] typing reaction failed: {e}");
                None
            }
        }
    });
    Some(Typing { over, task })
}

/// Ends the typing reaction: cancels it if its delay has not run out,
/// else waits for it and removes it.
async fn stop_typing(rt: &AccountRuntime, message_id: &str, typing: Option<Typing>) {
    let Some(typing) = typing else { return };
    drop(typing.over);
    if let Ok(Some(reaction_id)) = typing.task.await {
        if let Err(e) = rt.client.delete_reaction(message_id, &reaction_id).await {
            tracing::debug!(
                "[lark] [{}] removing typing reaction failed: {e}",
                rt.cfg.name
            );
        }
    }
}

/// The text for the agent (with the quoted parent and forwarded messages)
/// and the downloaded attachments.
async fn gather_input(rt: &AccountRuntime, n: &Normalized) -> (String, Vec<Attachment>) {
    let mut text = n.text.clone();
    if n.merge_forward {
        if let Some(forwarded) = forwarded_text(rt, &n.message_id).await {
            text = forwarded;
        }
    }
    if let (Some(parent), None) = (&n.parent_id, &n.thread_id) {
        if let Some(quoted) = quoted_text(rt, parent).await {
            text = format!("{quoted}\n\n{text}");
        }
    }
    let mut attachments = Vec::new();
    for media in &n.media {
        match download(rt, &n.message_id, media).await {
            Ok(a) => attachments.push(a),
            Err(why) => text.push_str(&format!("\n[attachment not available: {why}]")),
        }
    }
    (text, attachments)
}

/// The replied-to message as a markdown quote.
async fn quoted_text(rt: &AccountRuntime, parent_id: &str) -> Option<String> {
    let items = rt.client.get_message(parent_id).await.ok()?;
    let parent = items.into_iter().next()?;
    let (body, _) = render_content(&parent.msg_type, &parent.content);
    let body = rest_mentions(&body, &parent.mentions);
    let quoted: Vec<String> = body.lines().map(|l| format!("> {l}")).collect();
    Some(quoted.join("\n"))
}

/// Replaces `@_user_N` placeholders of a REST message with `@Name`.
fn rest_mentions(text: &str, mentions: &[lark_client::MessageMention]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<_> = mentions.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.key.len()));
    for m in sorted {
        out = out.replace(&m.key, &format!("@{}", m.name));
    }
    out
}

/// A merged forward expanded: one line per message, nested ones indented.
async fn forwarded_text(rt: &AccountRuntime, message_id: &str) -> Option<String> {
    let items = rt.client.get_message(message_id).await.ok()?;
    let mut lines = vec!["Forwarded messages:".to_string()];
    append_children(&items, message_id, 0, &mut lines);
    Some(lines.join("\n"))
}

fn append_children(
    items: &[lark_client::MessageInfo],
    upper: &str,
    depth: usize,
    lines: &mut Vec<String>,
) {
    if depth >= FORWARD_DEPTH {
        return;
    }
    for item in items
        .iter()
        .filter(|i| i.upper_message_id.as_deref() == Some(upper))
    {
        if lines.len() > FORWARD_ITEMS {
            lines.push("…".into());
            return;
        }
        let (body, _) = render_content(&item.msg_type, &item.content);
        let who = item.sender_id.clone();
        let indent = "  ".repeat(depth);
        lines.push(format!("{indent}- {who}: {}", body.replace('\n', " ")));
        if item.msg_type == "merge_forward" {
            append_children(items, &item.message_id, depth + 1, lines);
        }
    }
}

async fn download(
    rt: &AccountRuntime,
    message_id: &str,
    media: &MediaRef,
) -> Result<Attachment, String> {
    let dir: PathBuf = rt.shared.media_dir.join(&rt.cfg.name).join(message_id);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file_name = media
        .name
        .as_deref()
        .map(sanitize)
        .unwrap_or_else(|| sanitize(&media.key));
    let path = dir.join(&file_name);
    let kind = match media.resource {
        ResourceType::Image => ResourceKind::Image,
        ResourceType::File => ResourceKind::File,
    };
    let got = rt
        .client
        .download_resource(message_id, &media.key, kind, rt.cfg.media_max_bytes, &path)
        .await
        .map_err(|e| format!("{file_name}: {e}"))?;
    Ok(Attachment {
        kind: media.kind,
        path,
        name: got.file_name.unwrap_or(file_name),
        mime: got.content_type,
        transcript: None,
    })
}

/// A file name safe to create: no directories, no leading dots.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "file".into()
    } else {
        trimmed.chars().take(120).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn file_names_cannot_escape_the_media_dir() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\x.png"), "x.png");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize("a\nb.txt"), "a_b.txt");
    }
}
