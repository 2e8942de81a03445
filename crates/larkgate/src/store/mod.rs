//! Durable state: the inbox, sessions and history, pairing, sent parts.
