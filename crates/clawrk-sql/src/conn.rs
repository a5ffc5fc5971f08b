//! [`Db`]: one connection type over both backends (diesel's `MultiConnection`), and the
//! `MultiBackend` it speaks, on which every statement of [`crate::SqlTx`] is built.

// The derive generates a backend, a query builder and more, without docs.
#![allow(missing_docs)]

/// A connection to either backend; every statement of [`crate::SqlTx`] runs on it.
#[derive(diesel::MultiConnection)]
pub enum Db {
    /// PostgreSQL (production; several instances may share one database).
    Pg(diesel::PgConnection),
    /// SQLite (the embedded store).
    Sqlite(diesel::SqliteConnection),
}
