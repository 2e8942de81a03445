#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cardkit;
pub mod client;
pub mod delivery;
pub mod domain;
pub mod download;
pub mod error;
pub mod im;
pub mod info;
pub mod proxy;
mod ratelimit;
pub mod registration;
mod response;
pub mod stats;
pub mod token;
pub mod webhook;
pub mod ws;

pub use client::{new_uuid, Client, ClientBuilder};
pub use delivery::{AckHandle, AckOutcome, AckReceiver, Delivery, Source};
pub use domain::Domain;
pub use download::{Downloaded, ResourceKind};
pub use error::{Error, ErrorClass};
pub use im::{MessageInfo, MessageMention, OutgoingMessage, ReceiveIdType};
pub use info::{BotInfo, ChatInfo, UserInfo};
pub use proxy::ProxySettings;
pub use stats::EndpointStats;
pub use token::TokenCache;
pub use ws::{Health, HealthHandle, WsClient, WsOptions, WsState};
