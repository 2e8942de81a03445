//! Chat commands: `/new`, `/stop` (and the plain words "stop" / "停止"),
//! `/help`, `/status`. Matched case-insensitively on the message text after
//! the bot's mention was stripped.

/// A command a user can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start a fresh session (`/new`, `/reset`, `/clear`).
    New,
    /// Stop the running reply at once (`/stop`, `stop`, `停止`).
    Stop,
    /// List the commands (`/help`).
    Help,
    /// Agent, session and queue (`/status`).
    Status,
}

/// The command `text` is, if any.
pub fn parse_command(text: &str) -> Option<Command> {
    let t = text.trim().trim_end_matches(['.', '!', '。', '！']);
    let lower = t.to_lowercase();
    match lower.as_str() {
        "/new" | "/reset" | "/clear" => Some(Command::New),
        "/stop" | "stop" | "停止" | "/停止" => Some(Command::Stop),
        "/help" | "/?" => Some(Command::Help),
        "/status" => Some(Command::Status),
        _ => None,
    }
}

/// The `/help` text.
pub fn help_text() -> &'static str {
    "Commands:\n\
     /new — start a fresh conversation (forget the history)\n\
     /stop — stop the reply being written (also: stop, 停止)\n\
     /status — which agent answers, this session, and what is queued\n\
     /help — this list"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_case_insensitive_and_tolerate_punctuation() {
        assert_eq!(parse_command(" /NEW "), Some(Command::New));
        assert_eq!(parse_command("/reset"), Some(Command::New));
        assert_eq!(parse_command("Stop!"), Some(Command::Stop));
        assert_eq!(parse_command("停止"), Some(Command::Stop));
        assert_eq!(parse_command("/Help"), Some(Command::Help));
        assert_eq!(parse_command("/status"), Some(Command::Status));
        assert_eq!(parse_command("please stop the car"), None);
        assert_eq!(parse_command("/newer"), None);
    }
}
