//! im/v1 messages: send, reply, edit, card PATCH, recall, get, reactions,
//! image and file uploads.

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{new_uuid, seg, Call, FormField};
use crate::response::field;
use crate::{Client, Error};

/// The kind of id in `receive_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiveIdType {
    /// `ou_…`, the user's id within this app.
    OpenId,
    /// `on_…`, the user's id across the developer's apps.
    UnionId,
    /// The tenant-internal employee id.
    UserId,
    /// An email address.
    Email,
    /// `oc_…`, a chat.
    ChatId,
}

impl ReceiveIdType {
    /// The `receive_id_type` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::UnionId => "union_id",
            ReceiveIdType::UserId => "user_id",
            ReceiveIdType::Email => "email",
            ReceiveIdType::ChatId => "chat_id",
        }
    }

    /// Guesses the type from the id: `oc_` chat, `ou_` open id, `on_` union
    /// id, containing `@` email, anything else a user id.
    pub fn infer(id: &str) -> ReceiveIdType {
        if id.starts_with("oc_") {
            ReceiveIdType::ChatId
        } else if id.starts_with("ou_") {
            ReceiveIdType::OpenId
        } else if id.starts_with("on_") {
            ReceiveIdType::UnionId
        } else if id.contains('@') {
            ReceiveIdType::Email
        } else {
            ReceiveIdType::UserId
        }
    }
}

/// A message to send: `msg_type` and its content as a JSON string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// `text`, `post`, `interactive`, `image`, `file`, `audio`, `media`, …
    pub msg_type: String,
    /// The content object serialized as a string (the API double-encodes it).
    pub content: String,
}

impl OutgoingMessage {
    fn new(msg_type: &str, content: Value) -> OutgoingMessage {
        OutgoingMessage {
            msg_type: msg_type.to_string(),
            content: content.to_string(),
        }
    }

    /// Plain text: `{"text": …}`.
    pub fn text(text: &str) -> OutgoingMessage {
        OutgoingMessage::new("text", json!({ "text": text }))
    }

    /// Markdown as a post with one `md` node:
    /// `{"zh_cn":{"content":[[{"tag":"md","text":…}]]}}`.
    pub fn post_markdown(markdown: &str) -> OutgoingMessage {
        OutgoingMessage::new(
            "post",
            json!({"zh_cn": {"content": [[{"tag": "md", "text": markdown}]]}}),
        )
    }

    /// A CardKit card entity: `{"type":"card","data":{"card_id":…}}`.
    pub fn card_entity(card_id: &str) -> OutgoingMessage {
        OutgoingMessage::new(
            "interactive",
            json!({"type": "card", "data": {"card_id": card_id}}),
        )
    }

    /// A card given as JSON (1.0 or 2.0).
    pub fn card_json(card: &Value) -> OutgoingMessage {
        OutgoingMessage::new("interactive", card.clone())
    }

    /// An uploaded image: `{"image_key": …}`.
    pub fn image(image_key: &str) -> OutgoingMessage {
        OutgoingMessage::new("image", json!({ "image_key": image_key }))
    }

    /// An uploaded file: `{"file_key": …}`.
    pub fn file(file_key: &str) -> OutgoingMessage {
        OutgoingMessage::new("file", json!({ "file_key": file_key }))
    }

    /// An uploaded opus file as a voice message.
    pub fn audio(file_key: &str) -> OutgoingMessage {
        OutgoingMessage::new("audio", json!({ "file_key": file_key }))
    }
}

/// A mention in a REST message object (`id` is a plain string here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MessageMention {
    /// The placeholder in the content, such as `@_user_1`.
    pub key: String,
    /// The mentioned id.
    pub id: String,
    /// Its type (`open_id`, …).
    pub id_type: String,
    /// Display name.
    pub name: String,
}

/// A message as returned by send, reply, edit and get.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawMessage")]
pub struct MessageInfo {
    /// `om_…`.
    pub message_id: String,
    /// `oc_…`.
    pub chat_id: String,
    /// The message type.
    pub msg_type: String,
    /// The thread root, for replies.
    pub root_id: Option<String>,
    /// The replied-to message.
    pub parent_id: Option<String>,
    /// `omt_…`, for topic replies.
    pub thread_id: Option<String>,
    /// The merge_forward parent, for its children.
    pub upper_message_id: Option<String>,
    /// Milliseconds since the epoch, as the platform's string.
    pub create_time: String,
    /// Last update, milliseconds since the epoch.
    pub update_time: String,
    /// The sender's id (an app id for bots).
    pub sender_id: String,
    /// The kind of `sender_id` (`open_id`, `app_id`).
    pub sender_id_type: String,
    /// `user` or `app`.
    pub sender_type: String,
    /// The content JSON string.
    pub content: String,
    /// Mentions.
    pub mentions: Vec<MessageMention>,
    /// Recalled or deleted.
    pub deleted: bool,
    /// Edited.
    pub updated: bool,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawMessage {
    message_id: String,
    chat_id: String,
    msg_type: String,
    root_id: Option<String>,
    parent_id: Option<String>,
    thread_id: Option<String>,
    upper_message_id: Option<String>,
    create_time: String,
    update_time: String,
    sender: RawSender,
    body: RawBody,
    mentions: Option<Vec<MessageMention>>,
    deleted: bool,
    updated: bool,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawSender {
    id: String,
    id_type: String,
    sender_type: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawBody {
    content: String,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<RawMessage> for MessageInfo {
    fn from(r: RawMessage) -> MessageInfo {
        MessageInfo {
            message_id: r.message_id,
            chat_id: r.chat_id,
            msg_type: r.msg_type,
            root_id: non_empty(r.root_id),
            parent_id: non_empty(r.parent_id),
            thread_id: non_empty(r.thread_id),
            upper_message_id: non_empty(r.upper_message_id),
            create_time: r.create_time,
            update_time: r.update_time,
            sender_id: r.sender.id,
            sender_id_type: r.sender.id_type,
            sender_type: r.sender.sender_type,
            content: r.body.content,
            mentions: r.mentions.unwrap_or_default(),
            deleted: r.deleted,
            updated: r.updated,
        }
    }
}

const SEND: &str = "POST /im/v1/messages";
const REPLY: &str = "POST /im/v1/messages/:message_id/reply";
const EDIT: &str = "PUT /im/v1/messages/:message_id";
const PATCH: &str = "PATCH /im/v1/messages/:message_id";
const RECALL: &str = "DELETE /im/v1/messages/:message_id";
const GET: &str = "GET /im/v1/messages/:message_id";
const REACT: &str = "POST /im/v1/messages/:message_id/reactions";
const UNREACT: &str = "DELETE /im/v1/messages/:message_id/reactions/:reaction_id";
const IMAGE: &str = "POST /im/v1/images";
const FILE: &str = "POST /im/v1/files";

impl Client {
    /// Sends a message. `uuid` is the idempotency key (1 h); one is generated
    /// when `None`, so retries inside this call never double the message.
    pub async fn send_message(
        &self,
        id_type: ReceiveIdType,
        receive_id: &str,
        msg: &OutgoingMessage,
        uuid: Option<&str>,
    ) -> Result<MessageInfo, Error> {
        let uuid = uuid.map_or_else(new_uuid, str::to_string);
        let call = Call::new(Method::POST, SEND, "/im/v1/messages".into())
            .query("receive_id_type", id_type.as_str())
            .json(json!({
                "receive_id": receive_id,
                "msg_type": msg.msg_type,
                "content": msg.content,
                "uuid": uuid,
            }))
            .target(receive_id);
        let body = self.call_json(&call).await?;
        field(&body, "/data", SEND)
    }

    /// Replies to a message, optionally as a thread reply.
    pub async fn reply_message(
        &self,
        message_id: &str,
        msg: &OutgoingMessage,
        reply_in_thread: bool,
        uuid: Option<&str>,
    ) -> Result<MessageInfo, Error> {
        let uuid = uuid.map_or_else(new_uuid, str::to_string);
        let call = Call::new(
            Method::POST,
            REPLY,
            format!("/im/v1/messages/{}/reply", seg(message_id)),
        )
        .json(json!({
            "msg_type": msg.msg_type,
            "content": msg.content,
            "reply_in_thread": reply_in_thread,
            "uuid": uuid,
        }))
        .target(message_id);
        let body = self.call_json(&call).await?;
        field(&body, "/data", REPLY)
    }

    /// Edits a text or post message (at most 20 edits per message).
    pub async fn edit_message(
        &self,
        message_id: &str,
        msg: &OutgoingMessage,
    ) -> Result<MessageInfo, Error> {
        let call = Call::new(
            Method::PUT,
            EDIT,
            format!("/im/v1/messages/{}", seg(message_id)),
        )
        .json(json!({"msg_type": msg.msg_type, "content": msg.content}))
        .target(message_id);
        let body = self.call_json(&call).await?;
        field(&body, "/data", EDIT)
    }

    /// Replaces the card of an interactive message (5 QPS per message).
    pub async fn patch_card(&self, message_id: &str, card_json: &str) -> Result<(), Error> {
        let call = Call::new(
            Method::PATCH,
            PATCH,
            format!("/im/v1/messages/{}", seg(message_id)),
        )
        .json(json!({ "content": card_json }))
        .target(message_id);
        self.call_json(&call).await.map(drop)
    }

    /// Recalls a message.
    pub async fn recall_message(&self, message_id: &str) -> Result<(), Error> {
        let call = Call::new(
            Method::DELETE,
            RECALL,
            format!("/im/v1/messages/{}", seg(message_id)),
        )
        .target(message_id);
        self.call_json(&call).await.map(drop)
    }

    /// Reads a message; for `merge_forward` the parent comes first, then every
    /// descendant (with `upper_message_id`).
    pub async fn get_message(&self, message_id: &str) -> Result<Vec<MessageInfo>, Error> {
        let call = Call::new(
            Method::GET,
            GET,
            format!("/im/v1/messages/{}", seg(message_id)),
        );
        let body = self.call_json(&call).await?;
        let items: Option<Vec<MessageInfo>> = field(&body, "/data/items", GET)?;
        Ok(items.unwrap_or_default())
    }

    /// Adds an emoji reaction (`SMILE`, `Typing`, …); returns the reaction id.
    pub async fn add_reaction(&self, message_id: &str, emoji_type: &str) -> Result<String, Error> {
        let call = Call::new(
            Method::POST,
            REACT,
            format!("/im/v1/messages/{}/reactions", seg(message_id)),
        )
        .json(json!({"reaction_type": {"emoji_type": emoji_type}}))
        .target(message_id);
        let body = self.call_json(&call).await?;
        field(&body, "/data/reaction_id", REACT)
    }

    /// Removes a reaction this app added.
    pub async fn delete_reaction(&self, message_id: &str, reaction_id: &str) -> Result<(), Error> {
        let call = Call::new(
            Method::DELETE,
            UNREACT,
            format!(
                "/im/v1/messages/{}/reactions/{}",
                seg(message_id),
                seg(reaction_id)
            ),
        )
        .target(message_id);
        self.call_json(&call).await.map(drop)
    }

    /// Uploads an image for sending (`image_type=message`, ≤ 10 MB); returns
    /// the `image_key`.
    pub async fn upload_image(&self, bytes: Vec<u8>, file_name: &str) -> Result<String, Error> {
        let call = Call::new(Method::POST, IMAGE, "/im/v1/images".into()).multipart(vec![
            FormField::Text("image_type", "message".into()),
            FormField::File {
                name: "image",
                file_name: file_name.to_string(),
                bytes: Bytes::from(bytes),
            },
        ]);
        let body = self.call_json(&call).await?;
        field(&body, "/data/image_key", IMAGE)
    }

    /// Uploads a file (≤ 30 MB). `file_type` is `opus`, `mp4`, `pdf`, `doc`,
    /// `xls`, `ppt` or `stream`; `duration_ms` is shown for audio and video.
    /// Returns the `file_key`.
    pub async fn upload_file(
        &self,
        file_type: &str,
        file_name: &str,
        bytes: Vec<u8>,
        duration_ms: Option<u64>,
    ) -> Result<String, Error> {
        let mut fields = vec![
            FormField::Text("file_type", file_type.to_string()),
            FormField::Text("file_name", file_name.to_string()),
        ];
        if let Some(ms) = duration_ms {
            fields.push(FormField::Text("duration", ms.to_string()));
        }
        fields.push(FormField::File {
            name: "file",
            file_name: file_name.to_string(),
            bytes: Bytes::from(bytes),
        });
        let call = Call::new(Method::POST, FILE, "/im/v1/files".into()).multipart(fields);
        let body = self.call_json(&call).await?;
        field(&body, "/data/file_key", FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_id_inference() {
        assert_eq!(ReceiveIdType::infer("oc_1"), ReceiveIdType::ChatId);
        assert_eq!(ReceiveIdType::infer("ou_1"), ReceiveIdType::OpenId);
        assert_eq!(ReceiveIdType::infer("on_1"), ReceiveIdType::UnionId);
        assert_eq!(ReceiveIdType::infer("a@b.c"), ReceiveIdType::Email);
        assert_eq!(ReceiveIdType::infer("e33ggbyz"), ReceiveIdType::UserId);
        assert_eq!(ReceiveIdType::ChatId.as_str(), "chat_id");
    }

    #[test]
    fn content_helpers_double_encode() {
        let m = OutgoingMessage::text("hi \"there\"\n");
        assert_eq!(m.msg_type, "text");
        let v: Value = serde_json::from_str(&m.content).unwrap();
        assert_eq!(v["text"], "hi \"there\"\n");
        let p: Value =
            serde_json::from_str(&OutgoingMessage::post_markdown("**b**").content).unwrap();
        assert_eq!(p["zh_cn"]["content"][0][0]["tag"], "md");
        assert_eq!(p["zh_cn"]["content"][0][0]["text"], "**b**");
        let c: Value = serde_json::from_str(&OutgoingMessage::card_entity("7355").content).unwrap();
        assert_eq!(c, json!({"type":"card","data":{"card_id":"7355"}}));
        assert_eq!(OutgoingMessage::card_entity("1").msg_type, "interactive");
        assert_eq!(
            OutgoingMessage::image("img_1").content,
            r#"{"image_key":"img_1"}"#
        );
    }

    #[test]
    fn message_object_parses_with_missing_fields() {
        let v = json!({
            "message_id": "om_1", "root_id": "", "msg_type": "text", "chat_id": "oc_1",
            "sender": {"id": "cli_1", "id_type": "app_id", "sender_type": "app"},
            "body": {"content": "{\"text\":\"hi\"}"},
            "mentions": [{"key": "@_user_1", "id": "ou_1", "id_type": "open_id", "name": "Tom"}]
        });
        let m: MessageInfo = serde_json::from_value(v).unwrap();
        assert_eq!(m.root_id, None);
        assert_eq!(m.sender_type, "app");
        assert_eq!(m.content, "{\"text\":\"hi\"}");
        assert_eq!(m.mentions[0].name, "Tom");
        let empty: MessageInfo = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, MessageInfo::default());
    }
}
