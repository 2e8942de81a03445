//! Helpers for replies that arrive in pieces: completed blocks for block streaming,
//! the card's chat-list preview, and a renderable form of an unfinished text.

use super::blocks::{
    self, code_spans, fence_closes, fence_open, heading_level, is_blank, is_indented, is_list_item,
    Fence,
};

/// Cuts a growing markdown text into completed blocks, for "block streaming" (each
/// block sent as its own message as soon as it is complete).
///
/// A block completes at a blank line outside a code fence, or when a fence closes.
/// A list stays together across blank lines while the next line continues it (an
/// item or an indented line); a table ends only at a blank line; a block made only of
/// headings waits to be sent with the block after it. The result depends only on the
/// text, not on how it was cut into deltas.
#[derive(Debug, Default)]
pub struct BlockSplitter {
    /// The incomplete last line.
    partial: String,
    /// Lines of the block being built.
    block: Vec<String>,
    /// The fence the block is inside.
    fence: Option<Fence>,
    /// A blank line seen after a list, waiting to know whether the list goes on.
    blank_after_list: bool,
    /// Heading-only blocks waiting for the next block.
    held: Option<String>,
}

impl BlockSplitter {
    /// A splitter with nothing buffered.
    pub fn new() -> BlockSplitter {
        BlockSplitter::default()
    }

    /// Feeds the next delta; returns the blocks it completed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.partial.push_str(delta);
        if !self.partial.contains('\n') {
            return out;
        }
        let buffered = std::mem::take(&mut self.partial);
        let mut rest = buffered.as_str();
        while let Some(nl) = rest.find('\n') {
            self.line(&rest[..nl], &mut out);
            rest = &rest[nl + 1..];
        }
        self.partial = rest.to_owned();
        out
    }

    /// Ends the text: returns the blocks still buffered (the last line may complete
    /// one and start another; an unclosed fence stays unclosed; held headings join the
    /// last block), and resets the splitter.
    pub fn finish(&mut self) -> Vec<String> {
        let partial = std::mem::take(&mut self.partial);
        let mut out = Vec::new();
        if !partial.is_empty() {
            self.line(&partial, &mut out);
        }
        let tail = self.take_block();
        let last = match (self.held.take(), tail) {
            (Some(held), Some(tail)) => Some(format!("{held}\n\n{tail}")),
            (held, tail) => held.or(tail),
        };
        out.extend(last.filter(|b| !b.trim().is_empty()));
        *self = BlockSplitter::default();
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<String>) {
        if let Some(fence) = self.fence {
            self.block.push(line.to_owned());
            if fence_closes(&fence, line) {
                self.fence = None;
                self.complete(out);
            }
            return;
        }
        if is_blank(line) {
            if self.block.is_empty() {
                return;
            }
            if self.is_list() {
                self.blank_after_list = true;
            } else {
                self.complete(out);
            }
            return;
        }
        if std::mem::take(&mut self.blank_after_list) {
            if is_list_item(line) || is_indented(line) {
                self.block.push(String::new());
            } else {
                self.complete(out);
            }
        }
        self.fence = fence_open(line);
        self.block.push(line.to_owned());
    }

    /// Whether the block ends in a list (an item, or a line indented under one).
    fn is_list(&self) -> bool {
        self.block.iter().any(|l| is_list_item(l))
            && self
                .block
                .last()
                .is_some_and(|l| is_list_item(l) || is_indented(l))
    }

    fn take_block(&mut self) -> Option<String> {
        self.blank_after_list = false;
        if self.block.is_empty() {
            return None;
        }
        let text = self.block.join("\n");
        self.block.clear();
        Some(text)
    }

    fn complete(&mut self, out: &mut Vec<String>) {
        let Some(text) = self.take_block() else {
            return;
        };
        let headings_only = text.split('\n').all(|l| heading_level(l).is_some());
        let text = match self.held.take() {
            Some(held) => format!("{held}\n\n{text}"),
            None => text,
        };
        if headings_only {
            self.held = Some(text);
        } else {
            out.push(text);
        }
    }
}

/// One-line chat-list preview of a markdown reply: markup dropped (fences, heading
/// and quote marks, list bullets, emphasis, tags, link targets), whitespace collapsed,
/// at most [`lark_wire::card::SUMMARY_MAX_CHARS`] characters ending in `…` if cut.
pub fn summary(text: &str) -> String {
    let mut plain = String::new();
    for line in text.split('\n') {
        if plain.len() > lark_wire::card::SUMMARY_MAX_CHARS * 8 {
            break;
        }
        if fence_open(line).is_some() || blocks::is_delimiter_row(line) || is_fence_only(line) {
            continue;
        }
        plain.push_str(&strip_line(line));
        plain.push(' ');
    }
    lark_wire::card::preview(&plain)
}

fn is_fence_only(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && (t.bytes().all(|b| b == b'`') || t.bytes().all(|b| b == b'~'))
}

/// A line without block markers, inline markup and tags.
fn strip_line(line: &str) -> String {
    let mut rest = line.trim_start();
    if heading_level(rest).is_some() {
        rest = rest.trim_start_matches('#');
    }
    while let Some(r) = rest.strip_prefix('>') {
        rest = r.trim_start();
    }
    if is_list_item(rest) && rest.starts_with(['-', '*', '+']) {
        rest = &rest[1..];
    }
    let rest = rest.trim().trim_matches('|');
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '*' | '`' => {}
            '~' if rest[i + 1..].starts_with('~') || rest[..i].ends_with('~') => {}
            '_' if rest[i + 1..].starts_with('_') || rest[..i].ends_with('_') => {}
            '<' => match rest[i..].find('>') {
                Some(end) if looks_like_tag(&rest[i + 1..i + end]) => {
                    while chars.peek().is_some_and(|(j, _)| *j <= i + end) {
                        chars.next();
                    }
                }
                _ => out.push(c),
            },
            ']' if rest[i + 1..].starts_with('(') => match rest[i + 1..].find(')') {
                Some(end) => {
                    while chars.peek().is_some_and(|(j, _)| *j <= i + 1 + end) {
                        chars.next();
                    }
                }
                None => out.push(c),
            },
            '!' if rest[i + 1..].starts_with('[') => {}
            '[' => {}
            '|' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn looks_like_tag(inner: &str) -> bool {
    let name = inner.strip_prefix('/').unwrap_or(inner);
    name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Makes an unfinished markdown text render cleanly as an intermediate update: drops
/// a half-typed fence marker, tag or link target at the end, trailing emphasis
/// markers and spaces, closes an unclosed code fence, and closes unclosed inline code,
/// `**`, `~~` and `*` of the last paragraph.
///
/// The result is the text's prefix plus closers, so a later update is usually not an
/// extension of it (CardKit then redraws instead of animating the new part).
pub fn stream_safe(text: &str) -> String {
    let lines = blocks::lines(text);
    let mut fence: Option<(Fence, usize)> = None;
    let mut para_start = 0;
    for (i, line) in lines.iter().enumerate() {
        match fence {
            Some((f, _)) => {
                if fence_closes(&f, line.text) {
                    fence = None;
                    para_start = i + 1;
                }
            }
            None => {
                if let Some(f) = fence_open(line.text) {
                    fence = Some((f, i));
                } else if is_blank(line.text) {
                    para_start = i + 1;
                }
            }
        }
    }
    if let Some((f, opener)) = fence {
        return close_fence(text, &lines, f, opener);
    }
    let mut out = text.to_owned();
    let last = lines.last().map_or("", |l| l.text);
    if is_partial_fence(last) {
        out.truncate(out.len() - last.len());
        return out.trim_end().to_owned();
    }
    trim_dangling(&mut out);
    let para_start = lines
        .get(para_start)
        .map_or(out.len(), |l| l.start.min(out.len()));
    let closers = inline_closers(&out[para_start..]);
    out.push_str(&closers);
    out
}

/// `text` inside fence `f`, opened on line `opener`: drops a half-typed
/// closer (a last line of fence characters that is not the opener itself)
/// and appends a closer.
fn close_fence(text: &str, lines: &[blocks::Line<'_>], f: Fence, opener: usize) -> String {
    let mut out = text.to_owned();
    if let Some(last) = lines.last().filter(|_| lines.len() - 1 > opener) {
        let t = last.text.trim();
        if !t.is_empty() && t.bytes().all(|b| b == f.ch) {
            out.truncate(last.start);
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&f.closer(lines[opener].text));
    out
}

/// A last line of one or two backticks or tildes: a fence being typed.
fn is_partial_fence(line: &str) -> bool {
    let t = line.trim_start();
    (1..=2).contains(&t.len()) && (t.bytes().all(|b| b == b'`') || t.bytes().all(|b| b == b'~'))
}

/// Drops, at the end: trailing whitespace, an unfinished tag (`<at id=ou_` …), an
/// unfinished link target (`[text](http…`), and trailing emphasis markers.
fn trim_dangling(out: &mut String) {
    loop {
        let before = out.len();
        out.truncate(out.trim_end().len());
        let last_line_start = out.rfind('\n').map_or(0, |i| i + 1);
        let last_line = &out[last_line_start..];
        if let Some(lt) = last_line.rfind('<') {
            let after = &last_line[lt + 1..];
            if !after.contains('>') && (after.is_empty() || looks_like_tag(after)) {
                out.truncate(last_line_start + lt);
                continue;
            }
        }
        if let Some(open) = last_line.rfind("](") {
            if !last_line[open..].contains(')') {
                if let Some(bracket) = last_line[..open].rfind('[') {
                    let start = if last_line[..bracket].ends_with('!') {
                        bracket - 1
                    } else {
                        bracket
                    };
                    out.truncate(last_line_start + start);
                    continue;
                }
            }
        }
        let trimmed = out.trim_end_matches(['*', '_', '~']);
        if trimmed.len() < out.len()
            && !out[last_line_start..]
                .trim()
                .chars()
                .all(|c| c == '*' || c == '-' || c == '_')
        {
            let keep = trimmed.len();
            out.truncate(keep);
        }
        if out.len() == before {
            break;
        }
    }
}

/// Closers for inline code, `**`, `~~` and `*` left open in `para`, innermost first.
fn inline_closers(para: &str) -> String {
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut offset = 0;
    for (code, seg) in code_spans(para) {
        if !code {
            let trailing_code = seg.find('`').map(|i| &seg[i..]);
            let prose = match trailing_code {
                Some(tail) => &seg[..seg.len() - tail.len()],
                None => seg,
            };
            emphasis_state(prose, offset, &mut open);
            if let Some(tail) = trailing_code {
                let run = tail.bytes().take_while(|&b| b == b'`').count();
                open.push((offset + seg.len() - tail.len(), "`".repeat(run)));
                break;
            }
        }
        offset += seg.len();
    }
    open.sort_by_key(|o| std::cmp::Reverse(o.0));
    open.into_iter().map(|(_, closer)| closer).collect()
}

/// Tracks which of `**`, `~~`, `*` are open after `seg` (at `offset` in the paragraph).
fn emphasis_state(seg: &str, offset: usize, open: &mut Vec<(usize, String)>) {
    let bytes = seg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let delim = match (bytes[i], bytes.get(i + 1)) {
            (b'*', Some(b'*')) => "**",
            (b'~', Some(b'~')) => "~~",
            (b'*', _) => "*",
            _ => {
                i += 1;
                continue;
            }
        };
        let prev_solid = i > 0 && !bytes[i - 1].is_ascii_whitespace();
        let next_solid = bytes
            .get(i + delim.len())
            .is_some_and(|b| !b.is_ascii_whitespace());
        let at_line_start = seg[..i]
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.trim().is_empty());
        let is_bullet = delim == "*" && at_line_start && !next_solid;
        if !is_bullet {
            match open.iter().position(|(_, d)| d == delim) {
                Some(k) if prev_solid => {
                    open.remove(k);
                }
                _ if next_solid => open.push((offset + i, delim.to_owned())),
                _ => {}
            }
        }
        i += delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(text: &str) -> Vec<String> {
        let mut s = BlockSplitter::new();
        let mut out = s.push(text);
        out.extend(s.finish());
        out
    }

    #[test]
    fn blocks_complete_at_blank_lines_and_closing_fences() {
        let mut s = BlockSplitter::new();
        assert!(s.push("Hello").is_empty());
        assert!(s.push(" world\n").is_empty());
        assert_eq!(s.push("\nNext"), vec!["Hello world"]);
        assert_eq!(
            s.push(":\n```rust\nfn a() {}\n\nfn b() {}\n```\nafter\n"),
            vec!["Next:\n```rust\nfn a() {}\n\nfn b() {}\n```"]
        );
        assert_eq!(s.finish(), vec!["after"]);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn lists_stay_together_and_headings_wait() {
        let text = "## Steps\n\n1. one\n\n2. two\n   more\n\n- x\nDone.\n\nEnd";
        assert_eq!(
            split_all(text),
            vec!["## Steps\n\n1. one\n\n2. two\n   more\n\n- x\nDone.", "End"]
        );
        assert_eq!(split_all("- a\n\nplain"), vec!["- a", "plain"]);
        assert_eq!(split_all("# Only heading"), vec!["# Only heading"]);
    }

    #[test]
    fn tables_stay_together_and_unclosed_fences_are_returned() {
        assert_eq!(
            split_all("| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nopen"),
            vec!["| a | b |\n|---|---|\n| 1 | 2 |", "```\nopen"]
        );
    }

    #[test]
    fn finish_joins_what_the_last_line_completes() {
        let mut s = BlockSplitter::new();
        assert!(s.push("- a\n\n").is_empty());
        assert_eq!(s.finish(), vec!["- a"]);
        assert!(s.push("- a\n\n").is_empty());
        assert_eq!(s.push("b\n"), vec!["- a"]);
        assert_eq!(s.finish(), vec!["b"]);
        assert!(s.push("```\nx\n").is_empty());
        assert_eq!(s.finish(), vec!["```\nx"]);
    }

    #[test]
    fn summaries() {
        assert_eq!(
            summary("# Title\n\nSome **bold** and `code`."),
            "Title Some bold and code."
        );
        assert_eq!(summary("```rust\nfn main() {}\n```"), "fn main() {}");
        assert_eq!(summary("> quote\n- item\n1. first"), "quote item 1. first");
        assert_eq!(
            summary("see [docs](https://x.io) <at id=ou_1></at> hi"),
            "see docs hi"
        );
        assert_eq!(summary("| a | b |\n|---|---|\n| 1 | 2 |"), "a b 1 2");
        assert_eq!(summary("a < b and c > d"), "a < b and c > d");
        let long = summary(&"word ".repeat(40));
        assert_eq!(long.chars().count(), 50);
        assert!(long.ends_with('…'));
        assert_eq!(summary(""), "");
    }

    #[test]
    fn stream_safe_closes_what_is_open() {
        assert_eq!(
            stream_safe("text\n```py\nprint(1)"),
            "text\n```py\nprint(1)\n```"
        );
        assert_eq!(stream_safe("```py\nprint(1)\n``"), "```py\nprint(1)\n```");
        assert_eq!(stream_safe("```py"), "```py\n```");
        assert_eq!(stream_safe("text\n``"), "text");
        assert_eq!(stream_safe("a **bold"), "a **bold**");
        assert_eq!(stream_safe("a **bold *it"), "a **bold *it***");
        assert_eq!(stream_safe("run `cargo"), "run `cargo`");
        assert_eq!(stream_safe("x ~~gone"), "x ~~gone~~");
        assert_eq!(stream_safe("word **"), "word");
        assert_eq!(stream_safe("hi <at id=ou_"), "hi");
        assert_eq!(stream_safe("see [docs](https://ex"), "see");
        assert_eq!(stream_safe("**done** and *ok*"), "**done** and *ok*");
        assert_eq!(stream_safe("- item\n* other"), "- item\n* other");
        assert_eq!(stream_safe("5 * 3 = 15"), "5 * 3 = 15");
        assert_eq!(stream_safe("**a**\n\nnew *para"), "**a**\n\nnew *para*");
        assert_eq!(stream_safe("---"), "---");
        assert_eq!(stream_safe(""), "");
    }
}
