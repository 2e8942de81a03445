//! Deciding whether text needs rich rendering, and the rewrites cards and posts need:
//! smaller headings, web images as links.

use std::borrow::Cow;

use super::blocks::{
    self, code_spans, fence_open, heading_level, is_blank, is_list_item, map_prose_lines,
};

/// Whether `md` uses markdown that a plain text message would show as raw syntax:
/// code (fenced or inline), headings, lists, quotes, tables, rules, images, or
/// bold/italic/strikethrough. Links alone do not count (text messages render them).
pub fn has_formatting(md: &str) -> bool {
    let lines = blocks::lines(md);
    lines.iter().enumerate().any(|(i, line)| {
        let text = line.text;
        fence_open(text).is_some()
            || heading_level(text).is_some_and(|_| !text.trim_start_matches('#').trim().is_empty())
            || is_list_item(text) && !text.trim().chars().all(|c| matches!(c, '-' | '*' | '+'))
            || text.trim_start().starts_with("> ")
            || is_rule(text)
            || blocks::is_table_start(&lines, i)
            || has_inline_formatting(text)
    })
}

/// `---`, `***` or `___` (3 or more, spaces allowed) alone on a line.
fn is_rule(line: &str) -> bool {
    let t: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    t.len() >= 3
        && (t.bytes().all(|b| b == b'-')
            || t.bytes().all(|b| b == b'*')
            || t.bytes().all(|b| b == b'_'))
}

fn has_inline_formatting(line: &str) -> bool {
    code_spans(line).iter().any(|(code, seg)| {
        *code
            || seg.contains("![")
            || paired(seg, "**")
            || paired(seg, "~~")
            || paired(seg, "__")
            || single_star_pair(seg)
    })
}

/// Whether `seg` has `delim`text`delim` with non-space next to both delimiters.
fn paired(seg: &str, delim: &str) -> bool {
    let mut rest = seg;
    while let Some(open) = rest.find(delim) {
        let after = &rest[open + delim.len()..];
        if after.starts_with(|c: char| !c.is_whitespace()) {
            if let Some(close) = after.find(delim) {
                if close > 0 && !after[..close].ends_with(char::is_whitespace) {
                    return true;
                }
            }
        }
        rest = after;
    }
    false
}

/// Whether `seg` has `*text*` (single stars, not part of `**`).
fn single_star_pair(seg: &str) -> bool {
    let bytes = seg.as_bytes();
    let single = |i: usize| {
        bytes[i] == b'*'
            && (i == 0 || bytes[i - 1] != b'*')
            && bytes.get(i + 1).is_none_or(|&b| b != b'*')
    };
    let mut open: Option<usize> = None;
    for i in 0..bytes.len() {
        if !single(i) {
            continue;
        }
        let next_solid = bytes.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace());
        let prev_solid = i > 0 && !bytes[i - 1].is_ascii_whitespace();
        match open {
            Some(o) if prev_solid && i > o + 1 => return true,
            _ if next_solid => open = Some(i),
            _ => {}
        }
    }
    false
}

/// Shrinks headings the way the official tooling does when a text has H1-H3
/// (they render oversized): `#` becomes `####`, `##`-`######` become `#####`.
pub(crate) fn demote_headings(md: &str) -> Cow<'_, str> {
    let mut fence = None;
    let has_large = md.split('\n').any(|line| match fence {
        Some(f) => {
            if blocks::fence_closes(&f, line) {
                fence = None;
            }
            false
        }
        None => {
            fence = fence_open(line);
            fence.is_none() && heading_level(line).is_some_and(|l| l <= 3)
        }
    });
    if !has_large {
        return Cow::Borrowed(md);
    }
    map_prose_lines(md, |line| match heading_level(line) {
        Some(level) => {
            let text = line
                .trim_start_matches(' ')
                .trim_start_matches('#')
                .trim_start();
            let marks = if level == 1 { "####" } else { "#####" };
            Cow::Owned(if text.is_empty() {
                marks.to_owned()
            } else {
                format!("{marks} {text}")
            })
        }
        None => Cow::Borrowed(line),
    })
}

/// Re-indents nested list items to four spaces per level, the nesting cards and
/// post `md` nodes recognise (agents often nest by two or three spaces).
pub(crate) fn normalize_list_indent(md: &str) -> Cow<'_, str> {
    let mut stack: Vec<usize> = Vec::new();
    map_prose_lines(md, |line| {
        if !is_list_item(line) {
            if !is_blank(line) && !blocks::is_indented(line) {
                stack.clear();
            }
            return Cow::Borrowed(line);
        }
        let rest = line.trim_start_matches(' ');
        let indent = line.len() - rest.len();
        if rest.starts_with('\t') {
            return Cow::Borrowed(line);
        }
        while stack.last().is_some_and(|&top| top > indent) {
            stack.pop();
        }
        if stack.last().is_none_or(|&top| top < indent) {
            stack.push(indent);
        }
        let level = stack.len() - 1;
        if indent == level * 4 {
            Cow::Borrowed(line)
        } else {
            Cow::Owned(format!("{}{rest}", " ".repeat(level * 4)))
        }
    })
}

/// Turns `![alt](https://…)` into a link `[alt](https://…)`: cards and posts show
/// only uploaded images (`img_…` keys) and reject web URLs.
pub(crate) fn images_to_links(md: &str) -> Cow<'_, str> {
    if !md.contains("![") {
        return Cow::Borrowed(md);
    }
    map_prose_lines(md, |line| {
        if !line.contains("![") {
            return Cow::Borrowed(line);
        }
        let mut out = String::with_capacity(line.len());
        for (code, seg) in code_spans(line) {
            if code {
                out.push_str(seg);
            } else {
                rewrite_images(seg, &mut out);
            }
        }
        Cow::Owned(out)
    })
}

fn rewrite_images(seg: &str, out: &mut String) {
    let mut rest = seg;
    while let Some(at) = rest.find("![") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match web_image(after) {
            Some((alt, url, used)) => {
                let label = if alt.trim().is_empty() { url } else { alt };
                out.push('[');
                out.push_str(label);
                out.push_str("](");
                out.push_str(url);
                out.push(')');
                rest = &after[used..];
            }
            None => {
                out.push_str("![");
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// Parses `alt](url)` after `![`; returns alt, url and bytes used when url is http(s).
fn web_image(s: &str) -> Option<(&str, &str, usize)> {
    let close = s.find("](")?;
    let alt = &s[..close];
    if alt.contains(['[', ']']) {
        return None;
    }
    let tail = &s[close + 2..];
    let end = tail.find(')')?;
    let url = tail[..end].trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some((
        alt,
        url,
        close + 2 + end + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_detection() {
        for rich in [
            "# Title",
            "text\n\n```\ncode\n```",
            "- a\n- b",
            "1. first",
            "> quoted",
            "a **bold** word",
            "an *italic* word",
            "~~gone~~",
            "use `cargo`",
            "| a | b |\n|---|---|\n| 1 | 2 |",
            "above\n\n---\n\nbelow",
            "![img](https://x/y.png)",
            "***",
            "call __init__ here",
        ] {
            assert!(has_formatting(rich), "{rich:?}");
        }
        for plain in [
            "Hello there.",
            "5 * 3 = 15 and 2 * 4 = 8",
            "snake_case_name ok",
            "see [docs](https://example.com)",
            "email a@b.com, #hashtag",
            "price: $5 - $10",
            "",
        ] {
            assert!(!has_formatting(plain), "{plain:?}");
        }
    }

    #[test]
    fn headings_demoted_only_when_large_ones_exist() {
        assert_eq!(
            demote_headings("# A\n## B\n#### C\n```\n# not\n```"),
            "#### A\n##### B\n##### C\n```\n# not\n```"
        );
        assert_eq!(
            demote_headings("#### Small\n##### ok"),
            "#### Small\n##### ok"
        );
        assert!(matches!(
            demote_headings("```\n# in code\n```"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn nested_lists_use_four_spaces_per_level() {
        assert_eq!(
            normalize_list_indent(
                "- a\n  - b\n    - c\n  - d\n1. x\n   - y\n      text\n\nplain\n  - z"
            ),
            "- a\n    - b\n        - c\n    - d\n1. x\n    - y\n      text\n\nplain\n- z"
        );
        assert!(matches!(
            normalize_list_indent("- a\n    - b\n```\n  - code\n```"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn web_images_become_links() {
        assert_eq!(
            images_to_links("see ![chart](https://x/c.png) and ![](http://y/z.jpg)"),
            "see [chart](https://x/c.png) and [http://y/z.jpg](http://y/z.jpg)"
        );
        assert_eq!(images_to_links("![key](img_v2_abc)"), "![key](img_v2_abc)");
        assert_eq!(
            images_to_links("`![a](https://x)` ![b](https://y)"),
            "`![a](https://x)` [b](https://y)"
        );
        assert_eq!(images_to_links("![broken"), "![broken");
    }
}
