//! Identity and directory look-ups: the bot itself, a chat, a user.

use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::client::{seg, Call};
use crate::response::field;
use crate::{Client, Error};

/// The bot (from `GET /bot/v3/info`, payload under top-level `bot`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BotInfo {
    /// The bot's `open_id`, for mention detection.
    pub open_id: String,
    /// The app's name.
    pub app_name: String,
    /// 2 = enabled in the tenant; anything else needs the operator.
    pub activate_status: i64,
    /// The avatar URL.
    pub avatar_url: String,
}

/// A chat (from `GET /im/v1/chats/:chat_id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ChatInfo {
    /// Chat name.
    pub name: String,
    /// `group`, `topic` or `p2p`.
    pub chat_mode: String,
    /// `private` or `public`.
    pub chat_type: String,
    /// The owner's id.
    pub owner_id: String,
    /// Human members (the platform sends a string).
    #[serde(deserialize_with = "lenient_u64")]
    pub user_count: u64,
    /// Bot members (the platform sends a string).
    #[serde(deserialize_with = "lenient_u64")]
    pub bot_count: u64,
    /// Whether the chat crosses tenants.
    pub external: bool,
    /// Description.
    pub description: String,
}

/// A user (from `GET /contact/v3/users/:open_id`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `ou_…`.
    pub open_id: String,
    /// Display name.
    pub name: String,
    /// English name.
    pub en_name: String,
    /// Email, when the app may read it.
    pub email: String,
    /// An avatar URL (240 px when given, else the largest available).
    pub avatar_url: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawUser {
    open_id: String,
    name: String,
    en_name: String,
    email: String,
    avatar: RawAvatar,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawAvatar {
    avatar_72: String,
    avatar_240: String,
    avatar_640: String,
    avatar_origin: String,
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

const BOT: &str = "GET /bot/v3/info";
const CHAT: &str = "GET /im/v1/chats/:chat_id";
const USER: &str = "GET /contact/v3/users/:user_id";

impl Client {
    /// The bot's identity: the credential health check.
    pub async fn bot_info(&self) -> Result<BotInfo, Error> {
        let call = Call::new(Method::GET, BOT, "/bot/v3/info".into());
        let body = self.call_json(&call).await?;
        field(&body, "/bot", BOT)
    }

    /// A chat's name, mode and member counts (the bot must be in it).
    pub async fn chat_info(&self, chat_id: &str) -> Result<ChatInfo, Error> {
        let call = Call::new(Method::GET, CHAT, format!("/im/v1/chats/{}", seg(chat_id)));
        let body = self.call_json(&call).await?;
        field(&body, "/data", CHAT)
    }

    /// A user's names, email and avatar, by `open_id`.
    pub async fn user_info(&self, open_id: &str) -> Result<UserInfo, Error> {
        let call = Call::new(
            Method::GET,
            USER,
            format!("/contact/v3/users/{}", seg(open_id)),
        )
        .query("user_id_type", "open_id");
        let body = self.call_json(&call).await?;
        let raw: RawUser = field(&body, "/data/user", USER)?;
        let a = raw.avatar;
        let avatar_url = [a.avatar_240, a.avatar_640, a.avatar_origin, a.avatar_72]
            .into_iter()
            .find(|u| !u.is_empty())
            .unwrap_or_default();
        Ok(UserInfo {
            open_id: raw.open_id,
            name: raw.name,
            en_name: raw.en_name,
            email: raw.email,
            avatar_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_counts_accept_strings_and_numbers() {
        let c: ChatInfo = serde_json::from_value(json!({
            "name": "g", "chat_mode": "group", "user_count": "12", "bot_count": 2, "external": true
        }))
        .unwrap();
        assert_eq!((c.user_count, c.bot_count, c.external), (12, 2, true));
    }
}
