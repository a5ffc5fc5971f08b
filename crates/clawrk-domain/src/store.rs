//! [`TxStore`]: the one implementation of the [`Store`] port, over any store adapter's [`Tx`] and
//! [`TxRunner`].
//!
//! Each business operation is one transaction shaped the same way: lock the job row, run the pure
//! transition of [`crate::lifecycle`], write the job, then the transfers and the balances. Locks are
//! always taken job first, then balance rows (which [`Tx::post`] updates in account-key order), so
//! two operations never wait on each other in a cycle. Refusals that still change the job (a lapsed
//! hold found at accept, a late submit) commit the change and then return the refusal.

use crate::error::{DomainError, Result};
use crate::ids::{AgentId, JobId, Timestamp, TransferId, UserId};
use crate::job::{
    AgentRef, Job, JobDraft, JobStatus, LogLevel, LogLine, Output, Structured, Verdict,
};
use crate::lifecycle::{self, Change};
use crate::matching;
use crate::money::{Account, Cents, LedgerEntry, Reason, Transfer};
use crate::ports::{BoardStats, Clock, IdemState, Page, Store, SweepReport, Tx, TxRunner};
use crate::user::{
    self, Agent, AgentPatch, AgentProfile, DEFAULT_AGENT_NAME, KeyHash, NewAgent, User,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// How many queued jobs a pull considers at once (the oldest eligible ones), among which matching
/// picks the best. Bounded so that a pull locks little and stays fast whatever the queue's size.
pub const PULL_CANDIDATES: u32 = 32;

/// How many jobs one sweep transaction handles before it commits and takes the next batch.
pub const SWEEP_BATCH: u32 = 200;

/// The [`Store`] port over a transaction runner.
pub struct TxStore<R> {
    runner: R,
    clock: Arc<dyn Clock>,
}

impl<R: TxRunner> TxStore<R> {
    /// A store that runs its operations through `runner` and takes new ids from `clock`.
    pub fn new(runner: R, clock: Arc<dyn Clock>) -> Self {
        TxStore { runner, clock }
    }

    /// The runner (for adapter-specific operations such as migrations or tests).
    pub fn runner(&self) -> &R {
        &self.runner
    }

    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx, &dyn Clock) -> Result<T> + Send + 'static,
    {
        let clock = self.clock.clone();
        self.runner.run(Box::new(move |tx| f(tx, &*clock))).await
    }

    /// Runs a job transition: the inner result is a refusal committed with its change.
    async fn transition<F>(&self, id: JobId, f: F) -> Result<Job>
    where
        F: FnOnce(&Job) -> Result<Change> + Send + 'static,
    {
        self.tx(move |tx, clock| {
            let job = locked_job(tx, id)?;
            let change = f(&job)?;
            write(tx, clock, &job, change)
        })
        .await?
    }
}

fn locked_job(tx: &mut dyn Tx, id: JobId) -> Result<Job> {
    tx.job(id, true)?.ok_or(DomainError::NotFound("job"))
}

/// Posts transfers with fresh ids.
fn post(
    tx: &mut dyn Tx,
    clock: &dyn Clock,
    transfers: Vec<Transfer>,
    now: Timestamp,
) -> Result<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let rows: Vec<(TransferId, Transfer)> = transfers
        .into_iter()
        .map(|t| (TransferId(clock.new_id()), t))
        .collect();
    tx.post(&rows, now)
}

/// Writes a change; `Ok(Err(refusal))` means "committed, but tell the caller no".
fn write(tx: &mut dyn Tx, clock: &dyn Clock, before: &Job, change: Change) -> Result<Result<Job>> {
    if !change.is_noop(before) {
        tx.update_job(&change.job)?;
        post(tx, clock, change.transfers, change.job.updated_at)?;
    }
    Ok(match change.refusal {
        Some(e) => Err(e),
        None => Ok(change.job),
    })
}

fn wallet_balance(tx: &mut dyn Tx, user: UserId) -> Result<Cents> {
    tx.lock_balances(&[Account::Wallet(user)])?
        .first()
        .copied()
        .ok_or_else(|| DomainError::Internal("lock_balances returned nothing".into()))
}

fn owned_agent(tx: &mut dyn Tx, owner: UserId, id: AgentId) -> Result<Agent> {
    match tx.agent(id)? {
        Some(a) if a.owner_id == owner => Ok(a),
        _ => Err(DomainError::NotFound("agent")),
    }
}

fn clean_optional(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[async_trait]
impl<R: TxRunner> Store for TxStore<R> {
    async fn health(&self) -> Result<()> {
        self.tx(|tx, _| tx.ping()).await
    }

    async fn create_user(&self, name: &str, now: Timestamp) -> Result<User> {
        let name = user::valid_name(name, "name")?;
        self.tx(move |tx, clock| {
            if tx.user_by_name(&name)?.is_some() {
                return Err(DomainError::Conflict(format!(
                    "user name {name:?} is taken"
                )));
            }
            let user = User {
                id: UserId(clock.new_id()),
                name,
                balance_cents: Cents::ZERO,
                created_at: now,
            };
            tx.insert_user(&user)?;
            tx.insert_agent(&Agent {
                id: AgentId(clock.new_id()),
                owner_id: user.id,
                name: DEFAULT_AGENT_NAME.into(),
                personality: None,
                avatar_url: None,
                is_default: true,
                created_at: now,
            })?;
            Ok(user)
        })
        .await
    }

    async fn find_user(&self, id_or_name: &str) -> Result<User> {
        let key = id_or_name.trim().to_string();
        self.tx(move |tx, _| {
            let found = match key.parse() {
                Ok(id) => tx.user(UserId(id))?,
                Err(_) => None,
            };
            match found {
                Some(u) => Ok(Some(u)),
                None => tx.user_by_name(&key),
            }?
            .ok_or(DomainError::NotFound("user"))
        })
        .await
    }

    async fn user(&self, id: UserId) -> Result<User> {
        self.tx(move |tx, _| tx.user(id)?.ok_or(DomainError::NotFound("user")))
            .await
    }

    async fn create_api_key(&self, user: UserId, hash: KeyHash, now: Timestamp) -> Result<()> {
        self.tx(move |tx, clock| {
            tx.user(user)?.ok_or(DomainError::NotFound("user"))?;
            tx.insert_api_key(crate::ids::ApiKeyId(clock.new_id()), user, &hash, now)
        })
        .await
    }

    async fn authenticate(&self, hash: KeyHash) -> Result<Option<User>> {
        self.tx(move |tx, _| tx.user_by_key(&hash)).await
    }

    async fn adjust_balance(
        &self,
        user: UserId,
        delta: Cents,
        reason: Reason,
        now: Timestamp,
    ) -> Result<Cents> {
        if delta == Cents::ZERO {
            return Err(DomainError::invalid("amount_cents must not be zero"));
        }
        self.tx(move |tx, clock| {
            tx.user(user)?.ok_or(DomainError::NotFound("user"))?;
            let balance = wallet_balance(tx, user)?;
            let after = balance.checked_add(delta)?;
            if after < Cents::ZERO {
                return Err(DomainError::InsufficientBalance {
                    required: Cents(-delta.get()),
                    available: balance,
                });
            }
            let wallet = Account::Wallet(user);
            let transfer = if delta > Cents::ZERO {
                Transfer::new(Account::World, wallet, delta, reason, None)?
            } else {
                Transfer::new(wallet, Account::World, Cents(-delta.get()), reason, None)?
            };
            post(tx, clock, vec![transfer], now)?;
            Ok(after)
        })
        .await
    }

    async fn ledger(&self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>> {
        self.tx(move |tx, _| tx.ledger(user, page)).await
    }

    async fn agents(&self, owner: UserId) -> Result<Vec<Agent>> {
        self.tx(move |tx, _| tx.agents_of(owner)).await
    }

    async fn agent(&self, owner: UserId, id: AgentId) -> Result<Agent> {
        self.tx(move |tx, _| owned_agent(tx, owner, id)).await
    }

    async fn agent_by_name(&self, owner: UserId, name: &str) -> Result<Agent> {
        let name = name.trim().to_string();
        self.tx(move |tx, _| {
            tx.agents_of(owner)?
                .into_iter()
                .find(|a| a.name == name)
                .ok_or(DomainError::NotFound("agent"))
        })
        .await
    }

    async fn create_agent(&self, owner: UserId, new: NewAgent, now: Timestamp) -> Result<Agent> {
        let name = user::valid_name(&new.name, "name")?;
        self.tx(move |tx, clock| {
            if tx.agents_of(owner)?.iter().any(|a| a.name == name) {
                return Err(DomainError::Conflict(format!(
                    "you already have an agent named {name:?}"
                )));
            }
            let agent = Agent {
                id: AgentId(clock.new_id()),
                owner_id: owner,
                name,
                personality: clean_optional(new.personality),
                avatar_url: clean_optional(new.avatar_url),
                is_default: false,
                created_at: now,
            };
            tx.insert_agent(&agent)?;
            Ok(agent)
        })
        .await
    }

    async fn update_agent(&self, owner: UserId, id: AgentId, patch: AgentPatch) -> Result<Agent> {
        let name = patch
            .name
            .as_deref()
            .map(|n| user::valid_name(n, "name"))
            .transpose()?;
        self.tx(move |tx, _| {
            let mut agent = owned_agent(tx, owner, id)?;
            if let Some(name) = name {
                if name != agent.name && tx.agents_of(owner)?.iter().any(|a| a.name == name) {
                    return Err(DomainError::Conflict(format!(
                        "you already have an agent named {name:?}"
                    )));
                }
                agent.name = name;
            }
            if let Some(p) = patch.personality {
                agent.personality = clean_optional(p);
            }
            if let Some(a) = patch.avatar_url {
                agent.avatar_url = clean_optional(a);
            }
            tx.update_agent(&agent)?;
            Ok(agent)
        })
        .await
    }

    async fn delete_agent(&self, owner: UserId, id: AgentId) -> Result<()> {
        self.tx(move |tx, _| {
            let agent = owned_agent(tx, owner, id)?;
            if agent.is_default {
                return Err(DomainError::Conflict(
                    "the default agent cannot be deleted".into(),
                ));
            }
            if tx.agent_is_busy(id)? {
                return Err(DomainError::Conflict(
                    "the agent holds or works on a job and cannot be deleted now".into(),
                ));
            }
            tx.delete_agent(id)
        })
        .await
    }

    async fn directory(&self, page: Page<AgentId>) -> Result<Vec<AgentProfile>> {
        self.tx(move |tx, _| tx.directory(page)).await
    }

    async fn create_job(
        &self,
        draft: JobDraft,
        sender: UserId,
        now: Timestamp,
    ) -> Result<(Job, Cents)> {
        self.tx(move |tx, clock| {
            tx.user(sender)?.ok_or(DomainError::NotFound("user"))?;
            let available = wallet_balance(tx, sender)?;
            let change = lifecycle::create(draft, JobId(clock.new_id()), sender, available, now);
            tx.insert_job(&change.job)?;
            post(tx, clock, change.transfers, now)?;
            Ok((change.job, available))
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Job> {
        self.tx(move |tx, _| tx.job(id, false)?.ok_or(DomainError::NotFound("job")))
            .await
    }

    async fn list_jobs(
        &self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        self.tx(move |tx, _| tx.list_jobs(sender, status, page))
            .await
    }

    async fn board(&self, page: Page<JobId>) -> Result<Vec<Job>> {
        self.tx(move |tx, _| tx.board(page)).await
    }

    async fn stats(&self) -> Result<BoardStats> {
        self.tx(|tx, _| tx.stats()).await
    }

    async fn pay(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job> {
        self.tx(move |tx, clock| {
            let j = locked_job(tx, job)?;
            // Visibility and role first, so a stranger learns nothing about the sender's wallet.
            if !j.visible_to(user) {
                return Err(DomainError::NotFound("job"));
            }
            let available = if j.sender == user {
                wallet_balance(tx, user)?
            } else {
                Cents::ZERO
            };
            let change = lifecycle::pay(&j, user, available, now)?;
            write(tx, clock, &j, change)
        })
        .await?
    }

    async fn cancel(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job> {
        self.transition(job, move |j| lifecycle::cancel(j, user, now))
            .await
    }

    async fn pull(&self, agent: Agent, hold_seconds: u32, now: Timestamp) -> Result<Option<Job>> {
        self.tx(move |tx, clock| {
            let candidates = tx.queued_candidates(&agent, PULL_CANDIDATES)?;
            let Some(best) = matching::pick(&agent, &candidates) else {
                return Ok(None);
            };
            let change = lifecycle::hold(best, agent.as_ref(), hold_seconds, now)?;
            write(tx, clock, best, change)?.map(Some)
        })
        .await
    }

    async fn claim(
        &self,
        job: JobId,
        agent: AgentRef,
        hold_seconds: u32,
        now: Timestamp,
    ) -> Result<Job> {
        // SPEC §5: a job that is not `queued` answers 400, whoever asks (its id is known from the
        // public board anyway).
        self.transition(job, move |j| lifecycle::hold(j, agent, hold_seconds, now))
            .await
    }

    async fn accept(&self, job: JobId, agent: AgentRef, now: Timestamp) -> Result<Job> {
        self.transition(job, move |j| lifecycle::accept(j, agent, now))
            .await
    }

    async fn reject(&self, job: JobId, agent: AgentRef, now: Timestamp) -> Result<Job> {
        self.transition(job, move |j| lifecycle::reject(j, agent, now))
            .await
    }

    async fn submit(
        &self,
        job: JobId,
        user: UserId,
        output: Output,
        now: Timestamp,
    ) -> Result<Job> {
        self.transition(job, move |j| lifecycle::submit(j, user, output, now))
            .await
    }

    async fn give_up(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job> {
        self.transition(job, move |j| lifecycle::give_up(j, user, now))
            .await
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        loop {
            let n = self
                .tx(move |tx, clock| {
                    let jobs = tx.expired_holds(now, SWEEP_BATCH)?;
                    for j in &jobs {
                        let change = lifecycle::expire_hold(j, now)?;
                        write(tx, clock, j, change)??;
                    }
                    Ok(jobs.len())
                })
                .await?;
            report.released_holds += n as u64;
            if n < SWEEP_BATCH as usize {
                break;
            }
        }
        loop {
            let n = self
                .tx(move |tx, clock| {
                    let jobs = tx.overdue(now, SWEEP_BATCH)?;
                    for j in &jobs {
                        let change = lifecycle::expire_deadline(j, now)?;
                        write(tx, clock, j, change)??;
                    }
                    Ok(jobs.len())
                })
                .await?;
            report.failed_deadlines += n as u64;
            if n < SWEEP_BATCH as usize {
                break;
            }
        }
        // Housekeeping: expired quotes and idempotency records would otherwise pile up.
        self.tx(move |tx, _| tx.purge_expired(now)).await?;
        Ok(report)
    }

    async fn lease_verification(&self, now: Timestamp, lease: Duration) -> Result<Option<Job>> {
        let until = now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.tx(move |tx, _| tx.lease_submitted(now, until)).await
    }

    async fn apply_verdict(
        &self,
        job: JobId,
        attempt: u32,
        verdict: Verdict,
        now: Timestamp,
    ) -> Result<Job> {
        self.tx(move |tx, clock| {
            let j = locked_job(tx, job)?;
            if j.status != JobStatus::Submitted || j.attempt_count != attempt {
                // Settled already (by another worker, or the attempt ended otherwise).
                return Ok(Ok(j));
            }
            let change = lifecycle::apply_verdict(&j, verdict, now)?;
            write(tx, clock, &j, change)
        })
        .await?
    }

    async fn append_log(
        &self,
        job: JobId,
        level: LogLevel,
        message: String,
        now: Timestamp,
    ) -> Result<LogLine> {
        self.tx(move |tx, _| tx.append_log(job, level, &message, now))
            .await
    }

    async fn logs(&self, job: JobId, after: i64) -> Result<Vec<LogLine>> {
        self.tx(move |tx, _| tx.logs(job, after)).await
    }

    async fn save_quote(
        &self,
        sender: UserId,
        prompt: String,
        structured: Structured,
        expires_at: Timestamp,
    ) -> Result<()> {
        let digest = user::prompt_digest(&prompt);
        self.tx(move |tx, _| tx.put_quote(sender, &digest, &structured, expires_at))
            .await
    }

    async fn quote(
        &self,
        sender: UserId,
        prompt: String,
        now: Timestamp,
    ) -> Result<Option<Structured>> {
        let digest = user::prompt_digest(&prompt);
        self.tx(move |tx, _| tx.quote(sender, &digest, now)).await
    }

    async fn idem_reserve(
        &self,
        user: UserId,
        key: String,
        digest: [u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IdemState> {
        self.tx(move |tx, _| tx.idem_reserve(user, &key, &digest, now, expires_at))
            .await
    }

    async fn idem_complete(&self, user: UserId, key: String, response: Vec<u8>) -> Result<()> {
        self.tx(move |tx, _| tx.idem_complete(user, &key, &response))
            .await
    }

    async fn idem_release(&self, user: UserId, key: String) -> Result<()> {
        self.tx(move |tx, _| tx.idem_release(user, &key)).await
    }
}
