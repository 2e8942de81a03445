//! The JSON exchanged with `command` and `http` agents (documented in
//! `docs/AGENTS.md`): [`TurnInput`] goes to the agent (on stdin, or as the
//! POST body); the agent answers with text, [`MediaSpec`]s and usage.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AgentEvent, AgentRequest, Attachment, AttachmentKind, HistoryTurn, OutboundMedia};

/// Version of the [`TurnInput`] format.
pub const TURN_INPUT_VERSION: u32 = 1;

/// One turn, as given to a `command` agent on stdin and to an `http` agent
/// as the POST body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnInput {
    /// Format version ([`TURN_INPUT_VERSION`]).
    pub version: u32,
    /// Stable id of the conversation (changes after `/new`).
    pub session_id: String,
    /// The account (bot) name.
    pub account: String,
    /// Where the message was sent.
    pub chat: ChatInfo,
    /// Who sent it.
    pub sender: SenderInfo,
    /// The user's message.
    pub text: String,
    /// Earlier turns, oldest first.
    pub history: Vec<HistoryTurn>,
    /// Files the user sent, already downloaded (local paths).
    pub attachments: Vec<Attachment>,
    /// The system prompt in force (group's, else account's, else agent's).
    pub system_prompt: Option<String>,
}

/// The chat of a turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatInfo {
    /// `oc_…`.
    pub chat_id: String,
    /// `p2p` or `group`.
    pub chat_type: String,
}

/// The sender of a turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderInfo {
    /// `ou_…`.
    pub open_id: String,
    /// Display name, when known.
    pub name: Option<String>,
}

impl TurnInput {
    /// The input for `request`, with the system prompt in force.
    pub fn new(request: &AgentRequest, system_prompt: Option<&str>) -> TurnInput {
        TurnInput {
            version: TURN_INPUT_VERSION,
            session_id: request.session_id.clone(),
            account: request.account.clone(),
            chat: ChatInfo {
                chat_id: request.chat_id.clone(),
                chat_type: request.chat_type.clone(),
            },
            sender: SenderInfo {
                open_id: request.sender_open_id.clone(),
                name: request.sender_name.clone(),
            },
            text: request.text.clone(),
            history: request.history.clone(),
            attachments: request.attachments.clone(),
            system_prompt: system_prompt.map(str::to_string),
        }
    }
}

/// A file or image an agent wants sent: a local `path` (command agents
/// only) or a `url`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSpec {
    /// A local file (relative paths are relative to the command's `cwd`).
    pub path: Option<String>,
    /// An `http(s)://` URL (checked against `mediaUrlAllowlist` when sent).
    pub url: Option<String>,
    /// `image` or `file` (default: guessed from the extension).
    pub kind: Option<AttachmentKind>,
    /// The file name to show.
    pub name: Option<String>,
}

impl MediaSpec {
    /// The media to send. Local paths are accepted only when `base` is given
    /// (command agents) and are resolved against it.
    pub fn to_outbound(&self, base: Option<&Path>) -> Result<OutboundMedia, String> {
        let source = match (&self.path, &self.url, base) {
            (Some(_), Some(_), _) => return Err("media has both path and url".into()),
            (Some(path), None, Some(base)) => base.join(path).to_string_lossy().into_owned(),
            (Some(_), None, None) => {
                return Err("media must be a url (local paths are for command agents)".into())
            }
            (None, Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => {
                url.clone()
            }
            (None, Some(_), _) => {
                return Err("media url must start with http:// or https://".into())
            }
            (None, None, _) => return Err("media needs a path or a url".into()),
        };
        let kind = self.kind.unwrap_or_else(|| guess_kind(&source));
        Ok(OutboundMedia {
            kind,
            source,
            name: self.name.clone(),
        })
    }
}

/// `image` for common picture extensions, else `file`.
fn guess_kind(source: &str) -> AttachmentKind {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp") => AttachmentKind::Image,
        _ => AttachmentKind::File,
    }
}

/// Token usage an agent may report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSpec {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: u64,
}

impl From<UsageSpec> for AgentEvent {
    fn from(u: UsageSpec) -> AgentEvent {
        AgentEvent::Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
        }
    }
}

/// A whole JSON answer of an `http` agent (`Content-Type: application/json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAnswer {
    /// The reply text.
    #[serde(default)]
    pub text: String,
    /// Files and images to send after the text.
    #[serde(default)]
    pub media: Vec<MediaSpec>,
    /// Token usage, if known.
    pub usage: Option<UsageSpec>,
}

/// One `data:` event of an `http` agent's SSE answer
/// (`Content-Type: text/event-stream`); the stream may end with `data: [DONE]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpStreamEvent {
    /// More reply text.
    pub delta: Option<String>,
    /// A file or image to send.
    pub media: Option<MediaSpec>,
    /// Token usage.
    pub usage: Option<UsageSpec>,
    /// The turn failed: this message is shown to the user.
    pub error: Option<String>,
}

/// One stdout line of a `command` agent with `output = "jsonl"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CommandLine {
    /// `{"type":"text","text":"..."}`: more reply text.
    Text {
        /// The text.
        text: String,
    },
    /// `{"type":"media","path":"out.png"}`: a file or image to send.
    Media(MediaSpec),
    /// `{"type":"usage","input_tokens":1,"output_tokens":2}`.
    Usage(UsageSpec),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_specs_resolve_and_guess_kinds() {
        let path = MediaSpec {
            path: Some("out/chart.PNG".into()),
            ..MediaSpec::default()
        };
        let media = path.to_outbound(Some(Path::new("/work"))).unwrap();
        assert_eq!(media.source, "/work/out/chart.PNG");
        assert_eq!(media.kind, AttachmentKind::Image);
        assert!(path.to_outbound(None).is_err());
        let url = MediaSpec {
            url: Some("https://x.test/report.pdf?sig=1".into()),
            ..MediaSpec::default()
        };
        assert_eq!(url.to_outbound(None).unwrap().kind, AttachmentKind::File);
        let bad = MediaSpec {
            url: Some("file:///etc/passwd".into()),
            ..MediaSpec::default()
        };
        assert!(bad.to_outbound(Some(Path::new("/"))).is_err());
        assert!(MediaSpec::default().to_outbound(None).is_err());
    }

    #[test]
    fn command_lines_parse() {
        let line: CommandLine =
            serde_json::from_str(r#"{"type":"media","path":"a.png","name":"A"}"#).unwrap();
        assert_eq!(
            line,
            CommandLine::Media(MediaSpec {
                path: Some("a.png".into()),
                name: Some("A".into()),
                ..MediaSpec::default()
            })
        );
        let line: CommandLine = serde_json::from_str(r#"{"type":"text","text":"hi"}"#).unwrap();
        assert_eq!(line, CommandLine::Text { text: "hi".into() });
    }
}
