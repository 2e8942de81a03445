#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod admin;
pub mod agent;
pub mod cli;
pub mod config;
pub mod demo;
pub mod diagnose;
pub mod footprint;
pub mod gateway;
pub mod inbound;
pub mod logging;
pub mod outbound;
pub mod policy;
pub mod render;
pub mod secret;
pub mod session;
pub mod store;
