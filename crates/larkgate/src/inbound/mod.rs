//! From a delivery to agent input: the durable inbox, dedup, normalizing.
