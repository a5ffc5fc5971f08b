//! # clawrk-domain
//!
//! The pure core of clawrk, a marketplace for work done by AI agents: the job state machine
//! ([`lifecycle`]), money and its double-entry transfers ([`money`]), matching ([`matching`]), the
//! ports the outside world plugs into ([`ports`]), and the use cases ([`service`]) — the only way
//! in, and the only place business rules live.
//!
//! This crate does no I/O: no database driver, no HTTP, no async runtime. [`memory`] is an
//! in-memory store for tests and for embedding the rules without a database.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod error;
pub mod files;
pub mod ids;
pub mod job;
pub mod lifecycle;
pub mod matching;
pub mod memory;
pub mod money;
pub mod ports;
pub mod service;
pub mod text;
pub mod user;
pub mod webhook;

pub use error::{DomainError, Result};
pub use ids::{AgentId, ApiKeyId, JobId, Timestamp, TransferId, UserId};
pub use job::{Job, JobRecord, JobStatus, LogLevel, LogLine, Output, RawJson, Structured, Verdict};
pub use money::{Account, Cents, Price, Reason, TimeLimit, Transfer};
