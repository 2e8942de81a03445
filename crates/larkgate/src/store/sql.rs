//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver, for SQLite and
//! PostgreSQL alike: the same queries, a pool for PostgreSQL, one owned
//! connection for SQLite (see [`Handle`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::checkpoint::{self, Checkpointer};
use super::inline::{Inline, InlineConn};
use super::query::{bind_values, Columns, Decode, Value};
use super::{
    InboundRow, InboundState, InsertOutcome, NewInbound, NewTurns, OpenCard, Pairing,
    PairingOutcome, Store, StoreError, MIN_DEDUP_WINDOW_MS,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Columns written per inbox row.
pub(super) const INBOUND_COLUMNS: usize = 10;

/// The values of one inbox row, in the column order of
/// [`insert_values_sql`] (both drivers bind these).
pub(super) fn inbound_values(e: &NewInbound) -> [Value<'_>; INBOUND_COLUMNS] {
    [
        Value::Text(&e.account),
        Value::Text(&e.event_id),
        Value::OptText(e.message_id.as_deref()),
        Value::Text(&e.event_type),
        Value::OptText(e.chat_id.as_deref()),
        Value::Text(&e.payload),
        Value::Int(e.received_at_ms),
        Value::Text(e.state.name()),
        Value::OptText(e.state.reason()),
        Value::Bool(e.state.is_unfinished()),
    ]
}

/// Rows per multi-row insert: 10 × 256 parameters stays far below the limits
/// of SQLite (32 766) and PostgreSQL (65 535).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 256;

/// How long a SQLite writer waits for the lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

const INBOUND_SELECT: &str = "SELECT id, account, event_id, message_id, event_type, chat_id, \
     payload, received_at_ms, state, reason, attempts FROM inbound";

const PAIRING_COLUMNS: &str = "code, account, open_id, created_ms, expires_ms";

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::Url(format!(
                "scheme {scheme:?} is not supported; use sqlite://path or postgres://…"
            )))
        }
    }

    /// The statement that opens a write transaction. SQLite's default
    /// (deferred) transaction that reads before it writes can fail with
    /// SQLITE_BUSY instead of waiting; `BEGIN IMMEDIATE` takes the write
    /// lock up front and honours the busy timeout.
    fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// How queries reach the database.
#[derive(Debug)]
enum Handle {
    /// PostgreSQL: a pool, so requests run concurrently and broken
    /// connections are replaced.
    Pool(AnyPool),
    /// SQLite: one connection, owned. SQLite has one writer at a time
    /// anyway, and going through a pool (acquire, return) cost more CPU per
    /// query than the query itself. (A SQLite file also has the inline
    /// connection, see `inline`, which takes most statements; each
    /// connection drops its page cache after the other writes.)
    Single(Mutex<AnyConnection>),
}

/// A connection borrowed from a [`Handle`] for one operation.
enum Conn<'a> {
    Pooled(PoolConnection<Any>),
    Single(MutexGuard<'a, AnyConnection>),
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Single(c) => c,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Single(c) => c,
        }
    }
}

/// The SQL store. Cheap to clone (clones share the connections).
#[derive(Clone, Debug)]
pub struct SqlStore {
    handle: Arc<Handle>,
    backend: Backend,
    /// Background WAL checkpoints (SQLite files only).
    checkpoints: Option<Arc<Checkpointer>>,
    /// Statements on the caller's thread (SQLite files only).
    inline: Option<Arc<InlineConn>>,
}

impl SqlStore {
    /// Connects to `url` and applies migrations. SQLite URLs
    /// (`sqlite://relative/path`, `sqlite:///absolute/path`,
    /// `sqlite::memory:`) create the file and its directory if missing and
    /// run in WAL mode with `synchronous=NORMAL`. PostgreSQL URLs are passed
    /// to sqlx as they are (for example `?options[search_path]=schema`).
    pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let mut checkpoints = None;
        let mut inline = None;
        let handle = match backend {
            Backend::Sqlite => {
                let mut conn = open_sqlite(url).await?;
                SQLITE_MIGRATIONS.run(&mut conn).await?;
                if !sqlite_in_memory(url) {
                    conn.execute(
                        format!("PRAGMA wal_autocheckpoint = {}", checkpoint::BACKSTOP_PAGES)
                            .as_str(),
                    )
                    .await?;
                    checkpoints = Some(Checkpointer::new(open_sqlite(url).await?));
                    if let Some(path) = plain_sqlite_file(url) {
                        inline = Some(Arc::new(InlineConn::open(&path)?));
                    }
                }
                Handle::Single(Mutex::new(conn))
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Handle::Pool(pool)
            }
        };
        Ok(SqlStore {
            handle: Arc::new(handle),
            backend,
            checkpoints,
            inline,
        })
    }

    /// Background WAL checkpoints completed so far (0 for PostgreSQL and
    /// in-memory SQLite); see the `checkpoint` module.
    pub fn background_checkpoints(&self) -> usize {
        self.checkpoints.as_ref().map_or(0, |c| c.completed())
    }

    async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        Ok(match &*self.handle {
            Handle::Pool(pool) => Conn::Pooled(pool.acquire().await?),
            Handle::Single(conn) => Conn::Single(conn.lock().await),
        })
    }

    /// Runs `sql` with `values` and decodes every row: on the inline
    /// connection when there is one and the database is not busy, else
    /// through sqlx.
    async fn fetch<T>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        decode: Decode<T>,
    ) -> Result<Vec<T>, StoreError> {
        if let Some(inline) = &self.inline {
            if let Inline::Done(rows) = inline.fetch(sql, values, decode)? {
                return Ok(rows);
            }
        }
        let rows = bind_values(sqlx::query(sql), values)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(|row| decode(row)).collect()
    }

    /// [`SqlStore::fetch`] of a query that selects at most one row.
    async fn fetch_optional<T>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        decode: Decode<T>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.fetch(sql, values, decode).await?.into_iter().next())
    }

    /// Runs one statement; returns the rows it changed.
    async fn execute(&self, sql: &str, values: &[Value<'_>]) -> Result<u64, StoreError> {
        let changed = self.execute_all(&[(sql, values)]).await?;
        Ok(changed.first().copied().unwrap_or(0))
    }

    /// Runs the statements in one write transaction (inline when possible,
    /// like [`SqlStore::fetch`]); returns the rows each changed.
    async fn execute_all(
        &self,
        statements: &[(&str, &[Value<'_>])],
    ) -> Result<Vec<u64>, StoreError> {
        if let Some(inline) = &self.inline {
            if let Inline::Done(changed) = inline.execute_all(statements)? {
                self.wrote(1);
                return Ok(changed);
            }
        }
        let mut conn = self.conn().await?;
        let changed = if let [(sql, values)] = statements {
            vec![execute_sqlx(&mut conn, sql, values).await?]
        } else {
            let mut tx = conn.begin_with(self.backend.begin_write()).await?;
            let mut changed = Vec::with_capacity(statements.len());
            for (sql, values) in statements {
                changed.push(execute_sqlx(&mut tx, sql, values).await?);
            }
            tx.commit().await?;
            changed
        };
        self.wrote(1);
        Ok(changed)
    }

    async fn insert_inbound_impl(
        &self,
        events: &[NewInbound],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut outcomes = vec![InsertOutcome::Duplicate; events.len()];
        let fresh = first_occurrences(events);
        if fresh.is_empty() {
            return Ok(outcomes);
        }
        if let Some(inline) = &self.inline {
            if inline.insert(events, &fresh, &mut outcomes)? == Inline::Done(()) {
                self.wrote(fresh.len());
                return Ok(outcomes);
            }
        }
        let mut conn = self.conn().await?;
        if fresh.len() <= MAX_ROWS_PER_STATEMENT {
            // One statement is atomic on its own: no explicit transaction.
            self.insert_chunk(&mut conn, events, &fresh, &mut outcomes)
                .await?;
        } else {
            let mut tx = conn.begin_with(self.backend.begin_write()).await?;
            for chunk in fresh.chunks(MAX_ROWS_PER_STATEMENT) {
                self.insert_chunk(&mut tx, events, chunk, &mut outcomes)
                    .await?;
            }
            tx.commit().await?;
        }
        self.wrote(fresh.len());
        Ok(outcomes)
    }

    /// Counts inbox rows written, for the background checkpoints.
    fn wrote(&self, rows: usize) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wrote(rows);
        }
    }

    /// Inserts `events[i]` for each `i` in `which` and marks the new ones in
    /// `outcomes`.
    async fn insert_chunk(
        &self,
        conn: &mut AnyConnection,
        events: &[NewInbound],
        which: &[usize],
        outcomes: &mut [InsertOutcome],
    ) -> Result<(), StoreError> {
        let sql = insert_sql(self.backend, which.len());
        let mut query = sqlx::query(&sql);
        for &i in which {
            query = bind_values(query, &inbound_values(&events[i]));
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let inserted = match self.backend {
            Backend::Postgres => new_rows(&rows)?,
            Backend::Sqlite => {
                let Some(row) = rows.first() else {
                    return Err(StoreError::Corrupt("insert returned no counts".into()));
                };
                let Some((after, last)) =
                    sqlite_new_ids(row.try_get(0)?, row.try_get(1)?, which, outcomes)
                else {
                    return Ok(());
                };
                let rows = sqlx::query(NEW_ROWS_SQL)
                    .bind(after)
                    .bind(last)
                    .fetch_all(&mut *conn)
                    .await?;
                new_rows(&rows)?
            }
        };
        fill_outcomes(outcomes, events, which, inserted);
        Ok(())
    }

    async fn create_pairing_impl(
        &self,
        account: &str,
        open_id: &str,
        code: &str,
        now_ms: i64,
        ttl_ms: i64,
        max_pending: usize,
    ) -> Result<PairingOutcome, StoreError> {
        let code = code.to_ascii_uppercase();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_with(self.backend.begin_write()).await?;
        // Serialises pairing changes of this account (row lock on
        // PostgreSQL, write lock on SQLite) so `max_pending` holds under
        // concurrency.
        sqlx::query(
            "INSERT INTO account_locks (account, touched) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET touched = excluded.touched",
        )
        .bind(account)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pairings WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(&format!(
            "SELECT {PAIRING_COLUMNS} FROM pairings WHERE account = $1 AND open_id = $2"
        ))
        .bind(account)
        .bind(open_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let pairing = pairing_from_row(&row)?;
            tx.commit().await?;
            return Ok(PairingOutcome::Existing(pairing));
        }
        let pending: i64 = sqlx::query("SELECT COUNT(*) FROM pairings WHERE account = $1")
            .bind(account)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if usize::try_from(pending).unwrap_or(usize::MAX) >= max_pending {
            tx.commit().await?;
            return Ok(PairingOutcome::TooMany);
        }
        let pairing = Pairing {
            code,
            account: account.to_string(),
            open_id: open_id.to_string(),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl_ms),
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO pairings ({PAIRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&pairing.code)
        .bind(&pairing.account)
        .bind(&pairing.open_id)
        .bind(pairing.created_ms)
        .bind(pairing.expires_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(
                    "pairing code already in use; generate another".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(PairingOutcome::Created(pairing))
    }

    async fn approve_pairing_impl(
        &self,
        code: &str,
        now_ms: i64,
    ) -> Result<Option<Pairing>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_with(self.backend.begin_write()).await?;
        let Some(pairing) = take_pairing(&mut tx, code).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        if pairing.expires_ms <= now_ms {
            // Expired: the request is gone either way.
            tx.commit().await?;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO approved_senders (account, open_id, approved_ms) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&pairing.account)
        .bind(&pairing.open_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(pairing))
    }

    async fn reject_pairing_impl(&self, code: &str) -> Result<Option<Pairing>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_with(self.backend.begin_write()).await?;
        let pairing = take_pairing(&mut tx, code).await?;
        tx.commit().await?;
        Ok(pairing)
    }
}

/// Whether a SQLite URL names an in-memory database.
fn sqlite_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || params.split('&').any(|kv| kv == "mode=memory")
}

/// The file a `sqlite:` URL without query parameters names, percent-decoded
/// as sqlx decodes it (`None` for in-memory databases and URLs with
/// parameters, which only sqlx interprets).
fn plain_sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    if path.is_empty() || path.contains('?') || sqlite_in_memory(url) {
        return None;
    }
    Some(decode_sqlite_path(path).into())
}

/// sqlx's percent-decoding of a SQLite path.
fn decode_sqlite_path(path: &str) -> String {
    path.replace("%3F", "?")
        .replace("%23", "#")
        .replace("%25", "%")
}

/// Opens the SQLite connection: creates the directory, asks sqlx to create
/// the file (`mode=rwc`), and sets the pragmas.
async fn open_sqlite(url: &str) -> Result<AnyConnection, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let has_param =
        |name: &str| params.is_some_and(|p| p.split('&').any(|kv| kv.starts_with(name)));
    let in_memory = sqlite_in_memory(url);
    if !in_memory && !path.is_empty() {
        // sqlx percent-decodes the path; so must the directory we create.
        let decoded = decode_sqlite_path(path);
        if let Some(dir) = Path::new(&decoded)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Url(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
    }
    let url = match (has_param("mode=") || in_memory, params) {
        (true, _) => url.to_string(),
        (false, Some(_)) => format!("{url}&mode=rwc"),
        (false, None) => format!("{url}?mode=rwc"),
    };
    let mut conn = AnyConnection::connect(&url).await?;
    conn.execute(
        format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
        )
        .as_str(),
    )
    .await?;
    Ok(conn)
}

/// Indexes of the events that are not repeats of an earlier event of the same
/// batch (same account and event_id, or same account and message_id, both
/// recorded unfinished: finished ones are never repeats).
fn first_occurrences(events: &[NewInbound]) -> Vec<usize> {
    if events.len() == 1 {
        return vec![0];
    }
    let mut event_ids = HashSet::with_capacity(events.len());
    let mut message_ids = HashSet::with_capacity(events.len());
    let mut fresh = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if !e.state.is_unfinished() {
            // Recorded finished: not deduplicated (see `Store::insert_inbound`).
            fresh.push(i);
            continue;
        }
        let event_key = (e.account.as_str(), e.event_id.as_str());
        let message_key = e.message_id.as_deref().map(|m| (e.account.as_str(), m));
        let repeat =
            event_ids.contains(&event_key) || message_key.is_some_and(|k| message_ids.contains(&k));
        if !repeat {
            // Only kept events claim their ids: a dropped repeat's other id
            // was never stored, so a later event may still use it.
            event_ids.insert(event_key);
            message_ids.extend(message_key);
            fresh.push(i);
        }
    }
    fresh
}

/// The multi-row insert for `n` rows, with the query that says what it did.
/// SQLite gets anonymous `?` placeholders: sqlx looks up the name of every
/// numbered parameter, and SQLite finds a name by a linear scan, which made
/// binding a 64-row batch cost more than inserting it.
fn insert_sql(backend: Backend, n: usize) -> String {
    let mut sql = insert_values_sql(backend, n);
    match backend {
        // One result row instead of one per inserted event: rows come back
        // from sqlx's SQLite worker one message at a time.
        Backend::Sqlite => sql.push_str("; SELECT last_insert_rowid(), changes()"),
        Backend::Postgres => sql.push_str(" RETURNING id, account, event_id, state"),
    }
    sql
}

/// `INSERT INTO inbound (…) VALUES (…),… ON CONFLICT DO NOTHING` for `n`
/// rows of [`INBOUND_COLUMNS`] parameters each, bound in the column order
/// (by `insert_chunk` here and by the `inline` module).
pub(super) fn insert_values_sql(backend: Backend, n: usize) -> String {
    let mut sql = String::with_capacity(120 + n * 40);
    sql.push_str(
        "INSERT INTO inbound (account, event_id, message_id, event_type, chat_id, payload, \
         received_at_ms, state, reason, dedup) VALUES ",
    );
    for row in 0..n {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 0..INBOUND_COLUMNS {
            if col > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * INBOUND_COLUMNS + col + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// The rows with ids in `($1, $2]`, as [`NewRow`]s.
pub(super) const NEW_ROWS_SQL: &str =
    "SELECT id, account, event_id, state FROM inbound WHERE id > $1 AND id <= $2";

/// After a SQLite insert of the events `which` that created `count` rows,
/// the last numbered `last_id`: marks them in `outcomes` when every event
/// was new (SQLite numbered them in VALUES order, contiguously up to the
/// last), else returns the id range `(after, last]` that holds the new rows
/// (one statement is atomic, each new rowid is the largest + 1, and skipped
/// rows take none), for [`NEW_ROWS_SQL`] to say which events they are.
pub(super) fn sqlite_new_ids(
    last_id: i64,
    count: i64,
    which: &[usize],
    outcomes: &mut [InsertOutcome],
) -> Option<(i64, i64)> {
    if count == 0 {
        return None;
    }
    if usize::try_from(count).ok() == Some(which.len()) {
        let first_id = last_id - count + 1;
        for (n, &i) in which.iter().enumerate() {
            outcomes[i] = InsertOutcome::Inserted(first_id + n as i64);
        }
        return None;
    }
    Some((last_id - count, last_id))
}

/// A row the insert created, as it identifies its event.
pub(super) struct NewRow {
    pub(super) id: i64,
    pub(super) account: String,
    pub(super) event_id: String,
    /// Recorded unfinished, so deduplicated (unique among new rows).
    pub(super) deduped: bool,
}

impl NewRow {
    /// From the `state` a row was recorded in.
    pub(super) fn new(id: i64, account: String, event_id: String, state: &str) -> NewRow {
        NewRow {
            id,
            account,
            event_id,
            deduped: matches!(state, "pending" | "processing"),
        }
    }
}

/// Each `(id, account, event_id, state)` row as a [`NewRow`].
fn new_rows(rows: &[AnyRow]) -> Result<Vec<NewRow>, StoreError> {
    rows.iter()
        .map(|r| {
            let state: String = r.try_get(3)?;
            Ok(NewRow::new(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                &state,
            ))
        })
        .collect()
}

/// Marks the events of `which` that came back from the insert as inserted.
/// An event is known by its account, event_id and whether it was
/// deduplicated; events recorded finished may share all three, and are
/// matched in order (ids follow the statement's VALUES order).
pub(super) fn fill_outcomes(
    outcomes: &mut [InsertOutcome],
    events: &[NewInbound],
    which: &[usize],
    mut inserted: Vec<NewRow>,
) {
    if let ([i], [row]) = (which, inserted.as_slice()) {
        outcomes[*i] = InsertOutcome::Inserted(row.id);
        return;
    }
    let mut index: HashMap<(&str, &str, bool), VecDeque<usize>> = HashMap::new();
    for &i in which {
        let e = &events[i];
        let key = (
            e.account.as_str(),
            e.event_id.as_str(),
            e.state.is_unfinished(),
        );
        index.entry(key).or_default().push_back(i);
    }
    inserted.sort_unstable_by_key(|row| row.id);
    for row in &inserted {
        let key = (row.account.as_str(), row.event_id.as_str(), row.deduped);
        if let Some(i) = index.get_mut(&key).and_then(VecDeque::pop_front) {
            outcomes[i] = InsertOutcome::Inserted(row.id);
        }
    }
}

/// One statement through sqlx; the rows it changed.
async fn execute_sqlx(
    conn: &mut AnyConnection,
    sql: &str,
    values: &[Value<'_>],
) -> Result<u64, StoreError> {
    let done = bind_values(sqlx::query(sql), values)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the pairing request with `code` (any case) and returns it.
async fn take_pairing(
    tx: &mut Transaction<'_, Any>,
    code: &str,
) -> Result<Option<Pairing>, StoreError> {
    let row = sqlx::query(&format!(
        "DELETE FROM pairings WHERE code = $1 RETURNING {PAIRING_COLUMNS}"
    ))
    .bind(code.to_ascii_uppercase())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(|row| pairing_from_row(row)).transpose()
}

fn pairing_from_row(row: &dyn Columns) -> Result<Pairing, StoreError> {
    Ok(Pairing {
        code: row.text(0)?,
        account: row.text(1)?,
        open_id: row.text(2)?,
        created_ms: row.int(3)?,
        expires_ms: row.int(4)?,
    })
}

fn inbound_from_row(row: &dyn Columns) -> Result<InboundRow, StoreError> {
    let id = row.int(0)?;
    let state_name = row.text(8)?;
    let state = InboundState::from_parts(&state_name, row.opt_text(9)?).ok_or_else(|| {
        StoreError::Corrupt(format!("inbound row {id}: unknown state {state_name:?}"))
    })?;
    Ok(InboundRow {
        id,
        account: row.text(1)?,
        event_id: row.text(2)?,
        message_id: row.opt_text(3)?,
        event_type: row.text(4)?,
        chat_id: row.opt_text(5)?,
        payload: row.text(6)?,
        received_at_ms: row.int(7)?,
        state,
        attempts: row.int(10)?,
    })
}

fn card_from_row(row: &dyn Columns) -> Result<OpenCard, StoreError> {
    Ok(OpenCard {
        card_id: row.text(0)?,
        account: row.text(1)?,
        inbound_id: row.int(2)?,
        message_id: row.text(3)?,
        created_ms: row.int(4)?,
    })
}

fn first_int(row: &dyn Columns) -> Result<i64, StoreError> {
    row.int(0)
}

fn first_text(row: &dyn Columns) -> Result<String, StoreError> {
    row.text(0)
}

fn role_and_text(row: &dyn Columns) -> Result<(String, String), StoreError> {
    Ok((row.text(0)?, row.text(1)?))
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

const SET_STATE_SQL: &str = "UPDATE inbound SET state = $1, reason = $2 WHERE id = $3";

/// The values of [`SET_STATE_SQL`].
fn state_values(id: i64, state: &InboundState) -> [Value<'_>; 3] {
    [
        Value::Text(state.name()),
        Value::OptText(state.reason()),
        Value::Int(id),
    ]
}

/// The statement appending `turns`, and its values.
fn append_turns_statement<'a>(turns: &NewTurns<'a>) -> (String, Vec<Value<'a>>) {
    const COLUMNS: usize = 6;
    let mut sql = String::from(
        "INSERT INTO turns (account, session_key, generation, role, text, created_ms) VALUES ",
    );
    let mut values = Vec::with_capacity(turns.turns.len() * COLUMNS);
    for (n, (role, text)) in turns.turns.iter().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 1..=COLUMNS {
            if col > 1 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(n * COLUMNS + col).to_string());
        }
        sql.push(')');
        values.extend([
            Value::Text(turns.account),
            Value::Text(turns.session_key),
            Value::Int(turns.generation),
            Value::Text(role),
            Value::Text(text),
            Value::Int(turns.created_ms),
        ]);
    }
    (sql, values)
}

impl Store for SqlStore {
    fn insert_inbound<'a>(
        &'a self,
        events: &'a [NewInbound],
    ) -> BoxFuture<'a, Result<Vec<InsertOutcome>, StoreError>> {
        Box::pin(self.insert_inbound_impl(events))
    }

    fn set_inbound_state(
        &self,
        id: i64,
        state: InboundState,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self
                .execute(SET_STATE_SQL, &state_values(id, &state))
                .await?
                == 0
            {
                return Err(StoreError::NotFound(format!("inbound row {id}")));
            }
            Ok(())
        })
    }

    fn begin_attempt(&self, id: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            // A write that returns a row: a fetch, which the inline
            // connection runs in autocommit like any single statement.
            let attempts = self
                .fetch_optional(
                    "UPDATE inbound SET state = 'processing', reason = NULL, \
                     attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
                    &[Value::Int(id)],
                    first_int,
                )
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("inbound row {id}")))?;
            self.wrote(1);
            Ok(attempts)
        })
    }

    fn get_inbound(&self, id: i64) -> BoxFuture<'_, Result<Option<InboundRow>, StoreError>> {
        Box::pin(async move {
            self.fetch_optional(
                &format!("{INBOUND_SELECT} WHERE id = $1"),
                &[Value::Int(id)],
                inbound_from_row,
            )
            .await
        })
    }

    fn unfinished_inbound<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InboundRow>, StoreError>> {
        Box::pin(async move {
            self.fetch(
                &format!(
                    "{INBOUND_SELECT} WHERE account = $1 AND state IN ('pending', 'processing') \
                     ORDER BY id"
                ),
                &[Value::Text(account)],
                inbound_from_row,
            )
            .await
        })
    }

    fn prune_inbound(
        &self,
        now_ms: i64,
        older_than_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let cutoff = now_ms.saturating_sub(older_than_ms.max(MIN_DEDUP_WINDOW_MS));
            // The newest row stays, whatever its age: SQLite numbers a new
            // row as the largest id + 1, so deleting it would reuse its id.
            self.execute(
                "DELETE FROM inbound WHERE received_at_ms < $1 \
                 AND state IN ('done', 'dropped', 'failed') \
                 AND id < (SELECT MAX(id) FROM inbound)",
                &[Value::Int(cutoff)],
            )
            .await
        })
    }

    fn session_generation<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            let generation = self
                .fetch_optional(
                    "SELECT generation FROM sessions WHERE account = $1 AND session_key = $2",
                    &[Value::Text(account), Value::Text(session_key)],
                    first_int,
                )
                .await?;
            Ok(generation.unwrap_or(0))
        })
    }

    fn reset_session<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            let generation = self
                .fetch_optional(
                    "INSERT INTO sessions (account, session_key, generation) VALUES ($1, $2, 1) \
                     ON CONFLICT (account, session_key) \
                     DO UPDATE SET generation = sessions.generation + 1 RETURNING generation",
                    &[Value::Text(account), Value::Text(session_key)],
                    first_int,
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("session reset returned no row".into()))?;
            self.wrote(1);
            Ok(generation)
        })
    }

    fn append_turns<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
        generation: i64,
        turns: &'a [(&'a str, &'a str)],
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if turns.is_empty() {
                return Ok(());
            }
            let (sql, values) = append_turns_statement(&NewTurns {
                account,
                session_key,
                generation,
                turns,
                created_ms,
            });
            self.execute(&sql, &values).await?;
            Ok(())
        })
    }

    fn finish_turn<'a>(
        &'a self,
        id: i64,
        state: InboundState,
        turns: NewTurns<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let state_values = state_values(id, &state);
            let (turns_sql, turns_values) = append_turns_statement(&turns);
            let mut statements: Vec<(&str, &[Value<'_>])> = Vec::with_capacity(2);
            if !turns.turns.is_empty() {
                statements.push((&turns_sql, &turns_values));
            }
            statements.push((SET_STATE_SQL, &state_values));
            let changed = self.execute_all(&statements).await?;
            if changed.last() == Some(&0) {
                return Err(StoreError::NotFound(format!("inbound row {id}")));
            }
            Ok(())
        })
    }

    fn history<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
        generation: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        Box::pin(async move {
            self.fetch(
                "SELECT role, text FROM (SELECT id, role, text FROM turns \
                 WHERE account = $1 AND session_key = $2 AND generation = $3 \
                 ORDER BY id DESC LIMIT $4) AS recent ORDER BY id",
                &[
                    Value::Text(account),
                    Value::Text(session_key),
                    Value::Int(generation),
                    Value::Int(limit_i64(limit)),
                ],
                role_and_text,
            )
            .await
        })
    }

    fn create_pairing<'a>(
        &'a self,
        account: &'a str,
        open_id: &'a str,
        code: &'a str,
        now_ms: i64,
        ttl_ms: i64,
        max_pending: usize,
    ) -> BoxFuture<'a, Result<PairingOutcome, StoreError>> {
        Box::pin(self.create_pairing_impl(account, open_id, code, now_ms, ttl_ms, max_pending))
    }

    fn list_pairings<'a>(
        &'a self,
        account: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<Pairing>, StoreError>> {
        Box::pin(async move {
            let select = format!("SELECT {PAIRING_COLUMNS} FROM pairings WHERE expires_ms > $1");
            match account {
                Some(account) => {
                    self.fetch(
                        &format!("{select} AND account = $2 ORDER BY created_ms, code"),
                        &[Value::Int(now_ms), Value::Text(account)],
                        pairing_from_row,
                    )
                    .await
                }
                None => {
                    self.fetch(
                        &format!("{select} ORDER BY created_ms, code"),
                        &[Value::Int(now_ms)],
                        pairing_from_row,
                    )
                    .await
                }
            }
        })
    }

    fn approve_pairing<'a>(
        &'a self,
        code: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>> {
        Box::pin(self.approve_pairing_impl(code, now_ms))
    }

    fn reject_pairing<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>> {
        Box::pin(self.reject_pairing_impl(code))
    }

    fn is_approved<'a>(
        &'a self,
        account: &'a str,
        open_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let found = self
                .fetch_optional(
                    "SELECT 1 FROM approved_senders WHERE account = $1 AND open_id = $2",
                    &[Value::Text(account), Value::Text(open_id)],
                    first_int,
                )
                .await?;
            Ok(found.is_some())
        })
    }

    fn approved_senders<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.fetch(
                "SELECT open_id FROM approved_senders WHERE account = $1 ORDER BY open_id",
                &[Value::Text(account)],
                first_text,
            )
            .await
        })
    }

    fn record_sent<'a>(
        &'a self,
        account: &'a str,
        uuid: &'a str,
        message_id: &'a str,
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO sent (account, uuid, message_id, created_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[
                    Value::Text(account),
                    Value::Text(uuid),
                    Value::Text(message_id),
                    Value::Int(created_ms),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn sent_message<'a>(
        &'a self,
        account: &'a str,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            self.fetch_optional(
                "SELECT message_id FROM sent WHERE account = $1 AND uuid = $2",
                &[Value::Text(account), Value::Text(uuid)],
                first_text,
            )
            .await
        })
    }

    fn open_card<'a>(
        &'a self,
        account: &'a str,
        inbound_id: i64,
        card_id: &'a str,
        message_id: &'a str,
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO open_cards (card_id, account, inbound_id, message_id, created_ms) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (card_id) DO UPDATE SET message_id = excluded.message_id",
                &[
                    Value::Text(card_id),
                    Value::Text(account),
                    Value::Int(inbound_id),
                    Value::Text(message_id),
                    Value::Int(created_ms),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn close_card<'a>(&'a self, card_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "DELETE FROM open_cards WHERE card_id = $1",
                &[Value::Text(card_id)],
            )
            .await?;
            Ok(())
        })
    }

    fn open_cards<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<OpenCard>, StoreError>> {
        Box::pin(async move {
            self.fetch(
                "SELECT card_id, account, inbound_id, message_id, created_ms FROM open_cards \
                 WHERE account = $1 ORDER BY created_ms, card_id",
                &[Value::Text(account)],
                card_from_row,
            )
            .await
        })
    }

    fn kv_get<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            self.fetch_optional(
                "SELECT value FROM kv WHERE account = $1 AND key = $2",
                &[Value::Text(account), Value::Text(key)],
                first_text,
            )
            .await
        })
    }

    fn kv_set<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO kv (account, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                &[Value::Text(account), Value::Text(key), Value::Text(value)],
            )
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(account: &str, event_id: &str, message_id: Option<&str>) -> NewInbound {
        NewInbound {
            account: account.into(),
            event_id: event_id.into(),
            message_id: message_id.map(Into::into),
            event_type: "im.message.receive_v1".into(),
            chat_id: None,
            payload: "{}".into(),
            received_at_ms: 0,
            state: crate::store::InboundState::Pending,
        }
    }

    #[test]
    fn insert_sql_numbers_every_placeholder_once() {
        let sql = insert_sql(Backend::Postgres, 2);
        assert!(sql.contains(
            "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10),($11,$12,$13,$14,$15,$16,$17,$18,$19,$20)"
        ));
        assert!(!sql.contains("$21"));
        let sql = insert_sql(Backend::Sqlite, 2);
        assert!(sql.contains("(?,?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?,?) ON CONFLICT"));
    }

    #[test]
    fn repeats_inside_a_batch_are_not_sent() {
        let events = [
            event("a", "e1", Some("m1")),
            event("a", "e1", Some("m2")),
            event("a", "e2", Some("m1")),
            event("b", "e1", Some("m1")),
            event("a", "e3", None),
            event("a", "e4", None),
            // m2 belonged to a dropped repeat, so it is still free.
            event("a", "e5", Some("m2")),
        ];
        assert_eq!(first_occurrences(&events), vec![0, 3, 4, 5, 6]);
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = Backend::of("mysql://x").unwrap_err().to_string();
        assert!(err.contains("\"mysql\""), "{err}");
    }
}
