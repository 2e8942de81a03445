//! Every received message becomes agent input: text with mentions resolved,
//! references to media the gateway downloads, and what still has to be
//! fetched (the quoted parent of a reply, the children of a merged forward).
//!
//! The bot is recognised by its open_id, never by its name. Its mention is
//! removed from the text; `@all` is noted separately (policy decides whether
//! it counts); other mentions become `@Name`.

use lark_wire::envelope::{Content, Mention, MessageReceive};

use crate::agent::AttachmentKind;

/// Which download endpoint a media key needs (`type=image` or `type=file`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    /// `type=image`.
    Image,
    /// `type=file` (files, audio, video).
    File,
}

/// A file in a message, to be downloaded and handed to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRef {
    /// What the agent will see it as.
    pub kind: AttachmentKind,
    /// `img_…` or `file_…`.
    pub key: String,
    /// The download endpoint's type.
    pub resource: ResourceType,
    /// File name, when the message carries one.
    pub name: Option<String>,
}

/// A received message, normalized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    /// `om_…`.
    pub message_id: String,
    /// `oc_…`.
    pub chat_id: String,
    /// A 1:1 chat.
    pub p2p: bool,
    /// `omt_…` for topic messages.
    pub thread_id: Option<String>,
    /// Thread root, for replies.
    pub root_id: Option<String>,
    /// The replied-to message, for replies.
    pub parent_id: Option<String>,
    /// The sender's `ou_…`.
    pub sender_open_id: String,
    /// Sent by a bot or app.
    pub sender_is_bot: bool,
    /// The platform's message type.
    pub message_type: String,
    /// Milliseconds since the epoch (0 when unknown).
    pub create_time_ms: i64,
    /// The text for the agent.
    pub text: String,
    /// The bot is mentioned.
    pub mentions_bot: bool,
    /// Everyone is mentioned.
    pub mention_all: bool,
    /// Other people mentioned: (name, open_id), for mentions in replies.
    pub mentioned: Vec<(String, String)>,
    /// Media to download.
    pub media: Vec<MediaRef>,
    /// A merged forward whose children must be fetched.
    pub merge_forward: bool,
}

/// Normalizes an `im.message.receive_v1` event for the bot `bot_open_id`.
pub fn normalize(event: &MessageReceive, bot_open_id: &str) -> Normalized {
    let m = &event.message;
    let mentions_bot = mentions(
        m.mentions.iter().map(|x| x.id.open_id.as_str()),
        bot_open_id,
    );
    let (body, media) = render_content(&m.message_type, &m.content);
    let mention_all = m.mentions.iter().any(|x| x.key == "@_all") || has_all_placeholder(&body);
    let text = resolve_mentions(&body, &m.mentions, bot_open_id);
    Normalized {
        message_id: m.message_id.clone(),
        chat_id: m.chat_id.clone(),
        p2p: is_p2p(&m.chat_type),
        thread_id: non_empty(&m.thread_id),
        root_id: non_empty(&m.root_id),
        parent_id: non_empty(&m.parent_id),
        sender_open_id: event.sender.sender_id.open_id.clone(),
        sender_is_bot: is_bot_sender(&event.sender.sender_type),
        message_type: m.message_type.clone(),
        create_time_ms: parse_time_ms(&m.create_time),
        text,
        mentions_bot,
        mention_all,
        mentioned: m
            .mentions
            .iter()
            .filter(|x| x.id.open_id != bot_open_id && !x.id.open_id.is_empty())
            .map(|x| (x.name.clone(), x.id.open_id.clone()))
            .collect(),
        media,
        merge_forward: m.message_type == "merge_forward",
    }
}

/// The bot (by open_id) is among the mentioned `open_ids`.
pub fn mentions<'a>(mut open_ids: impl Iterator<Item = &'a str>, bot_open_id: &str) -> bool {
    !bot_open_id.is_empty() && open_ids.any(|id| id == bot_open_id)
}

/// A chat of this `chat_type` is a 1:1 chat.
pub fn is_p2p(chat_type: &str) -> bool {
    chat_type == "p2p"
}

/// A sender of this `sender_type` is a bot or app, not a person.
pub fn is_bot_sender(sender_type: &str) -> bool {
    !sender_type.is_empty() && sender_type != "user"
}

/// A `create_time` in unix ms (0 when unreadable).
pub fn parse_time_ms(create_time: &str) -> i64 {
    create_time.parse().unwrap_or(0)
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|v| !v.is_empty())
}

/// `@_all` as a whole placeholder (not a prefix of `@_all_x`).
fn has_all_placeholder(text: &str) -> bool {
    text.match_indices("@_all").any(|(i, _)| {
        let next = text[i + 5..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The text of one message's content, and the media it holds. Used for
/// received events and for messages fetched over REST (quoted parents,
/// merged-forward children).
pub fn render_content(message_type: &str, content: &str) -> (String, Vec<MediaRef>) {
    match Content::parse(message_type, content) {
        Content::Text(t) => (t, Vec::new()),
        Content::Post {
            title,
            text,
            image_keys,
        } => {
            let body = match (title.is_empty(), text.is_empty()) {
                (true, _) => text,
                (false, true) => title,
                (false, false) => format!("{title}\n{text}"),
            };
            let media = image_keys
                .into_iter()
                .filter(|k| !k.is_empty())
                .map(|key| MediaRef {
                    kind: AttachmentKind::Image,
                    key,
                    resource: ResourceType::Image,
                    name: None,
                })
                .collect();
            (body, media)
        }
        Content::Image { image_key } => (
            "[image]".to_string(),
            vec![MediaRef {
                kind: AttachmentKind::Image,
                key: image_key,
                resource: ResourceType::Image,
                name: None,
            }],
        ),
        Content::File {
            kind,
            file_key,
            file_name,
        } => render_file(&kind, file_key, file_name),
        Content::Other { text, .. } => (text, Vec::new()),
        _ => (format!("[{message_type}]"), Vec::new()),
    }
}

fn render_file(kind: &str, key: String, name: Option<String>) -> (String, Vec<MediaRef>) {
    let attachment = match kind {
        "audio" => AttachmentKind::Audio,
        "media" => AttachmentKind::Video,
        "file" => AttachmentKind::File,
        // Stickers cannot be downloaded; folders are not files.
        _ => {
            let label = name.map(|n| format!("[{kind} {n}]"));
            return (label.unwrap_or_else(|| format!("[{kind}]")), Vec::new());
        }
    };
    let label = match (&attachment, &name) {
        (AttachmentKind::Audio, _) => "[voice message]".to_string(),
        (_, Some(n)) => format!("[{kind}: {n}]"),
        (_, None) => format!("[{kind}]"),
    };
    let media = MediaRef {
        kind: attachment,
        key,
        resource: ResourceType::File,
        name,
    };
    (label, vec![media])
}

/// Replaces mention placeholders: the bot's own mention is removed, `@_all`
/// becomes `@all`, others become `@Name`.
pub fn resolve_mentions(text: &str, mentions: &[Mention], bot_open_id: &str) -> String {
    // Longest keys first, so `@_user_10` is not mangled by `@_user_1`.
    let mut sorted: Vec<&Mention> = mentions.iter().filter(|m| !m.key.is_empty()).collect();
    if sorted.is_empty() && !has_all_placeholder(text) {
        // Nothing to replace: the text stays as written (indentation too).
        return text.trim().to_string();
    }
    let mut out = text.to_string();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.key.len()));
    for m in sorted {
        let replacement = if !bot_open_id.is_empty() && m.id.open_id == bot_open_id {
            String::new()
        } else if m.key == "@_all" {
            "@all".to_string()
        } else {
            format!("@{}", m.name)
        };
        out = out.replace(&m.key, &replacement);
    }
    if has_all_placeholder(&out) {
        out = out.replace("@_all", "@all");
    }
    tidy_spaces(&out)
}

/// Collapses the runs of spaces a removed mention leaves and trims the ends.
fn tidy_spaces(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lark_wire::envelope::{Message, Sender, UserId};

    const BOT: &str = "ou_bot";

    fn mention(key: &str, open_id: &str, name: &str) -> Mention {
        Mention {
            key: key.into(),
            id: UserId {
                open_id: open_id.into(),
                ..Default::default()
            },
            name: name.into(),
        }
    }

    fn event(kind: &str, content: &str, mentions: Vec<Mention>) -> MessageReceive {
        MessageReceive {
            sender: Sender {
                sender_id: UserId {
                    open_id: "ou_alice".into(),
                    ..Default::default()
                },
                sender_type: "user".into(),
                tenant_key: String::new(),
            },
            message: Message {
                message_id: "om_1".into(),
                chat_id: "oc_1".into(),
                chat_type: "group".into(),
                message_type: kind.into(),
                content: content.into(),
                create_time: "1700000000000".into(),
                mentions,
                ..Default::default()
            },
        }
    }

    #[test]
    fn bot_mention_stripped_by_open_id_others_named() {
        let e = event(
            "text",
            r#"{"text":"@_user_1 ask @_user_2 about it"}"#,
            vec![
                mention("@_user_1", BOT, "Helper"),
                mention("@_user_2", "ou_bob", "Bob"),
            ],
        );
        let n = normalize(&e, BOT);
        assert!(n.mentions_bot);
        assert!(!n.mention_all);
        assert_eq!(n.text, "ask @Bob about it");
        assert_eq!(n.mentioned, vec![("Bob".to_string(), "ou_bob".to_string())]);
        assert_eq!(n.create_time_ms, 1_700_000_000_000);
        assert!(!n.p2p);
    }

    #[test]
    fn a_user_named_like_the_bot_is_not_the_bot() {
        let e = event(
            "text",
            r#"{"text":"@_user_1 hi"}"#,
            vec![mention("@_user_1", "ou_impostor", "Helper")],
        );
        let n = normalize(&e, BOT);
        assert!(!n.mentions_bot);
        assert_eq!(n.text, "@Helper hi");
    }

    #[test]
    fn at_all_without_mentions_array() {
        let n = normalize(&event("text", r#"{"text":"@_all standup"}"#, vec![]), BOT);
        assert!(n.mention_all);
        assert!(!n.mentions_bot);
        assert_eq!(n.text, "@all standup");
        let not_all = normalize(&event("text", r#"{"text":"@_allx"}"#, vec![]), BOT);
        assert!(!not_all.mention_all);
    }

    #[test]
    fn many_mentions_do_not_clobber_each_other() {
        let mut ms: Vec<Mention> = (1..=10)
            .map(|i| mention(&format!("@_user_{i}"), &format!("ou_{i}"), &format!("P{i}")))
            .collect();
        ms.push(mention("@_user_11", BOT, "Bot"));
        let n = normalize(
            &event("text", r#"{"text":"@_user_10 @_user_1 @_user_11 go"}"#, ms),
            BOT,
        );
        assert_eq!(n.text, "@P10 @P1 go");
    }

    #[test]
    fn media_types_become_references() {
        let img = normalize(&event("image", r#"{"image_key":"img_1"}"#, vec![]), BOT);
        assert_eq!(img.text, "[image]");
        assert_eq!(img.media[0].resource, ResourceType::Image);
        let file = normalize(
            &event(
                "file",
                r#"{"file_key":"file_1","file_name":"a.pdf"}"#,
                vec![],
            ),
            BOT,
        );
        assert_eq!(file.text, "[file: a.pdf]");
        assert_eq!(file.media[0].kind, AttachmentKind::File);
        assert_eq!(file.media[0].name.as_deref(), Some("a.pdf"));
        let audio = normalize(
            &event("audio", r#"{"file_key":"file_2","duration":2000}"#, vec![]),
            BOT,
        );
        assert_eq!(audio.media[0].kind, AttachmentKind::Audio);
        let video = normalize(
            &event(
                "media",
                r#"{"file_key":"file_3","image_key":"img_c","file_name":"v.mp4"}"#,
                vec![],
            ),
            BOT,
        );
        assert_eq!(video.media[0].kind, AttachmentKind::Video);
        let sticker = normalize(&event("sticker", r#"{"file_key":"s"}"#, vec![]), BOT);
        assert_eq!(sticker.text, "[sticker]");
        assert!(sticker.media.is_empty());
    }

    #[test]
    fn post_with_mention_and_image() {
        let content = r#"{"title":"Plan","content":[[{"tag":"at","user_id":"@_user_1","user_name":"Bot"},{"tag":"text","text":" see "},{"tag":"a","text":"doc","href":"https://x"}],[{"tag":"img","image_key":"img_9"}]]}"#;
        let n = normalize(
            &event("post", content, vec![mention("@_user_1", BOT, "Bot")]),
            BOT,
        );
        assert!(n.mentions_bot);
        assert_eq!(n.text, "Plan\nsee [doc](https://x)");
        assert_eq!(n.media.len(), 1);
    }

    #[test]
    fn unknown_and_structured_types_never_vanish() {
        let n = normalize(&event("brand_new", "{}", vec![]), BOT);
        assert_eq!(n.text, "[brand_new]");
        let mf = normalize(
            &event(
                "merge_forward",
                r#"{"content":"Merged and Forwarded Message"}"#,
                vec![],
            ),
            BOT,
        );
        assert!(mf.merge_forward);
        let loc = normalize(
            &event(
                "location",
                r#"{"name":"Office","latitude":"1","longitude":"2"}"#,
                vec![],
            ),
            BOT,
        );
        assert!(loc.text.contains("Office"));
    }
}
