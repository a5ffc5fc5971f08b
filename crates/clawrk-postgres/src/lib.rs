//! clawrk's PostgreSQL store: the domain's [`Store`] port over a pool of connections, the schema's
//! embedded migrations (run under an advisory lock, so several instances may start at once), and a
//! LISTEN/NOTIFY [`LogWatch`] so that a log stream on one instance sees lines written by another.
//!
//! The statements themselves are `clawrk-sql`'s, shared with the embedded store; this crate owns
//! the connections. Each unit of work runs on one pooled connection on tokio's blocking pool.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod testing;

use async_trait::async_trait;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::JobId;
use clawrk_domain::ports::{LogWatch, Mode, Store, Waiter, Work};
use clawrk_sql::{Db, Wakeups};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The schema, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The advisory lock key that serializes migrations across instances.
const MIGRATION_LOCK: i64 = 0x636c_6177_726b; // "clawrk"

/// How often the listener drains notifications from its socket.
const LISTEN_POLL: Duration = Duration::from_millis(5);

/// Brings the database's schema up to date, holding an advisory lock while doing so.
pub fn migrate(url: &str) -> Result<usize> {
    let mut conn = PgConnection::establish(url).map_err(|e| unavailable(&e))?;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .map_err(clawrk_sql::db_err)?;
    let ran = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|v| v.len())
        .map_err(|e| DomainError::Internal(format!("migrations failed: {e}")));
    let unlock = conn
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .map_err(clawrk_sql::db_err);
    let ran = ran?;
    unlock?;
    Ok(ran)
}

fn unavailable(e: &dyn std::fmt::Display) -> DomainError {
    DomainError::Unavailable(format!("cannot reach PostgreSQL: {e}"))
}

/// Opens PostgreSQL connections as [`Db`]s for the pool.
#[derive(Debug)]
struct Connections {
    url: String,
}

impl ManageConnection for Connections {
    type Connection = Db;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<Db, Self::Error> {
        PgConnection::establish(&self.url)
            .map(Db::Pg)
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut Db) -> std::result::Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Db) -> bool {
        conn.is_broken()
    }
}

type PgPool = Pool<Connections>;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    url: Arc<str>,
    watch: Arc<std::sync::OnceLock<Arc<PgWatch>>>,
}

impl PgStore {
    /// Connects (`pool_size` connections at most), runs pending migrations and prepares the log
    /// listener.
    pub fn connect(url: &str, pool_size: u32) -> Result<PgStore> {
        migrate(url)?;
        let pool = Pool::builder()
            .max_size(pool_size)
            // No background connects: connections open on demand and stay idle for reuse. A
            // connect in flight on r2d2's thread while the process exits crashes libpq's cleanup.
            .min_idle(Some(0))
            // No test query on every checkout (a round trip per operation): a broken connection
            // fails its statement, is reported unavailable, and is dropped on its return.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(5))
            .build(Connections {
                url: url.to_string(),
            })
            .map_err(|e| unavailable(&e))?;
        Ok(PgStore {
            pool,
            url: url.into(),
            watch: Arc::default(),
        })
    }

    /// Wake-ups for log streams, fed by LISTEN on a dedicated connection, started on first use
    /// (one-shot commands such as `admin` never open it).
    pub fn watch(&self) -> Arc<PgWatch> {
        self.watch
            .get_or_init(|| PgWatch::start(self.url.to_string()))
            .clone()
    }

    /// Stops the listener thread, if it runs, and waits for it: libpq must not be in use by
    /// another thread while the process exits.
    pub fn shutdown(&self) {
        if let Some(w) = self.watch.get() {
            w.stop();
        }
    }

    fn conn(pool: &PgPool) -> Result<PooledConnection<Connections>> {
        pool.get().map_err(|e| unavailable(&e))
    }

    /// Runs `f` on a pooled connection, outside any transaction (tests check invariants in SQL).
    pub async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> T + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || Self::conn(&pool).map(|mut c| f(&mut c)))
            .await
            .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl Store for PgStore {
    async fn run(&self, mode: Mode, work: Work) -> Result<Box<dyn Any + Send>> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = Self::conn(&pool)?;
            // Watchers on every instance, this one included, hear of changed jobs by NOTIFY.
            clawrk_sql::run(&mut conn, mode, work).map(|(out, _)| out)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("store task failed: {e}")))?
    }
}

/// LISTEN/NOTIFY wake-ups: a thread holds one connection listening on the job-events channel and
/// rebroadcasts each job id in-process. If the connection drops it reconnects; watchers time out
/// meanwhile and re-read the store, so nothing is lost, only delayed.
pub struct PgWatch {
    wakeups: Wakeups,
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PgWatch {
    fn start(url: String) -> Arc<PgWatch> {
        let stopping = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(PgWatch {
            wakeups: Wakeups::default(),
            stopping: stopping.clone(),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&watch);
        let handle = std::thread::Builder::new()
            .name("clawrk-pg-listen".into())
            .spawn(move || listen_loop(&url, &weak, &stopping))
            .map_err(|e| tracing::error!(error = %e, "cannot start the log listener"))
            .ok();
        if let Ok(mut t) = watch.thread.lock() {
            *t = handle;
        }
        watch
    }

    /// Stops the listener and waits for its thread.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn listen_loop(url: &str, watch: &std::sync::Weak<PgWatch>, stopping: &AtomicBool) {
    while watch.strong_count() > 0 && !stopping.load(Ordering::SeqCst) {
        let mut conn = match PgConnection::establish(url) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "log listener cannot connect; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = conn.batch_execute(&format!("LISTEN {}", clawrk_sql::dialect::CHANNEL)) {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        'poll: loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let Some(w) = watch.upgrade() else { return };
            for n in conn.notifications_iter() {
                match n {
                    Ok(n) => {
                        if let Some(a) = clawrk_sql::dialect::parse_payload(&n.payload) {
                            w.wakeups.notify(a);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "log listener lost its connection");
                        break 'poll;
                    }
                }
            }
            drop(w);
            std::thread::sleep(LISTEN_POLL);
        }
    }
}

impl LogWatch for PgWatch {
    fn watch(&self, job: JobId) -> Box<dyn Waiter> {
        self.wakeups.watch(job)
    }

    fn watch_queue(&self) -> Box<dyn Waiter> {
        self.wakeups.watch_queue()
    }
}
