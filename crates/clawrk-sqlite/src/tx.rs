//! [`Tx`] on one SQLite connection inside an open `BEGIN IMMEDIATE` transaction.
//!
//! SQLite has one writer at a time: the immediate transaction holds the database's write lock from
//! its first statement, so "locking" a row is implied and candidate queries need no `SKIP LOCKED`.

use crate::rows::*;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::{AgentId, ApiKeyId, JobId, Timestamp, TransferId, UserId};
use clawrk_domain::job::{Job, JobStatus, LogLevel, LogLine, Structured};
use clawrk_domain::money::{Account, Cents, LedgerEntry, Transfer};
use clawrk_domain::ports::{BoardStats, IdemState, Page, Tx};
use clawrk_domain::user::{Agent, AgentProfile, KeyHash, User};
use diesel::prelude::*;
use diesel::query_builder::BoxedSqlQuery;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;

/// Turns a diesel error into a domain error; details stay in the logs.
pub(crate) fn db_err(e: DieselError) -> DomainError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            DomainError::Conflict(format!("already exists ({})", info.message()))
        }
        DieselError::DatabaseError(_, info)
            if info.message().contains("locked") || info.message().contains("busy") =>
        {
            DomainError::Unavailable("the embedded store is busy".into())
        }
        other => DomainError::Internal(format!("sqlite: {other}")),
    }
}

/// Maps a unique violation to a conflict with a message fit for the caller.
fn unique_as(e: DieselError, msg: impl FnOnce() -> String) -> DomainError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            DomainError::Conflict(msg())
        }
        other => db_err(other),
    }
}

/// An open transaction. `touched` collects the jobs whose logs or status changed, so that the
/// runner can wake their log watchers once the transaction has committed.
pub(crate) struct SqliteTx<'a> {
    pub conn: &'a mut SqliteConnection,
    pub touched: &'a mut Vec<JobId>,
}

type Q<'a> = BoxedSqlQuery<'a, Sqlite, diesel::query_builder::SqlQuery>;

/// Binds every job column except `id`, then `id` (the order of the insert and update statements).
fn bind_job(q: Q<'_>, row: JobRow) -> Q<'_> {
    q.bind::<Text, _>(row.status)
        .bind::<Text, _>(row.prompt)
        .bind::<Text, _>(row.title)
        .bind::<Text, _>(row.description)
        .bind::<Text, _>(row.requirements)
        .bind::<Text, _>(row.acceptance_criteria)
        .bind::<Text, _>(row.sender)
        .bind::<Nullable<Text>, _>(row.receiver)
        .bind::<Nullable<Text>, _>(row.receiver_agent_id)
        .bind::<Nullable<Text>, _>(row.held_by_agent_id)
        .bind::<Nullable<Text>, _>(row.held_by_owner_id)
        .bind::<Nullable<BigInt>, _>(row.hold_expires_at)
        .bind::<BigInt, _>(row.price_cents)
        .bind::<BigInt, _>(row.time_limit_seconds)
        .bind::<Nullable<BigInt>, _>(row.accepted_at)
        .bind::<Nullable<BigInt>, _>(row.deadline_at)
        .bind::<Nullable<BigInt>, _>(row.submitted_at)
        .bind::<Nullable<BigInt>, _>(row.completed_at)
        .bind::<Integer, _>(row.attempt_count)
        .bind::<Bool, _>(row.cancellation_requested)
        .bind::<Nullable<Text>, _>(row.output_text)
        .bind::<Nullable<Text>, _>(row.output_attachments)
        .bind::<Text, _>(row.env_vars)
        .bind::<Text, _>(row.attachments)
        .bind::<Text, _>(row.presented_to_agents)
        .bind::<Nullable<Text>, _>(row.verification)
        .bind::<Text, _>(row.structured_by)
        .bind::<BigInt, _>(row.created_at)
        .bind::<BigInt, _>(row.updated_at)
        .bind::<Text, _>(row.id)
}

/// The job columns without `id` (the binding order of [`bind_job`], `id` last).
fn job_columns_without_id() -> Vec<&'static str> {
    JOB_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "id")
        .collect()
}

fn job_select(filter: &str) -> String {
    format!("SELECT {JOB_COLUMNS} FROM jobs j {filter}")
}

impl SqliteTx<'_> {
    fn jobs(&mut self, q: Q<'_>) -> Result<Vec<Job>> {
        q.load::<JobRow>(self.conn)
            .map_err(db_err)?
            .into_iter()
            .map(JobRow::into_job)
            .collect()
    }

    /// `(created_at, id)` of the cursor job, if it exists.
    fn cursor(&mut self, before: Option<JobId>) -> Result<Option<(i64, String)>> {
        let Some(b) = before else { return Ok(None) };
        let id = b.to_string();
        let at = sql_query("SELECT created_at AS n FROM jobs WHERE id = ?")
            .bind::<Text, _>(&id)
            .get_result::<Num>(self.conn)
            .optional()
            .map_err(db_err)?;
        Ok(at.map(|a| (a.n, id)))
    }

    /// Jobs newest first, after the cursor, with `filter` (which binds `binds` more texts).
    fn newest_first(
        &mut self,
        filter: &str,
        binds: Vec<String>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        let cursor = self.cursor(page.before)?;
        let mut sql = job_select(&format!("WHERE {filter}"));
        if cursor.is_some() {
            sql.push_str(" AND (created_at, id) < (?, ?)");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let mut q = sql_query(sql).into_boxed();
        for b in binds {
            q = q.bind::<Text, _>(b);
        }
        if let Some((at, id)) = cursor {
            q = q.bind::<BigInt, _>(at).bind::<Text, _>(id);
        }
        self.jobs(q.bind::<BigInt, _>(i64::from(page.limit)))
    }

    /// Records the presentations and the attempt that a job's row implies.
    fn record_history(&mut self, job: &Job) -> Result<()> {
        let id = job.id.to_string();
        // A job is presented to an agent exactly when that agent holds it: record the holder,
        // once, rather than the whole list on every update.
        if let Some(holder) = job.holder {
            let agent = holder.agent_id;
            sql_query(
                "INSERT INTO presentations (agent_id, job_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(agent.to_string())
            .bind::<Text, _>(&id)
            .execute(self.conn)
            .map_err(db_err)?;
        }
        if let (Some(agent), n) = (job.receiver_agent_id, job.attempt_count)
            && n > 0
        {
            let (outcome, earned) = match job.status {
                JobStatus::Accepted | JobStatus::Submitted => ("running", 0),
                JobStatus::Verified => ("verified", job.price.worker_share().get()),
                _ => ("failed", 0),
            };
            sql_query(
                "INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt) \
                 DO UPDATE SET outcome = excluded.outcome, earned_cents = excluded.earned_cents",
            )
            .bind::<Text, _>(&id)
            .bind::<Integer, _>(i32::try_from(n).unwrap_or(i32::MAX))
            .bind::<Text, _>(agent.to_string())
            .bind::<Text, _>(outcome)
            .bind::<BigInt, _>(earned)
            .execute(self.conn)
            .map_err(db_err)?;
        }
        Ok(())
    }
}

impl Tx for SqliteTx<'_> {
    fn insert_user(&mut self, user: &User) -> Result<()> {
        sql_query("INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)")
            .bind::<Text, _>(user.id.to_string())
            .bind::<Text, _>(&user.name)
            .bind::<BigInt, _>(user.created_at.millis())
            .execute(self.conn)
            .map_err(|e| unique_as(e, || format!("user name {:?} is taken", user.name)))?;
        sql_query("INSERT INTO balances (account, balance_cents) VALUES (?, 0)")
            .bind::<Text, _>(Account::Wallet(user.id).key())
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(())
    }

    fn user(&mut self, id: UserId) -> Result<Option<User>> {
        sql_query(format!("{USER_SELECT} WHERE u.id = ?"))
            .bind::<Text, _>(id.to_string())
            .get_result::<UserRow>(self.conn)
            .optional()
            .map_err(db_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    fn user_by_name(&mut self, name: &str) -> Result<Option<User>> {
        sql_query(format!("{USER_SELECT} WHERE u.name = ?"))
            .bind::<Text, _>(name)
            .get_result::<UserRow>(self.conn)
            .optional()
            .map_err(db_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    fn insert_api_key(
        &mut self,
        id: ApiKeyId,
        user: UserId,
        hash: &KeyHash,
        now: Timestamp,
    ) -> Result<()> {
        sql_query("INSERT INTO api_keys (id, user_id, key_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind::<Text, _>(id.to_string())
            .bind::<Text, _>(user.to_string())
            .bind::<Binary, _>(hash.0.to_vec())
            .bind::<BigInt, _>(now.millis())
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(())
    }

    fn user_by_key(&mut self, hash: &KeyHash) -> Result<Option<User>> {
        sql_query(format!(
            "{USER_SELECT} JOIN api_keys k ON k.user_id = u.id WHERE k.key_hash = ?"
        ))
        .bind::<Binary, _>(hash.0.to_vec())
        .get_result::<UserRow>(self.conn)
        .optional()
        .map_err(db_err)?
        .map(UserRow::into_user)
        .transpose()
    }

    fn insert_agent(&mut self, agent: &Agent) -> Result<()> {
        sql_query(format!(
            "INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind::<Text, _>(agent.id.to_string())
        .bind::<Text, _>(agent.owner_id.to_string())
        .bind::<Text, _>(&agent.name)
        .bind::<Nullable<Text>, _>(&agent.personality)
        .bind::<Nullable<Text>, _>(&agent.avatar_url)
        .bind::<Bool, _>(agent.is_default)
        .bind::<BigInt, _>(agent.created_at.millis())
        .execute(self.conn)
        .map_err(|e| {
            unique_as(e, || {
                format!("you already have an agent named {:?}", agent.name)
            })
        })?;
        Ok(())
    }

    fn update_agent(&mut self, agent: &Agent) -> Result<()> {
        sql_query("UPDATE agents SET name = ?, personality = ?, avatar_url = ? WHERE id = ?")
            .bind::<Text, _>(&agent.name)
            .bind::<Nullable<Text>, _>(&agent.personality)
            .bind::<Nullable<Text>, _>(&agent.avatar_url)
            .bind::<Text, _>(agent.id.to_string())
            .execute(self.conn)
            .map_err(|e| {
                unique_as(e, || {
                    format!("you already have an agent named {:?}", agent.name)
                })
            })?;
        Ok(())
    }

    fn delete_agent(&mut self, id: AgentId) -> Result<()> {
        sql_query("DELETE FROM agents WHERE id = ?")
            .bind::<Text, _>(id.to_string())
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(())
    }

    fn agent(&mut self, id: AgentId) -> Result<Option<Agent>> {
        sql_query(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?"))
            .bind::<Text, _>(id.to_string())
            .get_result::<AgentRow>(self.conn)
            .optional()
            .map_err(db_err)?
            .map(AgentRow::into_agent)
            .transpose()
    }

    fn agents_of(&mut self, owner: UserId) -> Result<Vec<Agent>> {
        sql_query(format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE owner_id = ? \
             ORDER BY is_default DESC, created_at, id"
        ))
        .bind::<Text, _>(owner.to_string())
        .load::<AgentRow>(self.conn)
        .map_err(db_err)?
        .into_iter()
        .map(AgentRow::into_agent)
        .collect()
    }

    fn agent_is_busy(&mut self, id: AgentId) -> Result<bool> {
        let id = id.to_string();
        let n = sql_query(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE (status = 'held' AND held_by_agent_id = ?) \
             OR (status IN ('accepted', 'submitted') AND receiver_agent_id = ?)) AS n",
        )
        .bind::<Text, _>(&id)
        .bind::<Text, _>(&id)
        .get_result::<Num>(self.conn)
        .map_err(db_err)?;
        Ok(n.n != 0)
    }

    fn directory(&mut self, page: Page<AgentId>) -> Result<Vec<AgentProfile>> {
        sql_query(
            "SELECT a.id, a.owner_id, a.name, a.personality, a.avatar_url, a.is_default, a.created_at, \
             (SELECT COUNT(*) FROM attempts t WHERE t.agent_id = a.id AND t.outcome = 'verified') AS jobs_verified, \
             (SELECT COUNT(*) FROM attempts t WHERE t.agent_id = a.id AND t.outcome = 'failed') AS jobs_failed, \
             (SELECT COALESCE(SUM(t.earned_cents), 0) FROM attempts t WHERE t.agent_id = a.id) AS earned_cents \
             FROM agents a WHERE (? IS NULL OR a.id < ?) ORDER BY a.id DESC LIMIT ?",
        )
        .bind::<Nullable<Text>, _>(page.before.map(|b| b.to_string()))
        .bind::<Nullable<Text>, _>(page.before.map(|b| b.to_string()))
        .bind::<BigInt, _>(i64::from(page.limit))
        .load::<ProfileRow>(self.conn)
        .map_err(db_err)?
        .into_iter()
        .map(ProfileRow::into_profile)
        .collect()
    }

    fn lock_balances(&mut self, accounts: &[Account]) -> Result<Vec<Cents>> {
        accounts
            .iter()
            .map(|a| {
                sql_query("SELECT balance_cents AS n FROM balances WHERE account = ?")
                    .bind::<Text, _>(a.key())
                    .get_result::<Num>(self.conn)
                    .optional()
                    .map_err(db_err)
                    .map(|n| Cents(n.map_or(0, |n| n.n)))
            })
            .collect()
    }

    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()> {
        let mut deltas: std::collections::BTreeMap<String, i64> = Default::default();
        for (id, t) in transfers {
            sql_query(
                "INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind::<Text, _>(id.to_string())
            .bind::<Text, _>(t.from.key())
            .bind::<Text, _>(t.to.key())
            .bind::<BigInt, _>(t.amount.get())
            .bind::<Text, _>(t.reason.as_str())
            .bind::<Nullable<Text>, _>(t.job_id.map(|j| j.to_string()))
            .bind::<BigInt, _>(now.millis())
            .execute(self.conn)
            .map_err(db_err)?;
            *deltas.entry(t.from.key()).or_default() -= t.amount.get();
            *deltas.entry(t.to.key()).or_default() += t.amount.get();
        }
        // Account-key order, the same order every store takes balance locks in. Update first:
        // SQLite checks an upsert's proposed row against CHECK before resolving the conflict.
        for (account, delta) in deltas {
            let overdraw = |e: DieselError| match e {
                DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _) => {
                    DomainError::Internal(format!("transfer would overdraw {account}"))
                }
                other => db_err(other),
            };
            let n = sql_query(
                "UPDATE balances SET balance_cents = balance_cents + ? WHERE account = ?",
            )
            .bind::<BigInt, _>(delta)
            .bind::<Text, _>(&account)
            .execute(self.conn)
            .map_err(overdraw)?;
            if n == 0 {
                sql_query("INSERT INTO balances (account, balance_cents) VALUES (?, ?)")
                    .bind::<Text, _>(&account)
                    .bind::<BigInt, _>(delta)
                    .execute(self.conn)
                    .map_err(overdraw)?;
            }
        }
        Ok(())
    }

    fn ledger(&mut self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>> {
        let wallet = Account::Wallet(user);
        let key = wallet.key();
        let before = page.before.map(|b| b.to_string());
        sql_query(
            "SELECT id, credit, amount_cents, reason, job_id, created_at FROM transfers \
             WHERE (debit = ? OR credit = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        )
        .bind::<Text, _>(&key)
        .bind::<Text, _>(&key)
        .bind::<Nullable<Text>, _>(&before)
        .bind::<Nullable<Text>, _>(&before)
        .bind::<BigInt, _>(i64::from(page.limit))
        .load::<TransferRow>(self.conn)
        .map_err(db_err)?
        .into_iter()
        .map(|r| r.into_entry(wallet))
        .collect()
    }

    fn insert_job(&mut self, job: &Job) -> Result<()> {
        let cols = job_columns_without_id();
        let sql = format!(
            "INSERT INTO jobs ({}, id) VALUES ({}?)",
            cols.join(", "),
            "?, ".repeat(cols.len())
        );
        bind_job(sql_query(sql).into_boxed(), JobRow::of(job)?)
            .execute(self.conn)
            .map_err(db_err)?;
        self.record_history(job)?;
        self.touched.push(job.id);
        Ok(())
    }

    fn update_job(&mut self, job: &Job) -> Result<()> {
        let sets: Vec<String> = job_columns_without_id()
            .iter()
            .map(|c| format!("{c} = ?"))
            .collect();
        // The verification lease belongs to the worker; it only outlives a job update while the
        // job stays `submitted`.
        let sql = format!(
            "UPDATE jobs SET {}, verify_lease_until = CASE WHEN status = 'submitted' \
             THEN verify_lease_until END WHERE id = ?",
            sets.join(", ")
        );
        let n = bind_job(sql_query(sql).into_boxed(), JobRow::of(job)?)
            .execute(self.conn)
            .map_err(db_err)?;
        if n != 1 {
            return Err(DomainError::NotFound("job"));
        }
        self.record_history(job)?;
        self.touched.push(job.id);
        Ok(())
    }

    fn job(&mut self, id: JobId, _lock: bool) -> Result<Option<Job>> {
        let mut v = self.jobs(
            sql_query(job_select("WHERE id = ?"))
                .into_boxed()
                .bind::<Text, _>(id.to_string()),
        )?;
        Ok(v.pop())
    }

    fn queued_candidates(&mut self, agent: &Agent, limit: u32) -> Result<Vec<Job>> {
        self.jobs(
            sql_query(job_select(
                "WHERE status = 'queued' AND sender <> ? AND NOT EXISTS \
                 (SELECT 1 FROM presentations p WHERE p.agent_id = ? AND p.job_id = j.id) \
                 ORDER BY created_at, id LIMIT ?",
            ))
            .into_boxed()
            .bind::<Text, _>(agent.owner_id.to_string())
            .bind::<Text, _>(agent.id.to_string())
            .bind::<BigInt, _>(i64::from(limit)),
        )
    }

    fn expired_holds(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        self.jobs(
            sql_query(job_select(
                "WHERE status = 'held' AND hold_expires_at <= ? ORDER BY hold_expires_at LIMIT ?",
            ))
            .into_boxed()
            .bind::<BigInt, _>(now.millis())
            .bind::<BigInt, _>(i64::from(limit)),
        )
    }

    fn overdue(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        self.jobs(
            sql_query(job_select(
                "WHERE status = 'accepted' AND deadline_at <= ? ORDER BY deadline_at LIMIT ?",
            ))
            .into_boxed()
            .bind::<BigInt, _>(now.millis())
            .bind::<BigInt, _>(i64::from(limit)),
        )
    }

    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Job>> {
        let mut v = self.jobs(
            sql_query(job_select(
                "WHERE status = 'submitted' AND (verify_lease_until IS NULL OR verify_lease_until <= ?) \
                 ORDER BY submitted_at, id LIMIT 1",
            ))
            .into_boxed()
            .bind::<BigInt, _>(now.millis()),
        )?;
        let Some(job) = v.pop() else { return Ok(None) };
        sql_query("UPDATE jobs SET verify_lease_until = ? WHERE id = ?")
            .bind::<BigInt, _>(until.millis())
            .bind::<Text, _>(job.id.to_string())
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(Some(job))
    }

    fn list_jobs(
        &mut self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        match status {
            Some(s) => self.newest_first(
                "sender = ? AND status = ?",
                vec![sender.to_string(), s.as_str().to_string()],
                page,
            ),
            None => self.newest_first("sender = ?", vec![sender.to_string()], page),
        }
    }

    fn board(&mut self, page: Page<JobId>) -> Result<Vec<Job>> {
        self.newest_first("status = 'queued'", vec![], page)
    }

    fn stats(&mut self) -> Result<BoardStats> {
        let rows = sql_query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .load::<StatusCount>(self.conn)
            .map_err(db_err)?;
        let counts: Vec<(JobStatus, i64)> = JobStatus::ALL
            .iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .find(|r| r.status == s.as_str())
                    .map_or(0, |r| r.n);
                (*s, n)
            })
            .collect();
        let queued = counts
            .iter()
            .find(|(s, _)| *s == JobStatus::Queued)
            .map_or(0, |(_, n)| *n);
        let median = if queued > 0 {
            sql_query(
                "SELECT price_cents AS n FROM jobs WHERE status = 'queued' \
                 ORDER BY price_cents LIMIT 1 OFFSET ?",
            )
            .bind::<BigInt, _>((queued - 1) / 2)
            .get_result::<Num>(self.conn)
            .optional()
            .map_err(db_err)?
            .map(|n| Cents(n.n))
        } else {
            None
        };
        let paid =
            sql_query("SELECT SUM(amount_cents) AS n FROM transfers WHERE reason = 'earning'")
                .get_result::<OptNum>(self.conn)
                .map_err(db_err)?;
        let agents = sql_query("SELECT COUNT(*) AS n FROM agents")
            .get_result::<Num>(self.conn)
            .map_err(db_err)?;
        Ok(BoardStats {
            jobs_verified: counts
                .iter()
                .find(|(s, _)| *s == JobStatus::Verified)
                .map_or(0, |(_, n)| *n),
            counts,
            total_paid_out: Cents(paid.n.unwrap_or(0)),
            median_queued_price: median,
            agents: agents.n,
        })
    }

    fn append_log(
        &mut self,
        job: JobId,
        level: LogLevel,
        message: &str,
        now: Timestamp,
    ) -> Result<LogLine> {
        let id = job.to_string();
        let seq = sql_query(
            "INSERT INTO log_lines (job_id, seq, at, level, message) VALUES \
             (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM log_lines WHERE job_id = ?), ?, ?, ?) \
             RETURNING seq AS n",
        )
        .bind::<Text, _>(&id)
        .bind::<Text, _>(&id)
        .bind::<BigInt, _>(now.millis())
        .bind::<Text, _>(level.as_str())
        .bind::<Text, _>(message)
        .get_result::<Num>(self.conn)
        .map_err(db_err)?;
        self.touched.push(job);
        Ok(LogLine {
            seq: seq.n,
            at: now,
            level,
            message: message.to_string(),
        })
    }

    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>> {
        sql_query(
            "SELECT seq, at, level, message FROM log_lines WHERE job_id = ? AND seq > ? ORDER BY seq",
        )
        .bind::<Text, _>(job.to_string())
        .bind::<BigInt, _>(after)
        .load::<LogRow>(self.conn)
        .map_err(db_err)?
        .into_iter()
        .map(LogRow::into_line)
        .collect()
    }

    fn put_quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        structured: &Structured,
        expires_at: Timestamp,
    ) -> Result<()> {
        sql_query(
            "INSERT INTO quotes (sender, digest, structured, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (sender, digest) DO UPDATE SET structured = excluded.structured, \
             expires_at = excluded.expires_at",
        )
        .bind::<Text, _>(sender.to_string())
        .bind::<Binary, _>(digest.to_vec())
        .bind::<Text, _>(to_json(structured)?)
        .bind::<BigInt, _>(expires_at.millis())
        .execute(self.conn)
        .map_err(db_err)?;
        Ok(())
    }

    fn quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<Structured>> {
        sql_query(
            "SELECT structured AS t FROM quotes WHERE sender = ? AND digest = ? AND expires_at > ?",
        )
        .bind::<Text, _>(sender.to_string())
        .bind::<Binary, _>(digest.to_vec())
        .bind::<BigInt, _>(now.millis())
        .get_result::<OneText>(self.conn)
        .optional()
        .map_err(db_err)?
        .map(|t| from_json("quote", &t.t))
        .transpose()
    }

    fn idem_reserve(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IdemState> {
        let existing = sql_query(
            "SELECT digest, response, expires_at FROM idempotency WHERE user_id = ? AND key = ?",
        )
        .bind::<Text, _>(user.to_string())
        .bind::<Text, _>(key)
        .get_result::<IdemRow>(self.conn)
        .optional()
        .map_err(db_err)?;
        if let Some(r) = existing.filter(|r| r.expires_at > now.millis()) {
            return Ok(if r.digest != digest.as_slice() {
                IdemState::Mismatch
            } else {
                match r.response {
                    Some(resp) => IdemState::Replay(resp),
                    None => IdemState::InProgress,
                }
            });
        }
        sql_query(
            "INSERT INTO idempotency (user_id, key, digest, response, expires_at) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT (user_id, key) DO UPDATE SET \
             digest = excluded.digest, response = NULL, expires_at = excluded.expires_at",
        )
        .bind::<Text, _>(user.to_string())
        .bind::<Text, _>(key)
        .bind::<Binary, _>(digest.to_vec())
        .bind::<BigInt, _>(expires_at.millis())
        .execute(self.conn)
        .map_err(db_err)?;
        Ok(IdemState::Reserved)
    }

    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<()> {
        sql_query("UPDATE idempotency SET response = ? WHERE user_id = ? AND key = ?")
            .bind::<Binary, _>(response.to_vec())
            .bind::<Text, _>(user.to_string())
            .bind::<Text, _>(key)
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(())
    }

    fn idem_release(&mut self, user: UserId, key: &str) -> Result<()> {
        sql_query("DELETE FROM idempotency WHERE user_id = ? AND key = ?")
            .bind::<Text, _>(user.to_string())
            .bind::<Text, _>(key)
            .execute(self.conn)
            .map_err(db_err)?;
        Ok(())
    }

    fn purge_expired(&mut self, now: Timestamp) -> Result<u64> {
        let mut n = 0;
        for table in ["quotes", "idempotency"] {
            n += sql_query(format!("DELETE FROM {table} WHERE expires_at <= ?"))
                .bind::<BigInt, _>(now.millis())
                .execute(self.conn)
                .map_err(db_err)?;
        }
        Ok(n as u64)
    }

    fn ping(&mut self) -> Result<()> {
        sql_query("SELECT 1 AS n")
            .get_result::<Num>(self.conn)
            .map_err(db_err)?;
        Ok(())
    }
}
