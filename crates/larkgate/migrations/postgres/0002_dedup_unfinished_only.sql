-- Deduplicate only the rows that still have work to do.
--
-- A row recorded already finished (a group message that does not mention
-- the bot, a refused sender, a stale message, a reaction) led to nothing but
-- a log line; a redelivery of it is harmless and is simply recorded again.
-- Keeping it out of the unique indexes keeps the inbox append-only for
-- chatter: an index of random event ids costs a page write per insert once
-- it is larger than a batch, which was most of the ingest CPU.
-- `dedup` never changes after the insert, so a row stays in (or out of) the
-- indexes whatever its state becomes. Existing rows keep deduplicating.
ALTER TABLE inbound ADD COLUMN dedup BOOLEAN NOT NULL DEFAULT TRUE;
DROP INDEX inbound_account_event_id;
DROP INDEX inbound_account_message_id;
CREATE UNIQUE INDEX inbound_account_event_id ON inbound (account, event_id)
    WHERE dedup;
CREATE UNIQUE INDEX inbound_account_message_id ON inbound (account, message_id)
    WHERE dedup AND message_id IS NOT NULL;
