-- larkgate store, PostgreSQL dialect. Times are unix milliseconds (BIGINT).
-- Keep this file and ../sqlite/0001_init.sql in step: the same tables,
-- columns and constraints, so one set of queries serves both.

-- Every delivery, written before it is acked. The unique indexes are the
-- deduplication: a redelivered event_id or message_id cannot be inserted
-- twice, whatever the process remembers. Identity ids are never reused
-- (reply uuids are derived from them).
CREATE TABLE inbound (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account        TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    message_id     TEXT,
    event_type     TEXT    NOT NULL,
    chat_id        TEXT,
    payload        TEXT    NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'pending',
    reason         TEXT,
    attempts       BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX inbound_account_event_id ON inbound (account, event_id);
CREATE UNIQUE INDEX inbound_account_message_id ON inbound (account, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX inbound_unfinished ON inbound (account, id)
    WHERE state IN ('pending', 'processing');

-- Session generation: bumped by /new; history is kept per generation.
CREATE TABLE sessions (
    account     TEXT    NOT NULL,
    session_key TEXT    NOT NULL,
    generation  BIGINT  NOT NULL,
    PRIMARY KEY (account, session_key)
);

CREATE TABLE turns (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     TEXT    NOT NULL,
    session_key TEXT    NOT NULL,
    generation  BIGINT  NOT NULL,
    role        TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);
CREATE INDEX turns_session ON turns (account, session_key, generation, id);

-- Pending pairing requests. Codes are stored upper-case; one pending code
-- per sender (the unique index makes a concurrent second request collide).
CREATE TABLE pairings (
    code       TEXT    NOT NULL PRIMARY KEY,
    account    TEXT    NOT NULL,
    open_id    TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    expires_ms BIGINT  NOT NULL
);
CREATE UNIQUE INDEX pairings_account_open_id ON pairings (account, open_id);

CREATE TABLE approved_senders (
    account     TEXT    NOT NULL,
    open_id     TEXT    NOT NULL,
    approved_ms BIGINT  NOT NULL,
    PRIMARY KEY (account, open_id)
);

-- One row per account, written first in a transaction that must not run
-- concurrently for the same account (pairing limits): on PostgreSQL the
-- upsert takes a row lock, on SQLite it takes the write lock.
CREATE TABLE account_locks (
    account TEXT    NOT NULL PRIMARY KEY,
    touched BIGINT  NOT NULL
);

-- Parts of replies already sent, by the uuid derived for them.
CREATE TABLE sent (
    account    TEXT    NOT NULL,
    uuid       TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    PRIMARY KEY (account, uuid)
);

-- Streaming cards not yet closed, so they can be closed after a crash.
CREATE TABLE open_cards (
    card_id    TEXT    NOT NULL PRIMARY KEY,
    account    TEXT    NOT NULL,
    inbound_id BIGINT  NOT NULL,
    message_id TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL
);
CREATE INDEX open_cards_account ON open_cards (account, created_ms);

CREATE TABLE kv (
    account TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
