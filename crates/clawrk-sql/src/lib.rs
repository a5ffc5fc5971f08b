//! # clawrk-sql
//!
//! clawrk's SQL, written once for both backends. [`Db`] is a diesel `MultiConnection` over a
//! PostgreSQL or a SQLite connection; [`SqlTx`] implements the domain's data-access port
//! ([`Tx`](clawrk_domain::ports::Tx)) on it with diesel's query DSL (and a few SQL fragments where
//! the DSL reads worse), so every statement exists once. [`run`] runs a unit of the domain's work
//! in its [`Mode`](clawrk_domain::ports::Mode).
//!
//! The backends differ in three small places, all in [`dialect`]: how a write transaction begins
//! (SQLite takes its write lock up front), row locks (`FOR UPDATE [SKIP LOCKED]` on PostgreSQL;
//! SQLite has one writer at a time), and the change notification (`pg_notify` on PostgreSQL; the
//! SQLite adapter wakes its in-process watchers itself). The adapters `clawrk-postgres` and
//! `clawrk-sqlite` own connections, pools, migrations and wake-ups; neither writes SQL.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod conn;
pub mod dialect;
mod errors;
mod id;
mod rows;
pub mod schema;
pub(crate) mod statement;
mod tx;
mod wake;

pub use errors::db_err;
pub use id::{DbId, Id};
pub use tx::{Caller, Queued, SqlTx, Waiting, run};
pub use wake::Wakeups;

pub use conn::{Db, MultiBackend};
