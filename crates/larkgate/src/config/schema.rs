//! The keys each table of the file accepts and what they hold. Parsing
//! checks files against these lists; `config set` uses them to type values.

use super::model::{DmPolicy, GroupPolicy, LogFormat, Mode, ReplyMode, SessionScope};
use super::table::{Keys, Kind};

/// `mode`.
pub(crate) const MODES: &[(&str, Mode)] =
    &[("websocket", Mode::Websocket), ("webhook", Mode::Webhook)];
/// `dmPolicy`.
pub(crate) const DM_POLICIES: &[(&str, DmPolicy)] = &[
    ("open", DmPolicy::Open),
    ("allowlist", DmPolicy::Allowlist),
    ("pairing", DmPolicy::Pairing),
    ("disabled", DmPolicy::Disabled),
];
/// `groupPolicy`.
pub(crate) const GROUP_POLICIES: &[(&str, GroupPolicy)] = &[
    ("open", GroupPolicy::Open),
    ("allowlist", GroupPolicy::Allowlist),
    ("disabled", GroupPolicy::Disabled),
];
/// `sessionScope`: ours first, then the peers' spellings.
pub(crate) const SESSION_SCOPES: &[(&str, SessionScope)] = &[
    ("chat", SessionScope::Chat),
    ("sender", SessionScope::Sender),
    ("topic", SessionScope::Topic),
    ("topic_sender", SessionScope::TopicSender),
    ("group", SessionScope::Chat),
    ("group_sender", SessionScope::Sender),
    ("group_topic", SessionScope::Topic),
    ("group_topic_sender", SessionScope::TopicSender),
];
/// `replyMode`.
pub(crate) const REPLY_MODES: &[(&str, ReplyMode)] = &[
    ("streaming", ReplyMode::Streaming),
    ("block", ReplyMode::Block),
    ("static", ReplyMode::Static),
    ("auto", ReplyMode::Auto),
];
/// `log.format`.
pub(crate) const LOG_FORMATS: &[(&str, LogFormat)] =
    &[("text", LogFormat::Text), ("json", LogFormat::Json)];

/// The names of a choice list.
const fn names<const N: usize, T: Copy>(list: &[(&'static str, T)]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = list[i].0;
        i += 1;
    }
    out
}

/// Names shown in messages (aliases left out).
pub(crate) const MODE_NAMES: &[&str] = &names::<2, Mode>(MODES);
/// See [`DM_POLICIES`].
pub(crate) const DM_POLICY_NAMES: &[&str] = &names::<4, DmPolicy>(DM_POLICIES);
/// See [`GROUP_POLICIES`].
pub(crate) const GROUP_POLICY_NAMES: &[&str] = &names::<3, GroupPolicy>(GROUP_POLICIES);
/// See [`SESSION_SCOPES`]; the first four, without the peers' aliases.
pub(crate) const SESSION_SCOPE_NAMES: &[&str] = &names::<4, SessionScope>(SESSION_SCOPES);
/// See [`REPLY_MODES`].
pub(crate) const REPLY_MODE_NAMES: &[&str] = &names::<4, ReplyMode>(REPLY_MODES);
/// See [`LOG_FORMATS`].
pub(crate) const LOG_FORMAT_NAMES: &[&str] = &names::<2, LogFormat>(LOG_FORMATS);

/// The file's top level.
pub(crate) const TOP_KEYS: Keys = &[
    ("channels", Kind::Table),
    ("agents", Kind::Table),
    ("store", Kind::Table),
    ("admin", Kind::Table),
    ("webhook", Kind::Table),
    ("log", Kind::Table),
];

/// `channels`.
pub(crate) const CHANNEL_KEYS: Keys = &[("lark", Kind::Table), ("feishu", Kind::Table)];

/// An account: `channels.lark` itself and each `channels.lark.accounts.<name>`.
pub(crate) const ACCOUNT_KEYS: Keys = &[
    ("enabled", Kind::Bool),
    ("appId", Kind::Str),
    ("appSecret", Kind::Secret),
    ("appIdFile", Kind::Str),
    ("appSecretFile", Kind::Str),
    ("name", Kind::Str),
    ("domain", Kind::Str),
    ("mode", Kind::Choice(MODE_NAMES)),
    ("encryptKey", Kind::Secret),
    ("verificationToken", Kind::Secret),
    ("webhookPath", Kind::Str),
    ("dmPolicy", Kind::Choice(DM_POLICY_NAMES)),
    ("allowFrom", Kind::List),
    ("groupPolicy", Kind::Choice(GROUP_POLICY_NAMES)),
    ("groupAllowFrom", Kind::List),
    ("groups", Kind::Table),
    ("requireMention", Kind::Bool),
    ("mentionAll", Kind::Bool),
    ("allowBots", Kind::Bool),
    ("sessionScope", Kind::Choice(SESSION_SCOPE_NAMES)),
    ("agent", Kind::Str),
    ("systemPrompt", Kind::Str),
    ("replyMode", Kind::Choice(REPLY_MODE_NAMES)),
    ("replyInThread", Kind::Bool),
    ("typingIndicator", Kind::Bool),
    ("typingEmoji", Kind::Str),
    ("typingDelayMs", Kind::Uint),
    ("historyLimit", Kind::Uint),
    ("queueLimit", Kind::Uint),
    ("staleAfterSecs", Kind::Uint),
    ("streamIntervalMs", Kind::Uint),
    ("mediaMaxBytes", Kind::Uint),
    ("proxy", Kind::Str),
];

/// Only at `channels.lark` (not inside an account).
pub(crate) const TOP_ACCOUNT_EXTRA_KEYS: Keys = &[("accounts", Kind::Table)];

/// `groups."<chat_id>"`.
pub(crate) const GROUP_KEYS: Keys = &[
    ("enabled", Kind::Bool),
    ("requireMention", Kind::Bool),
    ("systemPrompt", Kind::Str),
    ("allowFrom", Kind::List),
    ("replyInThread", Kind::Bool),
    ("sessionScope", Kind::Choice(SESSION_SCOPE_NAMES)),
    ("agent", Kind::Str),
    ("replyMode", Kind::Choice(REPLY_MODE_NAMES)),
];

/// `store`.
pub(crate) const STORE_KEYS: Keys = &[("url", Kind::Str)];

/// `admin`.
pub(crate) const ADMIN_KEYS: Keys = &[
    ("enabled", Kind::Bool),
    ("listen", Kind::Str),
    ("token", Kind::Secret),
];

/// `webhook`.
pub(crate) const WEBHOOK_KEYS: Keys = &[("listen", Kind::Str), ("maxBodyBytes", Kind::Uint)];

/// `log`.
pub(crate) const LOG_KEYS: Keys = &[
    ("format", Kind::Choice(LOG_FORMAT_NAMES)),
    ("level", Kind::Str),
    ("dir", Kind::Str),
];

fn lookup(keys: Keys, name: &str) -> Option<Kind> {
    keys.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// What the key at `path` (split into segments) holds, when the schema
/// knows it. `agents.<name>.*` is not described here (the agent contract
/// owns it), so it returns `None`.
pub(crate) fn kind_of(path: &[&str]) -> Option<Kind> {
    match path {
        [] => None,
        [section] => lookup(TOP_KEYS, section),
        ["channels", channel] => lookup(CHANNEL_KEYS, channel),
        ["channels", "lark" | "feishu", rest @ ..] => account_kind(rest, true),
        ["store", key] => lookup(STORE_KEYS, key),
        ["admin", key] => lookup(ADMIN_KEYS, key),
        ["webhook", key] => lookup(WEBHOOK_KEYS, key),
        ["log", key] => lookup(LOG_KEYS, key),
        ["agents", _] => Some(Kind::Table),
        _ => None,
    }
}

fn account_kind(path: &[&str], top: bool) -> Option<Kind> {
    match path {
        ["accounts"] if top => Some(Kind::Table),
        ["accounts", _] if top => Some(Kind::Table),
        ["accounts", _, rest @ ..] if top => account_kind(rest, false),
        ["groups", _] => Some(Kind::Table),
        ["groups", _, key] => lookup(GROUP_KEYS, key),
        [key] => lookup(ACCOUNT_KEYS, key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_path() {
        assert_eq!(
            kind_of(&["channels", "lark", "requireMention"]),
            Some(Kind::Bool)
        );
        assert_eq!(
            kind_of(&["channels", "feishu", "accounts", "b", "historyLimit"]),
            Some(Kind::Uint)
        );
        assert_eq!(
            kind_of(&[
                "channels",
                "lark",
                "accounts",
                "b",
                "groups",
                "oc_1",
                "allowFrom"
            ]),
            Some(Kind::List)
        );
        assert_eq!(
            kind_of(&["channels", "lark", "accounts", "b", "accounts"]),
            None
        );
        assert_eq!(kind_of(&["admin", "token"]), Some(Kind::Secret));
        assert_eq!(kind_of(&["agents", "gpt", "model"]), None);
        assert_eq!(
            SESSION_SCOPE_NAMES,
            ["chat", "sender", "topic", "topic_sender"]
        );
    }
}
