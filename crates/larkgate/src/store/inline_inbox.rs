//! The inbox insert on a SQLite file, run on the caller's thread.
//!
//! sqlx's SQLite driver runs every statement on a worker thread of its
//! connection and copies every bound value on the way: for the one statement
//! on the ingest path, the hand-over (two thread wake-ups per batch) and the
//! copies cost several times what SQLite spends inserting. So the inbox
//! insert has its own connection to the same file, through rusqlite, used
//! synchronously: a batch insert is a few hundred microseconds of SQLite work
//! (WAL append, `synchronous=NORMAL`, no fsync), shorter than the thread
//! hand-over it replaces.
//!
//! It never waits for a lock: if another connection holds the write lock
//! (a turn's transaction on sqlx's connection, whose progress may need this
//! very thread), the insert reports [`Inline::Busy`] at once and the caller
//! takes sqlx's asynchronous path, which waits without blocking anyone.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::ToSql;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::checkpoint;
use super::sql::{
    insert_values_sql, sqlite_new_ids, Backend, NewRow, INBOUND_COLUMNS, MAX_ROWS_PER_STATEMENT,
    NEW_ROWS_SQL,
};
use super::{InsertOutcome, NewInbound, StoreError};

/// Prepared statements kept (one per batch size; batches are powers of two).
const STATEMENT_CACHE: usize = 16;

/// What an inline insert did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Inline {
    /// Written; `outcomes` says which events were new.
    Done,
    /// Another connection holds the write lock: nothing was written.
    Busy,
}

/// The inbox's own connection.
#[derive(Debug)]
pub(super) struct InlineInbox {
    conn: Mutex<Connection>,
}

impl InlineInbox {
    /// Opens the (already migrated) database file at `path`.
    pub(super) fn open(path: &Path) -> Result<InlineInbox, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // busy_timeout stays 0: a busy database is handed to the async path.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = {};",
            checkpoint::BACKSTOP_PAGES
        ))
        .map_err(sqlite_error)?;
        Ok(InlineInbox {
            conn: Mutex::new(conn),
        })
    }

    /// Inserts `events[i]` for each `i` in `fresh` (at once, or not at all
    /// when the database is busy) and marks the new ones in `outcomes`.
    pub(super) fn insert(
        &self,
        events: &[NewInbound],
        fresh: &[usize],
        outcomes: &mut [InsertOutcome],
    ) -> Result<Inline, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Corrupt("inbox connection poisoned".into()))?;
        let result = if fresh.len() <= MAX_ROWS_PER_STATEMENT {
            // One statement is atomic on its own: no explicit transaction.
            insert_chunk(&conn, events, fresh, outcomes)
        } else {
            insert_in_transaction(&mut conn, events, fresh, outcomes)
        };
        match result {
            Ok(()) => Ok(Inline::Done),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                outcomes.fill(InsertOutcome::Duplicate);
                Ok(Inline::Busy)
            }
            Err(e) => Err(sqlite_error(e)),
        }
    }
}

fn insert_in_transaction(
    conn: &mut Connection,
    events: &[NewInbound],
    fresh: &[usize],
    outcomes: &mut [InsertOutcome],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for chunk in fresh.chunks(MAX_ROWS_PER_STATEMENT) {
        insert_chunk(&tx, events, chunk, outcomes)?;
    }
    tx.commit()
}

/// One multi-row insert of `events[i]` for each `i` in `which`.
fn insert_chunk(
    conn: &Connection,
    events: &[NewInbound],
    which: &[usize],
    outcomes: &mut [InsertOutcome],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&insert_values_sql(Backend::Sqlite, which.len()))?;
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(which.len() * INBOUND_COLUMNS);
    let states: Vec<(&str, Option<&str>, bool)> = which
        .iter()
        .map(|&i| {
            let s = &events[i].state;
            (s.name(), s.reason(), s.is_unfinished())
        })
        .collect();
    for (&i, (name, reason, dedup)) in which.iter().zip(&states) {
        let e = &events[i];
        values.extend_from_slice(&[
            &e.account as &dyn ToSql,
            &e.event_id,
            &e.message_id,
            &e.event_type,
            &e.chat_id,
            &e.payload,
            &e.received_at_ms,
            name,
            reason,
            dedup,
        ]);
    }
    let count = stmt.execute(values.as_slice())?;
    let Some((after, last)) = sqlite_new_ids(
        conn.last_insert_rowid(),
        i64::try_from(count).unwrap_or(i64::MAX),
        which,
        outcomes,
    ) else {
        return Ok(());
    };
    let mut lookup = conn.prepare_cached(NEW_ROWS_SQL)?;
    let rows = lookup
        .query_map([after, last], |r| {
            let state: String = r.get(3)?;
            Ok(NewRow::new(r.get(0)?, r.get(1)?, r.get(2)?, &state))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    super::sql::fill_outcomes(outcomes, events, which, rows);
    Ok(())
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Inbox(e.to_string())
}
