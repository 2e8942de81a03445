//! A Server-Sent Events parser (the `text/event-stream` format), fed with
//! bytes as they arrive from the network.
//!
//! Follows the WHATWG event-stream rules: lines end with `\r\n`, `\n` or
//! `\r` (also when the `\r` and `\n` arrive in different reads); `data` lines
//! of one event are joined with `\n`; lines starting with `:` are comments;
//! one space after the colon is dropped; a blank line dispatches the event,
//! and an event without `data` is not dispatched; a leading UTF-8 BOM is
//! skipped. At the end of the stream, [`SseParser::finish`] also dispatches an
//! event whose closing blank line never came (lenient: some servers omit it).
//!
//! ```
//! use larkgate::agent::sse::SseParser;
//!
//! let mut parser = SseParser::new();
//! parser.feed(b"event: ping\r\ndata: {\"a\":");
//! assert_eq!(parser.next_event().unwrap(), None);
//! parser.feed(b"1}\r\n\r\n");
//! let event = parser.next_event().unwrap().unwrap();
//! assert_eq!(event.event.as_deref(), Some("ping"));
//! assert_eq!(event.data, "{\"a\":1}");
//! ```

/// Longest line accepted by default (8 MiB).
pub const DEFAULT_MAX_LINE: usize = 8 * 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if one was given (`None` means `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if one was given.
    pub id: Option<String>,
}

/// Why the stream cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line grew past the limit without ending.
    #[error("an event-stream line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Incremental parser: [`feed`](SseParser::feed) bytes, then take events
/// with [`next_event`](SseParser::next_event) until it returns `None`.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes not yet consumed; `buf[start..]` is the unfinished part.
    buf: Vec<u8>,
    /// Start of the current (unfinished) line in `buf`.
    start: usize,
    /// How far past `start` we already looked for a line end.
    scanned: usize,
    /// The last line ended with `\r` at the end of the input: skip a `\n`
    /// at the start of the next chunk.
    skip_lf: bool,
    /// Still at the very start of the stream (a BOM may follow).
    at_stream_start: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    max_line: usize,
}

impl Default for SseParser {
    fn default() -> SseParser {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser with the default line limit ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> SseParser {
        SseParser::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A parser that fails on lines longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            at_stream_start: true,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            max_line,
        }
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
        self.buf.extend_from_slice(chunk);
        if self.at_stream_start {
            self.strip_bom();
        }
    }

    /// The next complete event, or `None` until more bytes are fed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.at_stream_start {
            return Ok(None);
        }
        while let Some((line_end, next)) = self.find_line_end() {
            let line = std::mem::take(&mut self.buf);
            let event = self.process_line(&line[self.start..line_end]);
            self.buf = line;
            self.start = next;
            self.scanned = 0;
            if let Some(event) = event {
                self.compact();
                return Ok(Some(event));
            }
        }
        self.compact();
        if self.buf.len() - self.start > self.max_line {
            return Err(SseError::LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(None)
    }

    /// Ends the stream: processes an unterminated last line and returns the
    /// event still pending, if it has data. Call [`next_event`](Self::next_event)
    /// until it returns `None` first.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        self.at_stream_start = false;
        if let Some(event) = self.next_event()? {
            return Ok(Some(event));
        }
        if self.start < self.buf.len() {
            let rest = self.buf.split_off(self.start);
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            if let Some(event) = self.process_line(&rest) {
                return Ok(Some(event));
            }
        }
        Ok(self.process_line(b""))
    }

    /// Drops a UTF-8 byte order mark at the start of the stream, once enough
    /// bytes are there to tell.
    fn strip_bom(&mut self) {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let n = self.buf.len().min(BOM.len());
        if self.buf[..n] != BOM[..n] {
            self.at_stream_start = false;
        } else if n == BOM.len() {
            self.buf.drain(..BOM.len());
            self.at_stream_start = false;
        }
    }

    /// Where the current line ends and the next one starts, if its end is in
    /// the buffer.
    fn find_line_end(&mut self) -> Option<(usize, usize)> {
        let from = self.start + self.scanned;
        let rest = &self.buf[from..];
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.scanned = self.buf.len() - self.start;
                None
            }
            Some(i) => {
                let end = from + i;
                if self.buf[end] == b'\n' {
                    return Some((end, end + 1));
                }
                match self.buf.get(end + 1) {
                    Some(b'\n') => Some((end, end + 2)),
                    Some(_) => Some((end, end + 1)),
                    None => {
                        self.skip_lf = true;
                        Some((end, end + 1))
                    }
                }
            }
        }
    }

    /// Forgets consumed bytes once they are a good part of the buffer.
    fn compact(&mut self) {
        if self.start > 0 && (self.start >= 4096 || self.start == self.buf.len()) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Applies one line; returns the event a blank line dispatches.
    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one and collects every event, then finishes.
    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(event) = parser.next_event().unwrap() {
                events.push(event);
            }
        }
        while let Some(event) = parser.finish().unwrap() {
            events.push(event);
        }
        events
    }

    fn data_of(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: a comment\r\n\
        event: message_start\r\n\
        data: {\"x\": \"\xC3\xA9t\xC3\xA9\"}\r\n\
        \r\n\
        data:first\n\
        data:  two spaces\n\
        id: 7\n\
        \n\
        event: only-a-name\n\
        \n\
        data\r\
        \r\
        retry: 1000\n\
        data: [DONE]\n\n";

    fn sample_expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"x\": \"été\"}".into(),
                id: None,
            },
            SseEvent {
                event: None,
                data: "first\n two spaces".into(),
                id: Some("7".into()),
            },
            SseEvent {
                event: None,
                data: String::new(),
                id: Some("7".into()),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
                id: Some("7".into()),
            },
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        assert_eq!(parse_chunks(&[SAMPLE]), sample_expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for i in 0..=SAMPLE.len() {
            let (a, b) = SAMPLE.split_at(i);
            assert_eq!(parse_chunks(&[a, b]), sample_expected(), "split at {i}");
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_events() {
        let chunks: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(parse_chunks(&chunks), sample_expected());
    }

    #[test]
    fn cr_at_the_end_of_a_read_then_lf_is_one_line_end() {
        let events = parse_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(data_of(&events), ["a\nb"]);
    }

    #[test]
    fn lone_cr_ends_lines() {
        let events = parse_chunks(&[b"data: a\rdata: b\r\rdata: c\r\r"]);
        assert_eq!(data_of(&events), ["a\nb", "c"]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let events = parse_chunks(&[b": keep-alive\n\nfoo: bar\ndata: x\n\n:\n\n"]);
        assert_eq!(data_of(&events), ["x"]);
    }

    #[test]
    fn event_name_applies_to_one_event_only() {
        let events = parse_chunks(&[b"event: a\ndata: 1\n\ndata: 2\n\n"]);
        assert_eq!(events[0].event.as_deref(), Some("a"));
        assert_eq!(events[1].event, None);
    }

    #[test]
    fn finish_dispatches_an_unterminated_event() {
        assert_eq!(data_of(&parse_chunks(&[b"data: tail"])), ["tail"]);
        assert_eq!(data_of(&parse_chunks(&[b"data: a\ndata: b\n"])), ["a\nb"]);
        assert!(parse_chunks(&[b"event: x\n"]).is_empty());
        assert!(parse_chunks(&[b""]).is_empty());
    }

    #[test]
    fn multibyte_characters_split_across_reads_survive() {
        let text = "data: 你好\n\n".as_bytes();
        for i in 0..=text.len() {
            let (a, b) = text.split_at(i);
            assert_eq!(data_of(&parse_chunks(&[a, b])), ["你好"]);
        }
    }

    #[test]
    fn a_partial_bom_is_not_stripped() {
        assert_eq!(data_of(&parse_chunks(&[b"\xEF", b"data: x\n\n"])).len(), 0);
        let events = parse_chunks(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(data_of(&events), ["x"]);
    }

    #[test]
    fn overlong_lines_fail() {
        let mut parser = SseParser::with_max_line(8);
        parser.feed(b"data: 12");
        assert_eq!(parser.next_event(), Ok(None));
        parser.feed(b"345");
        assert_eq!(parser.next_event(), Err(SseError::LineTooLong { limit: 8 }));
    }

    #[test]
    fn many_events_in_one_read_come_out_one_at_a_time() {
        let mut parser = SseParser::new();
        let mut input = Vec::new();
        for i in 0..10_000 {
            input.extend_from_slice(format!("data: {i}\n\n").as_bytes());
        }
        parser.feed(&input);
        for i in 0..10_000 {
            let event = parser.next_event().unwrap().unwrap();
            assert_eq!(event.data, i.to_string());
        }
        assert_eq!(parser.next_event(), Ok(None));
        assert_eq!(parser.finish(), Ok(None));
    }
}
