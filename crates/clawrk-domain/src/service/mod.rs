//! [`Marketplace`]: the use cases of SPEC §5–§6 — the only way into the domain.
//!
//! Each use case reads what it needs through the [`Store`] port, decides with the pure rules of
//! [`crate::lifecycle`], [`crate::matching`] and [`crate::money`], and writes the outcome back as
//! one unit of work. A job change is written by compare-and-set on the job's version: a use case
//! reads the job without a transaction, computes the change, and writes it only over the version it
//! read (one statement when the change touches nothing but the job's row; one transaction when it
//! also moves money, ends an attempt or writes log lines). A writer that lost the race reads again.
//!
//! Nothing here knows about HTTP or SQL; the HTTP adapter calls one method per route and the
//! server's background tasks call [`Marketplace::verify_one`] and [`Marketplace::sweep`].

mod accounts;
mod auth;
mod files;
mod idempotency;
mod jobs;
mod recent;
mod verification;
mod webhooks;

pub use auth::Principal;
pub use files::{Download, FILE_SWEEP_BATCH, Fetched, UploadInfo};
pub use idempotency::{Answer, Answered, IdemState};
pub use jobs::{
    AgentSelector, JobsOf, LogUpdate, MAX_PULL_WAIT_SECONDS, PULL_CANDIDATES, RunOutcome,
    RunRequest,
};
pub use verification::{SWEEP_BATCH, Verified};
pub use webhooks::{DELIVERY_BATCH, DISPATCH_BATCH, DeliveryReport};

use crate::error::{DomainError, Result};
use crate::ids::{JobId, Timestamp, TransferId};
use crate::job::{Job, JobStatus};
use crate::lifecycle::Change;
use crate::money::Transfer;
use crate::ports::{
    Announcement, Clock, FileStore, PaymentGateway, PayoutGateway, Store, Structurer, Tx, Verifier,
    WebhookSender,
};
use std::sync::Arc;
use std::time::Duration;

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 20_000;

/// How many times a use case re-reads a job that another writer changed between its read and its
/// write before it gives up with "retry".
const MAX_WRITE_ATTEMPTS: usize = 8;

/// Tunables of the marketplace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a pulled or claimed job is held (SPEC default 30 s).
    pub hold_seconds: u32,
    /// How long a phase-1 estimate is reused for the same sender and prompt (SPEC: 15 minutes).
    pub quote_ttl_seconds: u32,
    /// How long a verification worker owns a submitted job before another may take it over; also the
    /// delay before a failed verification is retried.
    pub verification_lease: Duration,
    /// How long an authenticated API key is remembered in-process: a key removed from the store
    /// keeps working on an instance for at most this long.
    pub key_cache_ttl: Duration,
    /// How long an idempotency key's answer is kept (SPEC: 24 hours).
    pub idempotency_ttl_seconds: u32,
    /// How long after a verifier error the submission is tried again.
    pub verify_retry: Duration,
    /// Verifier errors on one submission before it goes to the sender's review.
    pub verify_max_errors: u32,
    /// How long a submission waits for the sender's review before it is approved.
    pub review_seconds: u32,
    /// The largest file an upload may be, in bytes.
    pub max_file_bytes: u64,
    /// How many bytes one user's files may take in all.
    pub max_user_storage_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_seconds: 30,
            quote_ttl_seconds: 15 * 60,
            verification_lease: Duration::from_secs(60),
            key_cache_ttl: Duration::from_secs(10),
            idempotency_ttl_seconds: 24 * 3600,
            verify_retry: Duration::from_secs(30),
            verify_max_errors: 5,
            review_seconds: 72 * 3600,
            max_file_bytes: crate::files::DEFAULT_MAX_FILE_BYTES,
            max_user_storage_bytes: crate::files::DEFAULT_MAX_USER_STORAGE_BYTES,
        }
    }
}

/// The ports the marketplace runs on.
#[derive(Clone)]
pub struct Ports {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Prompt → structured job.
    pub structurer: Arc<dyn Structurer>,
    /// Output → verdict.
    pub verifier: Arc<dyn Verifier>,
    /// Time and ids.
    pub clock: Arc<dyn Clock>,
    /// Top-ups.
    pub payments: Arc<dyn PaymentGateway>,
    /// Withdrawals.
    pub payouts: Arc<dyn PayoutGateway>,
    /// Webhook deliveries.
    pub webhooks: Arc<dyn WebhookSender>,
    /// Uploaded files' bytes.
    pub files: Arc<dyn FileStore>,
}

/// The marketplace's use cases.
pub struct Marketplace {
    ports: Ports,
    config: Config,
    keys: auth::KeyCache,
    recent: recent::RecentJobs,
}

impl Marketplace {
    /// A marketplace over `ports`.
    pub fn new(ports: Ports, config: Config) -> Self {
        let keys = auth::KeyCache::new(config.key_cache_ttl);
        Marketplace {
            ports,
            config,
            keys,
            recent: recent::RecentJobs::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the store answers.
    pub async fn health(&self) -> Result<()> {
        self.store().read(|tx| tx.ping()).await
    }

    /// Jobs by status and the oldest queued job's age, for monitoring (one read).
    pub async fn job_stats(&self) -> Result<crate::ports::JobStats> {
        self.store().read(|tx| tx.job_stats()).await
    }

    fn store(&self) -> &dyn Store {
        &*self.ports.store
    }

    fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    /// Runs a job transition: reads the job (and whatever `context` reads beside it, in the same
    /// unit of work), computes the change with `decide`, and writes it over the version it read.
    /// When another writer changed the job in between, it starts again from the read. A refusal
    /// that still changes the job (an accept after the hold lapsed, a late submit) is written first
    /// and returned after.
    async fn transition<C, R, D>(&self, id: JobId, context: R, decide: D) -> Result<Job>
    where
        C: Send + 'static,
        R: Fn(&mut dyn Tx, &Job) -> Result<C> + Clone + Send + 'static,
        D: Fn(&Job, &C, Timestamp) -> Result<Change>,
    {
        Ok(self
            .transition_from(None, id, context, decide, None)
            .await?
            .value)
    }

    /// [`Self::transition`], trying first over a copy of the job the caller already holds (the
    /// verification worker has the job it leased, an agent's next step the job this instance held
    /// or accepted for it): no read when nobody changed it since. The copy is trusted only for a
    /// write that lands on its version; a refusal or a no-op computed over it is checked against a
    /// read. With an idempotency `answer`, the answer is stored with the change
    /// ([`Self::write_change`]).
    async fn transition_from<C, R, D>(
        &self,
        known: Option<(Job, C)>,
        id: JobId,
        context: R,
        decide: D,
        answer: Option<Answer<Job>>,
    ) -> Result<Answered<Job>>
    where
        C: Send + 'static,
        R: Fn(&mut dyn Tx, &Job) -> Result<C> + Clone + Send + 'static,
        D: Fn(&Job, &C, Timestamp) -> Result<Change>,
    {
        if let Some((job, ctx)) = known
            && let Ok(change) = decide(&job, &ctx, self.now())
            && !change.is_noop(&job)
            && let Some((change, stored)) = self.write_change(job, change, answer.clone()).await?
        {
            return settled(change, stored);
        }
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let read = context.clone();
            let (job, ctx) = self
                .store()
                .read(move |tx| {
                    let job = tx.job(id)?.ok_or(DomainError::NotFound("job"))?;
                    let ctx = read(tx, &job)?;
                    Ok((job, ctx))
                })
                .await?;
            let change = decide(&job, &ctx, self.now())?;
            if change.is_noop(&job) {
                return settled(change, false);
            }
            if let Some((change, stored)) = self.write_change(job, change, answer.clone()).await? {
                return settled(change, stored);
            }
        }
        Err(DomainError::Unavailable(
            "the job kept changing while this request was applied; retry".into(),
        ))
    }

    /// Writes a change computed from `before`, with `answer` unless the change is a refusal;
    /// `None` if the job moved on since it was read, else the change and whether its answer is
    /// stored. A change with effects stores the answer in its transaction; a change of the job's
    /// row alone stays one statement, and its answer follows on the same connection (when that
    /// fails, the change stands and the caller stores the answer).
    async fn write_change(
        &self,
        before: Job,
        change: Change,
        answer: Option<Answer<Job>>,
    ) -> Result<Option<(Change, bool)>> {
        let clock = self.ports.clock.clone();
        let in_transaction = change.has_effects();
        let write = move |tx: &mut dyn Tx| {
            if !apply(tx, &*clock, &before, &change)? {
                return Ok(None);
            }
            let answer = answer.as_ref().filter(|_| change.refusal.is_none());
            let stored = idempotency::write_answer(tx, answer, &change.job);
            let stored = if in_transaction {
                stored?
            } else {
                stored.unwrap_or(false)
            };
            Ok(Some((change, stored)))
        };
        if in_transaction {
            self.store().transaction(write).await
        } else {
            self.store().single(write).await
        }
    }
}

/// What a written (or no-op) change answers: its job, or its refusal.
fn settled(change: Change, stored: bool) -> Result<Answered<Job>> {
    match change.refusal {
        Some(e) => Err(e),
        None => Ok(Answered {
            value: change.job,
            stored,
        }),
    }
}

/// Writes a change computed from `before` inside the caller's unit of work: the job's row by
/// compare-and-set, then its transfers, the attempt it ended and its log lines (waking the job's
/// log watchers). `false` when the job is no longer at the version the change was computed from.
fn apply(tx: &mut dyn Tx, clock: &dyn Clock, before: &Job, change: &Change) -> Result<bool> {
    if change.is_noop(before) {
        return Ok(true);
    }
    // Every change that is not a no-op moved the job one version on.
    if !tx.update_job(&change.job, before.version)? {
        return Ok(false);
    }
    let now = change.job.updated_at;
    post(tx, clock, &change.transfers, now)?;
    if let Some(a) = &change.attempt {
        tx.record_attempt(a)?;
    }
    if !change.files.is_empty() {
        tx.attach_files(change.job.id, &change.files)?;
    }
    if !change.log.is_empty() {
        tx.append_logs(change.job.id, &change.log, now)?;
        tx.notify(Announcement::Log(change.job.id))?;
    }
    if change.job.status == JobStatus::Queued && before.status != JobStatus::Queued {
        tx.notify(Announcement::Queued(change.job.id))?;
    }
    Ok(true)
}

/// Posts transfers with fresh ids.
fn post(tx: &mut dyn Tx, clock: &dyn Clock, transfers: &[Transfer], now: Timestamp) -> Result<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let rows: Vec<(TransferId, Transfer)> = transfers
        .iter()
        .map(|t| (TransferId(clock.new_id()), t.clone()))
        .collect();
    tx.post(&rows, now)
}
