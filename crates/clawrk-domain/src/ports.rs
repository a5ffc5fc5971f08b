//! The ports: what the domain needs from the outside world, as business operations.
//!
//! - [`Store`]: every persistent operation of the product, each one atomic. It is implemented once,
//!   in [`crate::store::TxStore`], on top of a store adapter's [`Tx`] (the SQL primitives inside one
//!   database transaction) and [`TxRunner`] (how a transaction is opened and committed).
//! - [`LogWatch`]: wake-ups when a job's log lines change, across server instances.
//! - [`Structurer`] and [`Verifier`]: the LLM; [`LogSink`] receives the verifier's progress.
//! - [`Clock`]: the time and fresh ids. [`PaymentGateway`] and [`PayoutGateway`]: money in and out.
//!
//! With the `mocks` feature each async port has a mockall mock (`MockStore`, `MockStructurer`, …).

use crate::error::{DomainError, Result};
use crate::ids::ApiKeyId;
use crate::ids::{AgentId, JobId, Timestamp, TransferId, UserId};
use crate::job::{AgentRef, Job, JobStatus, LogLevel, LogLine, Output, Structured, Verdict};
use crate::money::{Cents, LedgerEntry, Reason, Transfer};
use crate::user::{Agent, AgentPatch, AgentProfile, KeyHash, NewAgent, User};
use async_trait::async_trait;
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
}

/// The state of an idempotency key when a request reserves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemState {
    /// New: the caller runs the request and then completes or releases the key.
    Reserved,
    /// A request with this key is running now.
    InProgress,
    /// Done before with the same body: replay this stored response.
    Replay(Vec<u8>),
    /// Used before with another body.
    Mismatch,
}

/// The SQL primitives of one store, inside one open database transaction.
///
/// Methods that "lock" take row locks that last until the transaction ends; candidate queries skip
/// rows other transactions hold (`FOR UPDATE SKIP LOCKED` or the store's equivalent), so concurrent
/// pullers and sweepers never wait on each other nor take the same job. Errors are domain errors:
/// a unique violation is [`DomainError::Conflict`], a lost connection [`DomainError::Unavailable`].
pub trait Tx {
    /// Inserts a user and its wallet (balance 0). Conflict if the name is taken.
    fn insert_user(&mut self, user: &User) -> Result<()>;
    /// A user by id.
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
    /// An owner's agents, the default first, then by creation.
    fn agents_of(&mut self, owner: UserId) -> Result<Vec<Agent>>;
    /// Whether the agent holds a job or works on one (`held` by it, or `accepted`/`submitted` with it
    /// as receiver agent).
    fn agent_is_busy(&mut self, id: AgentId) -> Result<bool>;
    /// Public directory, newest agents first.
    fn directory(&mut self, page: Page<AgentId>) -> Result<Vec<AgentProfile>>;

    /// Locks the given accounts' balance rows (in the order given; callers sort them) and returns
    /// their balances. An account without a row has balance 0.
    fn lock_balances(&mut self, accounts: &[crate::money::Account]) -> Result<Vec<Cents>>;
    /// Writes transfers as ledger rows and applies them to the balances. Callers have checked that
    /// no wallet goes negative; stores also enforce it with a constraint.
    fn post(&mut self, transfers: &[(TransferId, Transfer)], now: Timestamp) -> Result<()>;
    /// A wallet's ledger entries, newest first.
    fn ledger(&mut self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>>;

    /// Inserts a new job.
    fn insert_job(&mut self, job: &Job) -> Result<()>;
    /// Rewrites a job's row (and records new presentations of `presented_to_agents`).
    fn update_job(&mut self, job: &Job) -> Result<()>;
    /// A job by id; with `lock`, its row is locked until the transaction ends.
    fn job(&mut self, id: JobId, lock: bool) -> Result<Option<Job>>;
    /// Locks up to `limit` of the oldest `queued` jobs the agent may be offered (not its owner's, never
    /// presented to it), skipping rows locked elsewhere.
    fn queued_candidates(&mut self, agent: &Agent, limit: u32) -> Result<Vec<Job>>;
    /// Locks up to `limit` `held` jobs whose hold lapsed by `now`, skipping rows locked elsewhere.
    fn expired_holds(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;
    /// Locks up to `limit` `accepted` jobs whose deadline passed by `now`, skipping locked rows.
    fn overdue(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;
    /// Takes the oldest `submitted` job whose verification lease is free or lapsed by `now`, leasing
    /// it until `until` (skipping locked rows).
    fn lease_submitted(&mut self, now: Timestamp, until: Timestamp) -> Result<Option<Job>>;
    /// A sender's jobs, newest first.
    fn list_jobs(
        &mut self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>>;
    /// `queued` jobs, newest first.
    fn board(&mut self, page: Page<JobId>) -> Result<Vec<Job>>;
    /// The marketplace's public numbers.
    fn stats(&mut self) -> Result<BoardStats>;

    /// Appends a log line to a job with the next sequence number, and notifies watchers.
    fn append_log(
        &mut self,
        job: JobId,
        level: LogLevel,
        message: &str,
        now: Timestamp,
    ) -> Result<LogLine>;
    /// A job's log lines with `seq > after`, in order.
    fn logs(&mut self, job: JobId, after: i64) -> Result<Vec<LogLine>>;

    /// Stores (or replaces) a sender's phase-1 quote for a prompt digest.
    fn put_quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        structured: &Structured,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The sender's unexpired quote for a prompt digest.
    fn quote(
        &mut self,
        sender: UserId,
        digest: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<Structured>>;

    /// Reserves an idempotency key for a request whose body has `digest` (see [`IdemState`]).
    /// Expired records are treated as absent.
    fn idem_reserve(
        &mut self,
        user: UserId,
        key: &str,
        digest: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IdemState>;
    /// Stores the response of a reserved key.
    fn idem_complete(&mut self, user: UserId, key: &str, response: &[u8]) -> Result<()>;
    /// Forgets a reserved key (the request failed in a way worth retrying).
    fn idem_release(&mut self, user: UserId, key: &str) -> Result<()>;

    /// Deletes phase-1 quotes and idempotency records that expired by `now`; returns how many.
    fn purge_expired(&mut self, now: Timestamp) -> Result<u64>;

    /// A trivial query: the store answers.
    fn ping(&mut self) -> Result<()>;
}

/// A closure run inside one transaction.
pub type TxFn<T> = Box<dyn FnOnce(&mut dyn Tx) -> Result<T> + Send>;

/// Opens transactions on a store: runs `f` in one, commits if it returns `Ok`, rolls back otherwise.
/// Write transactions must serialize conflicting writers (row locks, or a single writer).
#[async_trait]
pub trait TxRunner: Send + Sync + 'static {
    /// Runs `f` in a transaction.
    async fn run<T: Send + 'static>(&self, f: TxFn<T>) -> Result<T>;
}

/// Every persistent operation of clawrk, each atomic. Errors are as documented on each method;
/// [`DomainError::Unavailable`] may come from any of them when the store cannot be reached.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Store: Send + Sync {
    /// The store answers a trivial query.
    async fn health(&self) -> Result<()>;

    /// Creates a user with a zero wallet and an agent named `default`. Conflict if the name is taken;
    /// Invalid for a blank name.
    async fn create_user(&self, name: &str, now: Timestamp) -> Result<User>;
    /// A user by id (a UUID string) or by name. NotFound otherwise.
    async fn find_user(&self, id_or_name: &str) -> Result<User>;
    /// A user by id. NotFound otherwise.
    async fn user(&self, id: UserId) -> Result<User>;
    /// Stores a new API key's hash for the user. NotFound for an unknown user.
    async fn create_api_key(&self, user: UserId, hash: KeyHash, now: Timestamp) -> Result<()>;
    /// The user owning the key with this hash, if any.
    async fn authenticate(&self, hash: KeyHash) -> Result<Option<User>>;
    /// Moves `delta` between the user's wallet and the outside world with `reason` (positive:
    /// in; negative: out) and returns the new balance. InsufficientBalance if the wallet would go
    /// negative; Invalid for a zero delta.
    async fn adjust_balance(
        &self,
        user: UserId,
        delta: Cents,
        reason: Reason,
        now: Timestamp,
    ) -> Result<Cents>;
    /// A wallet's ledger, newest first.
    async fn ledger(&self, user: UserId, page: Page<TransferId>) -> Result<Vec<LedgerEntry>>;

    /// The owner's agents, default first.
    async fn agents(&self, owner: UserId) -> Result<Vec<Agent>>;
    /// One of the owner's agents. NotFound if it does not exist or is someone else's.
    async fn agent(&self, owner: UserId, id: AgentId) -> Result<Agent>;
    /// One of the owner's agents by name. NotFound otherwise.
    async fn agent_by_name(&self, owner: UserId, name: &str) -> Result<Agent>;
    /// Creates an agent. Invalid without a name; Conflict on a duplicate name.
    async fn create_agent(&self, owner: UserId, new: NewAgent, now: Timestamp) -> Result<Agent>;
    /// Changes an agent. NotFound, Invalid, or Conflict on a duplicate name.
    async fn update_agent(&self, owner: UserId, id: AgentId, patch: AgentPatch) -> Result<Agent>;
    /// Deletes an agent. Conflict for the default agent or one holding or working on a job.
    async fn delete_agent(&self, owner: UserId, id: AgentId) -> Result<()>;
    /// The public agent directory.
    async fn directory(&self, page: Page<AgentId>) -> Result<Vec<AgentProfile>>;

    /// Creates a confirmed job: `queued` with its price in escrow if the wallet covers it, else
    /// `pending_payment`. Returns the job and the wallet balance seen.
    async fn create_job(
        &self,
        draft: crate::job::JobDraft,
        sender: UserId,
        now: Timestamp,
    ) -> Result<(Job, Cents)>;
    /// A job by id, without visibility checks (the service checks). NotFound.
    async fn job(&self, id: JobId) -> Result<Job>;
    /// A sender's jobs, newest first.
    async fn list_jobs(
        &self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>>;
    /// `queued` jobs, newest first.
    async fn board(&self, page: Page<JobId>) -> Result<Vec<Job>>;
    /// Public numbers.
    async fn stats(&self) -> Result<BoardStats>;
    /// [`crate::lifecycle::pay`].
    async fn pay(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job>;
    /// [`crate::lifecycle::cancel`].
    async fn cancel(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job>;
    /// Holds the best matching queued job for the agent ([`crate::matching`]); `None` if none.
    async fn pull(&self, agent: Agent, hold_seconds: u32, now: Timestamp) -> Result<Option<Job>>;
    /// [`crate::lifecycle::hold`] of one job by id.
    async fn claim(
        &self,
        job: JobId,
        agent: AgentRef,
        hold_seconds: u32,
        now: Timestamp,
    ) -> Result<Job>;
    /// [`crate::lifecycle::accept`]; a lapsed hold is released and HoldExpired returned.
    async fn accept(&self, job: JobId, agent: AgentRef, now: Timestamp) -> Result<Job>;
    /// [`crate::lifecycle::reject`].
    async fn reject(&self, job: JobId, agent: AgentRef, now: Timestamp) -> Result<Job>;
    /// [`crate::lifecycle::submit`]; after the deadline the attempt is failed and DeadlinePassed
    /// returned.
    async fn submit(&self, job: JobId, user: UserId, output: Output, now: Timestamp)
    -> Result<Job>;
    /// [`crate::lifecycle::give_up`].
    async fn give_up(&self, job: JobId, user: UserId, now: Timestamp) -> Result<Job>;
    /// Releases every lapsed hold and fails every attempt past its deadline, then forgets expired
    /// quotes and idempotency records. Idempotent and safe to run concurrently: each job is handled
    /// once.
    async fn sweep(&self, now: Timestamp) -> Result<SweepReport>;
    /// Leases the oldest `submitted` job awaiting a verdict for `lease` (other workers skip it until
    /// then); `None` if there is none.
    async fn lease_verification(&self, now: Timestamp, lease: Duration) -> Result<Option<Job>>;
    /// Applies a verdict to the job's attempt number `attempt`. If that attempt is no longer
    /// `submitted` (another worker settled it), nothing changes and the current job is returned.
    async fn apply_verdict(
        &self,
        job: JobId,
        attempt: u32,
        verdict: Verdict,
        now: Timestamp,
    ) -> Result<Job>;

    /// Appends a log line to a job.
    async fn append_log(
        &self,
        job: JobId,
        level: LogLevel,
        message: String,
        now: Timestamp,
    ) -> Result<LogLine>;
    /// A job's log lines after `after`.
    async fn logs(&self, job: JobId, after: i64) -> Result<Vec<LogLine>>;

    /// Stores a sender's phase-1 quote for a prompt until `expires_at`.
    async fn save_quote(
        &self,
        sender: UserId,
        prompt: String,
        structured: Structured,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The sender's unexpired quote for exactly this prompt.
    async fn quote(
        &self,
        sender: UserId,
        prompt: String,
        now: Timestamp,
    ) -> Result<Option<Structured>>;

    /// Reserves an idempotency key (see [`IdemState`]).
    async fn idem_reserve(
        &self,
        user: UserId,
        key: String,
        digest: [u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IdemState>;
    /// Stores the response for a reserved key.
    async fn idem_complete(&self, user: UserId, key: String, response: Vec<u8>) -> Result<()>;
    /// Releases a reserved key without a response.
    async fn idem_release(&self, user: UserId, key: String) -> Result<()>;
}

/// Wake-ups for a job's log stream, delivered across server instances.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait LogWatch: Send + Sync {
    /// Returns when the job's log lines or status may have changed, or after `timeout` at the latest
    /// (callers re-read the store either way, so a spurious wake-up is harmless).
    async fn wait(&self, job: JobId, timeout: Duration);
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
        DomainError::Unavailable(e.to_string())
    }
}

/// Turns a sender's prompt into a structured, priced job.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Structurer: Send + Sync {
    /// Structures `prompt`. Estimates are clamped into range by the implementation.
    async fn structure(&self, prompt: &str) -> Result<Structured, LlmError>;
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
    /// The output's attachments as JSON text, if any.
    pub attachments: Option<String>,
}

impl VerifyTask {
    /// The task of verifying a job's current submission.
    pub fn for_job(job: &Job) -> VerifyTask {
        VerifyTask {
            title: job.title.clone(),
            description: job.description.clone(),
            requirements: job.requirements.clone(),
            acceptance_criteria: job.acceptance_criteria.clone(),
            output: job.output_text.clone().unwrap_or_default(),
            attachments: job
                .output_attachments
                .as_ref()
                .filter(|a| !a.is_empty_array())
                .map(|a| a.0.clone()),
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
    pub fn at(self, at: Timestamp) -> Verdict {
        Verdict {
            passed: self.passed,
            reasoning: self.reasoning,
            criteria: self.criteria,
            verifier: self.verifier,
            verified_at: at,
        }
    }
}

/// Receives the verifier's progress lines (they become the job's log, streamed over SSE).
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
    /// Verifies, reporting progress to `log` (started, each criterion, verdict).
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
