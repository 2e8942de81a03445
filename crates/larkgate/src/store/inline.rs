//! The SQLite file's own connection, used synchronously on the caller's
//! thread.
//!
//! sqlx's SQLite driver runs every statement on a worker thread of its
//! connection and copies every bound value on the way: a statement costs two
//! thread wake-ups (there and back) besides SQLite's own work, which for the
//! short statements of the ingest path and of a turn (an insert, a state
//! change, a history read: tens of microseconds in WAL mode with
//! `synchronous=NORMAL`, no fsync) is several times the work itself. So a
//! SQLite file gets a second connection, through rusqlite, that runs the
//! inbox insert and the store's short statements where they are called.
//!
//! It never waits for a lock: if another connection holds the write lock
//! (a transaction on sqlx's connection, whose progress may need this very
//! thread, or another process), a call reports [`Inline::Busy`] at once,
//! having changed nothing, and the caller takes sqlx's asynchronous path,
//! which waits without blocking anyone.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, OpenFlags, Statement, TransactionBehavior};

use super::checkpoint;
use super::query::{Decode, Value};
use super::sql::{
    inbound_values, insert_values_sql, sqlite_new_ids, Backend, NewRow, MAX_ROWS_PER_STATEMENT,
    NEW_ROWS_SQL,
};
use super::{InsertOutcome, NewInbound, StoreError};

/// Prepared statements kept: one per inbox batch size (batches are powers
/// of two) and the store's other statements.
const STATEMENT_CACHE: usize = 48;

/// What an inline call did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Inline<T> {
    /// Done, with its result.
    Done(T),
    /// Another connection holds the write lock: nothing was changed.
    Busy,
}

/// The SQLite file's own connection.
#[derive(Debug)]
pub(super) struct InlineConn {
    conn: Mutex<Connection>,
}

/// Why an inline call stopped.
enum Stop {
    /// SQLite failed (busy, among others).
    Sqlite(rusqlite::Error),
    /// A row could not be decoded.
    Store(StoreError),
}

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Stop {
        Stop::Sqlite(e)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Store(e)
    }
}

/// A busy database as [`Inline::Busy`], other failures as errors.
fn settle<T>(result: Result<T, Stop>) -> Result<Inline<T>, StoreError> {
    match result {
        Ok(value) => Ok(Inline::Done(value)),
        Err(Stop::Sqlite(e)) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
            Ok(Inline::Busy)
        }
        Err(Stop::Sqlite(e)) => Err(sqlite_error(e)),
        Err(Stop::Store(e)) => Err(e),
    }
}

impl InlineConn {
    /// Opens the (already migrated) database file at `path`.
    pub(super) fn open(path: &Path) -> Result<InlineConn, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // No waiting for a lock: a busy database is handed to the async
        // path. (rusqlite opens connections with a 5 s busy timeout, which
        // would hold the caller's thread that long.)
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(sqlite_error)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = {};",
            checkpoint::BACKSTOP_PAGES
        ))
        .map_err(sqlite_error)?;
        Ok(InlineConn {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Sqlite("connection poisoned".into()))
    }

    /// Runs `sql` with `values` and decodes every row.
    pub(super) fn fetch<T>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        decode: Decode<T>,
    ) -> Result<Inline<Vec<T>>, StoreError> {
        let conn = self.lock()?;
        settle(fetch_rows(&conn, sql, values, decode))
    }

    /// Runs the statements in one write transaction (one statement runs
    /// alone: it is atomic by itself); returns the rows each changed.
    pub(super) fn execute_all(
        &self,
        statements: &[(&str, &[Value<'_>])],
    ) -> Result<Inline<Vec<u64>>, StoreError> {
        let mut conn = self.lock()?;
        settle(match statements {
            [(sql, values)] => execute_one(&conn, sql, values).map(|n| vec![n]),
            _ => execute_in_transaction(&mut conn, statements),
        })
    }

    /// Inserts `events[i]` for each `i` in `fresh` (at once, or not at all
    /// when the database is busy) and marks the new ones in `outcomes`.
    pub(super) fn insert(
        &self,
        events: &[NewInbound],
        fresh: &[usize],
        outcomes: &mut [InsertOutcome],
    ) -> Result<Inline<()>, StoreError> {
        let mut conn = self.lock()?;
        let result = if fresh.len() <= MAX_ROWS_PER_STATEMENT {
            // One statement is atomic on its own: no explicit transaction.
            insert_chunk(&conn, events, fresh, outcomes)
        } else {
            insert_in_transaction(&mut conn, events, fresh, outcomes)
        };
        let done = settle(result.map_err(Stop::from))?;
        if done == Inline::Busy {
            outcomes.fill(InsertOutcome::Duplicate);
        }
        Ok(done)
    }
}

fn fetch_rows<T>(
    conn: &Connection,
    sql: &str,
    values: &[Value<'_>],
    decode: Decode<T>,
) -> Result<Vec<T>, Stop> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn execute_one(conn: &Connection, sql: &str, values: &[Value<'_>]) -> Result<u64, Stop> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let changed = stmt.raw_execute()?;
    Ok(u64::try_from(changed).unwrap_or(u64::MAX))
}

fn execute_in_transaction(
    conn: &mut Connection,
    statements: &[(&str, &[Value<'_>])],
) -> Result<Vec<u64>, Stop> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = statements
        .iter()
        .map(|(sql, values)| execute_one(&tx, sql, values))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(changed)
}

/// Binds `values[n - 1]` to each `$n` placeholder of `stmt` (SQLite numbers
/// named parameters in order of first appearance, not by their digits).
fn bind(stmt: &mut Statement<'_>, values: &[Value<'_>]) -> Result<(), Stop> {
    for index in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| values.get(n.checked_sub(1)?))
            .copied()
            .ok_or_else(|| {
                StoreError::Sqlite(format!(
                    "placeholder {index} has no value ({} given)",
                    values.len()
                ))
            })?;
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
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
    let values = which.iter().flat_map(|&i| inbound_values(&events[i]));
    let count = stmt.execute(rusqlite::params_from_iter(values))?;
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
    StoreError::Sqlite(e.to_string())
}
