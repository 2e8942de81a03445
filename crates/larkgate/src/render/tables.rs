//! Keeping tables within what a message renders: a card shows at most
//! [`lark_wire::card::MAX_TABLES_PER_CARD`] tables (more fail the whole card with
//! 230099 / 11310) and post `md` nodes show none, so extra tables become aligned
//! plain-text tables in code blocks.

use super::blocks::{self, table_cells, Kind};

/// Keeps the first `max_tables` tables of `markdown` and turns the others into code
/// blocks with aligned columns (cell text kept, `**` and backticks dropped).
pub fn degrade_tables(markdown: &str, max_tables: usize) -> String {
    let lines = blocks::lines(markdown);
    let mut out = String::with_capacity(markdown.len() + 64);
    let mut copied = 0;
    let mut seen = 0;
    for block in blocks::blocks(&lines) {
        if block.kind != Kind::Table {
            continue;
        }
        seen += 1;
        if seen <= max_tables {
            continue;
        }
        let range = block.range(&lines);
        out.push_str(&markdown[copied..range.start]);
        let rows: Vec<&str> = lines[block.first..=block.last]
            .iter()
            .map(|l| l.text)
            .collect();
        out.push_str(&table_as_code(&rows));
        copied = range.end;
    }
    out.push_str(&markdown[copied..]);
    out
}

/// Number of tables a card would render in `markdown` (outside code).
pub fn count_tables(markdown: &str) -> usize {
    let lines = blocks::lines(markdown);
    blocks::blocks(&lines)
        .iter()
        .filter(|b| b.kind == Kind::Table)
        .count()
}

/// A table (header, delimiter, rows) as a fenced block of aligned columns.
fn table_as_code(rows: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, row)| table_cells(row).into_iter().map(clean_cell).collect())
        .collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .filter_map(|row| row.get(c))
                .map(|cell| display_width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::from("```\n");
    for (r, row) in cells.iter().enumerate() {
        out.push_str(&format_row(row, &widths));
        out.push('\n');
        if r == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w.max(1))).collect();
            out.push_str(rule.join("-+-").trim_end());
            out.push('\n');
        }
    }
    out.push_str("```");
    out
}

fn format_row(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (c, (cell, width)) in row.iter().zip(widths).enumerate() {
        if c > 0 {
            line.push_str(" | ");
        }
        line.push_str(cell);
        line.extend(std::iter::repeat_n(
            ' ',
            width.saturating_sub(display_width(cell)),
        ));
    }
    line.trim_end().to_owned()
}

/// Cell text without emphasis markers or backticks, pipes unescaped.
fn clean_cell(cell: &str) -> String {
    cell.replace("\\|", "|").replace("**", "").replace('`', "")
}

/// Columns a string takes in a monospace font (wide East Asian characters count 2).
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "| Name | Qty |\n|---|---:|\n| **apple** | 3 |\n| 梨 | 12 |";

    #[test]
    fn tables_beyond_the_limit_become_code() {
        let text = format!("{T}\n\ntext\n\n{T}");
        assert_eq!(count_tables(&text), 2);
        let out = degrade_tables(&text, 1);
        assert_eq!(
            out,
            format!("{T}\n\ntext\n\n```\nName  | Qty\n------+----\napple | 3\n梨    | 12\n```")
        );
        assert_eq!(count_tables(&out), 1);
        assert_eq!(degrade_tables(&text, 3), text);
    }

    #[test]
    fn zero_keeps_no_table_and_code_tables_do_not_count() {
        let text = format!("```\n{T}\n```\n{T}");
        assert_eq!(count_tables(&text), 1);
        let out = degrade_tables(&text, 0);
        assert_eq!(count_tables(&out), 0);
        assert!(out.starts_with(&format!("```\n{T}\n```\n```\nName")));
    }

    #[test]
    fn ragged_rows_and_escaped_pipes() {
        let out = degrade_tables("| a | b |\n|---|---|\n| x \\| y |\n| 1 | 2 | 3 |", 0);
        assert_eq!(
            out,
            "```\na     | b\n------+---+--\nx | y\n1     | 2 | 3\n```"
        );
    }
}
