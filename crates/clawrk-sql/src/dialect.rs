//! Where PostgreSQL and SQLite differ, and nowhere else: how a write transaction begins, row
//! locks, upserts, and the change notification.
//!
//! - **Transactions**: PostgreSQL `BEGIN` (READ COMMITTED, row locks do the rest); SQLite
//!   `BEGIN IMMEDIATE`, which takes the database's write lock up front, so a transaction that
//!   reads and then writes never fails to upgrade its lock.
//! - **Row locks**: on PostgreSQL a locked read appends `FOR UPDATE`, and candidate queries
//!   (pull, sweeps, verification) `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each
//!   other nor take the same job; pull's, which joins the agent, locks the jobs alone
//!   ([`LockJobs`]). SQLite has one writer at a time: its write transaction already excludes every
//!   other, so locked reads are plain reads.
//! - **Upserts**: `ON CONFLICT` is the same SQL on both, but diesel builds it per backend.
//! - **Notification**: PostgreSQL announces a job on the `clawrk_job_events` channel with
//!   `pg_notify`, delivered at commit to every instance listening (payload [`payload`]); SQLite has
//!   no such channel, and its adapter wakes its own watchers after the commit.

use crate::Db;
use crate::tx::Queued;
use clawrk_domain::ids::JobId;
use clawrk_domain::ports::Announcement;
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// The channel watchers listen on; the payload is [`payload`].
pub const CHANNEL: &str = "clawrk_job_events";

/// An announcement as it travels: the job id for a log change, `queued:` and the job id for a
/// job that became queued. UUIDs this crate formats, never caller text.
pub fn payload(a: &Announcement) -> String {
    match a {
        Announcement::Log(job) => job.to_string(),
        Announcement::Queued(job) => format!("queued:{job}"),
    }
}

/// Reads [`payload`]; `None` for anything else.
pub fn parse_payload(p: &str) -> Option<Announcement> {
    match p.strip_prefix("queued:") {
        Some(id) => id.parse().ok().map(|u| Announcement::Queued(JobId(u))),
        None => p.parse().ok().map(|u| Announcement::Log(JobId(u))),
    }
}

/// The statement that begins a write transaction.
pub(crate) fn begin(db: &Db) -> &'static str {
    match db {
        Db::Pg(_) => "BEGIN",
        Db::Sqlite(_) => "BEGIN IMMEDIATE",
    }
}

/// The row-lock suffix of a SELECT inside a write transaction (`skip_locked` for candidate
/// queries), for statements written as SQL fragments.
pub(crate) fn lock_suffix(db: &Db, skip_locked: bool) -> &'static str {
    match (db, skip_locked) {
        (Db::Pg(_), true) => " FOR UPDATE SKIP LOCKED",
        (Db::Pg(_), false) => " FOR UPDATE",
        (Db::Sqlite(_), _) => "",
    }
}

/// Loads a DSL query's rows, locked for the rest of the transaction (skipping rows locked
/// elsewhere with `skip_locked`). Candidate queries (`skip_locked`) are never wrapped in
/// [`Prepared`](crate::statement::Prepared): their best plan depends on how many rows qualify,
/// which a plan kept from when the table was small gets wrong.
macro_rules! load_locked {
    ($db:expr, $query:expr, skip_locked) => {
        match $db {
            $crate::Db::Pg(c) => $query.for_update().skip_locked().load(c),
            $crate::Db::Sqlite(c) => $query.load(c),
        }
    };
    ($db:expr, $query:expr) => {
        match $db {
            $crate::Db::Pg(c) => $query.for_update().load(c),
            $crate::Db::Sqlite(c) => $query.load(c),
        }
    };
}

/// A query whose `jobs` rows are locked, skipping rows locked elsewhere, while the other tables it
/// joins stay unlocked (`FOR UPDATE OF jobs SKIP LOCKED`, which diesel's DSL cannot say): pull
/// reads its agent in the statement that locks the candidates, and concurrent pulls of one agent
/// must not skip each other. PostgreSQL only. Never prepared, like every candidate query
/// ([`load_locked`]).
pub(crate) struct LockJobs<Q>(pub Q);

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for LockJobs<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" FOR UPDATE OF jobs SKIP LOCKED");
        Ok(())
    }
}

impl<Q> QueryId for LockJobs<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for LockJobs<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> diesel::RunQueryDsl<C> for LockJobs<Q> {}

/// Runs a statement that diesel builds per backend (upserts), written once.
macro_rules! per_backend {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::Db::Pg($c) => $body,
            $crate::Db::Sqlite($c) => $body,
        }
    };
}

pub(crate) use {load_locked, per_backend};

/// The announcements that travel with the change ([`Queued`] says whether a queued job's does).
fn in_band(announced: &[Announcement], queued: Queued) -> impl Iterator<Item = &Announcement> {
    announced
        .iter()
        .filter(move |a| queued == Queued::InBand || !matches!(a, Announcement::Queued(_)))
}

/// Commits a write transaction. On PostgreSQL the notifications for its changed jobs travel in the
/// same round trip (one simple-query batch: `SELECT pg_notify(…); COMMIT`), delivered at commit.
pub(crate) fn commit(
    db: &mut Db,
    announced: &[Announcement],
    queued: Queued,
) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let mut batch = String::new();
    if let Db::Pg(_) = db {
        for a in in_band(announced, queued) {
            batch.push_str(&format!(
                "SELECT pg_notify('{CHANNEL}', '{}'); ",
                payload(a)
            ));
        }
    }
    batch.push_str("COMMIT");
    db.batch_execute(&batch)
}

/// Announces changed jobs to every instance's watchers outside a transaction (PostgreSQL; SQLite's
/// adapter wakes its own watchers instead).
pub(crate) fn announce(
    db: &mut Db,
    announced: &[Announcement],
    queued: Queued,
) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::{Text, Untyped};
    if let Db::Pg(_) = db {
        for a in in_band(announced, queued) {
            diesel::dsl::sql::<Untyped>("SELECT pg_notify(")
                .bind::<Text, _>(CHANNEL)
                .sql(", ")
                .bind::<Text, _>(payload(a))
                .sql(")")
                .execute(db)?;
        }
    }
    Ok(())
}
