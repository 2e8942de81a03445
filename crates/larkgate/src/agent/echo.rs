//! `echo`: streams the user's message back, for tests and demos, with a few
//! magic inputs (`echo-slow N`, `echo-fail [kind]`, `echo-long N`,
//! `echo-table N`, `echo-image`; a leading `/` is accepted too).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::turn::Common;
use super::{
    Agent, AgentError, AgentErrorKind, AgentEvent, AgentRequest, AttachmentKind, EventSink,
    OutboundMedia,
};

/// Default pause between chunks (`chunkDelayMs`).
pub(crate) const DEFAULT_CHUNK_DELAY: Duration = Duration::from_millis(20);

/// Pause between the chunks of `echo-slow`.
pub(crate) const SLOW_CHUNK_DELAY: Duration = Duration::from_secs(1);

/// Most chunks one reply is split into.
const MAX_CHUNKS: usize = 50;

/// Upper bounds of the magic inputs' numbers.
const MAX_SLOW_CHUNKS: u32 = 1000;
const MAX_LONG_KB: u32 = 1024;
const MAX_TABLES: u32 = 100;

/// A 16×16 PNG (a blue-orange gradient) for `echo-image`.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x91, 0x68,
    0x36, 0x00, 0x00, 0x00, 0x5f, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x95, 0xc2, 0x21, 0x12, 0x40,
    0x50, 0x00, 0x45, 0xd1, 0xb7, 0x12, 0x0b, 0xb0, 0x00, 0x0b, 0x10, 0x44, 0x23, 0xff, 0x6c, 0x44,
    0x41, 0xba, 0x49, 0x10, 0x8d, 0xfc, 0xb3, 0x11, 0x05, 0x49, 0x12, 0x44, 0x23, 0xff, 0x6c, 0x31,
    0xd6, 0xf0, 0xce, 0x1c, 0x65, 0x7c, 0x56, 0xe5, 0x24, 0xab, 0x0a, 0x5e, 0xab, 0x4a, 0x6e, 0xab,
    0x6a, 0x4e, 0xab, 0x02, 0xbb, 0x55, 0x1d, 0xab, 0x55, 0x03, 0xd1, 0xaa, 0x91, 0xc5, 0xaa, 0x99,
    0xc9, 0xaa, 0x08, 0x56, 0x6d, 0xf4, 0x56, 0x1d, 0xb4, 0x56, 0x5d, 0x04, 0xab, 0x1e, 0x1a, 0xab,
    0x12, 0x95, 0xf5, 0x07, 0x71, 0x9b, 0x81, 0x10, 0x6e, 0x61, 0x1a, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The built-in echo backend.
#[derive(Debug)]
pub(crate) struct EchoAgent {
    pub(crate) common: Common,
    /// Pause between chunks (none when zero).
    pub(crate) chunk_delay: Duration,
}

/// A magic input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Magic {
    /// `echo-slow N`: N chunks, one per [`SLOW_CHUNK_DELAY`].
    Slow(u32),
    /// `echo-fail [kind]`: fails with that kind (default `unavailable`).
    Fail(AgentErrorKind),
    /// `echo-long N`: at least N KiB of markdown.
    Long(u32),
    /// `echo-table N`: N markdown tables.
    Table(u32),
    /// `echo-image`: a short text and a PNG.
    Image,
}

impl EchoAgent {
    async fn turn(&self, request: AgentRequest, out: &EventSink) -> Result<(), AgentError> {
        let magic = parse_magic(&request.text);
        let (text, delay) = match magic {
            Some(Magic::Fail(kind)) => {
                return Err(self.common.error(kind, "echo-fail: failing on purpose"))
            }
            Some(Magic::Slow(n)) => {
                let chunks: Vec<String> = (1..=n).map(|i| format!("chunk {i} of {n}\n")).collect();
                return self.stream(chunks, SLOW_CHUNK_DELAY, out).await;
            }
            Some(Magic::Long(kb)) => (long_markdown(kb as usize * 1024), self.chunk_delay),
            Some(Magic::Table(n)) => (tables(n), self.chunk_delay),
            Some(Magic::Image) => ("Here is an image.".to_string(), self.chunk_delay),
            None => (echo_text(&request), self.chunk_delay),
        };
        self.stream(split_chunks(&text, MAX_CHUNKS), delay, out)
            .await?;
        if magic == Some(Magic::Image) {
            let path = write_png().await.map_err(|e| {
                self.common.error(
                    AgentErrorKind::Unavailable,
                    format!("echo-image: cannot write the image: {e}"),
                )
            })?;
            let media = OutboundMedia {
                kind: AttachmentKind::Image,
                source: path.to_string_lossy().into_owned(),
                name: Some("echo.png".into()),
            };
            self.common.emit(out, AgentEvent::Media(media)).await?;
        }
        Ok(())
    }

    /// Sends `chunks` with `delay` between them.
    async fn stream(
        &self,
        chunks: Vec<String>,
        delay: Duration,
        out: &EventSink,
    ) -> Result<(), AgentError> {
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.common.emit_text(out, chunk).await?;
        }
        Ok(())
    }
}

impl Agent for EchoAgent {
    fn kind(&self) -> &'static str {
        "echo"
    }

    fn run(
        &self,
        request: AgentRequest,
        cancel: CancellationToken,
        out: EventSink,
    ) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.common.guard(&cancel, self.turn(request, &out)).await })
    }
}

fn parse_magic(text: &str) -> Option<Magic> {
    let mut words = text.trim().trim_start_matches('/').split_whitespace();
    let command = words.next()?;
    let arg = words.next();
    if words.next().is_some() {
        return None;
    }
    let number = |default: u32, max: u32| -> Option<u32> {
        match arg {
            None => Some(default),
            Some(a) => a.parse::<u32>().ok().map(|n| n.clamp(1, max)),
        }
    };
    match command {
        "echo-slow" => number(10, MAX_SLOW_CHUNKS).map(Magic::Slow),
        "echo-long" => number(4, MAX_LONG_KB).map(Magic::Long),
        "echo-table" => number(1, MAX_TABLES).map(Magic::Table),
        "echo-image" if arg.is_none() => Some(Magic::Image),
        "echo-fail" => fail_kind(arg.unwrap_or("unavailable")).map(Magic::Fail),
        _ => None,
    }
}

fn fail_kind(word: &str) -> Option<AgentErrorKind> {
    Some(match word {
        "timeout" => AgentErrorKind::Timeout,
        "auth" => AgentErrorKind::Auth,
        "rate" | "ratelimited" => AgentErrorKind::RateLimited,
        "unavailable" => AgentErrorKind::Unavailable,
        "protocol" => AgentErrorKind::Protocol,
        "exit" => AgentErrorKind::Exit,
        "config" => AgentErrorKind::Config,
        _ => return None,
    })
}

/// The text echoed for an ordinary message: the message, then one line per
/// attachment.
fn echo_text(request: &AgentRequest) -> String {
    let mut text = request.text.clone();
    for a in &request.attachments {
        if !text.is_empty() {
            text.push('\n');
        }
        let kind = match a.kind {
            AttachmentKind::Image => "image",
            AttachmentKind::File => "file",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Video => "video",
        };
        let _ = write!(text, "received {kind} {}", a.name);
        if let Some(t) = &a.transcript {
            let _ = write!(text, " (transcript: {t})");
        }
    }
    if text.is_empty() {
        text.push_str("(empty message)");
    }
    text
}

/// Splits `text` after whitespace into at most `max` chunks of whole words;
/// the chunks concatenate to `text`.
pub(crate) fn split_chunks(text: &str, max: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut prev_space = false;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if prev_space && in_word && !c.is_whitespace() {
            words.push(&text[start..i]);
            start = i;
        }
        prev_space = c.is_whitespace();
        in_word |= !prev_space;
    }
    if start < text.len() {
        words.push(&text[start..]);
    }
    let per_chunk = words.len().div_ceil(max.max(1)).max(1);
    words.chunks(per_chunk).map(|w| w.concat()).collect()
}

/// At least `bytes` of markdown: headings, paragraphs, lists and code blocks.
fn long_markdown(bytes: usize) -> String {
    let mut text = String::new();
    let mut part = 1;
    while text.len() < bytes {
        let _ = write!(
            text,
            "## Part {part}\n\nThis is paragraph {part} of a long echo reply. It exists to exercise \
             splitting, streaming and rendering of long answers, so it says little and says it \
             at length. Nothing here is important; all of it must arrive.\n\n"
        );
        if part % 2 == 0 {
            let _ = write!(
                text,
                "```rust\nfn part_{part}() -> u32 {{\n    let answer = {part};\n    answer * 2\n}}\n```\n\n"
            );
        } else {
            let _ = write!(text, "- item {part}.1\n- item {part}.2\n\n");
        }
        part += 1;
    }
    text
}

/// `n` small markdown tables, each introduced by a line of text.
fn tables(n: u32) -> String {
    let mut text = String::new();
    for t in 1..=n {
        let _ = write!(text, "Table {t}:\n\n| # | name | value |\n|---|---|---|\n");
        for (row, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let _ = writeln!(text, "| {} | {name} | {} |", row + 1, t * 10 + row as u32);
        }
        text.push('\n');
    }
    text
}

/// Writes the PNG to the temp directory (atomically, so concurrent turns
/// never see a half-written file) and returns its path.
async fn write_png() -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let path = dir.join("larkgate-echo.png");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("larkgate-echo.{}.{n}.tmp", std::process::id()));
    tokio::fs::write(&tmp, PNG).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_inputs_parse() {
        assert_eq!(parse_magic("echo-slow 3"), Some(Magic::Slow(3)));
        assert_eq!(parse_magic("/echo-slow"), Some(Magic::Slow(10)));
        assert_eq!(
            parse_magic("echo-long 99999"),
            Some(Magic::Long(MAX_LONG_KB))
        );
        assert_eq!(parse_magic(" echo-table 2 "), Some(Magic::Table(2)));
        assert_eq!(
            parse_magic("echo-fail"),
            Some(Magic::Fail(AgentErrorKind::Unavailable))
        );
        assert_eq!(
            parse_magic("echo-fail auth"),
            Some(Magic::Fail(AgentErrorKind::Auth))
        );
        assert_eq!(parse_magic("echo-image"), Some(Magic::Image));
        assert_eq!(parse_magic("echo-slow many"), None);
        assert_eq!(parse_magic("echo-fail nonsense"), None);
        assert_eq!(parse_magic("please echo-slow 3"), None);
        assert_eq!(parse_magic("echo-slow 3 4"), None);
    }

    #[test]
    fn chunks_concatenate_to_the_text() {
        let text = "  one two\nthree  four 你好 five ";
        let chunks = split_chunks(text, 50);
        assert_eq!(
            chunks,
            ["  one ", "two\n", "three  ", "four ", "你好 ", "five "]
        );
        let few = split_chunks(text, 2);
        assert_eq!(few.len(), 2);
        assert_eq!(few.concat(), text);
        assert!(split_chunks("", 5).is_empty());
    }

    #[test]
    fn long_markdown_has_the_asked_size_and_closed_fences() {
        let text = long_markdown(10 * 1024);
        assert!(
            text.len() >= 10 * 1024 && text.len() < 11 * 1024,
            "{}",
            text.len()
        );
        assert_eq!(text.matches("```").count() % 2, 0);
    }
}
