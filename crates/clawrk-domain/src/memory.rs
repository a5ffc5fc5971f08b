//! An in-memory store: [`MemoryStore`] implements the [`Store`] port and [`Tx`] over plain
//! collections.
//!
//! It exists so that the business rules can be exercised, and embedded, without a database: the
//! domain's model-based and service tests run the real [`crate::service::Marketplace`] on it. Work
//! runs one unit at a time under one lock; a transaction rolls back by restoring a snapshot taken
//! when it began. It keeps nothing across restarts: it is not a production store.

use crate::error::{DomainError, Result};
use crate::files::{FileMeta, FileRole, JobFile};
use crate::ids::{AgentId, ApiKeyId, FileId, JobId, Timestamp, TransferId, UserId};
use crate::job::{Job, JobStatus, LogLine, Structured};
use crate::money::{Account, Cents, LedgerEntry, Reason, Transfer};
use crate::ports::{
    AgentLookup, Announcement, AttemptOutcome, AttemptRecord, FileBytes, FileStore, FileWriter,
    IdemRecord, JobFilter, Leased, Mode, NewLogLine, Page, Store, Tx, Work,
};
use crate::user::{Agent, AgentProfile, KeyHash, User};
use crate::webhook::{
    Delivery, DeliveryId, DeliveryState, Endpoint, JobEvent, Outgoing, WebhookId,
};
use async_trait::async_trait;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Everything the in-memory store holds. Public read access is for invariant checks in tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    users: BTreeMap<UserId, (String, Timestamp)>,
    keys: HashMap<[u8; 32], UserId>,
    agents: BTreeMap<AgentId, Agent>,
    /// Balance of every account that ever moved money (the world's and the platform's too).
    pub balances: BTreeMap<Account, Cents>,
    /// Every transfer, in order.
    pub transfers: Vec<(TransferId, Transfer, Timestamp)>,
    /// Every job.
    pub jobs: BTreeMap<JobId, Job>,
    presented: BTreeSet<(AgentId, JobId)>,
    attempts: BTreeMap<(JobId, u32), AttemptRecord>,
    leases: BTreeMap<JobId, Timestamp>,
    logs: BTreeMap<JobId, Vec<LogLine>>,
    quotes: HashMap<(UserId, [u8; 32]), (Structured, Timestamp)>,
    idem: HashMap<(UserId, String), IdemRecord>,
    /// What the work asked to announce, in order (tests read it).
    pub notified: Vec<Announcement>,
    webhooks: BTreeMap<WebhookId, Endpoint>,
    /// The outbox: every status change, with whether it was dispatched.
    pub outbox: BTreeMap<i64, (JobEvent, bool)>,
    /// Every delivery.
    pub deliveries: BTreeMap<DeliveryId, Delivery>,
    /// Uploaded files' metadata.
    pub files: BTreeMap<FileId, FileMeta>,
    /// Which jobs reference which files, with the attempt.
    pub job_files: BTreeMap<(JobId, FileRole, FileId), u32>,
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

    /// Records a status change in the outbox, as the databases' triggers do.
    fn record_event(&mut self, before: Option<&Job>, after: &Job) {
        let from = before.map(|b| b.status);
        if from == Some(after.status) || (from.is_none() && after.status != JobStatus::Queued) {
            return;
        }
        let seq = self.outbox.keys().next_back().map_or(1, |s| s + 1);
        let event = JobEvent {
            seq,
            from,
            prev_operator: before.and_then(|b| b.holder.map(|h| h.owner_id).or(b.receiver)),
            job: after.clone(),
        };
        self.outbox.insert(seq, (event, false));
    }

    fn matches(j: &Job, f: &JobFilter) -> bool {
        let worked_by = |owner: UserId| {
            j.holder.is_some_and(|h| h.owner_id == owner) || j.receiver == Some(owner)
        };
        let by_agent = |a: AgentId| {
            j.holder.is_some_and(|h| h.agent_id == a) || j.receiver_agent_id == Some(a)
        };
        f.sender.is_none_or(|s| j.sender == s)
            && f.worker.is_none_or(worked_by)
            && f.agent.is_none_or(by_agent)
            && (f.statuses.is_empty() || f.statuses.contains(&j.status))
    }

    /// The oldest `queued` jobs not sent by `owner` and never held by `agent`.
    fn queued_candidates(&self, owner: UserId, agent: AgentId, limit: u32) -> Vec<Job> {
        let mut v: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Queued
                    && j.sender != owner
                    && !self.presented.contains(&(agent, j.id))
            })
            .collect();
        v.sort_by_key(|j| (j.created_at, j.id));
        v.into_iter().take(limit as usize).cloned().collect()
    }
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
                let mine = || self.attempts.values().filter(|t| t.agent_id == a.id);
                let count = |o: AttemptOutcome| mine().filter(|t| t.outcome == o).count() as i64;
                AgentProfile {
                    agent: a.clone(),
                    jobs_verified: count(AttemptOutcome::Verified),
                    jobs_failed: count(AttemptOutcome::Failed),
                    earned_cents: Cents(mine().map(|t| t.earned.get()).sum()),
                }
            })
            .collect())
    }

    fn count_agents(&mut self) -> Result<i64> {
        Ok(self.agents.len() as i64)
    }

    fn record_attempt(&mut self, attempt: &AttemptRecord) -> Result<()> {
        self.attempts
            .insert((attempt.job_id, attempt.number), *attempt);
        Ok(())
    }

    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()> {
        // All or nothing, as a store's transaction would be.
        let mut next = self.balances.clone();
        for (_, t) in transfers {
            let bal = |m: &BTreeMap<Account, Cents>, a| m.get(&a).copied().unwrap_or_default();
            let from = bal(&next, t.from).checked_sub(t.amount)?;
            if from < Cents::ZERO && !matches!(t.from, Account::World | Account::Platform) {
                return Err(DomainError::InsufficientBalance {
                    required: t.amount,
                    available: self.balance(t.from),
                });
            }
            if let Account::Wallet(u) = t.to
                && !self.users.contains_key(&u)
            {
                return Err(DomainError::NotFound("user"));
            }
            let to = bal(&next, t.to).checked_add(t.amount)?;
            next.insert(t.from, from);
            next.insert(t.to, to);
        }
        self.balances = next;
        for (id, t) in transfers {
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

    fn transfer_total(&mut self, reason: Reason) -> Result<Cents> {
        Ok(Cents(
            self.transfers
                .iter()
                .filter(|(_, t, _)| t.reason == reason)
                .map(|(_, t, _)| t.amount.get())
                .sum(),
        ))
    }

    fn insert_job(&mut self, job: &Job) -> Result<()> {
        if self.jobs.contains_key(&job.id) {
            return Err(DomainError::Conflict("job already exists".into()));
        }
        self.jobs.insert(job.id, job.clone());
        self.record_event(None, job);
        Ok(())
    }

    fn update_job(&mut self, job: &Job, expected_version: i64) -> Result<bool> {
        match self.jobs.get(&job.id) {
            Some(current) if current.version == expected_version => {}
            _ => return Ok(false),
        }
        if let Some(h) = job.holder {
            self.presented.insert((h.agent_id, job.id));
        }
        if job.status != JobStatus::Submitted {
            self.leases.remove(&job.id);
        }
        if let Some(before) = self.jobs.insert(job.id, job.clone()) {
            self.record_event(Some(&before), job);
        }
        Ok(true)
    }

    fn job(&mut self, id: JobId) -> Result<Option<Job>> {
        Ok(self.jobs.get(&id).cloned())
    }

    fn lock_job(&mut self, id: JobId) -> Result<Option<Job>> {
        Ok(self.jobs.get(&id).cloned())
    }

    fn pull_candidates(
        &mut self,
        owner: UserId,
        lookup: &AgentLookup,
        limit: u32,
    ) -> Result<Option<(Agent, Vec<Job>)>> {
        let Some(agent) = self.agents.values().find(|a| {
            a.owner_id == owner
                && match lookup {
                    AgentLookup::Id(id) => a.id == *id,
                    AgentLookup::Name(name) => a.name == *name,
                    AgentLookup::Default => a.is_default,
                }
        }) else {
            return Ok(None);
        };
        let agent = agent.clone();
        let candidates = self.queued_candidates(owner, agent.id, limit);
        Ok((!candidates.is_empty()).then_some((agent, candidates)))
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

    fn reviews_due(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        Ok(self
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Submitted && j.review_due_at.is_some_and(|t| t <= now)
            })
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn postpone_verification(&mut self, job: JobId, until: Timestamp) -> Result<()> {
        self.leases.insert(job, until);
        Ok(())
    }

    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Leased>> {
        let leases = &self.leases;
        let mut free: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Submitted && j.review_due_at.is_none())
            .filter(|j| leases.get(&j.id).is_none_or(|l| *l <= now))
            .collect();
        free.sort_by_key(|j| (j.submitted_at, j.id));
        let more_waiting = free.len() > 1;
        let Some(job) = free.first().map(|j| (*j).clone()) else {
            return Ok(None);
        };
        self.leases.insert(job.id, until);
        Ok(Some(Leased { job, more_waiting }))
    }

    fn jobs(&mut self, filter: &JobFilter, page: Page<JobId>) -> Result<Vec<Job>> {
        let cursor = page
            .before
            .and_then(|b| self.jobs.get(&b))
            .map(|j| (j.created_at, j.id));
        let mut v: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| Self::matches(j, filter))
            .filter(|j| cursor.is_none_or(|c| (j.created_at, j.id) < c))
            .collect();
        v.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        Ok(v.into_iter().take(page.limit as usize).cloned().collect())
    }

    fn count_by_status(&mut self) -> Result<Vec<(JobStatus, i64)>> {
        let mut counts: BTreeMap<JobStatus, i64> = BTreeMap::new();
        for j in self.jobs.values() {
            *counts.entry(j.status).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    fn queued_price_at(&mut self, offset: i64) -> Result<Option<Cents>> {
        let mut prices: Vec<Cents> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.price.cents())
            .collect();
        prices.sort_unstable();
        Ok(usize::try_from(offset)
            .ok()
            .and_then(|i| prices.get(i).copied()))
    }

    fn append_logs(
        &mut self,
        job: JobId,
        lines: &[NewLogLine],
        at: Timestamp,
    ) -> Result<Vec<LogLine>> {
        if !self.jobs.contains_key(&job) {
            return Err(DomainError::NotFound("job"));
        }
        let log = self.logs.entry(job).or_default();
        let mut added = Vec::with_capacity(lines.len());
        for (level, message) in lines {
            let line = LogLine {
                seq: log.len() as i64 + 1,
                at,
                level: *level,
                message: message.clone(),
            };
            log.push(line.clone());
            added.push(line);
        }
        Ok(added)
    }

    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>> {
        Ok(self
            .logs
            .get(&job)
            .map(|l| l.iter().filter(|x| x.seq > after).cloned().collect())
            .unwrap_or_default())
    }

    fn job_with_logs(&mut self, job: JobId, after: i64) -> Result<Option<(Job, Vec<LogLine>)>> {
        let lines = self.logs(job, after)?;
        Ok(self.jobs.get(&job).cloned().map(|j| (j, lines)))
    }

    fn notify(&mut self, what: Announcement) -> Result<()> {
        self.notified.push(what);
        Ok(())
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

    fn idem_insert(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        expires_at: Timestamp,
    ) -> Result<bool> {
        let k = (user, key.to_string());
        if self.idem.contains_key(&k) {
            return Ok(false);
        }
        self.idem.insert(
            k,
            IdemRecord {
                digest: *digest,
                response: None,
                expires_at,
            },
        );
        Ok(true)
    }

    fn idem_get(&mut self, user: UserId, key: &str) -> Result<Option<IdemRecord>> {
        Ok(self.idem.get(&(user, key.to_string())).cloned())
    }

    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<bool> {
        let Some(r) = self.idem.get_mut(&(user, key.to_string())) else {
            return Ok(false);
        };
        r.response = Some(response.to_vec());
        Ok(true)
    }

    fn idem_delete(
        &mut self,
        user: UserId,
        key: &str,
        expired_by: Option<Timestamp>,
    ) -> Result<()> {
        let k = (user, key.to_string());
        if self.idem.get(&k).is_some_and(|r| match expired_by {
            Some(t) => r.expires_at <= t,
            None => r.response.is_none(),
        }) {
            self.idem.remove(&k);
        }
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

    fn job_stats(&mut self) -> Result<crate::ports::JobStats> {
        let mut counts: BTreeMap<&'static str, (JobStatus, u64)> = BTreeMap::new();
        let mut oldest: Option<Timestamp> = None;
        for j in self.jobs.values() {
            counts.entry(j.status.as_str()).or_insert((j.status, 0)).1 += 1;
            if j.status == JobStatus::Queued {
                oldest = Some(oldest.map_or(j.updated_at, |o| o.min(j.updated_at)));
            }
        }
        Ok(crate::ports::JobStats {
            by_status: counts.into_values().collect(),
            oldest_queued: oldest,
        })
    }

    fn insert_webhook(&mut self, endpoint: &Endpoint) -> Result<()> {
        self.webhooks.insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    fn webhook(&mut self, id: WebhookId) -> Result<Option<Endpoint>> {
        Ok(self.webhooks.get(&id).cloned())
    }

    fn webhooks_of(&mut self, owner: UserId) -> Result<Vec<Endpoint>> {
        Ok(self
            .webhooks
            .values()
            .filter(|e| e.owner == owner)
            .cloned()
            .collect())
    }

    fn update_webhook(&mut self, endpoint: &Endpoint) -> Result<()> {
        self.webhooks.insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    fn delete_webhook(&mut self, id: WebhookId) -> Result<()> {
        self.webhooks.remove(&id);
        self.deliveries.retain(|_, d| d.endpoint != id);
        Ok(())
    }

    fn webhooks_for(&mut self, owners: &[UserId]) -> Result<Vec<Endpoint>> {
        Ok(self
            .webhooks
            .values()
            .filter(|e| e.enabled && owners.contains(&e.owner))
            .cloned()
            .collect())
    }

    fn undispatched_events(&mut self, limit: u32) -> Result<Vec<JobEvent>> {
        Ok(self
            .outbox
            .values()
            .filter(|(_, dispatched)| !dispatched)
            .take(limit as usize)
            .map(|(e, _)| e.clone())
            .collect())
    }

    fn insert_deliveries(&mut self, deliveries: &[Delivery]) -> Result<()> {
        for d in deliveries {
            self.deliveries.insert(d.id, d.clone());
        }
        Ok(())
    }

    fn settle_events(&mut self, keep: &[i64], drop: &[i64]) -> Result<()> {
        for seq in keep {
            if let Some(e) = self.outbox.get_mut(seq) {
                e.1 = true;
            }
        }
        for seq in drop {
            self.outbox.remove(seq);
        }
        Ok(())
    }

    fn lease_deliveries(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Outgoing>> {
        let mut due: Vec<&Delivery> = self
            .deliveries
            .values()
            .filter(|d| d.state == DeliveryState::Pending && d.next_at.is_some_and(|n| n <= now))
            .filter(|d| self.webhooks.get(&d.endpoint).is_some_and(|e| e.enabled))
            .collect();
        due.sort_by_key(|d| (d.next_at, d.event_seq, d.id));
        let ids: Vec<DeliveryId> = due.iter().take(limit as usize).map(|d| d.id).collect();
        let mut out = Vec::new();
        for id in ids {
            let Some(d) = self.deliveries.get_mut(&id) else {
                continue;
            };
            let (Some(endpoint), Some((event, _))) = (
                self.webhooks.get(&d.endpoint),
                self.outbox.get(&d.event_seq),
            ) else {
                continue;
            };
            let leased = d.clone();
            d.next_at = Some(until);
            out.push(Outgoing {
                delivery: leased,
                endpoint: endpoint.clone(),
                job: event.job.clone(),
            });
        }
        Ok(out)
    }

    fn update_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        if self.deliveries.contains_key(&delivery.id) {
            self.deliveries.insert(delivery.id, delivery.clone());
        }
        Ok(())
    }

    fn delivery(&mut self, id: DeliveryId) -> Result<Option<Delivery>> {
        Ok(self.deliveries.get(&id).cloned())
    }

    fn deliveries_of(
        &mut self,
        endpoint: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>> {
        Ok(self
            .deliveries
            .values()
            .rev()
            .filter(|d| d.endpoint == endpoint && page.before.is_none_or(|b| d.id < b))
            .take(page.limit as usize)
            .cloned()
            .collect())
    }

    fn purge_deliveries(&mut self, before: Timestamp) -> Result<u64> {
        let n = self.deliveries.len();
        self.deliveries
            .retain(|_, d| d.state == DeliveryState::Pending || d.updated_at >= before);
        let carried: BTreeSet<i64> = self.deliveries.values().map(|d| d.event_seq).collect();
        self.outbox.retain(|seq, (e, dispatched)| {
            !*dispatched || carried.contains(seq) || e.job.updated_at >= before
        });
        Ok((n - self.deliveries.len()) as u64)
    }

    fn insert_file(&mut self, file: &FileMeta) -> Result<()> {
        if self.files.contains_key(&file.id) {
            return Err(DomainError::Conflict("file exists".into()));
        }
        self.files.insert(file.id, file.clone());
        Ok(())
    }

    fn files(&mut self, ids: &[FileId]) -> Result<Vec<FileMeta>> {
        Ok(ids
            .iter()
            .filter_map(|i| self.files.get(i).cloned())
            .collect())
    }

    fn storage_used(&mut self, owner: UserId) -> Result<u64> {
        Ok(self
            .files
            .values()
            .filter(|f| f.owner == owner)
            .map(|f| f.size_bytes)
            .sum())
    }

    fn attach_files(&mut self, job: JobId, files: &[JobFile]) -> Result<()> {
        for f in files {
            if !self.jobs.contains_key(&job) {
                return Err(DomainError::Internal("a reference from no job".into()));
            }
            if !self.files.contains_key(&f.file) {
                // As the databases' foreign key does.
                return Err(DomainError::invalid(format!(
                    "attachments: file {} no longer exists",
                    f.file
                )));
            }
            self.job_files.insert((job, f.role, f.file), f.attempt);
        }
        Ok(())
    }

    fn file_references(&mut self, file: FileId) -> Result<Vec<(Job, FileRole)>> {
        Ok(self
            .job_files
            .keys()
            .filter(|(_, _, f)| *f == file)
            .filter_map(|(j, role, _)| self.jobs.get(j).map(|job| (job.clone(), *role)))
            .collect())
    }

    fn job_files(
        &mut self,
        job: JobId,
        role: FileRole,
        attempt: Option<u32>,
    ) -> Result<Vec<FileMeta>> {
        let mut found: Vec<FileMeta> = self
            .job_files
            .iter()
            .filter(|((j, r, _), a)| *j == job && *r == role && attempt.is_none_or(|x| x == **a))
            .filter_map(|((_, _, f), _)| self.files.get(f).cloned())
            .collect();
        found.sort_by_key(|f| (f.created_at, f.id));
        Ok(found)
    }

    fn delete_unreferenced_files(
        &mut self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<FileMeta>> {
        let referenced: BTreeSet<FileId> = self.job_files.keys().map(|(_, _, f)| *f).collect();
        let gone: Vec<FileMeta> = self
            .files
            .values()
            .filter(|f| f.created_at < before && !referenced.contains(&f.id))
            .take(limit as usize)
            .cloned()
            .collect();
        for f in &gone {
            self.files.remove(&f.id);
        }
        Ok(gone)
    }
}

/// An in-memory [`FileStore`], for tests and embedding: objects are byte vectors under their key.
#[derive(Clone, Default)]
pub struct MemoryFiles {
    objects: Arc<Mutex<BTreeMap<String, bytes::Bytes>>>,
}

impl MemoryFiles {
    /// An empty file store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys it holds, for assertions.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bytes::Bytes>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct MemoryWriter {
    key: String,
    buf: Vec<u8>,
    objects: Arc<Mutex<BTreeMap<String, bytes::Bytes>>>,
}

#[async_trait]
impl FileWriter for MemoryWriter {
    async fn write(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        let bytes = bytes::Bytes::from(std::mem::take(&mut self.buf));
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.key.clone(), bytes);
        Ok(())
    }

    async fn abort(&mut self) {
        self.buf.clear();
    }
}

#[async_trait]
impl FileStore for MemoryFiles {
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(MemoryWriter {
            key: key.to_string(),
            buf: Vec::new(),
            objects: self.objects.clone(),
        }))
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<FileBytes> {
        let all = self
            .lock()
            .get(key)
            .cloned()
            .ok_or(DomainError::NotFound("file"))?;
        let len = all.len() as u64;
        let (a, b) = range.unwrap_or((0, len));
        let (a, b) = (a.min(len) as usize, b.min(len) as usize);
        let part = all.slice(a..b.max(a));
        Ok(Box::pin(futures::stream::iter([Ok(part)])))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }
}

/// The in-memory [`Store`]: units of work run one at a time on a shared [`MemoryState`].
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current state, for assertions.
    pub fn snapshot(&self) -> MemoryState {
        match self.state.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn run(&self, mode: Mode, work: Work) -> Result<Box<dyn Any + Send>> {
        let mut guard = self
            .state
            .lock()
            .map_err(|_| DomainError::Internal("memory store poisoned".into()))?;
        // Single statements commit one by one, as on a database: only a transaction rolls back.
        let before = (mode == Mode::Transaction).then(|| guard.clone());
        let out = work(&mut *guard);
        if let (Err(_), Some(before)) = (&out, before) {
            *guard = before;
        }
        out
    }
}
