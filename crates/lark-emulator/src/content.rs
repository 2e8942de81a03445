//! Message content: validation of what bots send (per `msg_type`, size
//! limits, card rules) and rendering to the plain text a user sees.

use serde_json::Value;

use crate::error::ApiError;
use crate::state::{ResourceKind, State};

/// Text messages: 150 KB.
pub const TEXT_LIMIT: usize = 150 * 1024;
/// Post and card messages: 30 KB.
pub const RICH_LIMIT: usize = 30 * 1024;
/// Markdown tables one card may hold (the platform's empirical limit).
pub const MAX_TABLES: usize = 3;

fn invalid_content(why: &str) -> ApiError {
    ApiError::invalid(format!("invalid message content: {why}"))
}

/// The size limit of a content string for `msg_type`.
pub fn size_limit(msg_type: &str) -> usize {
    match msg_type {
        "post" | "interactive" => RICH_LIMIT,
        _ => TEXT_LIMIT,
    }
}

/// 230025 when `content` is over the limit of `msg_type`.
pub fn check_size(msg_type: &str, content: &str) -> Result<(), ApiError> {
    if content.len() > size_limit(msg_type) {
        return Err(ApiError::bad(
            230025,
            format!(
                "The message content is too long: {} bytes, limit {} bytes for {msg_type}",
                content.len(),
                size_limit(msg_type)
            ),
        ));
    }
    Ok(())
}

/// Validates content a bot sends; returns the card entity id when the
/// content references one.
pub fn check_send(
    st: &State,
    app_id: &str,
    msg_type: &str,
    content: &str,
) -> Result<Option<String>, ApiError> {
    check_size(msg_type, content)?;
    let value: Value = serde_json::from_str(content)
        .map_err(|_| invalid_content("content must be a JSON string"))?;
    if !value.is_object() {
        return Err(invalid_content("content must encode a JSON object"));
    }
    let str_field = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let resource = |key: &str, kind: ResourceKind| -> Result<(), ApiError> {
        let k = str_field(key).ok_or_else(|| invalid_content(&format!("{key} is required")))?;
        match st.resources.get(k) {
            Some(r) if r.kind == kind => match &r.owner_app {
                Some(owner) if owner != app_id => Err(ApiError::bad(
                    230017,
                    "The bot is not the owner of the resource.",
                )),
                _ => Ok(()),
            },
            _ => Err(invalid_content(&format!("{key} {k} does not exist"))),
        }
    };
    match msg_type {
        "text" => {
            str_field("text").ok_or_else(|| invalid_content("text is required"))?;
        }
        "post" => check_post(&value)?,
        "image" => resource("image_key", ResourceKind::Image)?,
        "file" | "audio" => resource("file_key", ResourceKind::File)?,
        "media" => {
            resource("file_key", ResourceKind::File)?;
            if value.get("image_key").is_some() {
                resource("image_key", ResourceKind::Image)?;
            }
        }
        "sticker" => {
            str_field("file_key").ok_or_else(|| invalid_content("file_key is required"))?;
        }
        "share_chat" => {
            let chat =
                str_field("chat_id").ok_or_else(|| invalid_content("chat_id is required"))?;
            if !st.chats.contains_key(chat) {
                return Err(invalid_content("chat_id does not exist"));
            }
        }
        "share_user" => {
            str_field("user_id").ok_or_else(|| invalid_content("user_id is required"))?;
        }
        "system" => {}
        "interactive" => return check_card_message(st, app_id, &value),
        other => return Err(ApiError::invalid(format!("unsupported msg_type {other:?}"))),
    }
    Ok(None)
}

/// The body of a post: the first locale (`zh_cn`, `en_us`, …) or the
/// unwrapped `{title, content}` (receive shape).
pub fn post_body(value: &Value) -> Option<&Value> {
    if value.get("content").is_some_and(Value::is_array) {
        return Some(value);
    }
    let obj = value.as_object()?;
    ["zh_cn", "en_us", "ja_jp"]
        .iter()
        .find_map(|k| obj.get(*k))
        .or_else(|| obj.values().find(|v| v.is_object()))
}

fn check_post(value: &Value) -> Result<(), ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid_content("post must be an object"))?;
    if obj.is_empty() {
        return Err(invalid_content("post needs a locale such as zh_cn"));
    }
    for (locale, body) in obj {
        let paragraphs = body
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                invalid_content(&format!("post locale {locale} needs a content array"))
            })?;
        for paragraph in paragraphs {
            let nodes = paragraph
                .as_array()
                .ok_or_else(|| invalid_content("post paragraphs must be arrays"))?;
            if nodes
                .iter()
                .any(|n| n.get("tag").and_then(Value::as_str).is_none())
            {
                return Err(invalid_content("every post node needs a tag"));
            }
        }
    }
    Ok(())
}

fn check_card_message(st: &State, app_id: &str, value: &Value) -> Result<Option<String>, ApiError> {
    match value.get("type").and_then(Value::as_str) {
        Some("card") => {
            let card_id = value
                .pointer("/data/card_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_content("data.card_id is required"))?;
            let entity = st
                .cards
                .get(card_id)
                .ok_or_else(|| ApiError::card_failed(200740, "card entity not found"))?;
            if entity.app_id != app_id {
                return Err(ApiError::card_failed(
                    300311,
                    "no permission on this card entity",
                ));
            }
            if entity.message_id.is_some() {
                return Err(ApiError::card_failed(
                    11316,
                    "card entity has already been sent",
                ));
            }
            check_tables(&entity.card)?;
            Ok(Some(card_id.to_string()))
        }
        Some("template") => {
            value
                .pointer("/data/template_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_content("data.template_id is required"))?;
            Ok(None)
        }
        _ => {
            check_tables(value)?;
            Ok(None)
        }
    }
}

/// 230099 / ErrCode 11310 when a card holds more than [`MAX_TABLES`] tables.
pub fn check_tables(card: &Value) -> Result<(), ApiError> {
    let n = count_tables(card);
    if n > MAX_TABLES {
        return Err(ApiError::card_failed(
            11310,
            &format!("element exceeds the limit; ErrorValue: table count {n} > {MAX_TABLES}"),
        ));
    }
    Ok(())
}

/// Tables in a card: `table` components plus markdown tables.
pub fn count_tables(card: &Value) -> usize {
    match card {
        Value::Object(map) => {
            let own = match map.get("tag").and_then(Value::as_str) {
                Some("table") => 1,
                Some("markdown") | Some("lark_md") => map
                    .get("content")
                    .and_then(Value::as_str)
                    .map_or(0, count_markdown_tables),
                _ => 0,
            };
            own + map.values().map(count_tables).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_tables).sum(),
        _ => 0,
    }
}

fn is_table_separator(line: &str) -> bool {
    let t = line.trim();
    t.contains('|')
        && t.matches('-').count() >= 3
        && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
}

/// Markdown tables: a header row followed by a `|---|` separator row.
pub fn count_markdown_tables(markdown: &str) -> usize {
    let lines: Vec<&str> = markdown.lines().collect();
    (1..lines.len())
        .filter(|&i| is_table_separator(lines[i]) && lines[i - 1].contains('|'))
        .count()
}

/// Replaces `<at user_id="X">Name</at>` (and `<at id=X></at>`) by `@Name`.
pub fn render_at_tags(text: &str, name_of: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<at ") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (Some(open_end), Some(close)) = (after.find('>'), after.find("</at>")) else {
            out.push_str(after);
            return out;
        };
        if close < open_end {
            out.push_str(after);
            return out;
        }
        let attrs = &after[4..open_end];
        let inner = &after[open_end + 1..close];
        let id = attrs
            .split(|c: char| c == '"' || c == '=' || c.is_whitespace() || c == '\'')
            .filter(|s| !s.is_empty())
            .find(|s| !matches!(*s, "user_id" | "id" | "open_id" | "email"))
            .unwrap_or("");
        let name = if !inner.is_empty() {
            inner.to_string()
        } else if id == "all" {
            "all".to_string()
        } else {
            name_of(id)
        };
        out.push('@');
        out.push_str(&name);
        rest = &after[close + 5..];
    }
    out.push_str(rest);
    out
}

/// The text of a post body.
pub fn render_post(value: &Value, name_of: &dyn Fn(&str) -> String) -> String {
    let Some(body) = post_body(value) else {
        return String::new();
    };
    let mut lines = Vec::new();
    if let Some(title) = body
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        lines.push(title.to_string());
    }
    for paragraph in body
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut line = String::new();
        for node in paragraph.as_array().into_iter().flatten() {
            let s = |k: &str| node.get(k).and_then(Value::as_str).unwrap_or("");
            match s("tag") {
                "text" | "a" | "code_block" => line.push_str(s("text")),
                "md" => line.push_str(&render_at_tags(s("text"), name_of)),
                "at" => {
                    let name = match (s("user_name"), s("user_id")) {
                        ("", "all") => "all".to_string(),
                        ("", id) => name_of(id),
                        (name, _) => name.to_string(),
                    };
                    line.push('@');
                    line.push_str(&name);
                }
                "img" => line.push_str("[image]"),
                "media" => line.push_str("[video]"),
                "emotion" => line.push_str(&format!("[{}]", s("emoji_type"))),
                "hr" => line.push_str("---"),
                _ => {}
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// The visible text of a card (header title first, then the body).
pub fn render_card(card: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(header) = card.get("header") {
        collect_card_text(header, &mut parts);
    }
    for key in ["body", "elements"] {
        if let Some(v) = card.get(key) {
            collect_card_text(v, &mut parts);
        }
    }
    if let Some(title) = card.get("title").and_then(Value::as_str) {
        parts.insert(0, title.to_string());
    }
    parts.join("\n")
}

fn collect_card_text(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let tag = map.get("tag").and_then(Value::as_str).unwrap_or("");
            match tag {
                "markdown" | "lark_md" | "plain_text" => {
                    if let Some(c) = map.get("content").and_then(Value::as_str) {
                        out.push(c.to_string());
                    }
                }
                "text" | "a" => {
                    if let Some(c) = map.get("text").and_then(Value::as_str) {
                        out.push(c.to_string());
                    }
                }
                _ => {}
            }
            for (key, child) in map {
                if key.starts_with("i18n") || key == "config" {
                    continue;
                }
                if child.is_object() || child.is_array() {
                    collect_card_text(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_card_text(i, out)),
        _ => {}
    }
}

/// What a user sees for a message's content.
pub fn render(msg_type: &str, content: &str, name_of: &dyn Fn(&str) -> String) -> String {
    let value: Value = serde_json::from_str(content).unwrap_or(Value::Null);
    let s = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match msg_type {
        "text" => render_at_tags(&s("text"), name_of),
        "post" => render_post(&value, name_of),
        "interactive" => render_card(&value),
        "image" => "[image]".to_string(),
        "file" => format!("[file: {}]", s("file_name")),
        "audio" => "[audio]".to_string(),
        "media" => format!("[video: {}]", s("file_name")),
        "sticker" => "[sticker]".to_string(),
        "merge_forward" => "[merged forward]".to_string(),
        "share_chat" => format!("[chat: {}]", s("chat_id")),
        "share_user" => format!("[user: {}]", s("user_id")),
        "location" => format!("[location: {}]", s("name")),
        other => format!("[{other}]"),
    }
}

/// Resource keys a message's content references: `(key, kind)`.
pub fn resource_keys(msg_type: &str, content: &str) -> Vec<(String, ResourceKind)> {
    let value: Value = serde_json::from_str(content).unwrap_or(Value::Null);
    let mut keys = Vec::new();
    let mut add = |v: &Value, key: &str, kind: ResourceKind| {
        if let Some(k) = v.get(key).and_then(Value::as_str) {
            keys.push((k.to_string(), kind));
        }
    };
    match msg_type {
        "image" => add(&value, "image_key", ResourceKind::Image),
        "file" | "audio" | "sticker" => add(&value, "file_key", ResourceKind::File),
        "media" => {
            add(&value, "file_key", ResourceKind::File);
            add(&value, "image_key", ResourceKind::Image);
        }
        "post" => {
            if let Some(body) = post_body(&value) {
                for node in body
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_array)
                    .flatten()
                {
                    add(node, "image_key", ResourceKind::Image);
                    add(node, "file_key", ResourceKind::File);
                }
            }
        }
        _ => {}
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn at_tags_render_as_names() {
        let name_of = |id: &str| format!("N{id}");
        assert_eq!(
            render_at_tags(
                r#"hi <at user_id="ou_1">Tom</at> and <at user_id="ou_2"></at>!"#,
                &name_of
            ),
            "hi @Tom and @Nou_2!"
        );
        assert_eq!(render_at_tags("<at id=all></at> x", &name_of), "@all x");
    }

    #[test]
    fn tables_are_counted_in_markdown_and_components() {
        let md = "| a | b |\n|---|---|\n| 1 | 2 |\n\ntext\n\n|x|\n|:---:|\n";
        assert_eq!(count_markdown_tables(md), 2);
        let card = json!({"body": {"elements": [
            {"tag": "markdown", "content": md},
            {"tag": "table", "columns": []}
        ]}});
        assert_eq!(count_tables(&card), 3);
        assert!(check_tables(&card).is_ok());
        let more =
            json!({"body": {"elements": [card["body"]["elements"].clone(), {"tag": "table"}]}});
        assert_eq!(check_tables(&more).unwrap_err().code, 230099);
    }

    #[test]
    fn card_text_header_first() {
        let card = json!({"schema": "2.0",
            "header": {"title": {"tag": "plain_text", "content": "T"}},
            "body": {"elements": [{"tag": "markdown", "content": "**hi**"},
                {"tag": "button", "text": {"tag": "plain_text", "content": "OK"}}]}});
        assert_eq!(render_card(&card), "T\n**hi**\nOK");
    }

    #[test]
    fn post_renders_paragraphs() {
        let post = json!({"zh_cn": {"title": "Title", "content": [
            [{"tag": "text", "text": "a "}, {"tag": "at", "user_id": "ou_1", "user_name": "Tom"}],
            [{"tag": "md", "text": "**b**"}]]}});
        assert_eq!(
            render_post(&post, &|s| s.to_string()),
            "Title\na @Tom\n**b**"
        );
    }
}
