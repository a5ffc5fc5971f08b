//! [`SqlTx`]: the domain's [`Tx`] on a [`Db`], every statement written once for both backends;
//! and [`run`], which runs a unit of work in its mode.

use crate::Db;
use crate::dialect::{self, load_locked, per_backend};
use crate::errors::db_err;
use crate::id::{DbId, Id};
use crate::rows::{
    self, AgentRow, DeliveryRow, EndpointRow, FileRow, JobRow, LogRow, ProfileRow, TransferRow,
    UserRow,
};
use crate::schema::*;
use crate::statement::{Prepared, Statement};
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::files::{FileMeta, FileRole, JobFile};
use clawrk_domain::ids::{AgentId, ApiKeyId, FileId, JobId, Timestamp, TransferId, UserId};
use clawrk_domain::job::{Job, JobStatus, LogLine, Structured};
use clawrk_domain::money::{Account, Cents, LedgerEntry, Reason, Transfer};
use clawrk_domain::ports::{
    AgentLookup, Announcement, AttemptRecord, IdemRecord, JobFilter, Leased, Mode, NewLogLine,
    Page, Tx, Work,
};
use clawrk_domain::user::{Agent, AgentProfile, KeyHash, User};
use clawrk_domain::webhook::{
    Delivery, DeliveryId, DeliveryState, Endpoint, JobEvent, Outgoing, WebhookId,
};
use diesel::connection::SimpleConnection;
use diesel::dsl::{count_star, exists, not, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The largest balance a wallet may hold; a credit beyond it is refused rather than overflowing.
const MAX_BALANCE: i64 = i64::MAX / 2;

/// Runs `work` on `db` in `mode`. Returns its result and the jobs whose watchers it asked to wake;
/// on PostgreSQL those were announced with the commit already (jobs that became queued only with
/// [`Queued::InBand`]: with [`Queued::ByCaller`] the caller announces them), the SQLite adapter
/// wakes them. A transaction that fails, or panics, is rolled back; so is one whose caller
/// stopped waiting ([`Caller`]) before its COMMIT, and work whose caller left before it started
/// does not run.
pub fn run(
    db: &mut Db,
    mode: Mode,
    work: Work,
    queued: Queued,
    caller: &Caller,
) -> Result<(Box<dyn Any + Send>, Vec<Announcement>)> {
    if caller.gone() {
        return Err(caller_gone());
    }
    let mut woken = Vec::new();
    let out = match mode {
        Mode::Read | Mode::Single => {
            let out = work(&mut SqlTx {
                db: &mut *db,
                woken: &mut woken,
            })?;
            // The statement committed on its own: a failed announcement must not answer it as
            // an error (a retry would do it twice). Its watchers find it at their next poll.
            if let Err(e) = dialect::announce(db, &woken, queued) {
                tracing::warn!(error = %e, "a committed change could not be announced");
            }
            out
        }
        Mode::Transaction => {
            db.batch_execute(dialect::begin(db)).map_err(db_err)?;
            let done = catch_unwind(AssertUnwindSafe(|| {
                work(&mut SqlTx {
                    db: &mut *db,
                    woken: &mut woken,
                })
            }));
            match done {
                // The caller stopped waiting (its bound expired, or it was dropped): it has
                // answered, or will never answer, that this did not happen, so it must not.
                Ok(Ok(_)) if caller.gone() => {
                    rollback(db);
                    return Err(caller_gone());
                }
                Ok(Ok(out)) => {
                    dialect::commit(db, &woken, queued).map_err(db_err)?;
                    out
                }
                Ok(Err(e)) => {
                    rollback(db);
                    return Err(e);
                }
                Err(panic) => {
                    rollback(db);
                    resume_unwind(panic);
                }
            }
        }
    };
    Ok((out, woken))
}

/// Whether the caller of a unit of work still waits for it. The adapters run work on a blocking
/// thread that cannot be stopped, so a caller that gives up (a bound expired, or its future was
/// dropped because its client left) would otherwise have its work commit behind its back: a
/// request answered 503 that took effect anyway, or a verification lease taken for a worker that
/// moved on, keeping the job from every worker until the lease lapses.
#[derive(Clone, Debug, Default)]
pub struct Caller(Arc<AtomicBool>);

impl Caller {
    /// A caller, and the guard it holds while it waits: dropping the guard marks it gone.
    pub fn waiting() -> (Caller, Waiting) {
        let c = Caller::default();
        let w = Waiting(c.clone());
        (c, w)
    }

    /// Whether the caller stopped waiting.
    pub fn gone(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Held by the waiting caller; when it is dropped (the caller returned, or was dropped itself)
/// work that has not committed yet will not.
#[derive(Debug)]
pub struct Waiting(Caller);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::SeqCst);
    }
}

fn caller_gone() -> DomainError {
    DomainError::Unavailable("the caller stopped waiting; the work was not committed".into())
}

/// Who announces the jobs a unit of work queued (PostgreSQL): they wake waiting pulls on every
/// instance, which want a prompt wake-up, not one per job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// With the change, like every other announcement.
    InBand,
    /// The caller, after the commit: the PostgreSQL adapter wakes its own waiting pulls at once and
    /// gathers what other instances need into one notification every few milliseconds.
    ByCaller,
}

fn rollback(db: &mut Db) {
    // A connection that cannot roll back is broken; its pool notices and drops it.
    let _ = db.batch_execute("ROLLBACK");
}

/// Names a list of `job_events` columns once, as a select tuple's type and its value.
macro_rules! event_columns {
    ($ty:ident, $name:ident: $($column:ident),+ $(,)?) => {
        type $ty = ($(job_events::$column,)+);
        const $name: $ty = ($(job_events::$column,)+);
    };
}

// The job columns of an outbox row, in the order of `jobs` (so that [`JobRow`] reads them).
event_columns!(
    EventJobColumns,
    EVENT_JOB:
    job_id,
    status,
    prompt,
    title,
    description,
    requirements,
    acceptance_criteria,
    sender,
    receiver,
    receiver_agent_id,
    held_by_agent_id,
    held_by_owner_id,
    hold_expires_at,
    price_cents,
    time_limit_seconds,
    accepted_at,
    deadline_at,
    submitted_at,
    completed_at,
    attempt_count,
    cancellation_requested,
    output_text,
    output_attachments,
    env_vars,
    attachments,
    presented_to_agents,
    verification,
    verify_errors,
    review_due_at,
    structured_by,
    created_at,
    updated_at,
    version,
    verify_lease_until,
);

/// An outbox row's columns, as [`rows::EventRow`] reads them.
const EVENT: (
    job_events::seq,
    job_events::from_status,
    job_events::prev_operator,
    EventJobColumns,
) = (
    job_events::seq,
    job_events::from_status,
    job_events::prev_operator,
    EVENT_JOB,
);

/// The domain's data access on one connection.
pub struct SqlTx<'a> {
    db: &'a mut Db,
    woken: &'a mut Vec<Announcement>,
}

/// Renames a unique-violation conflict (the domain words it for the caller).
fn unique(e: diesel::result::Error) -> DomainError {
    db_err(e)
}

fn id(v: impl Into<DbId>) -> DbId {
    v.into()
}

/// Users with their wallet's balance (the row exists from the user's creation on).
macro_rules! users_with_balance {
    () => {
        users::table
            .left_join(balances::table.on(sql::<Bool>(
                "balances.account = 'wallet:' || CAST(users.id AS TEXT)",
            )))
            .select((
                users::id,
                users::name,
                users::created_at,
                balances::balance_cents.nullable(),
            ))
    };
}

impl SqlTx<'_> {
    /// Applies one account's net delta: a debit only if the balance covers it, a credit only up to
    /// [`MAX_BALANCE`]; escrow rows are created by their first credit. `Ok(false)` when the guard
    /// refused (or the row is missing).
    fn apply_delta(&mut self, account: &str, delta: i64, create: bool) -> Result<bool> {
        let target = balances::table.filter(balances::account.eq(account));
        let n = if delta < 0 {
            Prepared(
                diesel::update(target.filter(balances::balance_cents.ge(-delta)))
                    .set(balances::balance_cents.eq(balances::balance_cents + delta))
                    .returning(balances::balance_cents),
            )
            .load::<i64>(self.db)
            .map(|r| r.len())
        } else if create {
            per_backend!(self.db, |c| Prepared(
                diesel::insert_into(balances::table)
                    .values((
                        balances::account.eq(account),
                        balances::balance_cents.eq(delta)
                    ))
                    .on_conflict(balances::account)
                    .do_update()
                    .set(balances::balance_cents.eq(balances::balance_cents + delta))
                    .returning(balances::balance_cents)
            )
            .load::<i64>(c)
            .map(|r| r.len()))
        } else {
            Prepared(
                diesel::update(target.filter(balances::balance_cents.le(MAX_BALANCE - delta)))
                    .set(balances::balance_cents.eq(balances::balance_cents + delta))
                    .returning(balances::balance_cents),
            )
            .load::<i64>(self.db)
            .map(|r| r.len())
        }
        .map_err(db_err)?;
        Ok(n == 1)
    }

    fn balance_of(&mut self, account: &str) -> Result<Option<i64>> {
        balances::table
            .filter(balances::account.eq(account))
            .select(balances::balance_cents)
            .first::<i64>(self.db)
            .optional()
            .map_err(db_err)
    }
}

impl Tx for SqlTx<'_> {
    fn insert_user(&mut self, user: &User) -> Result<()> {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(id(user.id)),
                users::name.eq(&user.name),
                users::created_at.eq(user.created_at.millis()),
            ))
            .execute(self.db)
            .map_err(unique)?;
        diesel::insert_into(balances::table)
            .values((
                balances::account.eq(Account::Wallet(user.id).key()),
                balances::balance_cents.eq(0),
            ))
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn user(&mut self, uid: UserId) -> Result<Option<User>> {
        Ok(users_with_balance!()
            .filter(users::id.eq(id(uid)))
            .first::<UserRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(UserRow::into_user))
    }

    fn user_by_name(&mut self, name: &str) -> Result<Option<User>> {
        Ok(users_with_balance!()
            .filter(users::name.eq(name))
            .first::<UserRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(UserRow::into_user))
    }

    fn insert_api_key(
        &mut self,
        key: ApiKeyId,
        user: UserId,
        hash: &KeyHash,
        now: Timestamp,
    ) -> Result<()> {
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(id(key)),
                api_keys::user_id.eq(id(user)),
                api_keys::key_hash.eq(hash.0.to_vec()),
                api_keys::created_at.eq(now.millis()),
            ))
            .execute(self.db)
            .map_err(unique)?;
        Ok(())
    }

    fn user_by_key(&mut self, hash: &KeyHash) -> Result<Option<User>> {
        let owner = api_keys::table
            .filter(api_keys::key_hash.eq(hash.0.to_vec()))
            .select(api_keys::user_id);
        Ok(users_with_balance!()
            .filter(users::id.eq_any(owner))
            .first::<UserRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(UserRow::into_user))
    }

    fn insert_agent(&mut self, agent: &Agent) -> Result<()> {
        diesel::insert_into(agents::table)
            .values(AgentRow::of(agent))
            .execute(self.db)
            .map_err(unique)?;
        Ok(())
    }

    fn update_agent(&mut self, agent: &Agent) -> Result<()> {
        diesel::update(agents::table.find(id(agent.id)))
            .set((
                agents::name.eq(&agent.name),
                agents::personality.eq(&agent.personality),
                agents::avatar_url.eq(&agent.avatar_url),
            ))
            .execute(self.db)
            .map_err(unique)?;
        Ok(())
    }

    fn delete_agent(&mut self, agent: AgentId) -> Result<()> {
        diesel::delete(agents::table.find(id(agent)))
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn agent(&mut self, agent: AgentId) -> Result<Option<Agent>> {
        Ok(agents::table
            .find(id(agent))
            .first::<AgentRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(AgentRow::into_agent))
    }

    fn agents_of(&mut self, owner: UserId) -> Result<Vec<Agent>> {
        Ok(agents::table
            .filter(agents::owner_id.eq(id(owner)))
            .order((
                agents::is_default.desc(),
                agents::created_at.asc(),
                agents::id.asc(),
            ))
            .load::<AgentRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(AgentRow::into_agent)
            .collect())
    }

    fn directory(&mut self, page: Page<AgentId>) -> Result<Vec<AgentProfile>> {
        let mut q = agents::table
            .select((
                agents::all_columns,
                sql::<BigInt>(
                    "(SELECT COUNT(*) FROM attempts t WHERE t.agent_id = agents.id \
                     AND t.outcome = 'verified')",
                ),
                sql::<BigInt>(
                    "(SELECT COUNT(*) FROM attempts t WHERE t.agent_id = agents.id \
                     AND t.outcome = 'failed')",
                ),
                sql::<BigInt>(
                    "(SELECT CAST(COALESCE(SUM(t.earned_cents), 0) AS BIGINT) FROM attempts t \
                     WHERE t.agent_id = agents.id)",
                ),
            ))
            .order(agents::id.desc())
            .limit(i64::from(page.limit))
            .into_boxed();
        if let Some(b) = page.before {
            q = q.filter(agents::id.lt(id(b)));
        }
        Ok(q.load::<ProfileRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(ProfileRow::into_profile)
            .collect())
    }

    fn count_agents(&mut self) -> Result<i64> {
        agents::table
            .select(count_star())
            .first(self.db)
            .map_err(db_err)
    }

    fn record_attempt(&mut self, a: &AttemptRecord) -> Result<()> {
        let number = i32::try_from(a.number)
            .map_err(|_| DomainError::Internal("attempt number out of range".into()))?;
        let (outcome, earned) = (a.outcome.as_str(), a.earned.get());
        per_backend!(self.db, |c| Prepared(
            diesel::insert_into(attempts::table)
                .values((
                    attempts::job_id.eq(id(a.job_id)),
                    attempts::attempt.eq(number),
                    attempts::agent_id.eq(id(a.agent_id)),
                    attempts::outcome.eq(outcome),
                    attempts::earned_cents.eq(earned),
                ))
                .on_conflict((attempts::job_id, attempts::attempt))
                .do_update()
                .set((
                    attempts::outcome.eq(outcome),
                    attempts::earned_cents.eq(earned),
                ))
                .returning(attempts::attempt)
        )
        .load::<i32>(c))
        .map_err(db_err)?;
        Ok(())
    }

    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()> {
        if transfers.is_empty() {
            return Ok(());
        }
        let rows: Vec<TransferRow> = transfers
            .iter()
            .map(|(tid, t)| TransferRow {
                id: id(*tid),
                debit: t.from.key(),
                credit: t.to.key(),
                amount_cents: t.amount.get(),
                reason: t.reason.as_str().into(),
                job_id: t.job_id.map(DbId::from),
                created_at: now.millis(),
            })
            .collect();
        // One shape per number of transfers (a change posts at most a few). diesel runs a batch
        // on SQLite as one insert per row, its own way.
        let insert = diesel::insert_into(transfers::table).values(&rows);
        match self.db {
            Db::Pg(c) => Prepared(insert.returning(transfers::amount_cents))
                .load::<i64>(c)
                .map(|r| r.len()),
            Db::Sqlite(c) => insert.execute(c),
        }
        .map_err(db_err)?;
        // Net deltas per account, applied in account-key order: the order every writer takes
        // balance locks in, so two postings never wait on each other in a cycle. The world and
        // the platform have no balance row (their balances are their ledger sums).
        let mut deltas: BTreeMap<String, (Account, i64)> = BTreeMap::new();
        for (_, t) in transfers {
            let amount = t.amount.get();
            for (account, d) in [(t.from, -amount), (t.to, amount)] {
                if matches!(account, Account::World | Account::Platform) {
                    continue;
                }
                let e = deltas.entry(account.key()).or_insert((account, 0));
                e.1 = e.1.checked_add(d).ok_or_else(|| {
                    DomainError::invalid("amount_cents is larger than a wallet can hold")
                })?;
            }
        }
        for (key, (account, delta)) in deltas {
            if delta == 0 {
                continue;
            }
            let escrow = matches!(account, Account::Escrow(_));
            if self.apply_delta(&key, delta, escrow && delta > 0)? {
                continue;
            }
            // The guard refused: say why, with what the account holds.
            return Err(match (self.balance_of(&key)?, account) {
                (None, Account::Wallet(_)) => DomainError::NotFound("user"),
                (found, _) if delta < 0 => DomainError::InsufficientBalance {
                    required: Cents(-delta),
                    available: Cents(found.unwrap_or(0)),
                },
                _ => DomainError::invalid("amount_cents is larger than a wallet can hold"),
            });
        }
        Ok(())
    }

    fn ledger(&mut self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>> {
        let wallet = Account::Wallet(user);
        let key = wallet.key();
        let mut q = transfers::table
            .filter(
                transfers::debit
                    .eq(key.clone())
                    .or(transfers::credit.eq(key)),
            )
            .order(transfers::id.desc())
            .limit(i64::from(page.limit))
            .into_boxed();
        if let Some(b) = page.before {
            q = q.filter(transfers::id.lt(id(b)));
        }
        q.load::<TransferRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(|r| r.into_entry(wallet))
            .collect()
    }

    fn transfer_total(&mut self, reason: Reason) -> Result<Cents> {
        let total = transfers::table
            .filter(transfers::reason.eq(reason.as_str()))
            .select(sql::<BigInt>(
                "CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT)",
            ))
            .first::<i64>(self.db)
            .map_err(db_err)?;
        Ok(Cents(total))
    }

    fn insert_job(&mut self, job: &Job) -> Result<()> {
        // Kept prepared by diesel already (an insert of a whole row has one text).
        diesel::insert_into(jobs::table)
            .values(JobRow::of(job)?)
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn update_job(&mut self, job: &Job, expected_version: i64) -> Result<bool> {
        let row = JobRow::of(job)?;
        let target = jobs::table
            .filter(jobs::id.eq(id(job.id)))
            .filter(jobs::version.eq(expected_version));
        // The verification lease belongs to the worker; it outlives a job change only while the
        // job stays `submitted`.
        let n = if job.status == JobStatus::Submitted {
            Prepared(diesel::update(target).set(&row).returning(jobs::version)).load::<i64>(self.db)
        } else {
            Prepared(
                diesel::update(target)
                    .set((&row, jobs::verify_lease_until.eq(None::<i64>)))
                    .returning(jobs::version),
            )
            .load::<i64>(self.db)
        }
        .map(|r| r.len())
        .map_err(db_err)?;
        Ok(n == 1)
    }

    fn job(&mut self, job: JobId) -> Result<Option<Job>> {
        jobs::table
            .find(id(job))
            .first::<JobRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(JobRow::into_job)
            .transpose()
    }

    fn lock_job(&mut self, job: JobId) -> Result<Option<Job>> {
        let q = jobs::table.filter(jobs::id.eq(id(job)));
        let rows: Vec<JobRow> = load_locked!(self.db, q).map_err(db_err)?;
        Ok(rows::jobs(rows)?.pop())
    }

    fn pull_candidates(
        &mut self,
        owner: UserId,
        agent: &AgentLookup,
        limit: u32,
    ) -> Result<Option<(Agent, Vec<Job>)>> {
        // One statement for the agent and its candidates; the lookup is one filter on the agent,
        // so the query is written once for each and locks on PostgreSQL only ([`LockJobs`]).
        macro_rules! candidates {
            ($which:expr) => {{
                let presented = presentations::table
                    .filter(presentations::agent_id.eq(agents::id))
                    .filter(presentations::job_id.eq(jobs::id));
                // A literal status (not a bind) lets PostgreSQL's planner use the partial index of
                // queued jobs, whose key order is this ORDER BY.
                let q = jobs::table
                    .inner_join(agents::table.on(agents::owner_id.eq(id(owner)).and($which)))
                    .filter(sql::<Bool>("jobs.status = 'queued'"))
                    .filter(jobs::sender.ne(id(owner)))
                    .filter(not(exists(presented)))
                    .order((jobs::created_at.asc(), jobs::id.asc()))
                    .limit(i64::from(limit));
                match &mut *self.db {
                    Db::Pg(c) => dialect::LockJobs(q).load::<(JobRow, AgentRow)>(c),
                    Db::Sqlite(c) => q.load::<(JobRow, AgentRow)>(c),
                }
            }};
        }
        let rows = match agent {
            AgentLookup::Id(a) => candidates!(agents::id.eq(id(*a))),
            AgentLookup::Name(name) => candidates!(agents::name.eq(name)),
            AgentLookup::Default => candidates!(agents::is_default.eq(true)),
        }
        .map_err(db_err)?;
        // Every row carries the same agent.
        let (jobs, agents): (Vec<JobRow>, Vec<AgentRow>) = rows.into_iter().unzip();
        let Some(agent) = agents.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some((agent.into_agent(), rows::jobs(jobs)?)))
    }

    fn expired_holds(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        let q = jobs::table
            .filter(sql::<Bool>("jobs.status = 'held'"))
            .filter(jobs::hold_expires_at.le(now.millis()))
            .order(jobs::hold_expires_at.asc())
            .limit(i64::from(limit));
        let rows: Vec<JobRow> = load_locked!(self.db, q, skip_locked).map_err(db_err)?;
        rows::jobs(rows)
    }

    fn overdue(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        let q = jobs::table
            .filter(sql::<Bool>("jobs.status = 'accepted'"))
            .filter(jobs::deadline_at.le(now.millis()))
            .order(jobs::deadline_at.asc())
            .limit(i64::from(limit));
        let rows: Vec<JobRow> = load_locked!(self.db, q, skip_locked).map_err(db_err)?;
        rows::jobs(rows)
    }

    fn reviews_due(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        let q = jobs::table
            .filter(sql::<Bool>("jobs.status = 'submitted'"))
            .filter(jobs::review_due_at.le(now.millis()))
            .order(jobs::review_due_at.asc())
            .limit(i64::from(limit));
        let rows: Vec<JobRow> = load_locked!(self.db, q, skip_locked).map_err(db_err)?;
        rows::jobs(rows)
    }

    fn postpone_verification(&mut self, job: JobId, until: Timestamp) -> Result<()> {
        diesel::update(jobs::table.filter(jobs::id.eq(id(job))))
            .set(jobs::verify_lease_until.eq(Some(until.millis())))
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Leased>> {
        // One statement: pick the oldest free submission (skipping rows other workers lock, and
        // those waiting for the sender's review) and lease it; and say whether another free one
        // was there (the leased row itself excluded: PostgreSQL's subquery sees it as it was).
        let pick = sql::<Bool>(
            "jobs.id = (SELECT j.id FROM jobs j WHERE j.status = 'submitted' \
             AND j.review_due_at IS NULL \
             AND (j.verify_lease_until IS NULL OR j.verify_lease_until <= ",
        )
        .bind::<BigInt, _>(now.millis())
        .sql(") ORDER BY j.submitted_at, j.id LIMIT 1")
        .sql(dialect::lock_suffix(self.db, true))
        .sql(")");
        let more = sql::<Bool>(
            "EXISTS (SELECT 1 FROM jobs o WHERE o.status = 'submitted' \
             AND o.review_due_at IS NULL AND o.id <> jobs.id \
             AND (o.verify_lease_until IS NULL OR o.verify_lease_until <= ",
        )
        .bind::<BigInt, _>(now.millis())
        .sql("))");
        Prepared(
            diesel::update(jobs::table.filter(pick))
                .set(jobs::verify_lease_until.eq(Some(until.millis())))
                .returning((jobs::all_columns, more)),
        )
        .get_result::<(JobRow, bool)>(self.db)
        .optional()
        .map_err(db_err)?
        .map(|(row, more_waiting)| {
            Ok(Leased {
                job: row.into_job()?,
                more_waiting,
            })
        })
        .transpose()
    }

    fn jobs(&mut self, filter: &JobFilter, page: Page<JobId>) -> Result<Vec<Job>> {
        let mut q = jobs::table
            .order((jobs::created_at.desc(), jobs::id.desc()))
            .limit(i64::from(page.limit))
            .into_boxed();
        // Only the filters that apply, so that the planner sees plain equalities and walks the
        // matching index backwards.
        if let Some(s) = filter.sender {
            q = q.filter(jobs::sender.eq(id(s)));
        }
        if let Some(w) = filter.worker {
            q = q.filter(
                jobs::held_by_owner_id
                    .eq(id(w))
                    .or(jobs::receiver.eq(id(w))),
            );
        }
        if let Some(a) = filter.agent {
            q = q.filter(
                jobs::held_by_agent_id
                    .eq(id(a))
                    .or(jobs::receiver_agent_id.eq(id(a))),
            );
        }
        if !filter.statuses.is_empty() {
            // Literals from the fixed set of statuses: the planner can use the partial indexes.
            let list: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            q = q.filter(sql::<Bool>(&format!(
                "jobs.status IN ({})",
                list.join(", ")
            )));
        }
        if let Some(b) = page.before {
            // Strictly older than the cursor job; no rows for an unknown cursor.
            q = q.filter(
                sql::<Bool>("(jobs.created_at, jobs.id) < (SELECT c.created_at, c.id FROM jobs c WHERE c.id = ")
                    .bind::<Id, _>(id(b))
                    .sql(")"),
            );
        }
        rows::jobs(q.load::<JobRow>(self.db).map_err(db_err)?)
    }

    fn count_by_status(&mut self) -> Result<Vec<(JobStatus, i64)>> {
        let rows: Vec<(String, i64)> = jobs::table
            .group_by(jobs::status)
            .select((jobs::status, count_star()))
            .load(self.db)
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(s, n)| {
                JobStatus::parse(&s)
                    .map(|st| (st, n))
                    .ok_or_else(|| DomainError::Internal(format!("stored status {s:?}")))
            })
            .collect()
    }

    fn queued_price_at(&mut self, offset: i64) -> Result<Option<Cents>> {
        Ok(jobs::table
            .filter(sql::<Bool>("jobs.status = 'queued'"))
            .select(jobs::price_cents)
            .order(jobs::price_cents.asc())
            .offset(offset)
            .first::<i64>(self.db)
            .optional()
            .map_err(db_err)?
            .map(Cents))
    }

    fn append_logs(
        &mut self,
        job: JobId,
        lines: &[NewLogLine],
        at: Timestamp,
    ) -> Result<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        // One statement: the lines numbered after the job's last one (the caller holds the job's
        // row, so no other append to this job runs meanwhile).
        let mut q = Statement::default()
            .sql("INSERT INTO log_lines (job_id, seq, at, level, message) SELECT ")
            .id(job)
            .sql(", m.n + v.column1, ")
            .bigint(at.millis())
            .sql(", v.column2, v.column3 FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM log_lines WHERE job_id = ")
            .id(job)
            .sql(") m CROSS JOIN (VALUES ");
        for (i, (level, message)) in lines.iter().enumerate() {
            let k = i64::try_from(i + 1)
                .map_err(|_| DomainError::Internal("too many log lines".into()))?;
            q = q
                .sql(if i == 0 { "(" } else { ", (" })
                .bigint(k)
                .sql(", ")
                .text(level.as_str())
                .sql(", ")
                .text(message.clone())
                .sql(")");
        }
        #[derive(QueryableByName)]
        struct Seq {
            #[diesel(sql_type = BigInt)]
            seq: i64,
        }
        let mut seqs: Vec<i64> = q
            .sql(") AS v RETURNING seq")
            .load::<Seq>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(|s| s.seq)
            .collect();
        seqs.sort_unstable();
        Ok(seqs
            .into_iter()
            .zip(lines)
            .map(|(seq, (level, message))| LogLine {
                seq,
                at,
                level: *level,
                message: message.clone(),
            })
            .collect())
    }

    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>> {
        log_lines::table
            .filter(log_lines::job_id.eq(id(job)))
            .filter(log_lines::seq.gt(after))
            .order(log_lines::seq.asc())
            .select((
                log_lines::seq,
                log_lines::at,
                log_lines::level,
                log_lines::message,
            ))
            .load::<LogRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(LogRow::into_line)
            .collect()
    }

    fn job_with_logs(&mut self, job: JobId, after: i64) -> Result<Option<(Job, Vec<LogLine>)>> {
        type Line = Option<(i64, i64, String, String)>;
        let rows: Vec<(JobRow, Line)> = jobs::table
            .left_join(
                log_lines::table.on(log_lines::job_id.eq(jobs::id).and(log_lines::seq.gt(after))),
            )
            .filter(jobs::id.eq(id(job)))
            .order(log_lines::seq.asc())
            .select((
                jobs::all_columns,
                (
                    log_lines::seq,
                    log_lines::at,
                    log_lines::level,
                    log_lines::message,
                )
                    .nullable(),
            ))
            .load(self.db)
            .map_err(db_err)?;
        let mut rows = rows.into_iter();
        let Some((row, first)) = rows.next() else {
            return Ok(None);
        };
        let lines = first
            .into_iter()
            .chain(rows.filter_map(|(_, l)| l))
            .map(|(seq, at, level, message)| {
                LogRow {
                    seq,
                    at,
                    level,
                    message,
                }
                .into_line()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((row.into_job()?, lines)))
    }

    fn notify(&mut self, what: Announcement) -> Result<()> {
        if !self.woken.contains(&what) {
            self.woken.push(what);
        }
        Ok(())
    }

    fn put_quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        structured: &Structured,
        expires_at: Timestamp,
    ) -> Result<()> {
        let text = rows::to_json(structured)?;
        per_backend!(self.db, |c| diesel::insert_into(quotes::table)
            .values((
                quotes::sender.eq(id(sender)),
                quotes::digest.eq(digest.to_vec()),
                quotes::structured.eq(&text),
                quotes::expires_at.eq(expires_at.millis()),
            ))
            .on_conflict((quotes::sender, quotes::digest))
            .do_update()
            .set((
                quotes::structured.eq(&text),
                quotes::expires_at.eq(expires_at.millis()),
            ))
            .execute(c))
        .map_err(db_err)?;
        Ok(())
    }

    fn quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<Structured>> {
        quotes::table
            .filter(quotes::sender.eq(id(sender)))
            .filter(quotes::digest.eq(digest.to_vec()))
            .filter(quotes::expires_at.gt(now.millis()))
            .select(quotes::structured)
            .first::<String>(self.db)
            .optional()
            .map_err(db_err)?
            .map(|t| rows::from_json("quote", &t))
            .transpose()
    }

    fn idem_insert(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        expires_at: Timestamp,
    ) -> Result<bool> {
        // Insert-if-absent is one atomic statement: of concurrent claims, exactly one inserts.
        let n = per_backend!(self.db, |c| diesel::insert_into(idempotency::table)
            .values((
                idempotency::user_id.eq(id(user)),
                idempotency::key.eq(key),
                idempotency::digest.eq(digest.to_vec()),
                idempotency::response.eq(None::<Vec<u8>>),
                idempotency::expires_at.eq(expires_at.millis()),
            ))
            .on_conflict_do_nothing()
            .execute(c))
        .map_err(db_err)?;
        Ok(n == 1)
    }

    fn idem_get(&mut self, user: UserId, key: &str) -> Result<Option<IdemRecord>> {
        let row: Option<(Vec<u8>, Option<Vec<u8>>, i64)> = idempotency::table
            .filter(idempotency::user_id.eq(id(user)))
            .filter(idempotency::key.eq(key))
            .select((
                idempotency::digest,
                idempotency::response,
                idempotency::expires_at,
            ))
            .first(self.db)
            .optional()
            .map_err(db_err)?;
        row.map(|(digest, response, expires_at)| {
            Ok(IdemRecord {
                digest: digest
                    .try_into()
                    .map_err(|_| DomainError::Internal("stored digest is not 32 bytes".into()))?,
                response,
                expires_at: Timestamp::from_millis(expires_at),
            })
        })
        .transpose()
    }

    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<bool> {
        let stored = Prepared(
            diesel::update(
                idempotency::table
                    .filter(idempotency::user_id.eq(id(user)))
                    .filter(idempotency::key.eq(key)),
            )
            .set(idempotency::response.eq(Some(response.to_vec())))
            .returning(idempotency::expires_at),
        )
        .load::<i64>(self.db)
        .map_err(db_err)?;
        Ok(!stored.is_empty())
    }

    fn idem_delete(
        &mut self,
        user: UserId,
        key: &str,
        expired_by: Option<Timestamp>,
    ) -> Result<()> {
        let target = idempotency::table
            .filter(idempotency::user_id.eq(id(user)))
            .filter(idempotency::key.eq(key));
        match expired_by {
            Some(t) => diesel::delete(target.filter(idempotency::expires_at.le(t.millis())))
                .execute(self.db),
            None => diesel::delete(target.filter(idempotency::response.is_null())).execute(self.db),
        }
        .map_err(db_err)?;
        Ok(())
    }

    fn purge_expired(&mut self, now: Timestamp) -> Result<u64> {
        let q = diesel::delete(quotes::table.filter(quotes::expires_at.le(now.millis())))
            .execute(self.db)
            .map_err(db_err)?;
        let i = diesel::delete(idempotency::table.filter(idempotency::expires_at.le(now.millis())))
            .execute(self.db)
            .map_err(db_err)?;
        Ok((q + i) as u64)
    }

    fn job_stats(&mut self) -> Result<clawrk_domain::ports::JobStats> {
        // One statement: a count and the oldest change per status.
        let rows: Vec<(String, i64, Option<i64>)> = jobs::table
            .group_by(jobs::status)
            .select((
                jobs::status,
                count_star(),
                diesel::dsl::min(jobs::updated_at),
            ))
            .load(self.db)
            .map_err(db_err)?;
        let mut stats = clawrk_domain::ports::JobStats::default();
        for (status, n, oldest) in rows {
            let Some(s) = JobStatus::parse(&status) else {
                continue;
            };
            stats.by_status.push((s, u64::try_from(n).unwrap_or(0)));
            if s == JobStatus::Queued {
                stats.oldest_queued = oldest.map(Timestamp::from_millis);
            }
        }
        Ok(stats)
    }

    fn insert_webhook(&mut self, endpoint: &Endpoint) -> Result<()> {
        diesel::insert_into(webhook_endpoints::table)
            .values(EndpointRow::of(endpoint)?)
            .execute(self.db)
            .map_err(unique)?;
        Ok(())
    }

    fn webhook(&mut self, wid: WebhookId) -> Result<Option<Endpoint>> {
        webhook_endpoints::table
            .find(id(wid.0))
            .first::<EndpointRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(EndpointRow::into_endpoint)
            .transpose()
    }

    fn webhooks_of(&mut self, owner: UserId) -> Result<Vec<Endpoint>> {
        webhook_endpoints::table
            .filter(webhook_endpoints::owner_id.eq(id(owner)))
            .order((webhook_endpoints::created_at, webhook_endpoints::id))
            .load::<EndpointRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(EndpointRow::into_endpoint)
            .collect()
    }

    fn update_webhook(&mut self, endpoint: &Endpoint) -> Result<()> {
        diesel::update(webhook_endpoints::table.find(id(endpoint.id.0)))
            .set(EndpointRow::of(endpoint)?)
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn delete_webhook(&mut self, wid: WebhookId) -> Result<()> {
        diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id(wid.0))),
        )
        .execute(self.db)
        .map_err(db_err)?;
        diesel::delete(webhook_endpoints::table.find(id(wid.0)))
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn webhooks_for(&mut self, owners: &[UserId]) -> Result<Vec<Endpoint>> {
        let owners: Vec<DbId> = owners.iter().map(|o| id(*o)).collect();
        webhook_endpoints::table
            .filter(webhook_endpoints::owner_id.eq_any(owners))
            .filter(webhook_endpoints::enabled.eq(true))
            .load::<EndpointRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(EndpointRow::into_endpoint)
            .collect()
    }

    fn undispatched_events(&mut self, limit: u32) -> Result<Vec<JobEvent>> {
        // `NOT dispatched` as written (no bound value), so that the partial index serves it.
        let q = job_events::table
            .filter(not(job_events::dispatched))
            .order(job_events::seq)
            .limit(i64::from(limit))
            .select(EVENT);
        let rows: Vec<rows::EventRow> = load_locked!(self.db, q, skip_locked).map_err(db_err)?;
        rows.into_iter().map(rows::into_event).collect()
    }

    fn insert_deliveries(&mut self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let rows: Vec<DeliveryRow> = deliveries.iter().map(DeliveryRow::of).collect();
        per_backend!(self.db, |c| diesel::insert_into(webhook_deliveries::table)
            .values(&rows)
            .execute(c))
        .map_err(db_err)?;
        Ok(())
    }

    fn settle_events(&mut self, keep: &[i64], drop: &[i64]) -> Result<()> {
        if !keep.is_empty() {
            diesel::update(job_events::table.filter(job_events::seq.eq_any(keep)))
                .set(job_events::dispatched.eq(true))
                .execute(self.db)
                .map_err(db_err)?;
        }
        if !drop.is_empty() {
            diesel::delete(job_events::table.filter(job_events::seq.eq_any(drop)))
                .execute(self.db)
                .map_err(db_err)?;
        }
        Ok(())
    }

    fn lease_deliveries(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Outgoing>> {
        let due = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str()))
            .filter(webhook_deliveries::next_at.le(now.millis()))
            // A disabled endpoint's deliveries wait (a subquery, so that only deliveries are
            // locked).
            .filter(
                webhook_deliveries::endpoint_id.eq_any(
                    webhook_endpoints::table
                        .filter(webhook_endpoints::enabled.eq(true))
                        .select(webhook_endpoints::id),
                ),
            )
            .order((webhook_deliveries::next_at, webhook_deliveries::event_seq))
            .limit(i64::from(limit))
            .select(webhook_deliveries::id);
        let ids: Vec<DbId> = load_locked!(self.db, due, skip_locked).map_err(db_err)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(DeliveryRow, EndpointRow, rows::EventRow)> = webhook_deliveries::table
            .inner_join(
                webhook_endpoints::table
                    .on(webhook_endpoints::id.eq(webhook_deliveries::endpoint_id)),
            )
            .inner_join(job_events::table.on(job_events::seq.eq(webhook_deliveries::event_seq)))
            .filter(webhook_deliveries::id.eq_any(&ids))
            .order((webhook_deliveries::next_at, webhook_deliveries::event_seq))
            .select((
                webhook_deliveries::all_columns,
                webhook_endpoints::all_columns,
                EVENT,
            ))
            .load(self.db)
            .map_err(db_err)?;
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set(webhook_deliveries::next_at.eq(Some(until.millis())))
            .execute(self.db)
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(d, e, ev)| {
                Ok(Outgoing {
                    delivery: d.into_delivery()?,
                    endpoint: e.into_endpoint()?,
                    job: rows::into_event(ev)?.job,
                })
            })
            .collect()
    }

    fn update_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        diesel::update(webhook_deliveries::table.find(id(delivery.id.0)))
            .set(DeliveryRow::of(delivery))
            .execute(self.db)
            .map_err(db_err)?;
        Ok(())
    }

    fn delivery(&mut self, did: DeliveryId) -> Result<Option<Delivery>> {
        webhook_deliveries::table
            .find(id(did.0))
            .first::<DeliveryRow>(self.db)
            .optional()
            .map_err(db_err)?
            .map(DeliveryRow::into_delivery)
            .transpose()
    }

    fn deliveries_of(
        &mut self,
        endpoint: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>> {
        let mut q = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id(endpoint.0)))
            .order(webhook_deliveries::id.desc())
            .limit(i64::from(page.limit))
            .into_boxed();
        if let Some(b) = page.before {
            q = q.filter(webhook_deliveries::id.lt(id(b.0)));
        }
        q.load::<DeliveryRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(DeliveryRow::into_delivery)
            .collect()
    }

    fn purge_deliveries(&mut self, before: Timestamp) -> Result<u64> {
        let n = diesel::delete(
            webhook_deliveries::table
                .filter(webhook_deliveries::state.ne(DeliveryState::Pending.as_str()))
                .filter(webhook_deliveries::updated_at.lt(before.millis())),
        )
        .execute(self.db)
        .map_err(db_err)?;
        diesel::delete(
            job_events::table
                .filter(job_events::dispatched)
                .filter(job_events::updated_at.lt(before.millis()))
                .filter(not(exists(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::event_seq.eq(job_events::seq)),
                ))),
        )
        .execute(self.db)
        .map_err(db_err)?;
        Ok(n as u64)
    }

    fn insert_file(&mut self, file: &FileMeta) -> Result<()> {
        diesel::insert_into(files::table)
            .values(FileRow::of(file)?)
            .execute(self.db)
            .map_err(unique)?;
        Ok(())
    }

    fn files(&mut self, ids: &[FileId]) -> Result<Vec<FileMeta>> {
        let ids: Vec<DbId> = ids.iter().map(|f| id(f.0)).collect();
        files::table
            .filter(files::id.eq_any(ids))
            .load::<FileRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(FileRow::into_file)
            .collect()
    }

    fn storage_used(&mut self, owner: UserId) -> Result<u64> {
        let used: Option<i64> = files::table
            .filter(files::owner_id.eq(id(owner)))
            .select(sql::<diesel::sql_types::Nullable<BigInt>>(
                "CAST(SUM(size_bytes) AS BIGINT)",
            ))
            .first(self.db)
            .map_err(db_err)?;
        Ok(u64::try_from(used.unwrap_or(0)).unwrap_or(0))
    }

    fn attach_files(&mut self, job: JobId, refs: &[JobFile]) -> Result<()> {
        for f in refs {
            let attempt = i32::try_from(f.attempt)
                .map_err(|_| DomainError::Internal("attempt number out of range".into()))?;
            let row = (
                job_files::job_id.eq(id(job)),
                job_files::role.eq(f.role.as_str()),
                job_files::file_id.eq(id(f.file.0)),
                job_files::attempt.eq(attempt),
            );
            per_backend!(self.db, |c| diesel::insert_into(job_files::table)
                .values(row)
                .on_conflict((job_files::job_id, job_files::role, job_files::file_id))
                .do_update()
                .set(job_files::attempt.eq(attempt))
                .execute(c))
            .map_err(|e| match e {
                // The sweeper removed the file between the caller's check and this insert.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ) => DomainError::invalid(format!(
                    "attachments: file {} no longer exists (uploads no job references are \
                     removed after a day); upload it again",
                    f.file
                )),
                e => db_err(e),
            })?;
        }
        Ok(())
    }

    fn file_references(&mut self, file: FileId) -> Result<Vec<(Job, FileRole)>> {
        let refs: Vec<(JobRow, String)> = job_files::table
            .inner_join(jobs::table.on(jobs::id.eq(job_files::job_id)))
            .filter(job_files::file_id.eq(id(file.0)))
            .select((jobs::all_columns, job_files::role))
            .load(self.db)
            .map_err(db_err)?;
        refs.into_iter()
            .map(|(row, role)| {
                let role = FileRole::parse(&role)
                    .ok_or_else(|| DomainError::Internal(format!("stored role {role:?}")))?;
                Ok((row.into_job()?, role))
            })
            .collect()
    }

    fn job_files(
        &mut self,
        job: JobId,
        role: FileRole,
        attempt: Option<u32>,
    ) -> Result<Vec<FileMeta>> {
        let (low, high) = match attempt {
            Some(a) => {
                let a = i32::try_from(a)
                    .map_err(|_| DomainError::Internal("attempt number out of range".into()))?;
                (a, a)
            }
            None => (0, i32::MAX),
        };
        job_files::table
            .inner_join(files::table.on(files::id.eq(job_files::file_id)))
            .filter(job_files::job_id.eq(id(job)))
            .filter(job_files::role.eq(role.as_str()))
            .filter(job_files::attempt.between(low, high))
            .select(files::all_columns)
            .order((files::created_at, files::id))
            .load::<FileRow>(self.db)
            .map_err(db_err)?
            .into_iter()
            .map(FileRow::into_file)
            .collect()
    }

    fn delete_unreferenced_files(
        &mut self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<FileMeta>> {
        // Locked, so that a job being created with one of them (its reference checks the file's
        // row) either commits first and is seen here, or waits and then fails on the missing
        // file; rows another sweeper or such a job holds are skipped.
        let q = files::table
            .filter(files::created_at.lt(before.millis()))
            .filter(not(exists(
                job_files::table.filter(job_files::file_id.eq(files::id)),
            )))
            .order(files::created_at)
            .limit(i64::from(limit));
        let rows: Vec<FileRow> = load_locked!(self.db, q, skip_locked).map_err(db_err)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<DbId> = rows.iter().map(|r| r.id).collect();
        diesel::delete(files::table.filter(files::id.eq_any(ids)))
            .execute(self.db)
            .map_err(db_err)?;
        rows.into_iter().map(FileRow::into_file).collect()
    }

    fn ping(&mut self) -> Result<()> {
        diesel::select(sql::<BigInt>("CAST(1 AS BIGINT)"))
            .get_result::<i64>(self.db)
            .map_err(db_err)?;
        Ok(())
    }
}
