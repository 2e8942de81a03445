//! `command`: a local program started for each turn. The turn goes to its
//! stdin as JSON ([`TurnInput`]); its stdout is streamed into the reply as
//! it is written (raw text, or JSON lines); its stderr is kept for the error
//! message. Cancellation and timeouts kill its whole process group, and the
//! program is always reaped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::turn::{truncate_chars, Common};
use super::utf8::Utf8Decoder;
use super::wire::{CommandLine, TurnInput};
use super::{
    Agent, AgentError, AgentErrorKind, AgentEvent, AgentRequest, CommandOutput, EventSink,
};

/// How long stdout is still read after the program exited, in case a
/// process it left behind holds it open.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Bytes of stderr kept for the error message.
const STDERR_KEEP: usize = 8 * 1024;

/// Lines of stderr quoted in the error message.
const STDERR_LINES: usize = 5;

/// Longest JSON line accepted in `jsonl` mode.
const JSONL_LINE_LIMIT: usize = 1024 * 1024;

/// A program run per turn.
#[derive(Debug)]
pub(crate) struct CommandAgent {
    pub(crate) common: Common,
    /// The program (already resolved against the config directory if relative with a `/`).
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// Working directory (already resolved).
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) output: CommandOutput,
    /// Relative media paths are resolved against this (the cwd, else the config directory).
    pub(crate) media_base: PathBuf,
}

impl CommandAgent {
    async fn turn(
        &self,
        request: AgentRequest,
        cancel: &CancellationToken,
        out: &EventSink,
    ) -> Result<(), AgentError> {
        if cancel.is_cancelled() {
            return Err(self.common.cancelled());
        }
        let input = TurnInput::new(&request, self.common.system_prompt(&request));
        let input = serde_json::to_vec(&input)
            .map_err(|e| self.common.error(AgentErrorKind::Protocol, e.to_string()))?;
        let mut running = self.spawn(&request, input)?;
        let mut tail = StderrTail::default();
        let result = self.drive(&mut running, cancel, out, &mut tail).await;
        if result.is_err() {
            running.kill_and_reap().await;
        }
        let status = result?;
        if status.success() {
            return Ok(());
        }
        let mut message = match status.code() {
            Some(code) => format!("the command exited with status {code}"),
            None => format!("the command was killed{}", signal_of(&status)),
        };
        if let Some(stderr) = tail.message() {
            message.push_str(": ");
            message.push_str(&stderr);
        }
        Err(self.common.error(AgentErrorKind::Exit, message))
    }

    /// Starts the program with its input being written to stdin.
    fn spawn(&self, request: &AgentRequest, input: Vec<u8>) -> Result<Running, AgentError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("LARKGATE_SESSION_ID", &request.session_id)
            .env("LARKGATE_ACCOUNT", &request.account)
            .env("LARKGATE_CHAT_ID", &request.chat_id)
            .env("LARKGATE_SENDER_OPEN_ID", &request.sender_open_id)
            .envs(&self.env);
        #[cfg(unix)]
        command.process_group(0);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|e| {
            self.common.error(
                AgentErrorKind::Config,
                format!("cannot start `{}`: {e}", self.program.display()),
            )
        })?;
        let writer = child.stdin.take().map(|mut stdin| {
            tokio::spawn(async move {
                // A program that does not read its input closes the pipe: fine.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            })
        });
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(self.common.error(
                AgentErrorKind::Config,
                "the command's output could not be captured",
            ));
        };
        Ok(Running {
            pgid: child.id(),
            child,
            reaped: false,
            stdout: Some(stdout),
            stderr: Some(stderr),
            writer,
        })
    }

    /// Streams stdout into events until the program exited and its output
    /// pipes closed (or the grace after exit passed); returns the exit status.
    async fn drive(
        &self,
        running: &mut Running,
        cancel: &CancellationToken,
        out: &EventSink,
        tail: &mut StderrTail,
    ) -> Result<ExitStatus, AgentError> {
        let now = Instant::now();
        let deadline = now
            .checked_add(self.common.turn_timeout)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let mut reader = OutputReader::new(self.output);
        let mut stdout = running.stdout.take();
        let mut stderr = running.stderr.take();
        let mut out_buf = vec![0u8; 16 * 1024];
        let mut err_buf = vec![0u8; 4 * 1024];
        let mut status: Option<ExitStatus> = None;
        let mut grace_end: Option<Instant> = None;
        while stdout.is_some() || stderr.is_some() || status.is_none() {
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(self.common.cancelled()),
                _ = tokio::time::sleep_until(deadline) => return Err(self.common.timed_out()),
                r = read_some(&mut stdout, &mut out_buf), if stdout.is_some() => Step::Stdout(r),
                r = read_some(&mut stderr, &mut err_buf), if stderr.is_some() => Step::Stderr(r),
                r = running.child.wait(), if status.is_none() => Step::Exited(r),
                _ = sleep_until_opt(grace_end), if grace_end.is_some() => break,
            };
            match step {
                Step::Stdout(0) => stdout = None,
                Step::Stdout(n) => {
                    let events = reader
                        .push(&out_buf[..n], &self.media_base)
                        .map_err(|why| self.common.error(AgentErrorKind::Protocol, why))?;
                    self.send_all(events, cancel, out).await?;
                }
                Step::Stderr(0) => stderr = None,
                Step::Stderr(n) => tail.push(&err_buf[..n]),
                Step::Exited(Ok(s)) => {
                    running.reaped = true;
                    status = Some(s);
                    grace_end = Some(Instant::now() + EXIT_GRACE);
                }
                Step::Exited(Err(e)) => {
                    return Err(self.common.error(
                        AgentErrorKind::Exit,
                        format!("cannot wait for the command: {e}"),
                    ))
                }
            }
        }
        let events = reader
            .finish(&self.media_base)
            .map_err(|why| self.common.error(AgentErrorKind::Protocol, why))?;
        self.send_all(events, cancel, out).await?;
        status.ok_or_else(|| {
            self.common
                .error(AgentErrorKind::Exit, "the command's status is unknown")
        })
    }

    /// Sends events, giving up if the turn is cancelled meanwhile.
    async fn send_all(
        &self,
        events: Vec<AgentEvent>,
        cancel: &CancellationToken,
        out: &EventSink,
    ) -> Result<(), AgentError> {
        for event in events {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(self.common.cancelled()),
                sent = self.common.emit(out, event) => sent?,
            }
        }
        Ok(())
    }
}

impl Agent for CommandAgent {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn run(
        &self,
        request: AgentRequest,
        cancel: CancellationToken,
        out: EventSink,
    ) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.turn(request, &cancel, &out).await })
    }
}

/// What one round of the loop saw.
enum Step {
    Stdout(usize),
    Stderr(usize),
    Exited(std::io::Result<ExitStatus>),
}

/// Reads from a pipe; a read error counts as its end.
async fn read_some<R: AsyncReadExt + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
fn signal_of(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    status
        .signal()
        .map(|s| format!(" by signal {s}"))
        .unwrap_or_default()
}

#[cfg(not(unix))]
fn signal_of(_: &ExitStatus) -> String {
    String::new()
}

/// A started program. Dropped before it was reaped (the turn's future was
/// dropped), it kills the whole process group; tokio reaps the leader.
struct Running {
    child: Child,
    /// The process group id (the leader's pid).
    pgid: Option<u32>,
    /// The leader was waited for: its pid may be reused, never signal it again.
    reaped: bool,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    writer: Option<JoinHandle<()>>,
}

impl Running {
    /// Kills the process group (the leader is not reaped yet, so its id
    /// cannot have been reused).
    fn kill_group(&mut self) {
        if self.reaped {
            return;
        }
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals the process group we
            // created for this child; it touches no memory of ours.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    /// Kills the group and waits for the leader, so no zombie is left.
    async fn kill_and_reap(&mut self) {
        self.kill_group();
        if !self.reaped {
            let _ = self.child.wait().await;
            self.reaped = true;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Turns stdout bytes into events.
enum OutputReader {
    Text(Utf8Decoder),
    Jsonl(Vec<u8>),
}

impl OutputReader {
    fn new(output: CommandOutput) -> OutputReader {
        match output {
            CommandOutput::Text => OutputReader::Text(Utf8Decoder::default()),
            CommandOutput::Jsonl => OutputReader::Jsonl(Vec::new()),
        }
    }

    fn push(&mut self, bytes: &[u8], base: &std::path::Path) -> Result<Vec<AgentEvent>, String> {
        match self {
            OutputReader::Text(decoder) => Ok(text_event(decoder.push(bytes))),
            OutputReader::Jsonl(line) => {
                let mut events = Vec::new();
                for part in bytes.split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(part);
                    if line.ends_with(b"\n") {
                        events.extend(parse_line(line, base)?);
                        line.clear();
                    } else if line.len() > JSONL_LINE_LIMIT {
                        return Err(format!(
                            "an output line is longer than {JSONL_LINE_LIMIT} bytes"
                        ));
                    }
                }
                Ok(events)
            }
        }
    }

    fn finish(&mut self, base: &std::path::Path) -> Result<Vec<AgentEvent>, String> {
        match self {
            OutputReader::Text(decoder) => Ok(text_event(decoder.finish())),
            OutputReader::Jsonl(line) => {
                let events = parse_line(line, base)?;
                line.clear();
                Ok(events.into_iter().collect())
            }
        }
    }
}

fn text_event(text: String) -> Vec<AgentEvent> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![AgentEvent::Delta(text)]
    }
}

/// One JSON line (blank lines are skipped).
fn parse_line(line: &[u8], base: &std::path::Path) -> Result<Option<AgentEvent>, String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed: CommandLine = serde_json::from_str(text)
        .map_err(|e| format!("unreadable output line ({e}): {}", truncate_chars(text, 80)))?;
    Ok(Some(match parsed {
        CommandLine::Text { text } => AgentEvent::Delta(text),
        CommandLine::Media(spec) => AgentEvent::Media(spec.to_outbound(Some(base))?),
        CommandLine::Usage(usage) => usage.into(),
    }))
}

/// The end of stderr, for the error message.
#[derive(Default)]
struct StderrTail {
    bytes: Vec<u8>,
}

impl StderrTail {
    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() > 2 * STDERR_KEEP {
            let cut = self.bytes.len() - STDERR_KEEP;
            self.bytes.drain(..cut);
        }
    }

    /// The last few non-empty lines, joined with ` | `.
    fn message(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return None;
        }
        let start = lines.len().saturating_sub(STDERR_LINES);
        Some(truncate_chars(&lines[start..].join(" | "), 600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AttachmentKind;
    use std::path::Path;

    #[test]
    fn jsonl_lines_split_across_reads() {
        let mut reader = OutputReader::new(CommandOutput::Jsonl);
        let base = Path::new("/w");
        let mut events = reader.push(b"{\"type\":\"text\",\"te", base).unwrap();
        assert!(events.is_empty());
        events = reader
            .push(
                b"xt\":\"a\"}\n\n{\"type\":\"media\",\"path\":\"x.png\"}",
                base,
            )
            .unwrap();
        assert_eq!(events, [AgentEvent::Delta("a".into())]);
        events = reader.finish(base).unwrap();
        let AgentEvent::Media(media) = &events[0] else {
            panic!("expected media, got {events:?}");
        };
        assert_eq!(
            (media.kind, media.source.as_str()),
            (AttachmentKind::Image, "/w/x.png")
        );
        assert!(OutputReader::new(CommandOutput::Jsonl)
            .push(b"oops\n", base)
            .is_err());
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let mut tail = StderrTail::default();
        for i in 0..10_000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        assert_eq!(
            tail.message().unwrap(),
            "line 9995 | line 9996 | line 9997 | line 9998 | line 9999"
        );
        assert_eq!(StderrTail::default().message(), None);
    }
}
