//! clawrk's embedded store: the domain's [`Store`] port on one SQLite file, used when no
//! `DATABASE_URL` is configured, so that the server runs on a fresh machine with nothing installed.
//!
//! - One writer: every write (single statements and transactions, `BEGIN IMMEDIATE`) runs on one
//!   connection behind a mutex, on tokio's blocking pool, so no job is held twice and no wallet
//!   overdrawn. Reads run on a small pool of read-only connections beside it (WAL lets them read
//!   while the writer writes). Other processes (the `admin` commands, a second server) wait on
//!   `busy_timeout`.
//! - WAL journal with `synchronous = FULL`: an acknowledged commit survives a crash.
//! - Log watchers ([`Wakeups`]) are woken in-process after a commit touching a job's log.
//! - Migrations (`migrations/sqlite`) are embedded and run by [`SqliteStore::open`], with foreign
//!   keys off while tables are rebuilt and checked afterwards, as SQLite's procedure asks.
//!
//! The statements themselves are `clawrk-sql`'s, shared with the PostgreSQL store.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ports::{Mode, Store, Work};
use clawrk_sql::{Db, Queued, Wakeups};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The schema, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long a statement waits for another process's write lock before giving up (then the
/// request answers 503), unless [`SqliteStore::open_with`] says otherwise.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Read-only connections beside the writer.
const READERS: usize = 4;

fn open_connection(path: &Path) -> Result<SqliteConnection> {
    let url = path.to_string_lossy().into_owned();
    SqliteConnection::establish(&url)
        .map_err(|e| DomainError::Unavailable(format!("cannot open {}: {e}", path.display())))
}

/// The embedded store over one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Db>>,
    readers: Arc<Vec<Mutex<Db>>>,
    next_reader: Arc<AtomicUsize>,
    watch: Arc<Wakeups>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        Self::open_with(path, BUSY_TIMEOUT)
    }

    /// [`SqliteStore::open`], waiting at most `busy` for another process's write lock: past it a
    /// call fails as unavailable (503), never hangs.
    pub fn open_with(path: impl AsRef<Path>, busy: std::time::Duration) -> Result<SqliteStore> {
        let busy_ms = busy.as_millis().max(1);
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path)?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"
        ))
        .map_err(clawrk_sql::db_err)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| DomainError::Internal(format!("migrations failed: {e}")))?;
        #[derive(QueryableByName)]
        struct Violation {
            #[diesel(sql_type = diesel::sql_types::Text)]
            #[allow(dead_code)]
            table: String,
        }
        let broken = diesel::sql_query("PRAGMA foreign_key_check")
            .load::<Violation>(&mut conn)
            .map_err(clawrk_sql::db_err)?;
        if !broken.is_empty() {
            return Err(DomainError::Internal(format!(
                "{} rows break a foreign key after migrating",
                broken.len()
            )));
        }
        conn.batch_execute("PRAGMA foreign_keys = ON;")
            .map_err(clawrk_sql::db_err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let mut r = open_connection(&path)?;
            r.batch_execute(&format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA query_only = ON;"
            ))
            .map_err(clawrk_sql::db_err)?;
            readers.push(Mutex::new(Db::Sqlite(r)));
        }
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(Db::Sqlite(conn))),
            readers: Arc::new(readers),
            next_reader: Arc::default(),
            watch: Arc::default(),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wake-ups for log streams of this store (fed after each commit that asked for them).
    pub fn watch(&self) -> Arc<Wakeups> {
        self.watch.clone()
    }

    /// Runs `f` on the writer's connection (tests check invariants in SQL with it).
    pub async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> T + Send + 'static,
    ) -> Result<T> {
        let conn = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn run(&self, mode: Mode, work: Work) -> Result<Box<dyn Any + Send>> {
        let conn = match mode {
            Mode::Read => {
                let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
                Conn::Reader(self.readers.clone(), i)
            }
            Mode::Single | Mode::Transaction => Conn::Writer(self.writer.clone()),
        };
        let watch = self.watch.clone();
        // Dropped with this call: work whose caller left before it committed rolls back.
        let (caller, _waiting) = clawrk_sql::Caller::waiting();
        tokio::task::spawn_blocking(move || {
            // A panic inside a transaction poisons the mutex after the rollback ran, so the
            // connection is still usable.
            let (out, woken) = match conn {
                Conn::Writer(w) => {
                    let mut guard = w.lock().unwrap_or_else(|p| p.into_inner());
                    clawrk_sql::run(&mut guard, mode, work, Queued::InBand, &caller)
                }
                Conn::Reader(r, i) => {
                    let mut guard = r[i].lock().unwrap_or_else(|p| p.into_inner());
                    clawrk_sql::run(&mut guard, mode, work, Queued::InBand, &caller)
                }
            }?;
            for a in woken {
                watch.notify(a);
            }
            Ok(out)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))?
    }
}

/// The connection a unit of work runs on.
enum Conn {
    Writer(Arc<Mutex<Db>>),
    Reader(Arc<Vec<Mutex<Db>>>, usize),
}
