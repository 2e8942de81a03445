#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod domain;
pub mod error;
pub mod token;

pub use domain::Domain;
pub use error::{Error, ErrorClass};
pub use token::TokenCache;
