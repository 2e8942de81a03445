//! `larkgate logs [-f]`: the current daily log file, optionally followed
//! across the daily rollover.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::LogsArgs;
use super::{config_path, Failure, Outcome};
use crate::config::Config;
use crate::logging;

/// How often `-f` looks for new lines.
const POLL: Duration = Duration::from_millis(250);

pub(super) async fn logs(path: Option<&Path>, args: LogsArgs) -> Outcome {
    let dir = log_dir(path)?;
    let Some(mut file) = logging::current_file(&dir) else {
        return Err(Failure::runtime(format!(
            "no log file in {} yet (larkgate run writes {}.YYYY-MM-DD there)",
            dir.display(),
            logging::FILE_PREFIX
        )));
    };
    let mut pos = copy_from(&file, 0)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(POLL).await;
        pos = copy_from(&file, pos)?;
        if let Some(newest) = logging::current_file(&dir).filter(|n| *n != file) {
            // The day rolled over: finish the old file, go on with the new.
            copy_from(&file, pos)?;
            file = newest;
            pos = copy_from(&file, 0)?;
        }
    }
}

/// The log directory: `log.dir` of the config; when the config does not
/// load, `logs/` beside it (the default), so that logs stay readable while
/// the config is broken.
fn log_dir(path: Option<&Path>) -> Result<PathBuf, Failure> {
    match Config::load(path) {
        Ok(loaded) => loaded.config.log.dir.ok_or_else(|| {
            Failure::runtime("file logging is off (log.dir is empty); logs go to stderr only")
        }),
        Err(_) => {
            let file = config_path(path);
            let dir = file.parent().unwrap_or(Path::new("")).join("logs");
            Ok(dir)
        }
    }
}

/// Writes `file` from byte `from` to stdout; returns the new end. A file
/// that shrank (truncated) is read again from its start.
fn copy_from(file: &Path, from: u64) -> Result<u64, Failure> {
    let fail = |e: std::io::Error| Failure::runtime(format!("{}: {e}", file.display()));
    let mut f = std::fs::File::open(file).map_err(fail)?;
    let len = f.metadata().map_err(fail)?.len();
    let start = if len < from { 0 } else { from };
    f.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut out = std::io::stdout().lock();
    let copied = std::io::copy(&mut f.take(len - start), &mut out)
        .and_then(|n| out.flush().map(|_| n))
        .map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
    Ok(start + copied)
}
