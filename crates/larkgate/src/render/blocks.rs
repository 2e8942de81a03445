//! Line-level markdown structure shared by the renderers: code fences, tables,
//! headings, list items, and the division of a text into blocks.
//!
//! This is deliberately not a full CommonMark parser. It recognises what decides
//! where a reply may be cut and what must be rewritten for the platform, and it is
//! lenient where agents are sloppy (a fence may be indented by any amount).

use std::borrow::Cow;

/// Longest line (JSON-escaped bytes) still taken as a fence opener; longer lines are
/// text. Bounds what closing and reopening a fence around a cut can cost.
pub(crate) const MAX_FENCE_LINE: usize = 128;

/// JSON-escaped length of one byte as serde_json writes it inside a string.
fn escaped_byte_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0x00..=0x1f => 6,
        _ => 1,
    }
}

/// Bytes `s` takes once serialised inside a JSON string (quotes excluded).
pub(crate) fn escaped_len(s: &str) -> usize {
    s.bytes().map(escaped_byte_len).sum()
}

/// An open code fence: its character, run length and indentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    /// `` ` `` or `~`.
    pub ch: u8,
    /// Length of the opening run (>= 3).
    pub len: usize,
    /// Bytes of leading whitespace on the opener line.
    pub indent: usize,
}

impl Fence {
    /// The line that closes this fence, given its opener line.
    pub fn closer(&self, opener: &str) -> String {
        let mut s = String::with_capacity(self.indent + self.len);
        s.push_str(&opener[..self.indent.min(opener.len())]);
        s.extend(std::iter::repeat_n(char::from(self.ch), self.len));
        s
    }
}

fn leading_ws(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

fn run_len(s: &str, ch: u8) -> usize {
    s.bytes().take_while(|&b| b == ch).count()
}

/// The fence `line` opens, if it is a fence opener.
pub(crate) fn fence_open(line: &str) -> Option<Fence> {
    let indent = leading_ws(line);
    let rest = &line[indent..];
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = run_len(rest, ch);
    if len < 3 || escaped_len(line) > MAX_FENCE_LINE {
        return None;
    }
    if ch == b'`' && rest[len..].contains('`') {
        return None;
    }
    Some(Fence { ch, len, indent })
}

/// Whether `line` closes `fence`.
pub(crate) fn fence_closes(fence: &Fence, line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    let len = run_len(rest, fence.ch);
    len >= fence.len && rest[len..].trim().is_empty()
}

/// Whether `line` is empty or whitespace.
pub(crate) fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// The level (1-6) of an ATX heading line.
pub(crate) fn heading_level(line: &str) -> Option<usize> {
    let rest = line.trim_start_matches(' ');
    if line.len() - rest.len() > 3 {
        return None;
    }
    let level = run_len(rest, b'#');
    let after = &rest[level..];
    ((1..=6).contains(&level) && (after.is_empty() || after.starts_with([' ', '\t'])))
        .then_some(level)
}

/// Whether `line` starts a list item (`- `, `* `, `+ `, `1. `, `1) `).
pub(crate) fn is_list_item(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    let bytes = rest.as_bytes();
    match bytes.first() {
        Some(b'-' | b'*' | b'+') => matches!(bytes.get(1), None | Some(b' ' | b'\t')),
        Some(b'0'..=b'9') => {
            let digits = run_digits(rest);
            digits <= 9
                && matches!(bytes.get(digits), Some(b'.' | b')'))
                && matches!(bytes.get(digits + 1), None | Some(b' ' | b'\t'))
        }
        _ => false,
    }
}

fn run_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Whether `line` is indented enough to continue a list item.
pub(crate) fn is_indented(line: &str) -> bool {
    line.starts_with("  ") || line.starts_with('\t')
}

/// Cells of a table row, split on unescaped `|` with the outer pipes removed.
pub(crate) fn table_cells(line: &str) -> Vec<&str> {
    let mut row = line.trim();
    row = row.strip_prefix('|').unwrap_or(row);
    if row.ends_with('|') && !row.ends_with("\\|") {
        row = &row[..row.len() - 1];
    }
    let mut cells = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, b) in row.bytes().enumerate() {
        match b {
            b'\\' => escaped = !escaped,
            b'|' if !escaped => {
                cells.push(row[start..i].trim());
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    cells.push(row[start..].trim());
    cells
}

/// Whether `line` is a table delimiter row (`| --- | :-: |`).
pub(crate) fn is_delimiter_row(line: &str) -> bool {
    let trimmed = line.trim();
    if !trimmed.contains('-') || (!trimmed.contains('|') && !trimmed.starts_with(':')) {
        return false;
    }
    table_cells(trimmed).iter().all(|cell| {
        let core = cell.trim_start_matches(':').trim_end_matches(':');
        !core.is_empty() && core.bytes().all(|b| b == b'-')
    })
}

/// Whether a table starts at `lines[i]` (a header row followed by a matching delimiter).
pub(crate) fn is_table_start(lines: &[Line<'_>], i: usize) -> bool {
    let (Some(head), Some(delim)) = (lines.get(i), lines.get(i + 1)) else {
        return false;
    };
    head.text.contains('|')
        && fence_open(head.text).is_none()
        && is_delimiter_row(delim.text)
        && table_cells(head.text).len() == table_cells(delim.text).len()
}

/// One line of a text: its bytes without the `\n`, and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// Byte offset in the text.
    pub start: usize,
    /// The line without its newline.
    pub text: &'a str,
}

impl Line<'_> {
    /// Byte offset just past the line's text (before its newline).
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// The lines of `text` (a trailing newline gives a final empty line).
pub(crate) fn lines(text: &str) -> Vec<Line<'_>> {
    let mut start = 0;
    text.split('\n')
        .map(|t| {
            let line = Line { start, text: t };
            start += t.len() + 1;
            line
        })
        .collect()
}

/// What a block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Paragraphs, lists, quotes, headings, rules.
    Text,
    /// A fenced code block; `closed` is false when the text ends inside it.
    Code { fence: Fence, closed: bool },
    /// A pipe table: header, delimiter, rows.
    Table,
}

/// A run of lines that belongs together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// What it is.
    pub kind: Kind,
    /// Index of its first line.
    pub first: usize,
    /// Index of its last line (inclusive).
    pub last: usize,
}

impl Block {
    /// Byte range of the block in the text (first line start to last line end).
    pub fn range(&self, lines: &[Line<'_>]) -> std::ops::Range<usize> {
        lines[self.first].start..lines[self.last].end()
    }

    /// Whether the block is a single heading line.
    pub fn is_heading(&self, lines: &[Line<'_>]) -> bool {
        self.kind == Kind::Text
            && self.first == self.last
            && heading_level(lines[self.first].text).is_some()
    }
}

/// The blocks of a text: split at blank lines outside code, and around code fences
/// and tables. Blank lines belong to no block.
pub(crate) fn blocks(lines: &[Line<'_>]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let text = lines[i].text;
        if is_blank(text) {
            i += 1;
            continue;
        }
        let (kind, last) = if let Some(fence) = fence_open(text) {
            match (i + 1..lines.len()).find(|&j| fence_closes(&fence, lines[j].text)) {
                Some(j) => (
                    Kind::Code {
                        fence,
                        closed: true,
                    },
                    j,
                ),
                None => (
                    Kind::Code {
                        fence,
                        closed: false,
                    },
                    lines.len() - 1,
                ),
            }
        } else if is_table_start(lines, i) {
            let end = (i + 2..lines.len())
                .find(|&j| {
                    let t = lines[j].text;
                    is_blank(t) || !t.contains('|') || fence_open(t).is_some()
                })
                .unwrap_or(lines.len());
            (Kind::Table, end - 1)
        } else {
            let end = (i + 1..lines.len())
                .find(|&j| {
                    let t = lines[j].text;
                    is_blank(t) || fence_open(t).is_some() || is_table_start(lines, j)
                })
                .unwrap_or(lines.len());
            (Kind::Text, end - 1)
        };
        out.push(Block {
            kind,
            first: i,
            last,
        });
        i = last + 1;
    }
    out
}

/// Applies `f` to every line outside code fences; fenced lines pass unchanged.
pub(crate) fn map_prose_lines<'a, F>(text: &'a str, mut f: F) -> Cow<'a, str>
where
    F: FnMut(&'a str) -> Cow<'a, str>,
{
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut fence: Option<Fence> = None;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match fence {
            Some(open) => {
                if fence_closes(&open, line) {
                    fence = None;
                }
                out.push_str(line);
            }
            None => {
                if let Some(open) = fence_open(line) {
                    fence = Some(open);
                    out.push_str(line);
                } else {
                    let mapped = f(line);
                    changed |= matches!(mapped, Cow::Owned(ref s) if s != line);
                    out.push_str(&mapped);
                }
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Splits a line into segments, each flagged `true` when it is inline code
/// (a backtick run and its matching closing run).
pub(crate) fn code_spans(line: &str) -> Vec<(bool, &str)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut prose_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = run_len(&line[i..], b'`');
        let mut j = i + open;
        let mut close_at = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let run = run_len(&line[j..], b'`');
                if run == open {
                    close_at = Some(j + run);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match close_at {
            Some(end) => {
                if prose_start < i {
                    out.push((false, &line[prose_start..i]));
                }
                out.push((true, &line[i..end]));
                prose_start = end;
                i = end;
            }
            None => i += open,
        }
    }
    if prose_start < line.len() {
        out.push((false, &line[prose_start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_len_matches_serde_json() {
        for s in [
            "plain",
            "a\"b\\c",
            "tab\there\nnl\r",
            "\u{1}\u{1f}\u{7f}",
            "汉字 ✓ 🎉",
            "",
        ] {
            let json = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(escaped_len(s), json.len() - 2, "{s:?}");
        }
    }

    #[test]
    fn fences() {
        let f = fence_open("```rust").unwrap_or_else(|| panic!("opener"));
        assert_eq!((f.ch, f.len, f.indent), (b'`', 3, 0));
        assert!(fence_closes(&f, "```"));
        assert!(fence_closes(&f, "  ````  "));
        assert!(!fence_closes(&f, "``"));
        assert!(!fence_closes(&f, "``` x"));
        assert!(!fence_closes(&f, "~~~"));
        let t = fence_open("   ~~~~ sh").unwrap_or_else(|| panic!("tilde opener"));
        assert_eq!(t.closer("   ~~~~ sh"), "   ~~~~");
        assert!(fence_open("```inline``` text").is_none());
        assert!(fence_open("``").is_none());
        assert!(fence_open(&format!("```{}", "x".repeat(200))).is_none());
        assert!(fence_open("~~~ a`b").is_some());
    }

    #[test]
    fn line_kinds() {
        assert_eq!(heading_level("# a"), Some(1));
        assert_eq!(heading_level("###### a"), Some(6));
        assert_eq!(heading_level("####### a"), None);
        assert_eq!(heading_level("#hashtag"), None);
        assert_eq!(heading_level("##"), Some(2));
        for item in ["- a", "* a", "+ a", "1. a", "10) a", "  - nested", "-"] {
            assert!(is_list_item(item), "{item}");
        }
        for text in ["-a", "1.5 kg", "**bold**", "text", "1234567890. x"] {
            assert!(!is_list_item(text), "{text}");
        }
        assert!(is_delimiter_row("|---|:--:|"));
        assert!(is_delimiter_row("--- | ---"));
        assert!(!is_delimiter_row("---"));
        assert!(!is_delimiter_row("| a | b |"));
        assert_eq!(table_cells("| a | b \\| c |"), vec!["a", "b \\| c"]);
    }

    #[test]
    fn blocks_split_at_blank_lines_fences_and_tables() {
        let text = "# T\npara\n\n```\ncode\n\nmore\n```\nafter\n| a | b |\n|---|---|\n| 1 | 2 |\ntail\n\n```\nopen";
        let ls = lines(text);
        let bs = blocks(&ls);
        let kinds: Vec<_> = bs
            .iter()
            .map(|b| match b.kind {
                Kind::Text => "text",
                Kind::Code { closed: true, .. } => "code",
                Kind::Code { closed: false, .. } => "open",
                Kind::Table => "table",
            })
            .collect();
        assert_eq!(kinds, ["text", "code", "text", "table", "text", "open"]);
        assert_eq!(&text[bs[1].range(&ls)], "```\ncode\n\nmore\n```");
        assert_eq!(&text[bs[3].range(&ls)], "| a | b |\n|---|---|\n| 1 | 2 |");
        assert!(!bs[0].is_heading(&ls));
    }

    #[test]
    fn prose_lines_skip_code() {
        let out = map_prose_lines("a\n```\na\n```\na", |l| Cow::Owned(l.replace('a', "b")));
        assert_eq!(out, "b\n```\na\n```\nb");
        assert!(matches!(
            map_prose_lines("x", Cow::Borrowed),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn inline_code_spans() {
        assert_eq!(
            code_spans("a `b` c ``d`e`` f `g"),
            vec![
                (false, "a "),
                (true, "`b`"),
                (false, " c "),
                (true, "``d`e``"),
                (false, " f `g")
            ]
        );
    }
}
