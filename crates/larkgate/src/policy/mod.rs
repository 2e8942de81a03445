//! Who may talk to the bot: DM and group policies, allowlists, mentions, pairing.
//!
//! [`decide`] is a pure function of the account's configuration, the facts
//! of one message and whether its sender was approved by pairing. The
//! pipeline acts on the [`Decision`]: answer, issue a pairing code, or stay
//! silent (denied senders are logged with their open_id so an operator can
//! allow them, and get no reply).

pub mod pairing;

use crate::config::{AccountConfig, DmPolicy, GroupPolicy};

/// The facts about one message that policy looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFacts<'a> {
    /// `true` for a 1:1 chat with the bot.
    pub p2p: bool,
    /// `oc_…`.
    pub chat_id: &'a str,
    /// The sender's `ou_…`.
    pub sender_open_id: &'a str,
    /// The sender is a bot or app, not a person.
    pub sender_is_bot: bool,
    /// The bot itself is @mentioned (by open_id).
    pub mentions_bot: bool,
    /// The message @mentions everyone.
    pub mention_all: bool,
}

/// Why a message gets no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `dmPolicy = disabled`.
    DmDisabled,
    /// The sender is not in `allowFrom`.
    NotInAllowFrom,
    /// `groupPolicy = disabled`.
    GroupsDisabled,
    /// The group is disabled by `groups."<chat_id>".enabled = false`.
    GroupDisabled,
    /// `groupPolicy = allowlist` and neither the group nor the sender is listed.
    GroupNotAllowed,
    /// The group's own `allowFrom` does not list the sender.
    SenderNotAllowedInGroup,
    /// A group message that does not mention the bot while a mention is required.
    NotMentioned,
    /// Sent by another bot while `allowBots` is off.
    FromBot,
}

impl Refusal {
    /// A short reason for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::DmDisabled => "dm_disabled",
            Refusal::NotInAllowFrom => "not_in_allow_from",
            Refusal::GroupsDisabled => "groups_disabled",
            Refusal::GroupDisabled => "group_disabled",
            Refusal::GroupNotAllowed => "group_not_allowed",
            Refusal::SenderNotAllowedInGroup => "sender_not_allowed_in_group",
            Refusal::NotMentioned => "not_mentioned",
            Refusal::FromBot => "from_bot",
        }
    }

    /// Whether the refusal concerns who the sender is (worth a log line
    /// naming the open_id), rather than the message not being addressed to
    /// the bot.
    pub fn is_access_denial(self) -> bool {
        !matches!(self, Refusal::NotMentioned | Refusal::FromBot)
    }
}

/// What to do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hand it to the agent.
    Allow,
    /// DM from an unknown sender under `dmPolicy = pairing`: reply with a pairing code.
    Pair,
    /// No answer.
    Refuse(Refusal),
}

/// Whether `list` admits `open_id` (`"*"` admits anyone).
pub fn listed(list: &[String], id: &str) -> bool {
    list.iter().any(|e| e == "*" || e == id)
}

/// Decides what to do with one message. `paired` says whether the sender
/// was approved through pairing for this account.
pub fn decide(account: &AccountConfig, msg: &MessageFacts<'_>, paired: bool) -> Decision {
    if msg.sender_is_bot && !account.allow_bots {
        return Decision::Refuse(Refusal::FromBot);
    }
    if msg.p2p {
        decide_dm(account, msg.sender_open_id, paired)
    } else {
        decide_group(account, msg)
    }
}

fn decide_dm(account: &AccountConfig, sender: &str, paired: bool) -> Decision {
    let allowed = listed(&account.allow_from, sender);
    match account.dm_policy {
        DmPolicy::Disabled => Decision::Refuse(Refusal::DmDisabled),
        DmPolicy::Open => Decision::Allow,
        DmPolicy::Allowlist if allowed => Decision::Allow,
        DmPolicy::Allowlist => Decision::Refuse(Refusal::NotInAllowFrom),
        DmPolicy::Pairing if allowed || paired => Decision::Allow,
        DmPolicy::Pairing => Decision::Pair,
    }
}

fn decide_group(account: &AccountConfig, msg: &MessageFacts<'_>) -> Decision {
    let group = account.group(msg.chat_id);
    if group.and_then(|g| g.enabled) == Some(false) {
        return Decision::Refuse(Refusal::GroupDisabled);
    }
    match account.group_policy {
        GroupPolicy::Disabled => return Decision::Refuse(Refusal::GroupsDisabled),
        GroupPolicy::Open => {}
        GroupPolicy::Allowlist => {
            // A group is admitted by being configured, or by being listed
            // (as an `oc_` id) in groupAllowFrom; a sender by being listed.
            let admitted = group.is_some()
                || listed(&account.group_allow_from, msg.chat_id)
                || listed(&account.group_allow_from, msg.sender_open_id);
            if !admitted {
                return Decision::Refuse(Refusal::GroupNotAllowed);
            }
        }
    }
    if let Some(list) = group.and_then(|g| g.allow_from.as_deref()) {
        if !listed(list, msg.sender_open_id) {
            return Decision::Refuse(Refusal::SenderNotAllowedInGroup);
        }
    }
    let require_mention = group
        .and_then(|g| g.require_mention)
        .unwrap_or(account.require_mention);
    let addressed = msg.mentions_bot || (msg.mention_all && account.mention_all);
    if require_mention && !addressed {
        return Decision::Refuse(Refusal::NotMentioned);
    }
    Decision::Allow
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::GroupConfig;
    use crate::secret::Secret;

    /// An account with the documented defaults, for tests across the crate.
    pub(crate) fn account() -> AccountConfig {
        AccountConfig::new("default", "cli_0123456789abcdef", Secret::new("s"))
    }

    fn dm(sender: &str) -> MessageFacts<'_> {
        MessageFacts {
            p2p: true,
            chat_id: "oc_dm",
            sender_open_id: sender,
            ..Default::default()
        }
    }

    fn group(chat: &'static str, sender: &'static str, mentioned: bool) -> MessageFacts<'static> {
        MessageFacts {
            p2p: false,
            chat_id: chat,
            sender_open_id: sender,
            mentions_bot: mentioned,
            ..Default::default()
        }
    }

    #[test]
    fn dm_policies() {
        let mut a = account();
        a.allow_from = vec!["ou_friend".into()];
        assert_eq!(decide(&a, &dm("ou_friend"), false), Decision::Allow);
        assert_eq!(decide(&a, &dm("ou_stranger"), false), Decision::Pair);
        assert_eq!(decide(&a, &dm("ou_stranger"), true), Decision::Allow);

        a.dm_policy = DmPolicy::Allowlist;
        assert_eq!(decide(&a, &dm("ou_friend"), false), Decision::Allow);
        assert_eq!(
            decide(&a, &dm("ou_stranger"), true),
            Decision::Refuse(Refusal::NotInAllowFrom)
        );
        a.allow_from = vec!["*".into()];
        assert_eq!(decide(&a, &dm("ou_stranger"), false), Decision::Allow);

        a.dm_policy = DmPolicy::Open;
        a.allow_from.clear();
        assert_eq!(decide(&a, &dm("ou_anyone"), false), Decision::Allow);

        a.dm_policy = DmPolicy::Disabled;
        a.allow_from = vec!["*".into()];
        assert_eq!(
            decide(&a, &dm("ou_friend"), true),
            Decision::Refuse(Refusal::DmDisabled)
        );
    }

    #[test]
    fn group_allowlist_by_group_by_sender_and_by_group_id() {
        let mut a = account();
        assert_eq!(
            decide(&a, &group("oc_g", "ou_a", true), false),
            Decision::Refuse(Refusal::GroupNotAllowed)
        );
        a.group_allow_from = vec!["ou_a".into()];
        assert_eq!(
            decide(&a, &group("oc_g", "ou_a", true), false),
            Decision::Allow
        );
        assert_eq!(
            decide(&a, &group("oc_g", "ou_b", true), false),
            Decision::Refuse(Refusal::GroupNotAllowed)
        );
        a.group_allow_from = vec!["oc_g".into()];
        assert_eq!(
            decide(&a, &group("oc_g", "ou_b", true), false),
            Decision::Allow
        );
        a.group_allow_from.clear();
        a.groups.insert("oc_g".into(), GroupConfig::default());
        assert_eq!(
            decide(&a, &group("oc_g", "ou_b", true), false),
            Decision::Allow
        );
    }

    #[test]
    fn group_open_disabled_and_per_group_overrides() {
        let mut a = account();
        a.group_policy = GroupPolicy::Open;
        assert_eq!(
            decide(&a, &group("oc_x", "ou_a", true), false),
            Decision::Allow
        );
        assert_eq!(
            decide(&a, &group("oc_x", "ou_a", false), false),
            Decision::Refuse(Refusal::NotMentioned)
        );
        a.groups.insert(
            "oc_quiet".into(),
            GroupConfig {
                require_mention: Some(false),
                allow_from: Some(vec!["ou_boss".into()]),
                ..Default::default()
            },
        );
        assert_eq!(
            decide(&a, &group("oc_quiet", "ou_boss", false), false),
            Decision::Allow
        );
        assert_eq!(
            decide(&a, &group("oc_quiet", "ou_a", false), false),
            Decision::Refuse(Refusal::SenderNotAllowedInGroup)
        );
        a.groups.insert(
            "oc_off".into(),
            GroupConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(
            decide(&a, &group("oc_off", "ou_a", true), false),
            Decision::Refuse(Refusal::GroupDisabled)
        );
        a.group_policy = GroupPolicy::Disabled;
        assert_eq!(
            decide(&a, &group("oc_x", "ou_a", true), false),
            Decision::Refuse(Refusal::GroupsDisabled)
        );
    }

    #[test]
    fn mention_all_counts_only_when_configured_and_bots_are_ignored() {
        let mut a = account();
        a.group_policy = GroupPolicy::Open;
        let all = MessageFacts {
            mention_all: true,
            ..group("oc_x", "ou_a", false)
        };
        assert_eq!(
            decide(&a, &all, false),
            Decision::Refuse(Refusal::NotMentioned)
        );
        a.mention_all = true;
        assert_eq!(decide(&a, &all, false), Decision::Allow);
        let bot = MessageFacts {
            sender_is_bot: true,
            ..group("oc_x", "ou_bot2", true)
        };
        assert_eq!(decide(&a, &bot, false), Decision::Refuse(Refusal::FromBot));
        a.allow_bots = true;
        assert_eq!(decide(&a, &bot, false), Decision::Allow);
    }
}
