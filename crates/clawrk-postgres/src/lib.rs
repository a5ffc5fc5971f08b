//! clawrk's PostgreSQL store: the domain's [`Store`] port over a pool of connections, the schema's
//! embedded migrations (run under an advisory lock, so several instances may start at once), and a
//! LISTEN/NOTIFY [`LogWatch`] so that a log stream on one instance sees lines written by another.
//!
//! The statements themselves are `clawrk-sql`'s, shared with the embedded store; this crate owns
//! the connections. Each unit of work runs on one pooled connection on tokio's blocking pool.
//!
//! **Every database call is bounded** ([`Timeouts`]): getting a connection, each statement
//! (`statement_timeout`, set per connection), and the connection itself (TCP keepalives and
//! `tcp_user_timeout`, so a partition is noticed by the kernel); on top of that the caller stops
//! waiting for a unit of work after the statement bound and answers "unavailable" (503) — the
//! blocked thread finishes or fails on its own, and its transaction rolls back as a whole, since
//! its caller is gone (only one whose COMMIT was already sent may still commit: a retry with the
//! same idempotency key then replays its answer).

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod testing;

use async_trait::async_trait;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::JobId;
use clawrk_domain::ports::{Announcement, LogWatch, Mode, Store, Waiter, Work};
use clawrk_sql::{Db, Queued, Wakeups};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

diesel::define_sql_function! {
    /// PostgreSQL's `pg_notify(channel, payload)`.
    fn pg_notify(channel: diesel::sql_types::Text, payload: diesel::sql_types::Text);
}

diesel::define_sql_function! {
    /// The PID of this connection's server process (what its notifications carry).
    fn pg_backend_pid() -> diesel::sql_types::Integer;
}

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

/// How long the store waits for PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Getting a pooled connection.
    pub checkout: Duration,
    /// One statement (`statement_timeout`), and what the caller waits for a unit of work once it
    /// has its connection.
    pub statement: Duration,
    /// A connection whose peer stopped answering is given up after about this long (keepalives
    /// and `tcp_user_timeout`), and a connect attempt too (`connect_timeout`).
    pub network: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            checkout: Duration::from_secs(5),
            statement: Duration::from_secs(5),
            network: Duration::from_secs(5),
        }
    }
}

impl Timeouts {
    /// All three from one number of seconds (`CLAWRK_DB_TIMEOUT_SECONDS`).
    pub fn uniform(secs: u64) -> Timeouts {
        let d = Duration::from_secs(secs.max(1));
        Timeouts {
            checkout: d,
            statement: d,
            network: d,
        }
    }
}

/// `url` with the connection settings that bound every call, unless the URL sets them itself:
/// `connect_timeout`, TCP keepalives, `tcp_user_timeout` and `statement_timeout` (through
/// `options`). Works for URLs (`postgres://…`) and `key=value` strings.
pub fn bounded_url(url: &str, t: &Timeouts) -> String {
    let net = t.network.as_secs().max(1);
    let idle = (net / 2).max(1);
    let interval = 1;
    let count = (net.saturating_sub(idle)).max(1);
    let params = [
        ("connect_timeout", net.to_string()),
        ("keepalives", "1".to_string()),
        ("keepalives_idle", idle.to_string()),
        ("keepalives_interval", interval.to_string()),
        ("keepalives_count", count.to_string()),
        ("tcp_user_timeout", (net * 1000).to_string()),
    ];
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let has = |k: &str| {
        let lower = url.to_ascii_lowercase();
        if is_url {
            lower.contains(&format!("?{k}=")) || lower.contains(&format!("&{k}="))
        } else {
            lower.starts_with(&format!("{k}=")) || lower.contains(&format!(" {k}="))
        }
    };
    let mut out = url.to_string();
    let mut add = |k: &str, v: &str| {
        if is_url {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{k}={v}"));
        } else {
            out.push_str(&format!(" {k}={v}"));
        }
    };
    for (k, v) in &params {
        if !has(k) {
            add(k, v);
        }
    }
    if !has("options") {
        let ms = t.statement.as_millis();
        if is_url {
            add("options", &format!("-c%20statement_timeout%3D{ms}"));
        } else {
            add("options", &format!("'-c statement_timeout={ms}'"));
        }
    }
    out
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
    timeouts: Timeouts,
    watch: Arc<std::sync::OnceLock<Arc<PgWatch>>>,
}

impl PgStore {
    /// Connects (`pool_size` connections at most) with the default [`Timeouts`], runs pending
    /// migrations and prepares the log listener.
    pub fn connect(url: &str, pool_size: u32) -> Result<PgStore> {
        Self::connect_with(url, pool_size, Timeouts::default())
    }

    /// [`PgStore::connect`] with these timeouts. Migrations run without the statement bound (a
    /// schema change may take longer than any request should).
    pub fn connect_with(url: &str, pool_size: u32, timeouts: Timeouts) -> Result<PgStore> {
        migrate(url)?;
        let url = bounded_url(url, &timeouts);
        let url = url.as_str();
        let pool = Pool::builder()
            .max_size(pool_size)
            // No background connects: connections open on demand and stay idle for reuse. A
            // connect in flight on r2d2's thread while the process exits crashes libpq's cleanup.
            .min_idle(Some(0))
            // No test query on every checkout (a round trip per operation): a broken connection
            // fails its statement, is reported unavailable, and is dropped on its return.
            .test_on_check_out(false)
            .connection_timeout(timeouts.checkout)
            .build(Connections {
                url: url.to_string(),
            })
            .map_err(|e| unavailable(&e))?;
        Ok(PgStore {
            pool,
            url: url.into(),
            timeouts,
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

    /// The pool's connections now: open, idle, and the most it opens.
    pub fn pool_state(&self) -> (u32, u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections, self.pool.max_size())
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
        let watch = self.watch.get().cloned();
        let (got, checked_out) = tokio::sync::oneshot::channel::<()>();
        // Dropped when this call returns or is dropped: work still running then rolls back.
        let (caller, _waiting) = clawrk_sql::Caller::waiting();
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = Self::conn(&pool)?;
            let _ = got.send(());
            // Watchers on other instances hear of changed jobs by NOTIFY. A job that became queued
            // is announced by the listener, when this instance runs one (see `PgWatch::queued`);
            // else with the change.
            let queued = match watch {
                Some(_) => Queued::ByCaller,
                None => Queued::InBand,
            };
            let (out, woken) = clawrk_sql::run(&mut conn, mode, work, queued, &caller)?;
            if let Some(w) = watch {
                for a in woken {
                    match a {
                        Announcement::Queued(job) => w.queued(job),
                        // This instance's streams of the job read at once rather than at the
                        // listener's next poll. The NOTIFY reaches this instance too, a little
                        // later: one more read of the job's feed, which finds nothing new.
                        log @ Announcement::Log(_) => w.wakeups.notify(log),
                    }
                }
            }
            Ok(out)
        });
        // The checkout is bounded by the pool; the work by the statement bound (plus a margin
        // for the commit), measured from the checkout. A partitioned database answers 503 then.
        let t = self.timeouts;
        let mut task = task;
        if tokio::time::timeout(t.checkout + Duration::from_secs(1), checked_out)
            .await
            .is_err()
        {
            return Err(unavailable(&"no connection became free in time"));
        }
        let bound = t.statement + Duration::from_secs(1);
        match tokio::time::timeout(bound, &mut task).await {
            Ok(done) => {
                done.map_err(|e| DomainError::Internal(format!("store task failed: {e}")))?
            }
            Err(_) => Err(DomainError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                bound.as_secs()
            ))),
        }
    }
}

/// LISTEN/NOTIFY wake-ups: a thread holds one connection listening on the job-events channel and
/// rebroadcasts each job id in-process. If the connection drops it reconnects; watchers time out
/// meanwhile and re-read the store, so nothing is lost, only delayed. A change made on this
/// instance also wakes its own watchers at once, after the commit, without waiting for the
/// listener's next poll.
///
/// The same thread announces this instance's queued jobs to the others: waiting pulls only need to
/// know that something was queued, and a NOTIFY per reject was a round trip (and a notifying
/// commit) of its own. Queued jobs wake this instance's waiting pulls at once, in-process, and are
/// gathered into one notification per [`QUEUED_GATHER`] for the other instances; the listener
/// skips its own.
pub struct PgWatch {
    wakeups: Wakeups,
    /// A job queued on this instance since the last notification, if any.
    queued: Mutex<Option<JobId>>,
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The most often this instance tells the others that jobs were queued.
const QUEUED_GATHER: Duration = Duration::from_millis(20);

impl PgWatch {
    fn start(url: String) -> Arc<PgWatch> {
        let stopping = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(PgWatch {
            wakeups: Wakeups::default(),
            queued: Mutex::new(None),
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

    /// A job became queued on this instance: its waiting pulls try at once, the other instances'
    /// with the listener's next notification.
    fn queued(&self, job: JobId) {
        self.wakeups.notify(Announcement::Queued(job));
        if let Ok(mut q) = self.queued.lock() {
            *q = Some(job);
        }
    }

    /// Tells the other instances that jobs were queued, if any were since the last time.
    fn announce_queued(&self, conn: &mut PgConnection) -> QueryResult<()> {
        let Some(job) = self.queued.lock().ok().and_then(|mut q| q.take()) else {
            return Ok(());
        };
        let payload = clawrk_sql::dialect::payload(&Announcement::Queued(job));
        let sent = diesel::select(pg_notify(clawrk_sql::dialect::CHANNEL, payload)).execute(conn);
        if sent.is_err() {
            // Kept for the next connection.
            if let Ok(mut q) = self.queued.lock() {
                q.get_or_insert(job);
            }
        }
        sent.map(|_| ())
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
        // Its own notifications (queued jobs it announces) are not rebroadcast: they woke this
        // instance's watchers already.
        let own = diesel::select(pg_backend_pid())
            .get_result::<i32>(&mut conn)
            .unwrap_or(0);
        let mut last_queued = std::time::Instant::now();
        'poll: loop {
            let Some(w) = watch.upgrade() else { return };
            if stopping.load(Ordering::SeqCst) {
                let _ = w.announce_queued(&mut conn);
                return;
            }
            if last_queued.elapsed() >= QUEUED_GATHER {
                last_queued = std::time::Instant::now();
                if let Err(e) = w.announce_queued(&mut conn) {
                    tracing::warn!(error = %e, "log listener lost its connection");
                    break 'poll;
                }
            }
            for n in conn.notifications_iter() {
                match n {
                    Ok(n) if n.process_id == own => {}
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
