//! Hallmark: GAN image generation with signed C2PA Content Credentials, a tamper-evident
//! registry in PostgreSQL, and checks of uploaded images for AI origin.

pub mod api;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod detect;
pub mod device;
pub mod enhance;
pub mod fingerprint;
pub mod gan;
pub mod generation;
pub mod inference;
pub mod progress;
pub mod provenance;
pub mod registry;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tlog;
pub mod verify;

pub use startup::Application;
