//! Configuration: the file (TOML or JSON), environment variables, and
//! validation with errors that name the key and the fix.
//!
//! [`model`] holds the resolved, validated shape the rest of the gateway uses.

pub mod model;

pub use model::*;
