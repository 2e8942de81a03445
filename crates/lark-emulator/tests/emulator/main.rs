//! Integration tests of the emulator over real loopback sockets.

mod common;

mod bench;
mod cardkit;
mod control;
mod im;
mod registration;
mod sdk_interop;
mod tokens;
mod ui;
mod webhook;
mod ws;
