//! The command line's subcommands, one file per group; `main.rs` only parses and dispatches.

pub mod detect;
pub mod enhance;
pub mod evaluate;
pub mod gan;
pub mod generate;
pub mod keys;
pub mod log;
pub mod manifests;
pub mod provenance;
pub mod service;
pub mod verify;
pub mod zoo;
