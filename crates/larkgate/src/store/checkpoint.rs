//! SQLite WAL checkpoints off the write path.
//!
//! In WAL mode every commit appends to the `-wal` file, and by default the
//! commit that crosses 1,000 pages also copies them back into the database
//! and syncs it (a checkpoint): a few milliseconds during which the inbox's
//! insert, and so the acks of whatever arrived meanwhile, wait. Here the
//! store's own connection checkpoints only as a backstop (every
//! [`BACKSTOP_PAGES`]), and a second connection runs a `PASSIVE` checkpoint
//! in the background once [`EVERY_ROWS`] inbox rows were written, at most
//! once per [`MIN_INTERVAL`] (each one syncs the database file, and a
//! row of chatter is a fraction of a page). A passive checkpoint never
//! blocks the writer: commits go on appending to the WAL meanwhile.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Executor};
use tokio::sync::Mutex;

/// Inbox rows between background checkpoints (a row of chatter is a
/// fraction of a page; a row to answer with its two index entries, up to
/// three pages).
pub const EVERY_ROWS: usize = 256;

/// The shortest time between background checkpoints.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// `wal_autocheckpoint` of the writing connection: the backstop if the
/// background checkpoints stop keeping up (16 MB of WAL).
pub const BACKSTOP_PAGES: u32 = 4_000;

/// The checkpointing connection and its trigger.
#[derive(Debug)]
pub struct Checkpointer {
    conn: Mutex<AnyConnection>,
    rows_since: AtomicUsize,
    running: AtomicBool,
    done: AtomicUsize,
    /// When the last background checkpoint started.
    last: SyncMutex<Option<Instant>>,
}

impl Checkpointer {
    /// Wraps a connection to the same database file.
    pub fn new(conn: AnyConnection) -> Arc<Checkpointer> {
        Arc::new(Checkpointer {
            conn: Mutex::new(conn),
            rows_since: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            done: AtomicUsize::new(0),
            last: SyncMutex::new(None),
        })
    }

    /// Counts `rows` written; starts a checkpoint in the background once
    /// enough were (never two at a time; outside a runtime, nothing).
    pub fn wrote(self: &Arc<Self>, rows: usize) {
        let total = self.rows_since.fetch_add(rows, Ordering::Relaxed) + rows;
        if total < EVERY_ROWS || !self.interval_passed() {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.rows_since.store(0, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let result = this
                .conn
                .lock()
                .await
                .execute("PRAGMA wal_checkpoint(PASSIVE)")
                .await;
            match result {
                Ok(_) => {
                    this.done.fetch_add(1, Ordering::Relaxed);
                }
                // The writer's backstop checkpoint still bounds the WAL.
                Err(e) => tracing::warn!("background WAL checkpoint failed: {e}"),
            }
            this.running.store(false, Ordering::Release);
        });
    }

    /// Whether [`MIN_INTERVAL`] passed since the last start (and if so,
    /// counts now as the next start).
    fn interval_passed(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < MIN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Checkpoints completed so far.
    pub fn completed(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
}
