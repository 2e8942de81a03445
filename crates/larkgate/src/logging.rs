//! Logging: human text (or JSON) on stderr, and a daily file.
//!
//! Secrets never reach the logs because they are never formatted: every
//! secret in the configuration is a [`crate::secret::Secret`], whose `Debug`
//! and `Display` print `<redacted>`.

use std::path::{Path, PathBuf};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

use crate::config::{LogConfig, LogFormat};

/// The log file's name prefix; files are `larkgate.log.YYYY-MM-DD`.
pub const FILE_PREFIX: &str = "larkgate.log";

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// The level filter: `LARKGATE_LOG` (e.g. `info,larkgate=debug`) wins over
/// the configured level; `--verbose` means debug.
fn filter(level: &str, verbose: bool) -> Targets {
    let base = if verbose { "debug" } else { level };
    std::env::var("LARKGATE_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| base.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global subscriber. `dir` receives the daily file when set.
/// Calling it twice (tests) keeps the first subscriber.
pub fn init(cfg: &LogConfig, verbose: bool, dir: Option<&Path>) -> LogGuard {
    let json = cfg.format == LogFormat::Json;
    let stderr = if json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .boxed()
    };
    let (file_layer, guard) = match dir.and_then(|d| std::fs::create_dir_all(d).ok().map(|_| d)) {
        Some(d) => {
            let appender = tracing_appender::rolling::daily(d, FILE_PREFIX);
            // The default buffer holds 128,000 lines, a 4 MB array touched at
            // start-up; a few thousand lines ride out any burst we log.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(4096)
                .finish(appender);
            let layer = if json {
                fmt::layer().json().with_writer(writer).boxed()
            } else {
                fmt::layer().with_ansi(false).with_writer(writer).boxed()
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter(&cfg.level, verbose))
        .with(stderr)
        .with(file_layer)
        .try_init();
    LogGuard { _file: guard }
}

/// The newest log file in `dir`, if any.
pub fn current_file(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(FILE_PREFIX))
        })
        .collect();
    files.sort();
    files.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_file_is_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        for day in ["2026-12-01", "2026-12-03", "2026-12-02"] {
            std::fs::write(dir.path().join(format!("{FILE_PREFIX}.{day}")), day).unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        let f = current_file(dir.path()).unwrap();
        assert!(f.ends_with("larkgate.log.2026-12-03"));
        assert!(current_file(&dir.path().join("missing")).is_none());
    }
}
