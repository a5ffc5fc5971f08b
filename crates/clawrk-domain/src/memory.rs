//! An in-memory store: [`MemoryRunner`] implements [`TxRunner`] and [`Tx`] over plain collections.
//!
//! It exists so that the business rules can be exercised, and embedded, without a database: the
//! domain's model-based tests run the real [`crate::store::TxStore`] operations on it. A
//! transaction holds one lock over the whole state (fully serial) and rolls back by restoring a
//! snapshot taken when it began. It keeps nothing across restarts: it is not a production store.

use crate::error::{DomainError, Result};
use crate::ids::{AgentId, ApiKeyId, JobId, Timestamp, TransferId, UserId};
use crate::job::{Job, JobStatus, LogLevel, LogLine, Structured};
use crate::money::{Account, Cents, LedgerEntry, Reason, Transfer};
use crate::ports::{BoardStats, IdemState, Page, Tx, TxFn, TxRunner};
use crate::store::TxStore;
use crate::user::{Agent, AgentProfile, KeyHash, User};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
struct Idem {
    digest: [u8; 32],
    response: Option<Vec<u8>>,
    expires_at: Timestamp,
}

/// Everything the in-memory store holds. Public read access is for invariant checks in tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    users: BTreeMap<UserId, (String, Timestamp)>,
    keys: HashMap<[u8; 32], UserId>,
    agents: BTreeMap<AgentId, Agent>,
    /// Balance of every account that ever moved money.
    pub balances: BTreeMap<Account, Cents>,
    /// Every transfer, in order.
    pub transfers: Vec<(TransferId, Transfer, Timestamp)>,
    /// Every job.
    pub jobs: BTreeMap<JobId, Job>,
    presented: BTreeSet<(AgentId, JobId)>,
    leases: BTreeMap<JobId, Timestamp>,
    logs: BTreeMap<JobId, Vec<LogLine>>,
    quotes: HashMap<(UserId, [u8; 32]), (Structured, Timestamp)>,
    idem: HashMap<(UserId, String), Idem>,
}

impl MemoryState {
    fn balance(&self, a: Account) -> Cents {
        self.balances.get(&a).copied().unwrap_or_default()
    }

    fn user_row(&self, id: UserId) -> Option<User> {
        self.users.get(&id).map(|(name, created_at)| User {
            id,
            name: name.clone(),
            balance_cents: self.balance(Account::Wallet(id)),
            created_at: *created_at,
        })
    }
}

/// Newest first by (created_at, id), strictly before the cursor job.
fn newest_first<'a>(
    jobs: impl Iterator<Item = &'a Job>,
    all: &BTreeMap<JobId, Job>,
    page: Page<JobId>,
) -> Vec<Job> {
    let cursor = page
        .before
        .and_then(|b| all.get(&b))
        .map(|j| (j.created_at, j.id));
    let mut v: Vec<&Job> = jobs
        .filter(|j| cursor.is_none_or(|c| (j.created_at, j.id) < c))
        .collect();
    v.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
    v.into_iter().take(page.limit as usize).cloned().collect()
}

impl Tx for MemoryState {
    fn insert_user(&mut self, user: &User) -> Result<()> {
        if self.users.values().any(|(n, _)| *n == user.name) {
            return Err(DomainError::Conflict(format!(
                "user name {:?} is taken",
                user.name
            )));
        }
        self.users
            .insert(user.id, (user.name.clone(), user.created_at));
        self.balances.insert(Account::Wallet(user.id), Cents::ZERO);
        Ok(())
    }

    fn user(&mut self, id: UserId) -> Result<Option<User>> {
        Ok(self.user_row(id))
    }

    fn user_by_name(&mut self, name: &str) -> Result<Option<User>> {
        let id = self
            .users
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id);
        Ok(id.and_then(|id| self.user_row(id)))
    }

    fn insert_api_key(
        &mut self,
        _id: ApiKeyId,
        user: UserId,
        hash: &KeyHash,
        _now: Timestamp,
    ) -> Result<()> {
        self.keys.insert(hash.0, user);
        Ok(())
    }

    fn user_by_key(&mut self, hash: &KeyHash) -> Result<Option<User>> {
        Ok(self.keys.get(&hash.0).and_then(|u| self.user_row(*u)))
    }

    fn insert_agent(&mut self, agent: &Agent) -> Result<()> {
        if self
            .agents
            .values()
            .any(|a| a.owner_id == agent.owner_id && a.name == agent.name)
        {
            return Err(DomainError::Conflict(format!(
                "you already have an agent named {:?}",
                agent.name
            )));
        }
        self.agents.insert(agent.id, agent.clone());
        Ok(())
    }

    fn update_agent(&mut self, agent: &Agent) -> Result<()> {
        if self
            .agents
            .values()
            .any(|a| a.id != agent.id && a.owner_id == agent.owner_id && a.name == agent.name)
        {
            return Err(DomainError::Conflict(format!(
                "you already have an agent named {:?}",
                agent.name
            )));
        }
        self.agents.insert(agent.id, agent.clone());
        Ok(())
    }

    fn delete_agent(&mut self, id: AgentId) -> Result<()> {
        self.agents.remove(&id);
        Ok(())
    }

    fn agent(&mut self, id: AgentId) -> Result<Option<Agent>> {
        Ok(self.agents.get(&id).cloned())
    }

    fn agents_of(&mut self, owner: UserId) -> Result<Vec<Agent>> {
        let mut v: Vec<Agent> = self
            .agents
            .values()
            .filter(|a| a.owner_id == owner)
            .cloned()
            .collect();
        v.sort_by_key(|a| (!a.is_default, a.created_at, a.id));
        Ok(v)
    }

    fn agent_is_busy(&mut self, id: AgentId) -> Result<bool> {
        Ok(self.jobs.values().any(|j| {
            (j.status == JobStatus::Held && j.holder.map(|h| h.agent_id) == Some(id))
                || (matches!(j.status, JobStatus::Accepted | JobStatus::Submitted)
                    && j.receiver_agent_id == Some(id))
        }))
    }

    fn directory(&mut self, page: Page<AgentId>) -> Result<Vec<AgentProfile>> {
        let mut agents: Vec<&Agent> = self
            .agents
            .values()
            .filter(|a| page.before.is_none_or(|b| a.id < b))
            .collect();
        agents.sort_by_key(|a| std::cmp::Reverse(a.id));
        Ok(agents
            .into_iter()
            .take(page.limit as usize)
            .map(|a| {
                let verified: Vec<&Job> = self
                    .jobs
                    .values()
                    .filter(|j| {
                        j.status == JobStatus::Verified && j.receiver_agent_id == Some(a.id)
                    })
                    .collect();
                let earned = verified.iter().map(|j| j.price.worker_share().get()).sum();
                let failed = self
                    .jobs
                    .values()
                    .filter(|j| j.receiver_agent_id == Some(a.id))
                    .map(|j| {
                        let mine_running_or_won = matches!(
                            j.status,
                            JobStatus::Accepted | JobStatus::Submitted | JobStatus::Verified
                        );
                        // Attempts that were this agent's last and did not succeed or still run.
                        i64::from(!mine_running_or_won && j.attempt_count > 0)
                    })
                    .sum();
                AgentProfile {
                    agent: a.clone(),
                    jobs_verified: verified.len() as i64,
                    jobs_failed: failed,
                    earned_cents: Cents(earned),
                }
            })
            .collect())
    }

    fn lock_balances(&mut self, accounts: &[Account]) -> Result<Vec<Cents>> {
        Ok(accounts.iter().map(|a| self.balance(*a)).collect())
    }

    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()> {
        for (id, t) in transfers {
            let from = self.balance(t.from).checked_sub(t.amount)?;
            if from < Cents::ZERO && !t.from.may_be_negative() {
                return Err(DomainError::Internal(format!(
                    "transfer would overdraw {}",
                    t.from.key()
                )));
            }
            let to = self.balance(t.to).checked_add(t.amount)?;
            self.balances.insert(t.from, from);
            self.balances.insert(t.to, to);
            self.transfers.push((*id, t.clone(), now));
        }
        Ok(())
    }

    fn ledger(&mut self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>> {
        let wallet = Account::Wallet(user);
        Ok(self
            .transfers
            .iter()
            .rev()
            .filter(|(id, t, _)| {
                (t.from == wallet || t.to == wallet) && page.before.is_none_or(|b| *id < b)
            })
            .take(page.limit as usize)
            .map(|(id, t, at)| LedgerEntry {
                id: *id,
                delta_cents: t.delta_for(wallet),
                reason: t.reason,
                job_id: t.job_id,
                created_at: *at,
            })
            .collect())
    }

    fn insert_job(&mut self, job: &Job) -> Result<()> {
        self.jobs.insert(job.id, job.clone());
        Ok(())
    }

    fn update_job(&mut self, job: &Job) -> Result<()> {
        for a in &job.presented_to_agents {
            self.presented.insert((*a, job.id));
        }
        if job.status != JobStatus::Submitted {
            self.leases.remove(&job.id);
        }
        self.jobs.insert(job.id, job.clone());
        Ok(())
    }

    fn job(&mut self, id: JobId, _lock: bool) -> Result<Option<Job>> {
        Ok(self.jobs.get(&id).cloned())
    }

    fn queued_candidates(&mut self, agent: &Agent, limit: u32) -> Result<Vec<Job>> {
        let mut v: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Queued
                    && j.sender != agent.owner_id
                    && !self.presented.contains(&(agent.id, j.id))
            })
            .collect();
        v.sort_by_key(|j| (j.created_at, j.id));
        Ok(v.into_iter().take(limit as usize).cloned().collect())
    }

    fn expired_holds(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        Ok(self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Held && j.hold_expires_at.is_some_and(|t| t <= now))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn overdue(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        Ok(self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Accepted && j.deadline_at.is_some_and(|t| t <= now))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Job>> {
        let leases = &self.leases;
        let next = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Submitted)
            .filter(|j| leases.get(&j.id).is_none_or(|l| *l <= now))
            .min_by_key(|j| (j.submitted_at, j.id))
            .cloned();
        if let Some(j) = &next {
            self.leases.insert(j.id, until);
        }
        Ok(next)
    }

    fn list_jobs(
        &mut self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        let jobs = self
            .jobs
            .values()
            .filter(|j| j.sender == sender && status.is_none_or(|s| j.status == s));
        Ok(newest_first(jobs, &self.jobs, page))
    }

    fn board(&mut self, page: Page<JobId>) -> Result<Vec<Job>> {
        let jobs = self.jobs.values().filter(|j| j.status == JobStatus::Queued);
        Ok(newest_first(jobs, &self.jobs, page))
    }

    fn stats(&mut self) -> Result<BoardStats> {
        let counts = JobStatus::ALL
            .iter()
            .map(|s| {
                (
                    *s,
                    self.jobs.values().filter(|j| j.status == *s).count() as i64,
                )
            })
            .collect();
        let mut prices: Vec<i64> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.price.cents().get())
            .collect();
        prices.sort_unstable();
        let median = (!prices.is_empty()).then(|| Cents(prices[(prices.len() - 1) / 2]));
        let paid: i64 = self
            .transfers
            .iter()
            .filter(|(_, t, _)| t.reason == Reason::Earning)
            .map(|(_, t, _)| t.amount.get())
            .sum();
        Ok(BoardStats {
            counts,
            jobs_verified: self
                .jobs
                .values()
                .filter(|j| j.status == JobStatus::Verified)
                .count() as i64,
            total_paid_out: Cents(paid),
            median_queued_price: median,
            agents: self.agents.len() as i64,
        })
    }

    fn append_log(
        &mut self,
        job: JobId,
        level: LogLevel,
        message: &str,
        now: Timestamp,
    ) -> Result<LogLine> {
        let lines = self.logs.entry(job).or_default();
        let line = LogLine {
            seq: lines.len() as i64 + 1,
            at: now,
            level,
            message: message.to_string(),
        };
        lines.push(line.clone());
        Ok(line)
    }

    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>> {
        Ok(self
            .logs
            .get(&job)
            .map(|l| l.iter().filter(|x| x.seq > after).cloned().collect())
            .unwrap_or_default())
    }

    fn put_quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        s: &Structured,
        expires_at: Timestamp,
    ) -> Result<()> {
        self.quotes
            .insert((sender, *digest), (s.clone(), expires_at));
        Ok(())
    }

    fn quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<Structured>> {
        Ok(self
            .quotes
            .get(&(sender, *digest))
            .filter(|(_, exp)| *exp > now)
            .map(|(s, _)| s.clone()))
    }

    fn idem_reserve(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IdemState> {
        let k = (user, key.to_string());
        match self.idem.get(&k) {
            Some(r) if r.expires_at > now => Ok(if r.digest != *digest {
                IdemState::Mismatch
            } else {
                match &r.response {
                    Some(resp) => IdemState::Replay(resp.clone()),
                    None => IdemState::InProgress,
                }
            }),
            _ => {
                self.idem.insert(
                    k,
                    Idem {
                        digest: *digest,
                        response: None,
                        expires_at,
                    },
                );
                Ok(IdemState::Reserved)
            }
        }
    }

    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<()> {
        if let Some(r) = self.idem.get_mut(&(user, key.to_string())) {
            r.response = Some(response.to_vec());
        }
        Ok(())
    }

    fn idem_release(&mut self, user: UserId, key: &str) -> Result<()> {
        self.idem.remove(&(user, key.to_string()));
        Ok(())
    }

    fn purge_expired(&mut self, now: Timestamp) -> Result<u64> {
        let before = self.quotes.len() + self.idem.len();
        self.quotes.retain(|_, (_, exp)| *exp > now);
        self.idem.retain(|_, r| r.expires_at > now);
        Ok((before - self.quotes.len() - self.idem.len()) as u64)
    }

    fn ping(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Runs transactions on a shared [`MemoryState`], one at a time.
#[derive(Clone, Default)]
pub struct MemoryRunner {
    state: Arc<Mutex<MemoryState>>,
}

impl MemoryRunner {
    /// A copy of the current state, for assertions.
    pub fn snapshot(&self) -> MemoryState {
        match self.state.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl TxRunner for MemoryRunner {
    async fn run<T: Send + 'static>(&self, f: TxFn<T>) -> Result<T> {
        let mut guard = self
            .state
            .lock()
            .map_err(|_| DomainError::Internal("memory store poisoned".into()))?;
        let before = guard.clone();
        let out = f(&mut *guard);
        if out.is_err() {
            *guard = before;
        }
        out
    }
}

/// A [`TxStore`] over a fresh in-memory state.
pub fn store(clock: Arc<dyn crate::ports::Clock>) -> TxStore<MemoryRunner> {
    TxStore::new(MemoryRunner::default(), clock)
}
