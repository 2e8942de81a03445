//! Durable state: the inbox, sessions and history, pairing, sent parts.
//!
//! # Design
//!
//! The gateway acknowledges a delivery only after it is written here, and a
//! redelivered event must never produce a second reply. Both promises are
//! kept by the database, not by process memory:
//!
//! - **Deduplication is a constraint.** The inbox has unique indexes on
//!   `(account, event_id)` and on `(account, message_id)` (where a
//!   message_id exists). Inserting is `INSERT … ON CONFLICT DO NOTHING
//!   RETURNING id`: a row that comes back was new, a row that does not was
//!   a duplicate. There is no read-then-write window, so two connections (or,
//!   with PostgreSQL, two instances) racing on one event cannot both win, and
//!   a restart forgets nothing. The constraint covers the rows recorded
//!   *unfinished* (the `dedup` column, fixed at insert): a row recorded
//!   already finished — chatter that does not mention the bot, a refused
//!   sender, a stale message, a reaction — led to nothing but a log line, so
//!   its redelivery is harmless and is simply recorded again. That keeps
//!   the inbox append-only for the bulk of a busy bot's traffic: an index
//!   of random event ids costs a page write per insert once it outgrows a
//!   batch, which was most of the ingest CPU (docs/BENCHMARKS.md).
//! - **Batching is the hot path.** Acking waits for the insert, and the cost
//!   of a write is dominated by the transaction commit, not by the row. So
//!   [`Store::insert_inbound`] takes a slice of events and writes them with
//!   one multi-row statement in one transaction: a burst of 64 events costs
//!   about one commit. Events that repeat inside the batch are caught before
//!   the statement is built.
//! - **Recovery is a query.** Each inbox row carries a state. Rows still
//!   `pending` or `processing` at start-up were acked but not finished and
//!   are returned by [`Store::unfinished_inbound`] to be processed again.
//!   Replies stay single because every sent part is recorded by the `uuid`
//!   derived for it ([`Store::record_sent`]); ids are never reused, even
//!   after pruning, so derived uuids never collide.
//! - **One implementation, two databases.** [`SqlStore`] runs on sqlx's
//!   `Any` driver with queries written once (`$1` placeholders work on
//!   both); only the migrations differ (`migrations/sqlite`,
//!   `migrations/postgres`), and the batch insert learns its new ids from
//!   `RETURNING` on PostgreSQL but from one `last_insert_rowid(), changes()`
//!   row on SQLite (sqlx hands SQLite rows over one message each, which
//!   cost more than the insert). PostgreSQL gets a pool, so several
//!   instances can share it; SQLite gets one owned connection (SQLite has
//!   one writer anyway, and a pool cost more CPU per query than the query).
//!   A SQLite file has a second connection, through rusqlite, that runs
//!   the inbox insert and every short statement (state changes, history,
//!   sent parts, cards) on the caller's thread (`inline`): sqlx's worker
//!   thread hand-over cost more than those statements. It never waits: when
//!   the database is busy it hands the call to the sqlx connection. Only
//!   the pairing transactions, which read and decide before they write,
//!   always take sqlx's connection. SQLite runs in WAL mode with
//!   `synchronous=NORMAL`: a committed write survives a process crash (the
//!   case this module exists for); on power loss the last commits may roll
//!   back. All times are `i64` unix milliseconds, passed in by the caller so
//!   that time logic is testable.
//!
//! Everything is namespaced by `account` (the bot's name in the config) so
//! several bots share one store.

mod checkpoint;
mod inline;
mod query;
mod sql;

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use checkpoint::EVERY_ROWS as CHECKPOINT_EVERY_ROWS;
pub use sql::SqlStore;

/// The shortest time finished inbox rows are kept for deduplication (24 h).
/// [`Store::prune_inbound`] never deletes younger rows.
pub const MIN_DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Opens the store at `url` (`sqlite://path`, `sqlite::memory:`,
/// `postgres://…`), creating the SQLite file if needed and applying
/// migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::open(url).await?;
    Ok(Arc::new(store))
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("store url: {0}")]
    Url(String),
    /// The database failed (connection, query, constraint).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row the call refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value that must be unique is taken (for example a pairing code);
    /// generate another and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value cannot be read back (a corrupt or foreign row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The SQLite file's own (inline) connection failed.
    #[error("sqlite: {0}")]
    Sqlite(String),
}

/// One delivery to record in the inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInbound {
    /// The account (bot) it was delivered to.
    pub account: String,
    /// The platform's `event_id` (v1: `uuid`).
    pub event_id: String,
    /// The `message_id` for message events; a second event with the same one
    /// is a duplicate.
    pub message_id: Option<String>,
    /// `im.message.receive_v1`, `card.action.trigger`, …
    pub event_type: String,
    /// The chat, when the event has one.
    pub chat_id: Option<String>,
    /// The event JSON, as received (decrypted).
    pub payload: String,
    /// When it arrived (unix ms).
    pub received_at_ms: i64,
    /// The state it is recorded in: `Pending` when it still has to be
    /// handled, or already final when the gateway decided at receipt (a
    /// message refused by policy, an event that needs no answer), so that
    /// such an event costs one write, in its batch.
    pub state: InboundState,
}

/// What became of one event of [`Store::insert_inbound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New: stored with this id (in the state it was given).
    Inserted(i64),
    /// Seen before (same event_id or message_id for the account, in the store
    /// or earlier in the same batch): ack it and drop it.
    Duplicate,
}

/// Where an inbox row is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundState {
    /// Stored and acked, not yet picked up.
    Pending,
    /// Being handled (agent running, reply being sent).
    Processing,
    /// Handled.
    Done,
    /// Deliberately not handled (policy, stale, unsupported), with why.
    Dropped(String),
    /// Handling failed for good, with why.
    Failed(String),
}

impl InboundState {
    /// The stored name (`pending`, `processing`, `done`, `dropped`, `failed`).
    pub fn name(&self) -> &'static str {
        match self {
            InboundState::Pending => "pending",
            InboundState::Processing => "processing",
            InboundState::Done => "done",
            InboundState::Dropped(_) => "dropped",
            InboundState::Failed(_) => "failed",
        }
    }

    /// The reason of `Dropped` and `Failed`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            InboundState::Dropped(r) | InboundState::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// Rebuilds a state from its stored name and reason.
    pub fn from_parts(name: &str, reason: Option<String>) -> Option<InboundState> {
        Some(match name {
            "pending" => InboundState::Pending,
            "processing" => InboundState::Processing,
            "done" => InboundState::Done,
            "dropped" => InboundState::Dropped(reason.unwrap_or_default()),
            "failed" => InboundState::Failed(reason.unwrap_or_default()),
            _ => return None,
        })
    }

    /// Whether the row still needs handling (pending or processing).
    pub fn is_unfinished(&self) -> bool {
        matches!(self, InboundState::Pending | InboundState::Processing)
    }
}

/// A stored inbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRow {
    /// Store id (increasing in insertion order, never reused).
    pub id: i64,
    /// The account.
    pub account: String,
    /// The platform's `event_id`.
    pub event_id: String,
    /// The `message_id`, for message events.
    pub message_id: Option<String>,
    /// The event type.
    pub event_type: String,
    /// The chat, when the event has one.
    pub chat_id: Option<String>,
    /// The event JSON.
    pub payload: String,
    /// When it arrived (unix ms).
    pub received_at_ms: i64,
    /// Where it is in its life.
    pub state: InboundState,
    /// How many times handling started ([`Store::begin_attempt`]).
    pub attempts: i64,
}

/// Turns to append to a session's history ([`Store::finish_turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTurns<'a> {
    /// The account.
    pub account: &'a str,
    /// The session.
    pub session_key: &'a str,
    /// The session generation the turns belong to.
    pub generation: i64,
    /// `(role, text)` in order.
    pub turns: &'a [(&'a str, &'a str)],
    /// When they were written (unix ms).
    pub created_ms: i64,
}

/// A pending pairing request: a sender waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pairing {
    /// The code (stored and returned upper-case).
    pub code: String,
    /// The account the sender wrote to.
    pub account: String,
    /// The sender's `open_id`.
    pub open_id: String,
    /// When it was created (unix ms).
    pub created_ms: i64,
    /// When it stops being valid (unix ms).
    pub expires_ms: i64,
}

/// What [`Store::create_pairing`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingOutcome {
    /// A new request with the given code.
    Created(Pairing),
    /// The sender already has a pending request: this one (code unchanged).
    Existing(Pairing),
    /// The account already has `max_pending` unexpired requests.
    TooMany,
}

/// A streaming card that was opened and not yet closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCard {
    /// The CardKit `card_id`.
    pub card_id: String,
    /// The account that sent it.
    pub account: String,
    /// The inbox row it answers.
    pub inbound_id: i64,
    /// The message that carries the card.
    pub message_id: String,
    /// When it was opened (unix ms).
    pub created_ms: i64,
}

/// Durable state behind a trait, so backends can differ; used as
/// `Arc<dyn Store>`. Every method is one short transaction.
pub trait Store: Send + Sync {
    // ---- inbox ----

    /// Records deliveries, in one transaction, and says for each (same
    /// order) whether it is new or a duplicate. Only events recorded
    /// unfinished (pending or processing: something is still to be done)
    /// are deduplicated; an event recorded finished is always inserted
    /// (see the module's design notes).
    fn insert_inbound<'a>(
        &'a self,
        events: &'a [NewInbound],
    ) -> BoxFuture<'a, Result<Vec<InsertOutcome>, StoreError>>;

    /// Moves an inbox row to `state`. [`StoreError::NotFound`] if there is no
    /// such row.
    fn set_inbound_state(
        &self,
        id: i64,
        state: InboundState,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Starts one more attempt at handling a row: marks it `processing` and
    /// counts the attempt, in one write; returns the new count.
    fn begin_attempt(&self, id: i64) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// The inbox row with `id`, if it exists.
    fn get_inbound(&self, id: i64) -> BoxFuture<'_, Result<Option<InboundRow>, StoreError>>;

    /// Rows of `account` still pending or processing, oldest first: after a
    /// restart these are handled again.
    fn unfinished_inbound<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InboundRow>, StoreError>>;

    /// Deletes finished rows (done, dropped, failed) received more than
    /// `older_than_ms` before `now_ms`; `older_than_ms` is raised to
    /// [`MIN_DEDUP_WINDOW_MS`] if smaller. The newest row is always kept (so
    /// ids are never reused). Returns how many were deleted.
    fn prune_inbound(
        &self,
        now_ms: i64,
        older_than_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    // ---- sessions and history ----

    /// The session's generation: 0 if it was never reset.
    fn session_generation<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// Starts a new generation of the session (`/new`); returns it.
    fn reset_session<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// Appends turns, `(role, text)` in order, to the session's history in
    /// one write.
    fn append_turns<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
        generation: i64,
        turns: &'a [(&'a str, &'a str)],
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Ends a turn in one write: appends `turns` to the session's history
    /// and moves inbox row `id` to `state`. [`StoreError::NotFound`] if
    /// there is no such row (the turns are appended all the same).
    fn finish_turn<'a>(
        &'a self,
        id: i64,
        state: InboundState,
        turns: NewTurns<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The last `limit` turns of the session's generation, oldest first, as
    /// `(role, text)`.
    fn history<'a>(
        &'a self,
        account: &'a str,
        session_key: &'a str,
        generation: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>>;

    // ---- pairing ----

    /// Creates a pairing request for `open_id` with `code`, unless the sender
    /// already has one (returned as `Existing`) or the account has
    /// `max_pending` unexpired ones (`TooMany`). Expired requests do not
    /// count and are removed. [`StoreError::Conflict`] if the code is taken.
    #[allow(clippy::too_many_arguments)]
    fn create_pairing<'a>(
        &'a self,
        account: &'a str,
        open_id: &'a str,
        code: &'a str,
        now_ms: i64,
        ttl_ms: i64,
        max_pending: usize,
    ) -> BoxFuture<'a, Result<PairingOutcome, StoreError>>;

    /// Unexpired requests of `account` (all accounts if `None`), oldest first.
    fn list_pairings<'a>(
        &'a self,
        account: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<Pairing>, StoreError>>;

    /// Approves the request with `code` (any case): the sender is added to
    /// the account's approved senders and the request is returned. `None` if
    /// there is no such request or it has expired.
    fn approve_pairing<'a>(
        &'a self,
        code: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>>;

    /// Removes the request with `code` (any case); returns it if it existed.
    fn reject_pairing<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>>;

    /// Whether `open_id` was approved for `account`.
    fn is_approved<'a>(
        &'a self,
        account: &'a str,
        open_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every approved sender of `account`, sorted.
    fn approved_senders<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    // ---- outbound ----

    /// Records that the part with `uuid` was sent as `message_id`. Recording
    /// the same uuid again keeps the first message_id.
    fn record_sent<'a>(
        &'a self,
        account: &'a str,
        uuid: &'a str,
        message_id: &'a str,
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The message_id the part with `uuid` was sent as, if it was.
    fn sent_message<'a>(
        &'a self,
        account: &'a str,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Remembers a streaming card until [`Store::close_card`]. Calling it
    /// again for the same `card_id` updates only its `message_id` (a card is
    /// recorded before its message is sent, then given the message's id).
    fn open_card<'a>(
        &'a self,
        account: &'a str,
        inbound_id: i64,
        card_id: &'a str,
        message_id: &'a str,
        created_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets a streaming card (it was closed).
    fn close_card<'a>(&'a self, card_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Cards of `account` opened and never closed, oldest first.
    fn open_cards<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<OpenCard>, StoreError>>;

    // ---- small key-value cache ----

    /// The value stored under `key` for `account`.
    fn kv_get<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Stores `value` under `key` for `account`, replacing any previous one.
    fn kv_set<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
