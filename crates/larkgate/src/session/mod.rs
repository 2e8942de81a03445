//! Conversations: session keys, one turn at a time per session, commands.
