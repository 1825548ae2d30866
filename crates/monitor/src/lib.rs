//! The service's logic: watched domains checked on a schedule through the same path as
//! `check`, what changed turned into events, events delivered to alert channels through
//! an outbox that never loses one; report intake from mailboxes and buckets. The command
//! line (`watch`, `intake`) and the server (`serve`) both run it.

pub mod alerts;
pub mod config;
pub mod diff;
pub mod events;
pub mod intake;
pub mod report_watch;
pub mod schedule;
pub mod ses_changes;
pub mod views;
pub mod watch;
pub mod workers;

pub use config::{Config, ConfigError};
pub use events::{Event, EventKind, Severity};
