//! Event envelopes (v2.0 and legacy v1) and the typed content of received
//! messages. Unknown event types, message types and fields parse without
//! failing.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

mod head_scan;

/// Why an event body could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed event envelope: {0}")]
pub struct EnvelopeError(#[from] serde_json::Error);

/// The v2.0 envelope header.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct EventHeader {
    /// Unique id of this event: the dedup key.
    #[serde(default)]
    pub event_id: String,
    /// Dispatch key, such as `im.message.receive_v1`.
    #[serde(default)]
    pub event_type: String,
    /// Creation time (milliseconds or microseconds, as a string).
    #[serde(default)]
    pub create_time: String,
    /// The app's verification token (webhook mode).
    #[serde(default)]
    pub token: String,
    /// The app id.
    #[serde(default)]
    pub app_id: String,
    /// The tenant key.
    #[serde(default)]
    pub tenant_key: String,
}

/// A parsed event body, v2.0 or legacy v1.
///
/// The `event` object is kept as raw JSON text and deserialized once,
/// straight into the typed struct a caller asks for ([`Envelope::event_as`]),
/// without building a `serde_json::Value` tree first.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Header (for v1, synthesized from `uuid`, `event.type`, `token`).
    pub header: EventHeader,
    /// The event-specific object, as JSON text (`null` if absent).
    pub event: Box<RawValue>,
    /// Whether the body was a v2.0 envelope.
    pub v2: bool,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Envelope) -> bool {
        self.header == other.header && self.v2 == other.v2 && self.event.get() == other.event.get()
    }
}

/// The fields a legacy v1 `event` object carries for the header.
#[derive(Default, Deserialize)]
struct V1Fields {
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    tenant_key: String,
}

impl Envelope {
    /// Parses an event body.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        #[derive(Deserialize)]
        struct Raw {
            schema: Option<String>,
            header: Option<EventHeader>,
            #[serde(default)]
            event: Option<Box<RawValue>>,
            #[serde(default)]
            uuid: String,
            #[serde(default)]
            token: String,
        }
        let raw: Raw = serde_json::from_slice(bytes)?;
        let event = match raw.event {
            Some(event) => event,
            None => RawValue::from_string("null".to_string())?,
        };
        if raw.schema.is_some() {
            return Ok(Envelope {
                header: raw.header.unwrap_or_default(),
                event,
                v2: true,
            });
        }
        let v1: V1Fields = serde_json::from_str(event.get()).unwrap_or_default();
        let header = EventHeader {
            event_id: raw.uuid,
            event_type: v1.event_type,
            app_id: v1.app_id,
            tenant_key: v1.tenant_key,
            token: raw.token,
            create_time: String::new(),
        };
        Ok(Envelope {
            header,
            event,
            v2: false,
        })
    }

    /// The event object deserialized as `T` (`None` if it does not fit).
    pub fn event_as<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.event.get()).ok()
    }

    /// The event object as a JSON value (`Null` if unreadable).
    pub fn event_value(&self) -> Value {
        self.event_as().unwrap_or(Value::Null)
    }

    /// The `im.message.receive_v1` payload, if this is one.
    pub fn message_receive(&self) -> Option<MessageReceive> {
        if self.header.event_type != "im.message.receive_v1" {
            return None;
        }
        self.event_as()
    }
}

/// The three ids of a user.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct UserId {
    /// App-scoped id (`ou_…`).
    #[serde(default)]
    pub open_id: String,
    /// Developer-scoped id (`on_…`).
    #[serde(default)]
    pub union_id: String,
    /// Tenant-scoped id (needs a scope).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The sender of a received message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Sender {
    /// Sender ids.
    #[serde(default)]
    pub sender_id: UserId,
    /// `user` (or `app` for bots).
    #[serde(default)]
    pub sender_type: String,
    /// Tenant key.
    #[serde(default)]
    pub tenant_key: String,
}

/// One `@` in a message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Mention {
    /// Placeholder inside the content, such as `@_user_1`.
    #[serde(default)]
    pub key: String,
    /// Ids of the mentioned user or bot.
    #[serde(default)]
    pub id: UserId,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// The message of an `im.message.receive_v1` event.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// `om_…`.
    pub message_id: String,
    /// Thread root, for replies.
    #[serde(default)]
    pub root_id: Option<String>,
    /// Replied-to message, for replies.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Milliseconds, as a string.
    #[serde(default)]
    pub create_time: String,
    /// `oc_…`.
    #[serde(default)]
    pub chat_id: String,
    /// Topic id, for topic messages.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// `p2p` or `group`.
    #[serde(default)]
    pub chat_type: String,
    /// `text`, `post`, `image`, ...
    #[serde(default)]
    pub message_type: String,
    /// The content JSON, as a string.
    #[serde(default)]
    pub content: String,
    /// Mentions (absent when none).
    #[serde(default)]
    pub mentions: Vec<Mention>,
}

/// The `event` of `im.message.receive_v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MessageReceive {
    /// Who sent it.
    #[serde(default)]
    pub sender: Sender,
    /// The message.
    pub message: Message,
}

/// What decides whether a received message is answered, borrowed from the
/// event JSON: ids, chat type, sender type, creation time and mentions. The
/// content (most of the bytes) is skipped, not copied; see
/// [`peek_message`].
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MessageHead<'a> {
    /// Who sent it.
    #[serde(default, borrow)]
    pub sender: SenderHead<'a>,
    /// The message.
    #[serde(borrow)]
    pub message: MessageHeadFields<'a>,
}

/// The ids a v2.0 header carries, borrowed (see [`peek_message`]).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct HeaderIds<'a> {
    /// Unique id of this event: the dedup key.
    #[serde(default, borrow)]
    pub event_id: Cow<'a, str>,
    /// Dispatch key, such as `im.message.receive_v1`.
    #[serde(default, borrow)]
    pub event_type: Cow<'a, str>,
}

/// The header ids and [`MessageHead`] of a v2.0 `im.message.receive_v1`
/// body, read in one pass that copies nothing but escaped strings; `None`
/// for anything else (another event, a v1 body, malformed JSON), which
/// [`Envelope::parse`] then reads in full.
///
/// A scanner made for this shape reads the usual body; what it is not sure
/// of (escaped ids, odd layouts, malformed JSON) serde reads, so the result
/// is serde's either way ([`peek_message_with_serde`]).
pub fn peek_message(bytes: &[u8]) -> Option<(HeaderIds<'_>, MessageHead<'_>)> {
    // Validating the UTF-8 once up front spares the parsers from validating
    // every string they borrow.
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, head) = head_scan::scan(text).or_else(|| peek_serde(text))?;
    (header.event_type == "im.message.receive_v1").then_some((header, head))
}

/// [`peek_message`] by serde alone: the reference its fast path is tested
/// against (exposed for the fuzz target).
#[doc(hidden)]
pub fn peek_message_with_serde(bytes: &[u8]) -> Option<(HeaderIds<'_>, MessageHead<'_>)> {
    let (header, head) = peek_serde(std::str::from_utf8(bytes).ok()?)?;
    (header.event_type == "im.message.receive_v1").then_some((header, head))
}

fn peek_serde(text: &str) -> Option<(HeaderIds<'_>, MessageHead<'_>)> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        header: HeaderIds<'a>,
        #[serde(borrow)]
        event: MessageHead<'a>,
    }
    let peek: Peek<'_> = serde_json::from_str(text).ok()?;
    Some((peek.header, peek.event))
}

/// [`MessageHead`]'s sender.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SenderHead<'a> {
    /// Sender ids.
    #[serde(default, borrow)]
    pub sender_id: OpenIdOnly<'a>,
    /// `user` (or `app` for bots).
    #[serde(default, borrow)]
    pub sender_type: Cow<'a, str>,
}

/// A user's `open_id` (the other ids skipped).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct OpenIdOnly<'a> {
    /// `ou_…`.
    #[serde(default, borrow)]
    pub open_id: Cow<'a, str>,
}

/// [`MessageHead`]'s message.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MessageHeadFields<'a> {
    /// `om_…`.
    #[serde(borrow)]
    pub message_id: Cow<'a, str>,
    /// Milliseconds, as a string.
    #[serde(default, borrow)]
    pub create_time: Cow<'a, str>,
    /// `oc_…`.
    #[serde(default, borrow)]
    pub chat_id: Cow<'a, str>,
    /// `p2p` or `group`.
    #[serde(default, borrow)]
    pub chat_type: Cow<'a, str>,
    /// Mentions (absent when none).
    #[serde(default, borrow)]
    pub mentions: Vec<MentionHead<'a>>,
}

/// [`MessageHead`]'s view of one `@`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MentionHead<'a> {
    /// Placeholder inside the content, such as `@_user_1` or `@_all`.
    #[serde(default, borrow)]
    pub key: Cow<'a, str>,
    /// The mentioned user's ids.
    #[serde(default, borrow)]
    pub id: OpenIdOnly<'a>,
}

/// Received content, typed by `message_type`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Content {
    /// Plain text with `@_user_N` placeholders.
    Text(String),
    /// Rich text: title and the plain text of its rows.
    Post {
        /// Title (may be empty).
        title: String,
        /// Text of the body, rows joined by newlines.
        text: String,
        /// Image keys found in the body.
        image_keys: Vec<String>,
    },
    /// An image.
    Image {
        /// `img_…`.
        image_key: String,
    },
    /// A file, audio, video or sticker: something downloadable by key.
    File {
        /// The message type (`file`, `audio`, `media`, `sticker`, `folder`).
        kind: String,
        /// `file_…`.
        file_key: String,
        /// File name, when given.
        file_name: Option<String>,
    },
    /// Any other type: its plain-text rendering.
    Other {
        /// The message type.
        kind: String,
        /// A short human-readable rendering.
        text: String,
    },
}

impl Content {
    /// Parses `content` for `message_type`. Never fails: malformed content
    /// becomes [`Content::Other`].
    pub fn parse(message_type: &str, content: &str) -> Content {
        let v: Value = serde_json::from_str(content).unwrap_or(Value::Null);
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        match message_type {
            "text" => Content::Text(s("text").unwrap_or_default()),
            "post" => parse_post(&v),
            "image" => Content::Image {
                image_key: s("image_key").unwrap_or_default(),
            },
            "file" | "audio" | "media" | "sticker" | "folder" => Content::File {
                kind: message_type.to_string(),
                file_key: s("file_key").unwrap_or_default(),
                file_name: s("file_name"),
            },
            other => Content::Other {
                kind: other.to_string(),
                text: render_other(other, &v),
            },
        }
    }
}

fn render_other(kind: &str, v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match kind {
        "share_chat" => format!("[shared chat {}]", s("chat_id")),
        "share_user" => format!("[shared user {}]", s("user_id")),
        "location" => format!(
            "[location {} ({}, {})]",
            s("name"),
            s("latitude"),
            s("longitude")
        ),
        "hongbao" => s("text"),
        "interactive" => {
            let mut out = s("title");
            collect_text(v.get("elements").unwrap_or(&Value::Null), &mut out);
            out
        }
        "system" => {
            let mut t = s("template");
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    let rendered = match val {
                        Value::String(x) => x.clone(),
                        Value::Array(xs) => xs
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                        Value::Object(o) => o
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        _ => continue,
                    };
                    t = t.replace(&format!("{{{k}}}"), &rendered);
                }
            }
            t
        }
        _ => format!("[{kind}]"),
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::Array(xs) => xs.iter().for_each(|x| collect_text(x, out)),
        Value::Object(o) => {
            if let Some(t) = o.get("text").and_then(Value::as_str) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(t);
            }
        }
        _ => {}
    }
}

fn parse_post(v: &Value) -> Content {
    // Tolerate the send-side locale wrapper: {"zh_cn": {...}}.
    let body = if v.get("content").is_some() {
        v
    } else {
        v.as_object().and_then(|o| o.values().next()).unwrap_or(v)
    };
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut rows = Vec::new();
    let mut image_keys = Vec::new();
    for row in body
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut line = String::new();
        for node in row.as_array().into_iter().flatten() {
            let field = |k: &str| node.get(k).and_then(Value::as_str).unwrap_or("");
            match field("tag") {
                "text" => line.push_str(field("text")),
                "a" => line.push_str(&format!("[{}]({})", field("text"), field("href"))),
                "at" => line.push_str(field("user_id")),
                "code_block" => {
                    line.push_str(&format!("```{}\n{}\n```", field("language"), field("text")))
                }
                "img" => image_keys.push(field("image_key").to_string()),
                "emotion" => line.push_str(&format!(":{}:", field("emoji_type"))),
                _ => {}
            }
        }
        rows.push(line);
    }
    Content::Post {
        title,
        text: rows.join("\n"),
        image_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVE: &str = r#"{"schema":"2.0","header":{"event_id":"e1","event_type":"im.message.receive_v1","create_time":"1608725989000","token":"t","app_id":"cli_9f5343c580712544","tenant_key":"k"},"event":{"sender":{"sender_id":{"open_id":"ou_a","union_id":"on_a"},"sender_type":"user","tenant_key":"k"},"message":{"message_id":"om_1","create_time":"1","chat_id":"oc_1","chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 hello\"}","mentions":[{"key":"@_user_1","id":{"open_id":"ou_bot","union_id":"on_b"},"name":"Bot","tenant_key":"k"}],"unknown_future_field":1}}}"#;

    #[test]
    fn parses_v2_message_receive() {
        let env = Envelope::parse(RECEIVE.as_bytes()).unwrap();
        assert!(env.v2);
        assert_eq!(env.header.event_id, "e1");
        let m = env.message_receive().unwrap();
        assert_eq!(m.sender.sender_id.open_id, "ou_a");
        assert_eq!(m.message.mentions[0].id.open_id, "ou_bot");
        assert_eq!(
            Content::parse(&m.message.message_type, &m.message.content),
            Content::Text("@_user_1 hello".into())
        );
    }

    #[test]
    fn peeks_at_a_message_without_its_content() {
        let (header, head) = peek_message(RECEIVE.as_bytes()).unwrap();
        assert_eq!(
            (&*header.event_id, &*header.event_type),
            ("e1", "im.message.receive_v1")
        );
        assert_eq!(head.sender.sender_id.open_id, "ou_a");
        assert_eq!(head.sender.sender_type, "user");
        let m = &head.message;
        assert_eq!(
            (&*m.message_id, &*m.chat_id, &*m.chat_type),
            ("om_1", "oc_1", "group")
        );
        assert_eq!(m.create_time, "1");
        assert_eq!(
            (&*m.mentions[0].key, &*m.mentions[0].id.open_id),
            ("@_user_1", "ou_bot")
        );
        assert!(matches!(m.message_id, Cow::Borrowed(_)), "ids are borrowed");
        // An escaped id still reads (owned).
        let escaped = RECEIVE.replace(r#""chat_id":"oc_1""#, r#""chat_id":"oc_\u0031""#);
        let (_, head) = peek_message(escaped.as_bytes()).unwrap();
        assert_eq!(head.message.chat_id, "oc_1");
    }

    #[test]
    fn peeking_declines_what_is_not_a_v2_message() {
        let reaction = RECEIVE.replace("im.message.receive_v1", "im.message.reaction.created_v1");
        assert!(peek_message(reaction.as_bytes()).is_none());
        let no_message = r#"{"schema":"2.0","header":{"event_id":"e","event_type":"im.message.receive_v1"},"event":{"sender":{}}}"#;
        assert!(peek_message(no_message.as_bytes()).is_none());
        let v1 = br#"{"uuid":"u1","event":{"type":"message"}}"#;
        assert!(peek_message(v1).is_none());
        assert!(peek_message(b"{not json").is_none());
    }

    #[test]
    fn parses_v1_envelope() {
        let body = br#"{"ts":"1.2","uuid":"u1","token":"tok","type":"event_callback","event":{"type":"p2p_chat_create","app_id":"cli_x"}}"#;
        let env = Envelope::parse(body).unwrap();
        assert!(!env.v2);
        assert_eq!(env.header.event_id, "u1");
        assert_eq!(env.header.event_type, "p2p_chat_create");
        assert!(env.message_receive().is_none());
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(Envelope::parse(b"{not json").is_err());
    }

    #[test]
    fn post_content_with_and_without_locale() {
        let inner = r#"{"title":"T","content":[[{"tag":"text","text":"hi "},{"tag":"a","text":"x","href":"http://a"}],[{"tag":"img","image_key":"img_1"}]]}"#;
        let expect = Content::Post {
            title: "T".into(),
            text: "hi [x](http://a)\n".into(),
            image_keys: vec!["img_1".into()],
        };
        assert_eq!(Content::parse("post", inner), expect);
        assert_eq!(
            Content::parse("post", &format!(r#"{{"zh_cn":{inner}}}"#)),
            expect
        );
    }

    #[test]
    fn every_other_type_renders() {
        assert_eq!(
            Content::parse("share_chat", r#"{"chat_id":"oc_9"}"#),
            Content::Other {
                kind: "share_chat".into(),
                text: "[shared chat oc_9]".into()
            }
        );
        let sys = Content::parse(
            "system",
            r#"{"template":"{from_user} invited {to_chatters}","from_user":["A"],"to_chatters":["B","C"]}"#,
        );
        assert_eq!(
            sys,
            Content::Other {
                kind: "system".into(),
                text: "A invited B, C".into()
            }
        );
        assert!(
            matches!(Content::parse("audio", r#"{"file_key":"f","duration":2}"#), Content::File { ref kind, .. } if kind == "audio")
        );
        assert_eq!(
            Content::parse("brand_new_type", "garbage"),
            Content::Other {
                kind: "brand_new_type".into(),
                text: "[brand_new_type]".into()
            }
        );
    }
}
