//! clawrk's embedded store: the domain's [`Tx`](clawrk_domain::ports::Tx) and
//! [`TxRunner`](clawrk_domain::ports::TxRunner) on one SQLite file, used when no `DATABASE_URL` is
//! configured, so that the server runs on a fresh machine with nothing installed.
//!
//! - One connection, one writer: every transaction is `BEGIN IMMEDIATE` on a single connection
//!   behind a mutex, run on tokio's blocking pool. Writers are serialized, so no job can be held
//!   twice and no wallet overdrawn; other processes (the `admin` commands) wait on `busy_timeout`.
//! - WAL journal with `synchronous = FULL`: an acknowledged commit survives a crash.
//! - Log watchers ([`LocalWatch`]) are woken in-process after a commit touching a job's log or row.
//! - Migrations (`migrations/sqlite`) are embedded and run by [`SqliteStore::open`].

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod rows;
mod tx;

use async_trait::async_trait;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::JobId;
use clawrk_domain::ports::{LogWatch, TxFn, TxRunner};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long a transaction waits for another process's write lock before giving up.
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// A transaction's error: the closure's domain error, or the database's.
enum TxError {
    Domain(DomainError),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

/// The embedded store: a [`TxRunner`] over one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<SqliteConnection>>,
    watch: Arc<LocalWatch>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let url = path.to_string_lossy().into_owned();
        let mut conn = SqliteConnection::establish(&url).map_err(|e| {
            DomainError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        ))
        .map_err(tx::db_err)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| DomainError::Internal(format!("migrations failed: {e}")))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            watch: Arc::new(LocalWatch::new()),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wake-ups for log streams of this store.
    pub fn watch(&self) -> Arc<LocalWatch> {
        self.watch.clone()
    }

    /// Runs `f` on the raw connection (tests check invariants in SQL with it).
    pub async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> T + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))
    }
}

#[async_trait]
impl TxRunner for SqliteStore {
    async fn run<T: Send + 'static>(&self, f: TxFn<T>) -> Result<T> {
        let conn = self.conn.clone();
        let watch = self.watch.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside a transaction poisons the mutex; diesel has rolled back by then
            // (the transaction guard's error path), so the connection is still usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let mut touched = Vec::new();
            let out = guard.immediate_transaction::<T, TxError, _>(|c| {
                let mut tx = tx::SqliteTx {
                    conn: c,
                    touched: &mut touched,
                };
                f(&mut tx).map_err(TxError::Domain)
            });
            drop(guard);
            match out {
                Ok(v) => {
                    watch.notify(&touched);
                    Ok(v)
                }
                Err(TxError::Domain(e)) => Err(e),
                Err(TxError::Db(e)) => Err(tx::db_err(e)),
            }
        })
        .await
        .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))?
    }
}

/// In-process wake-ups for log streams: one broadcast of the ids of jobs whose log lines or row
/// changed. The embedded store has one process writing, so no cross-process channel is needed.
pub struct LocalWatch {
    tx: broadcast::Sender<JobId>,
}

impl LocalWatch {
    fn new() -> Self {
        LocalWatch {
            tx: broadcast::channel(1024).0,
        }
    }

    fn notify(&self, jobs: &[JobId]) {
        for j in jobs {
            // No receiver is fine: nobody is watching.
            let _ = self.tx.send(*j);
        }
    }
}

#[async_trait]
impl LogWatch for LocalWatch {
    async fn wait(&self, job: JobId, timeout: Duration) {
        let mut rx = self.tx.subscribe();
        let _ = tokio::time::timeout(timeout, async move {
            loop {
                match rx.recv().await {
                    Ok(j) if j == job => return,
                    Ok(_) => continue,
                    // Missed some: the caller re-reads anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}
