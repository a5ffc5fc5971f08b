//! The ports: what the domain needs from the outside world.
//!
//! - [`Store`]: runs a unit of work on a database connection, in one of three [`Mode`]s. The work
//!   talks to the database through [`Tx`], which is plain data access — rows in, rows out, no
//!   business decision. Every rule is in [`crate::service`], which composes `Tx` calls into the use
//!   cases. A store adapter implements `Store` and `Tx` once; the in-memory [`crate::memory`] store
//!   is the second implementation, for tests and embedding.
//! - [`LogWatch`]: wake-ups when a job's log or status changes, delivered across server instances.
//! - [`Structurer`] and [`Verifier`]: the LLM; [`LogSink`] receives a verifier's interim notes.
//! - [`FileStore`]: where uploaded files' bytes are kept (their metadata is in the [`Store`]).
//! - [`Clock`]: the time and fresh ids. [`PaymentGateway`] and [`PayoutGateway`]: money in and out.
//!
//! With the `mocks` feature each async port but the store has a mockall mock (`MockStructurer`,
//! `MockVerifier`, …); tests of the use cases run on the in-memory store instead of a store mock.

use crate::error::{DomainError, Result};
use crate::files::{FileMeta, FileRole, JobFile, VerifyFile};
use crate::ids::{AgentId, ApiKeyId, FileId, JobId, Timestamp, TransferId, UserId};
use crate::job::{Job, JobStatus, LogLevel, LogLine, Structured};
use crate::money::{Cents, LedgerEntry, Reason, Transfer};
use crate::user::{Agent, AgentProfile, KeyHash, User};
use crate::webhook::{Delivery, DeliveryId, Endpoint, JobEvent, Outgoing, SendResult, WebhookId};
use async_trait::async_trait;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

/// A page request: at most `limit` items strictly older than `before` (newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<C> {
    /// 1..=200.
    pub limit: u32,
    /// Cursor: the id of the last item of the previous page.
    pub before: Option<C>,
}

impl<C> Page<C> {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 200;

    /// A page; `limit` must be 1..=200.
    pub fn new(limit: Option<u32>, before: Option<C>) -> Result<Self> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(DomainError::invalid(format!(
                "limit must be between 1 and {}",
                Self::MAX_LIMIT
            )));
        }
        Ok(Page { limit, before })
    }

    /// The first page of the default size.
    pub fn first() -> Self {
        Page {
            limit: Self::DEFAULT_LIMIT,
            before: None,
        }
    }
}

/// Public numbers of the marketplace.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BoardStats {
    /// Jobs per status (every status present, zero included).
    pub counts: Vec<(JobStatus, i64)>,
    /// Jobs verified.
    pub jobs_verified: i64,
    /// Sum of all earnings paid to agents' owners.
    pub total_paid_out: Cents,
    /// Median price of queued jobs (the lower middle for an even count).
    pub median_queued_price: Option<Cents>,
    /// Number of agents.
    pub agents: i64,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Holds that lapsed and were released.
    pub released_holds: u64,
    /// Accepted attempts whose deadline passed and were failed.
    pub failed_deadlines: u64,
    /// Submissions whose review the sender did not decide in time, approved.
    pub approved_reviews: u64,
    /// Uploads older than a day that no job referenced, removed.
    pub removed_files: u64,
    /// Of those, the ones whose bytes could not be deleted (left in storage, referenced by
    /// nothing).
    pub orphaned_files: u64,
}

/// Which jobs a listing returns; every filter given must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JobFilter {
    /// Jobs this user sent.
    pub sender: Option<UserId>,
    /// Jobs one of this user's agents holds or worked on (holder or receiver).
    pub worker: Option<UserId>,
    /// Jobs this agent holds or worked on (holder or receiver agent).
    pub agent: Option<AgentId>,
    /// Jobs in one of these statuses; any status when empty.
    pub statuses: Vec<JobStatus>,
}

/// How an attempt ended, for the agent directory's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The output passed verification.
    Verified,
    /// Given up, late, or rejected by the verifier.
    Failed,
}

impl AttemptOutcome {
    /// The outcome as stores spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Verified => "verified",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// One ended attempt: which agent worked on which job, how it ended and what its owner earned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The job.
    pub job_id: JobId,
    /// The attempt's number (1..=3).
    pub number: u32,
    /// The agent that accepted it.
    pub agent_id: AgentId,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What the agent's owner earned by it.
    pub earned: Cents,
}

/// A stored idempotency record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdemRecord {
    /// Digest of the request that owns the key.
    pub digest: [u8; 32],
    /// The stored answer, once the request finished.
    pub response: Option<Vec<u8>>,
    /// When the record is forgotten.
    pub expires_at: Timestamp,
}

/// A log line to append; the store numbers it.
pub type NewLogLine = (LogLevel, String);

/// How a unit of store work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads only, without a transaction (any connection, each statement on its own snapshot).
    Read,
    /// Each statement commits on its own, without BEGIN/COMMIT: for reads and for writes that are
    /// one statement (a compare-and-set of a job), which are atomic by themselves.
    Single,
    /// One transaction, committed when the work returns `Ok` and rolled back otherwise.
    Transaction,
}

/// A unit of store work; its result is type-erased so that [`Store`] can be a trait object (see
/// the typed helpers on `dyn Store`).
pub type Work = Box<dyn FnOnce(&mut dyn Tx) -> Result<Box<dyn Any + Send>> + Send>;

/// A database the domain runs its work on.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs `work` on one connection in `mode`. Wake-ups the work asked for ([`Tx::notify`]) are
    /// delivered after it committed, never for work that was rolled back. A transaction whose
    /// caller stopped waiting (the returned future was dropped, or the store's own bound expired)
    /// before its COMMIT is rolled back, not committed behind the caller's back.
    async fn run(&self, mode: Mode, work: Work) -> Result<Box<dyn Any + Send>>;
}

impl dyn Store {
    /// Runs `f` in `mode` and returns its typed result.
    pub async fn exec<T: Send + 'static>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let out = self
            .run(
                mode,
                Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn Any + Send>)),
            )
            .await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| DomainError::Internal("the store returned another type".into()))
    }

    /// Runs reads ([`Mode::Read`]).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.exec(Mode::Read, f).await
    }

    /// Runs statements that each commit on their own ([`Mode::Single`]).
    pub async fn single<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.exec(Mode::Single, f).await
    }

    /// Runs one transaction ([`Mode::Transaction`]).
    pub async fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.exec(Mode::Transaction, f).await
    }
}

/// Which of an owner's agents a statement is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLookup {
    /// This one (if the owner's).
    Id(AgentId),
    /// The one with this name.
    Name(String),
    /// The owner's default agent.
    Default,
}

/// Plain data access on one connection: each method is a statement (or a few), and none decides
/// anything a business rule should — the callers in [`crate::service`] do.
///
/// Errors are domain errors: a unique violation is [`DomainError::Conflict`], a lost or busy
/// connection [`DomainError::Unavailable`]. Methods that lock rows hold the locks until the
/// transaction ends; candidate queries skip rows locked elsewhere, so that concurrent pullers and
/// sweepers never wait on each other nor take the same job.
pub trait Tx {
    /// Inserts a user and its wallet (balance 0). Conflict if the name is taken.
    fn insert_user(&mut self, user: &User) -> Result<()>;
    /// A user by id, with its wallet's balance.
    fn user(&mut self, id: UserId) -> Result<Option<User>>;
    /// A user by its unique name.
    fn user_by_name(&mut self, name: &str) -> Result<Option<User>>;
    /// Stores an API key's hash for a user.
    fn insert_api_key(
        &mut self,
        id: ApiKeyId,
        user: UserId,
        hash: &KeyHash,
        now: Timestamp,
    ) -> Result<()>;
    /// The user owning the key with this hash.
    fn user_by_key(&mut self, hash: &KeyHash) -> Result<Option<User>>;

    /// Inserts an agent. Conflict if the owner already has one by that name.
    fn insert_agent(&mut self, agent: &Agent) -> Result<()>;
    /// Rewrites an agent's name, personality and avatar. Conflict on a duplicate name.
    fn update_agent(&mut self, agent: &Agent) -> Result<()>;
    /// Deletes an agent (its history keeps the id).
    fn delete_agent(&mut self, id: AgentId) -> Result<()>;
    /// An agent by id.
    fn agent(&mut self, id: AgentId) -> Result<Option<Agent>>;
    /// An owner's agents, the default first, then in creation order.
    fn agents_of(&mut self, owner: UserId) -> Result<Vec<Agent>>;
    /// Public directory: agents newest first, with the numbers of their ended attempts.
    fn directory(&mut self, page: Page<AgentId>) -> Result<Vec<AgentProfile>>;
    /// How many agents exist.
    fn count_agents(&mut self) -> Result<i64>;
    /// Records how an attempt ended (replacing an earlier record of the same attempt).
    fn record_attempt(&mut self, attempt: &AttemptRecord) -> Result<()>;

    /// Writes transfers as ledger rows and applies them to the balances, in account-key order.
    /// A wallet or escrow balance never goes below zero: a transfer that would take one there
    /// fails with [`DomainError::InsufficientBalance`] (with the amount it needed and the balance
    /// it found), and nothing of it is applied. The outside world and the platform have no balance
    /// row: their balances are the sums of their ledger entries.
    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()>;
    /// A wallet's ledger entries, newest first.
    fn ledger(&mut self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>>;
    /// The sum of every transfer made for `reason`.
    fn transfer_total(&mut self, reason: Reason) -> Result<Cents>;

    /// Inserts a new job.
    fn insert_job(&mut self, job: &Job) -> Result<()>;
    /// Rewrites a job's row if it is still at `expected_version` (compare-and-set); `false` if
    /// another writer changed it first. Stores index the job's holder as presented (pull's
    /// "never the same agent twice").
    fn update_job(&mut self, job: &Job, expected_version: i64) -> Result<bool>;
    /// A job by id.
    fn job(&mut self, id: JobId) -> Result<Option<Job>>;
    /// A job by id, its row locked until the transaction ends.
    fn lock_job(&mut self, id: JobId) -> Result<Option<Job>>;
    /// The agent of `owner` that `agent` names, with up to `limit` of the oldest `queued` jobs
    /// not sent by `owner` and never held by that agent, locked (skipping rows locked elsewhere),
    /// in one statement where the store can. `None` when there is no such agent or no such job.
    fn pull_candidates(
        &mut self,
        owner: UserId,
        agent: &AgentLookup,
        limit: u32,
    ) -> Result<Option<(Agent, Vec<Job>)>>;
    /// Locks up to `limit` `held` jobs whose hold lapsed by `now`, skipping rows locked elsewhere.
    fn expired_holds(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;
    /// Locks up to `limit` `accepted` jobs whose deadline passed by `now`, skipping locked rows.
    fn overdue(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;
    /// Locks up to `limit` `submitted` jobs whose review is due by `now`, skipping locked rows.
    fn reviews_due(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;
    /// Takes the oldest `submitted` job not waiting for the sender's review whose verification
    /// lease is free or lapsed by `now`, leasing it until `until` (skipping locked rows); one
    /// statement. Also says whether another such job was waiting, so that a worker knows whether
    /// to look again at once.
    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Leased>>;
    /// Keeps verification workers off a job until `until` (after a verifier error).
    fn postpone_verification(&mut self, job: JobId, until: Timestamp) -> Result<()>;
    /// Jobs matching `filter`, newest first.
    fn jobs(&mut self, filter: &JobFilter, page: Page<JobId>) -> Result<Vec<Job>>;
    /// How many jobs are in each status (statuses without jobs may be missing).
    fn count_by_status(&mut self) -> Result<Vec<(JobStatus, i64)>>;
    /// The price of the queued job at `offset` in price order (0 = the cheapest).
    fn queued_price_at(&mut self, offset: i64) -> Result<Option<Cents>>;

    /// Appends log lines to a job, numbered after its last one. The caller holds the job's row
    /// (it changed or locked it in the same transaction), so appends to one job never race.
    fn append_logs(
        &mut self,
        job: JobId,
        lines: &[NewLogLine],
        at: Timestamp,
    ) -> Result<Vec<LogLine>>;
    /// A job's log lines with `seq > after`, in order.
    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>>;
    /// A job with its log lines after `after`, in one statement (one snapshot).
    fn job_with_logs(&mut self, job: JobId, after: i64) -> Result<Option<(Job, Vec<LogLine>)>>;
    /// Asks for watchers to be woken, on every instance, once this work commits: a job's log
    /// watchers, or the waiting pulls when a job became queued.
    fn notify(&mut self, what: Announcement) -> Result<()>;

    /// Stores (or replaces) a sender's phase-1 quote for a prompt digest.
    fn put_quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        structured: &Structured,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The sender's quote for a prompt digest, unless it expired by `now`.
    fn quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<Structured>>;

    /// Inserts an idempotency record without an answer unless one exists for (user, key):
    /// `true` when this call inserted it (atomically: of concurrent callers, exactly one wins).
    fn idem_insert(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        expires_at: Timestamp,
    ) -> Result<bool>;
    /// The idempotency record of (user, key).
    fn idem_get(&mut self, user: UserId, key: &str) -> Result<Option<IdemRecord>>;
    /// Stores the answer of (user, key); `false` when there is no record (it was released).
    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<bool>;
    /// Deletes the record of (user, key): with `expired_by`, only if it expired by then; without,
    /// only while it has no answer (a stored answer is never released).
    fn idem_delete(&mut self, user: UserId, key: &str, expired_by: Option<Timestamp>)
    -> Result<()>;
    /// Deletes phase-1 quotes and idempotency records that expired by `now`; returns how many.
    fn purge_expired(&mut self, now: Timestamp) -> Result<u64>;

    /// A trivial query: the store answers.
    fn ping(&mut self) -> Result<()>;

    /// How many jobs are in each status, and since when the oldest queued job waits (for
    /// monitoring).
    fn job_stats(&mut self) -> Result<JobStats>;

    // Webhooks. Every status change of a job adds a row to the outbox in the statement that
    // changes it (the stores do it in the database, so no change costs a round trip more).

    /// Inserts an endpoint.
    fn insert_webhook(&mut self, endpoint: &Endpoint) -> Result<()>;
    /// An endpoint by id.
    fn webhook(&mut self, id: WebhookId) -> Result<Option<Endpoint>>;
    /// A user's endpoints, oldest first.
    fn webhooks_of(&mut self, owner: UserId) -> Result<Vec<Endpoint>>;
    /// Writes an endpoint's fields.
    fn update_webhook(&mut self, endpoint: &Endpoint) -> Result<()>;
    /// Deletes an endpoint and its deliveries.
    fn delete_webhook(&mut self, id: WebhookId) -> Result<()>;
    /// The enabled endpoints of these users.
    fn webhooks_for(&mut self, owners: &[UserId]) -> Result<Vec<Endpoint>>;
    /// Up to `limit` outbox rows not yet dispatched, oldest first, locked (rows locked by another
    /// dispatcher are skipped).
    fn undispatched_events(&mut self, limit: u32) -> Result<Vec<JobEvent>>;
    /// Inserts deliveries.
    fn insert_deliveries(&mut self, deliveries: &[Delivery]) -> Result<()>;
    /// Marks outbox rows dispatched (`keep`: deliveries carry them) or deletes them (`drop`:
    /// nobody receives them).
    fn settle_events(&mut self, keep: &[i64], drop: &[i64]) -> Result<()>;
    /// Up to `limit` pending deliveries of enabled endpoints due by `now`, oldest due first, each
    /// with its endpoint and
    /// its event's job, leased until `until` (their `next_at` moves there, so another worker does
    /// not take them meanwhile; a crash retries them then).
    fn lease_deliveries(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Outgoing>>;
    /// Writes a delivery's state.
    fn update_delivery(&mut self, delivery: &Delivery) -> Result<()>;
    /// A delivery by id.
    fn delivery(&mut self, id: DeliveryId) -> Result<Option<Delivery>>;
    /// An endpoint's deliveries, newest first.
    fn deliveries_of(
        &mut self,
        endpoint: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>>;
    /// Deletes deliveries finished before `before`, and outbox rows from before `before` that
    /// were dispatched and that no delivery carries any more; returns how many deliveries.
    fn purge_deliveries(&mut self, before: Timestamp) -> Result<u64>;

    // Files: their metadata, and which jobs reference them.

    /// Inserts an uploaded file's metadata.
    fn insert_file(&mut self, file: &FileMeta) -> Result<()>;
    /// The files with these ids (those that exist, in any order).
    fn files(&mut self, ids: &[FileId]) -> Result<Vec<FileMeta>>;
    /// How many bytes a user's files take.
    fn storage_used(&mut self, owner: UserId) -> Result<u64>;
    /// Records that a job references files; a reference that exists takes the new attempt (a
    /// later submission of the same file). One statement per file, so that a file removed
    /// meanwhile is named.
    fn attach_files(&mut self, job: JobId, files: &[JobFile]) -> Result<()>;
    /// The jobs that reference a file, each with the role it has there.
    fn file_references(&mut self, file: FileId) -> Result<Vec<(Job, FileRole)>>;
    /// The files a job references in `role` (of `attempt` when given), in upload order.
    fn job_files(
        &mut self,
        job: JobId,
        role: FileRole,
        attempt: Option<u32>,
    ) -> Result<Vec<FileMeta>>;
    /// Deletes up to `limit` files uploaded before `before` that no job references (rows locked
    /// elsewhere skipped) and returns them, so that their bytes can be removed.
    fn delete_unreferenced_files(&mut self, before: Timestamp, limit: u32)
    -> Result<Vec<FileMeta>>;
}

/// A submission leased for verification.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The job, as leased.
    pub job: Job,
    /// Another submission was free to lease when this one was taken (it may be taken by another
    /// worker by the time it is looked for).
    pub more_waiting: bool,
}

/// Jobs by status, for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Statuses with at least one job, and their counts.
    pub by_status: Vec<(JobStatus, u64)>,
    /// When the longest-waiting queued job was queued (last changed), if any job is queued.
    pub oldest_queued: Option<Timestamp>,
}

/// What a committed change announces to the watchers of every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Announcement {
    /// The job's log (or status) changed: its log streams read again.
    Log(JobId),
    /// The job became `queued`: waiting pulls try again.
    Queued(JobId),
}

/// Wake-ups for log streams and waiting pulls, delivered across server instances.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LogWatch: Send + Sync {
    /// Starts watching `job`: every change from now on wakes the returned waiter. Made before a
    /// read, it misses nothing that commits after the read began.
    fn watch(&self, job: JobId) -> Box<dyn Waiter>;
    /// Starts watching the queue: every job queued from now on wakes the returned waiter.
    fn watch_queue(&self) -> Box<dyn Waiter>;
}

/// One watcher of one job.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Waiter: Send + Sync {
    /// Returns once the job's log or status may have changed since the waiter was made or last
    /// returned (at once if it already did), or after `timeout` at the latest. Callers re-read the
    /// store either way, so a spurious wake-up is harmless.
    async fn wait(&mut self, timeout: Duration);
}

/// Why an LLM call failed. Never turned into an invented verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The network or server failed (including 429 and 5xx after the retries).
    #[error("llm unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than the configured timeout.
    #[error("llm timed out")]
    Timeout,
    /// The answer was not what the schema requires (malformed, missing, oversized).
    #[error("llm answer unusable: {0}")]
    BadAnswer(String),
}

impl From<LlmError> for DomainError {
    fn from(e: LlmError) -> Self {
        DomainError::Llm(e)
    }
}

/// Turns a sender's prompt into a structured, priced job.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Structurer: Send + Sync {
    /// Structures `prompt`, whose sender attached `files` (the structurer sees their names, types
    /// and sizes, not their bytes). Estimates are clamped into range by the implementation.
    async fn structure(&self, prompt: &str, files: &[FileMeta]) -> Result<Structured, LlmError>;
}

/// What the verifier judges: the job's terms and the submitted output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyTask {
    /// Title (may be empty for standalone verification).
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// Requirements.
    pub requirements: String,
    /// Criteria; empty means "judge against the requirements".
    pub acceptance_criteria: Vec<String>,
    /// The output's text.
    pub output: String,
    /// The output's files, in order: text files with their first bytes, others by name, type and
    /// size.
    pub files: Vec<VerifyFile>,
}

impl VerifyTask {
    /// The task of verifying a job's current submission, with what was read of its files.
    pub fn for_job(job: &Job, files: Vec<VerifyFile>) -> VerifyTask {
        VerifyTask {
            title: job.title.clone(),
            description: job.description.clone(),
            requirements: job.requirements.clone(),
            acceptance_criteria: job.acceptance_criteria.clone(),
            output: job.output_text.clone().unwrap_or_default(),
            files,
        }
    }

    /// The criteria the task is judged by: its acceptance criteria, or its requirements when it
    /// has none.
    pub fn criteria(&self) -> Vec<String> {
        if self.acceptance_criteria.is_empty() {
            vec![self.requirements.clone()]
        } else {
            self.acceptance_criteria.clone()
        }
    }
}

/// A verdict before it is stamped with a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Overall result.
    pub passed: bool,
    /// Explanation.
    pub reasoning: String,
    /// One result per criterion.
    pub criteria: Vec<crate::job::CriterionResult>,
    /// `llm:<model>` or `heuristic`.
    pub verifier: String,
}

impl Assessment {
    /// The verdict, stamped at `at`.
    pub fn at(self, at: Timestamp) -> crate::job::Verdict {
        crate::job::Verdict {
            passed: self.passed,
            reasoning: self.reasoning,
            criteria: self.criteria,
            verifier: self.verifier,
            verified_at: at,
        }
    }
}

/// Receives a verifier's interim notes (a retried call, say). They are written to the job's log
/// with the verdict, in order.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Records one line. Failing to record is not the verifier's concern: sinks log and go on.
    async fn log(&self, level: LogLevel, message: String);
}

/// Judges an output against a job's acceptance criteria.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Who judges, as verdicts name it: `llm:<model>` or `heuristic`.
    fn name(&self) -> String;
    /// Verifies; interim notes go to `log`.
    async fn verify(
        &self,
        task: &VerifyTask,
        log: Arc<dyn LogSink>,
    ) -> Result<Assessment, LlmError>;
}

/// The time and fresh ids.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// A new time-ordered unique id.
    fn new_id(&self) -> Uuid;
}

/// A file's bytes as they are read: chunks in order, or the error that stopped the read.
pub type FileBytes = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// Where uploaded files' bytes are kept: a directory, or an S3-compatible bucket. Keys are file
/// ids. Errors are [`DomainError::Unavailable`] when the storage cannot be reached and
/// [`DomainError::NotFound`] for a key that holds nothing.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Starts writing the object `key`; nothing is visible under it before
    /// [`FileWriter::finish`].
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>>;
    /// Reads the object `key`, or its bytes `range.0..range.1`.
    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<FileBytes>;
    /// Deletes the object `key` (no error if it is gone already).
    async fn delete(&self, key: &str) -> Result<()>;
}

/// An object being written. Dropped without [`FileWriter::finish`], it leaves nothing visible
/// (storage may keep the parts until its own clean-up).
#[async_trait]
pub trait FileWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: bytes::Bytes) -> Result<()>;
    /// Completes the object: from now on it can be read.
    async fn finish(&mut self) -> Result<()>;
    /// Gives the object up.
    async fn abort(&mut self);
}

/// Sends one webhook delivery: signs the event as its endpoint's owner may see it and posts it,
/// refusing destinations that are not public (unless the installation allows them), within a
/// timeout. Never fails: what went wrong is in the result.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Sends `out` once.
    async fn send(&self, out: &Outgoing) -> SendResult;
}

/// Money coming in: collects a top-up from outside before the wallet is credited.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Collects `amount` for `user`'s top-up. NotSupported where top-ups are manual.
    async fn collect(&self, user: UserId, amount: Cents) -> Result<()>;
}

/// Money going out: pays a withdrawal after the wallet was debited.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait PayoutGateway: Send + Sync {
    /// Whether payouts are offered at all (checked before any money moves). NotSupported if not.
    async fn available(&self) -> Result<()>;
    /// Sends `amount` to `user`. On error the service puts the money back into the wallet.
    async fn send(&self, user: UserId, amount: Cents) -> Result<()>;
}
