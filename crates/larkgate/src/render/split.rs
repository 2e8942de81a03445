//! Splitting markdown into parts that each fit a message, at block boundaries.
//!
//! Sizes are JSON-escaped bytes (what the markdown costs inside the serialised
//! `content`). Blocks (paragraphs, lists, tables, code blocks) are packed greedily;
//! a block larger than a part is cut between lines, a code block closing its fence
//! at the cut and reopening it (same fence and info string) in the next part, a
//! table repeating its header; a line larger than a part is cut between characters,
//! preferring whitespace. Every part is a contiguous range of the input plus those
//! repeated fence/header lines, so nothing is lost or reordered.

use super::blocks::{self, escaped_len, Block, Kind, Line};

/// Smallest budget honoured; smaller `max_bytes` are raised to it so that a reopened
/// fence and its closer always leave room for content.
pub const MIN_PART_BYTES: usize = 512;

/// One part: `prefix` lines, then `text[start..end]`, then `suffix` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Repeated context: a reopened fence or a table header (may be empty).
    pub prefix: String,
    /// Start of the range of the input.
    pub start: usize,
    /// End of the range of the input.
    pub end: usize,
    /// A fence closer (may be empty).
    pub suffix: String,
}

impl Piece {
    /// The part's markdown.
    pub fn render(&self, text: &str) -> String {
        let mut out = String::with_capacity(
            self.prefix.len() + self.end - self.start + self.suffix.len() + 2,
        );
        if !self.prefix.is_empty() {
            out.push_str(&self.prefix);
            out.push('\n');
        }
        out.push_str(&text[self.start..self.end]);
        if !self.suffix.is_empty() {
            out.push('\n');
            out.push_str(&self.suffix);
        }
        out
    }
}

/// Splits `markdown` into parts whose JSON-escaped size is at most `max_bytes`
/// (at least [`MIN_PART_BYTES`]), in order. Blank input gives no parts.
pub fn split_for_limit(markdown: &str, max_bytes: usize) -> Vec<String> {
    pieces(markdown, max_bytes)
        .iter()
        .map(|p| p.render(markdown))
        .collect()
}

/// Where to cut a growing streamed text that no longer fits one card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollover {
    /// The text to leave in the full card (fences closed), within the budget.
    pub head: String,
    /// Byte offset in the text where the next card's text starts.
    pub tail_start: usize,
    /// Lines to put before `text[tail_start..]` in the next card (a reopened fence or
    /// a repeated table header, with its newline), possibly empty.
    pub tail_prefix: String,
}

/// The first part of `text` when it needs more than one part of `max_bytes`, with
/// where the rest starts; `None` when the whole text fits.
pub fn split_head(text: &str, max_bytes: usize) -> Option<Rollover> {
    let mut pieces = pieces(text, max_bytes).into_iter();
    let head = pieces.next()?;
    let next = pieces.next()?;
    let tail_prefix = if next.prefix.is_empty() {
        String::new()
    } else {
        format!("{}\n", next.prefix)
    };
    Some(Rollover {
        head: head.render(text),
        tail_start: next.start,
        tail_prefix,
    })
}

/// The parts of `text` as ranges with their added context.
pub(crate) fn pieces(text: &str, max_bytes: usize) -> Vec<Piece> {
    let lines = blocks::lines(text);
    let blocks = blocks::blocks(&lines);
    let mut packer = Packer {
        text,
        lines: &lines,
        max: max_bytes.max(MIN_PART_BYTES),
        out: Vec::new(),
        cur: None,
    };
    for block in &blocks {
        packer.add(block);
    }
    packer.flush();
    packer.out
}

/// A block inside the part being filled.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// Where the block starts.
    start: usize,
    /// Where the previous block ended.
    prev_end: usize,
    /// Part size up to the previous block's end.
    prev_size: usize,
    /// Whether the block is a lone heading line.
    heading: bool,
}

/// The part being filled.
#[derive(Debug)]
struct Current {
    piece: Piece,
    /// Size of the part as rendered.
    size: usize,
    /// Whole blocks in it, in order.
    marks: Vec<Mark>,
}

struct Packer<'t, 'l> {
    text: &'t str,
    lines: &'l [Line<'t>],
    max: usize,
    out: Vec<Piece>,
    cur: Option<Current>,
}

/// Size of a fence closer line with its newline.
fn closer_cost(closer: &str) -> usize {
    2 + escaped_len(closer)
}

impl Packer<'_, '_> {
    fn closer(&self, block: &Block) -> Option<String> {
        match block.kind {
            Kind::Code { fence, .. } => Some(fence.closer(self.lines[block.first].text)),
            _ => None,
        }
    }

    /// Size of a whole block as it would sit in a part (with a closer if unclosed).
    fn block_size(&self, block: &Block) -> (usize, String) {
        let range = block.range(self.lines);
        let size = escaped_len(&self.text[range]);
        match block.kind {
            Kind::Code { closed: false, .. } => {
                let closer = self.closer(block).unwrap_or_default();
                (size + closer_cost(&closer), closer)
            }
            _ => (size, String::new()),
        }
    }

    fn add(&mut self, block: &Block) {
        let (size, suffix) = self.block_size(block);
        if self.try_append(block, size, &suffix) {
            return;
        }
        if size > self.max {
            self.split_block(block);
            return;
        }
        if self.cur.is_some() {
            self.flush_before(block, size);
            if self.try_append(block, size, &suffix) {
                return;
            }
            self.flush();
        }
        let range = block.range(self.lines);
        self.start_part(range, size, suffix, block.is_heading(self.lines));
    }

    /// Starts a new current part holding one whole block.
    fn start_part(
        &mut self,
        range: std::ops::Range<usize>,
        size: usize,
        suffix: String,
        heading: bool,
    ) {
        self.cur = Some(Current {
            piece: Piece {
                prefix: String::new(),
                start: range.start,
                end: range.end,
                suffix,
            },
            size,
            marks: vec![Mark {
                start: range.start,
                prev_end: range.start,
                prev_size: 0,
                heading,
            }],
        });
    }

    /// Appends a whole block to the current part if it fits.
    fn try_append(&mut self, block: &Block, size: usize, suffix: &str) -> bool {
        let range = block.range(self.lines);
        let heading = block.is_heading(self.lines);
        let Some(cur) = self.cur.as_mut() else {
            return false;
        };
        let gap = escaped_len(&self.text[cur.piece.end..range.start]);
        let total = cur.size + gap + size;
        if total > self.max {
            return false;
        }
        cur.marks.push(Mark {
            start: range.start,
            prev_end: cur.piece.end,
            prev_size: cur.size,
            heading,
        });
        cur.piece.end = range.end;
        cur.piece.suffix = suffix.to_owned();
        cur.size = total;
        true
    }

    /// Flushes the current part before `next`, keeping a trailing lone heading with
    /// `next` when both fit together.
    fn flush_before(&mut self, next: &Block, next_size: usize) {
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        let carry = match cur.marks.as_slice() {
            [_, .., last] if last.heading => {
                let heading_size = escaped_len(&self.text[last.start..cur.piece.end]);
                let gap = escaped_len(&self.text[cur.piece.end..next.range(self.lines).start]);
                (heading_size + gap + next_size <= self.max).then_some((*last, heading_size))
            }
            _ => None,
        };
        match carry {
            Some((mark, heading_size)) => {
                let heading_end = cur.piece.end;
                cur.piece.end = mark.prev_end;
                cur.size = mark.prev_size;
                cur.marks.pop();
                self.flush();
                self.start_part(mark.start..heading_end, heading_size, String::new(), true);
            }
            None => self.flush(),
        }
    }

    fn flush(&mut self) {
        if let Some(cur) = self.cur.take() {
            self.out.push(cur.piece);
        }
    }

    /// Cuts a block larger than a part between lines (and inside over-long lines),
    /// continuing the current part first.
    fn split_block(&mut self, block: &Block) {
        let opener = self.lines[block.first].text;
        let closer = self.closer(block).unwrap_or_default();
        let header = self.table_header(block);
        let seed = self.cur.take();
        let mut cut = Cutter {
            max: self.max,
            text: self.text,
            out: &mut self.out,
            piece: seed.as_ref().map(|c| (c.piece.start, c.piece.end)),
            size: seed.as_ref().map_or(0, |c| c.size),
            prefix: seed.map(|c| c.piece.prefix).unwrap_or_default(),
        };
        for k in block.first..=block.last {
            let line = self.lines[k];
            let (fenced_before, fenced_after) = match block.kind {
                Kind::Code { closed, .. } => (k > block.first, !(closed && k == block.last)),
                _ => (false, false),
            };
            // What a part cut just before this line carries over.
            let carry = if fenced_before {
                opener.to_owned()
            } else if k >= block.first + 2 {
                header.clone().unwrap_or_default()
            } else {
                String::new()
            };
            let close_now = if fenced_before { closer.as_str() } else { "" };
            let close_after = if fenced_after { closer.as_str() } else { "" };
            cut.line(line, &carry, close_now, close_after);
        }
        let (piece, size) =
            cut.finish_block(if matches!(block.kind, Kind::Code { closed: false, .. }) {
                closer.as_str()
            } else {
                ""
            });
        self.cur = piece.map(|piece| Current {
            marks: vec![Mark {
                start: piece.start,
                prev_end: piece.start,
                prev_size: 0,
                heading: false,
            }],
            piece,
            size,
        });
    }

    /// The header and delimiter rows of a table, when small enough to repeat.
    fn table_header(&self, block: &Block) -> Option<String> {
        if block.kind != Kind::Table || block.last < block.first + 1 {
            return None;
        }
        let header = &self.text[self.lines[block.first].start..self.lines[block.first + 1].end()];
        (escaped_len(header) <= self.max / 4).then(|| header.to_owned())
    }
}

/// Fills parts line by line for one oversized block.
struct Cutter<'a, 't> {
    max: usize,
    text: &'t str,
    out: &'a mut Vec<Piece>,
    /// The range filled so far in the current part, if any.
    piece: Option<(usize, usize)>,
    /// The current part's prefix.
    prefix: String,
    /// The current part's size (prefix and range, without a closer).
    size: usize,
}

impl Cutter<'_, '_> {
    /// Cost of what separates the part so far from text starting at `at`.
    fn sep(&self, at: usize) -> usize {
        match self.piece {
            Some((_, end)) => escaped_len(&self.text[end..at]),
            None if !self.prefix.is_empty() => 2,
            None => 0,
        }
    }

    fn cost_of_closer(closer: &str) -> usize {
        if closer.is_empty() {
            0
        } else {
            closer_cost(closer)
        }
    }

    /// Adds one line. `carry` is what a part starting at this line repeats,
    /// `close_now` closes a part cut before it, `close_after` one cut after it.
    fn line(&mut self, line: Line<'_>, carry: &str, close_now: &str, close_after: &str) {
        let line_size = escaped_len(line.text);
        let after = Self::cost_of_closer(close_after);
        if self.size + self.sep(line.start) + line_size + after <= self.max {
            self.push_range(line.start, line.end(), line_size);
            return;
        }
        if self.piece.is_some() {
            self.emit(close_now);
            self.start_part(carry);
            if self.size + self.sep(line.start) + line_size + after <= self.max {
                self.push_range(line.start, line.end(), line_size);
                return;
            }
        }
        // The line alone does not fit: cut it between characters. Chunks before the
        // last sit inside the fence if the line does (`close_now` for a line inside a
        // fence; the opener and closer lines always fit).
        let inner_close = if close_now.is_empty() {
            close_after
        } else {
            close_now
        };
        let inner_cost = Self::cost_of_closer(inner_close);
        let mut from = line.start;
        let end = line.end();
        while from < end {
            let budget = self
                .max
                .saturating_sub(self.size + self.sep(from) + inner_cost.max(after));
            let rest = &self.text[from..end];
            let cut = from + split_point(rest, budget);
            let size = escaped_len(&self.text[from..cut]);
            self.push_range(from, cut, size);
            from = cut;
            if from < end {
                self.emit(inner_close);
                self.start_part(carry);
            }
        }
    }

    fn push_range(&mut self, start: usize, end: usize, size: usize) {
        self.size += self.sep(start) + size;
        self.piece = Some(match self.piece {
            Some((s, _)) => (s, end),
            None => (start, end),
        });
    }

    fn emit(&mut self, closer: &str) {
        if let Some((start, end)) = self.piece.take() {
            self.out.push(Piece {
                prefix: std::mem::take(&mut self.prefix),
                start,
                end,
                suffix: closer.to_owned(),
            });
        }
        self.size = 0;
    }

    fn start_part(&mut self, carry: &str) {
        self.prefix = carry.to_owned();
        self.size = escaped_len(carry);
    }

    /// The last, partly filled part of the block, to be continued by later blocks.
    fn finish_block(self, closer: &str) -> (Option<Piece>, usize) {
        match self.piece {
            Some((start, end)) => (
                Some(Piece {
                    prefix: self.prefix,
                    start,
                    end,
                    suffix: closer.to_owned(),
                }),
                self.size + Self::cost_of_closer(closer),
            ),
            None => (None, 0),
        }
    }
}

/// Escaped size of one character.
fn char_size(c: char) -> usize {
    let mut buf = [0u8; 4];
    escaped_len(c.encode_utf8(&mut buf))
}

/// Byte index at which to cut `s` so that the head fits `budget` escaped bytes: on a
/// character boundary, after whitespace when there is some in the second half, never
/// just before a backtick or tilde (a chunk must not start like a fence), and at least
/// one character.
pub(crate) fn split_point(s: &str, budget: usize) -> usize {
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        let w = char_size(c);
        if used + w > budget {
            break;
        }
        used += w;
        cut = i + c.len_utf8();
    }
    if cut == 0 {
        return s.chars().next().map_or(0, char::len_utf8);
    }
    if cut == s.len() {
        return cut;
    }
    let half = cut / 2;
    if let Some((i, c)) = s[..cut]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
    {
        if i >= half && i + c.len_utf8() < cut {
            cut = i + c.len_utf8();
        }
    }
    let mut back = cut;
    while back > 0 && s[back..].starts_with(['`', '~']) {
        back = s[..back].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    if back > 0 {
        cut = back;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_parts_valid(text: &str, max: usize) -> Vec<Piece> {
        let max = max.max(MIN_PART_BYTES);
        let pieces = pieces(text, max);
        let mut pos = 0;
        for p in &pieces {
            let part = p.render(text);
            assert!(
                escaped_len(&part) <= max,
                "part of {} > {max}: {part:?}",
                escaped_len(&part)
            );
            assert!(p.start >= pos && p.start < p.end, "ranges in order");
            assert!(
                text[pos..p.start].trim().is_empty(),
                "gap {:?} lost",
                &text[pos..p.start]
            );
            pos = p.end;
            let ls = blocks::lines(&part);
            assert!(
                blocks::blocks(&ls)
                    .iter()
                    .all(|b| !matches!(b.kind, Kind::Code { closed: false, .. })),
                "unbalanced fence in {part:?}"
            );
        }
        assert!(text[pos..].trim().is_empty(), "tail lost");
        pieces
    }

    #[test]
    fn small_text_is_one_part() {
        assert_eq!(
            split_for_limit("hello\n\nworld", 1000),
            vec!["hello\n\nworld"]
        );
        assert!(split_for_limit(" \n\n ", 1000).is_empty());
    }

    #[test]
    fn paragraphs_pack_greedily() {
        let para = "word ".repeat(40).trim_end().to_owned(); // 199 bytes
        let text = vec![para.clone(); 6].join("\n\n");
        let parts = split_for_limit(&text, 600);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p == &format!("{para}\n\n{para}")));
        assert_parts_valid(&text, 600);
    }

    #[test]
    fn long_code_block_closes_and_reopens_its_fence() {
        let body: Vec<String> = (0..100).map(|i| format!("let x{i} = {i};")).collect();
        let text = format!("Intro\n\n```rust\n{}\n```\n\nOutro", body.join("\n"));
        let parts = split_for_limit(&text, 600);
        assert!(parts.len() > 2, "{parts:?}");
        for part in &parts[1..parts.len() - 1] {
            assert!(part.starts_with("```rust\n"), "{part:?}");
            assert!(part.ends_with("\n```"), "{part:?}");
        }
        assert!(parts[0].starts_with("Intro\n\n```rust\nlet x0"));
        assert!(parts.last().is_some_and(|p| p.ends_with("```\n\nOutro")));
        assert_parts_valid(&text, 600);
    }

    #[test]
    fn huge_line_is_cut_on_char_boundaries() {
        let line = "汉字✓".repeat(500);
        let parts = split_for_limit(&line, 600);
        assert!(parts.len() > 1);
        assert_eq!(parts.concat(), line);
        assert_parts_valid(&line, 600);
        let fenced = format!("```\n{}\n```", "x".repeat(3000));
        let parts = split_for_limit(&fenced, 600);
        assert!(parts
            .iter()
            .all(|p| p.starts_with("```\n") && p.ends_with("\n```")));
        assert_parts_valid(&fenced, 600);
    }

    #[test]
    fn prefers_whitespace_and_avoids_fence_like_starts() {
        assert_eq!(split_point("aaaa bbbb", 7), 5);
        assert_eq!(split_point("aaaaaaaa", 4), 4);
        assert_eq!(split_point("aaaa```b", 4), 3);
        assert_eq!(split_point("é", 1), 2);
        assert_eq!(split_point("", 10), 0);
    }

    #[test]
    fn big_table_repeats_its_header() {
        let rows: Vec<String> = (0..60)
            .map(|i| format!("| row {i} | value {i} |"))
            .collect();
        let text = format!("| name | value |\n|---|---|\n{}", rows.join("\n"));
        let parts = split_for_limit(&text, 600);
        assert!(parts.len() > 2);
        for part in &parts {
            assert!(
                part.starts_with("| name | value |\n|---|---|\n"),
                "{part:?}"
            );
        }
        assert_parts_valid(&text, 600);
    }

    #[test]
    fn heading_moves_to_the_next_part() {
        let para = "p".repeat(300);
        let text = format!("{para}\n\n## Next\n\n{para}");
        let parts = split_for_limit(&text, 600);
        assert_eq!(parts, vec![para.clone(), format!("## Next\n\n{para}")]);
    }

    #[test]
    fn unclosed_fence_is_closed() {
        let parts = split_for_limit("text\n\n```py\nprint(1)", 1000);
        assert_eq!(parts, vec!["text\n\n```py\nprint(1)\n```"]);
        let long = format!("```py\n{}", "print(1)\n".repeat(200));
        let parts = split_for_limit(&long, 600);
        assert!(parts.iter().all(|p| p.ends_with("\n```")));
        assert_parts_valid(&long, 600);
    }

    #[test]
    fn rollover_head_and_tail() {
        let text = format!("{}\n\n```\n{}", "a".repeat(400), "line\n".repeat(100));
        let roll = split_head(&text, 600).unwrap_or_else(|| panic!("needs a rollover"));
        assert!(escaped_len(&roll.head) <= 600);
        assert!(roll.head.ends_with("\n```"));
        assert_eq!(roll.tail_prefix, "```\n");
        assert!(text[roll.tail_start..].starts_with("line"));
        assert!(split_head("short", 600).is_none());
    }
}
