//! From a delivery to agent input: the durable inbox, dedup, normalizing.

pub mod normalize;

pub use normalize::{normalize, MediaRef, Normalized, ResourceType};
