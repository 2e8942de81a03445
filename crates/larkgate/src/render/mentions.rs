//! Turning `@Name` of known chat members into real mentions.

use std::borrow::Cow;

use super::blocks::{code_spans, map_prose_lines};

/// Known chat members by display name, for rewriting `@Name` into a mention.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MentionMap {
    /// `(name, open_id)`, longest name first so `@Ann Lee` wins over `@Ann`.
    entries: Vec<(String, String)>,
}

impl MentionMap {
    /// An empty map.
    pub fn new() -> MentionMap {
        MentionMap::default()
    }

    /// Adds a member; a later entry with the same name replaces the earlier one.
    /// Blank names and names starting with whitespace are ignored.
    pub fn insert(&mut self, name: impl Into<String>, open_id: impl Into<String>) {
        let name = name.into();
        if name.trim().is_empty() || name.starts_with(char::is_whitespace) {
            return;
        }
        self.entries.retain(|(n, _)| *n != name);
        self.entries.push((name, open_id.into()));
        self.entries
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }

    /// Whether no member is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The member `text` starts with, as `(name, open_id, bytes matched)`. Names match
    /// ASCII case-insensitively and must not run into a following letter or digit
    /// (`@Bob` is not in `@Bobby`); CJK names may be followed by text directly.
    fn match_at(&self, text: &str) -> Option<(&str, &str, usize)> {
        self.entries.iter().find_map(|(name, open_id)| {
            let head = text.get(..name.len())?;
            if !head.eq_ignore_ascii_case(name) {
                return None;
            }
            let last = name.chars().next_back()?;
            let next = text[name.len()..].chars().next();
            let runs_on = |c: char| c.is_ascii_alphanumeric() || c == '_';
            if runs_on(last) && next.is_some_and(runs_on) {
                return None;
            }
            Some((name.as_str(), open_id.as_str(), name.len()))
        })
    }
}

impl<N: Into<String>, I: Into<String>> FromIterator<(N, I)> for MentionMap {
    fn from_iter<T: IntoIterator<Item = (N, I)>>(iter: T) -> MentionMap {
        let mut map = MentionMap::new();
        for (name, open_id) in iter {
            map.insert(name, open_id);
        }
        map
    }
}

/// Card mentions (`<at id=ou_x></at>`) written back as `@Name` (or `@` for an
/// unknown id), for a plain-text preview.
pub(crate) fn card_mentions_as_names<'a>(text: &'a str, map: &MentionMap) -> Cow<'a, str> {
    const OPEN: &str = "<at id=";
    const CLOSE: &str = "></at>";
    if !text.contains(OPEN) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        match after.find(CLOSE) {
            Some(end) if !after[..end].contains(['<', '>']) => {
                let id = &after[..end];
                out.push('@');
                if let Some((name, _)) = map.entries.iter().find(|(_, o)| o == id) {
                    out.push_str(name);
                }
                rest = &after[end + CLOSE.len()..];
            }
            _ => {
                out.push_str(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// How a mention is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MentionStyle {
    /// Card markdown: `<at id=ou_x></at>`.
    Card,
    /// Text messages and post `md` nodes: `<at user_id="ou_x">Name</at>`.
    UserId,
}

/// Whether an `@` after `prev` can start a mention (not in an email, URL or word).
fn can_start_after(prev: Option<char>) -> bool {
    match prev {
        None => true,
        Some(c) if c.is_whitespace() => true,
        Some(c) if c.is_ascii_alphanumeric() => false,
        Some(c) => !matches!(
            c,
            '_' | '.' | '/' | '@' | '-' | '+' | '=' | '\\' | '&' | '%' | '#' | '?' | '~'
        ),
    }
}

/// Rewrites `@Name` of members in `map` into mentions, outside code and outside
/// existing `<at …>…</at>` tags.
pub(crate) fn rewrite_mentions<'a>(
    md: &'a str,
    map: &MentionMap,
    style: MentionStyle,
) -> Cow<'a, str> {
    if map.is_empty() || !md.contains('@') {
        return Cow::Borrowed(md);
    }
    map_prose_lines(md, |line| {
        if !line.contains('@') {
            return Cow::Borrowed(line);
        }
        let mut out = String::with_capacity(line.len() + 32);
        let mut in_tag = false;
        for (code, seg) in code_spans(line) {
            if code {
                out.push_str(seg);
            } else {
                in_tag = rewrite_segment(seg, map, style, in_tag, &mut out);
            }
        }
        Cow::Owned(out)
    })
}

/// Rewrites one prose segment; `in_tag` says whether it starts inside `<at>…</at>`.
/// Returns whether it ends inside one.
fn rewrite_segment(
    seg: &str,
    map: &MentionMap,
    style: MentionStyle,
    mut in_tag: bool,
    out: &mut String,
) -> bool {
    let mut prev: Option<char> = out.chars().next_back();
    let mut i = 0;
    while i < seg.len() {
        let rest = &seg[i..];
        if in_tag {
            if let Some(end) = rest.find("</at>") {
                out.push_str(&rest[..end + 5]);
                i += end + 5;
                prev = Some('>');
                in_tag = false;
                continue;
            }
            out.push_str(rest);
            return true;
        }
        if rest.starts_with("<at ") || rest.starts_with("<at>") {
            in_tag = true;
            out.push_str("<at");
            i += 3;
            prev = Some('t');
            continue;
        }
        let c = rest.chars().next().unwrap_or('\0');
        if c == '@' && can_start_after(prev) {
            if let Some((name, open_id, used)) = map.match_at(&rest[1..]) {
                push_mention(out, name, open_id, style);
                i += 1 + used;
                prev = name.chars().next_back();
                continue;
            }
        }
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    in_tag
}

fn push_mention(out: &mut String, name: &str, open_id: &str, style: MentionStyle) {
    let open_id: String = open_id
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"' | '\'' | ' '))
        .collect();
    match style {
        MentionStyle::Card => {
            out.push_str("<at id=");
            out.push_str(&open_id);
            out.push_str("></at>");
        }
        MentionStyle::UserId => {
            out.push_str("<at user_id=\"");
            out.push_str(&open_id);
            out.push_str("\">");
            out.extend(name.chars().filter(|c| !matches!(c, '<' | '>')));
            out.push_str("</at>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> MentionMap {
        [
            ("Bob", "ou_b"),
            ("Bob Lee", "ou_bl"),
            ("张三", "ou_z"),
            ("Ann", "ou_a"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn card_and_user_id_forms() {
        assert_eq!(
            rewrite_mentions("hi @Bob, and @Ann!", &map(), MentionStyle::Card),
            "hi <at id=ou_b></at>, and <at id=ou_a></at>!"
        );
        assert_eq!(
            rewrite_mentions("hi @bob", &map(), MentionStyle::UserId),
            "hi <at user_id=\"ou_b\">Bob</at>"
        );
    }

    #[test]
    fn longest_name_wins_and_words_do_not_run_on() {
        assert_eq!(
            rewrite_mentions("@Bob Lee and @Bobby", &map(), MentionStyle::Card),
            "<at id=ou_bl></at> and @Bobby"
        );
        assert_eq!(
            rewrite_mentions("你好@张三请看", &map(), MentionStyle::Card),
            "你好<at id=ou_z></at>请看"
        );
    }

    #[test]
    fn not_in_code_emails_urls_or_tags() {
        let text = "mail bob@Bob.com, see https://x.io/@Bob `@Bob`\n```\n@Bob\n```\n<at user_id=\"ou_b\">@Bob</at> **@Ann**";
        assert_eq!(
            rewrite_mentions(text, &map(), MentionStyle::Card),
            "mail bob@Bob.com, see https://x.io/@Bob `@Bob`\n```\n@Bob\n```\n<at user_id=\"ou_b\">@Bob</at> **<at id=ou_a></at>**"
        );
    }

    #[test]
    fn card_mentions_read_back_as_names() {
        let card = rewrite_mentions("hi @Bob and @Ann", &map(), MentionStyle::Card);
        assert_eq!(card_mentions_as_names(&card, &map()), "hi @Bob and @Ann");
        assert_eq!(
            card_mentions_as_names("<at id=ou_zz></at> x <at id=", &map()),
            "@ x <at id="
        );
    }

    #[test]
    fn unknown_names_and_empty_maps_are_untouched() {
        assert_eq!(rewrite_mentions("@Zed", &map(), MentionStyle::Card), "@Zed");
        assert!(matches!(
            rewrite_mentions("@Bob", &MentionMap::new(), MentionStyle::Card),
            Cow::Borrowed(_)
        ));
        let mut m = MentionMap::new();
        m.insert(" ", "ou_x");
        m.insert("Bob", "ou_1");
        m.insert("Bob", "ou_2");
        assert_eq!(
            rewrite_mentions("@Bob", &m, MentionStyle::Card),
            "<at id=ou_2></at>"
        );
    }
}
