//! [`Marketplace`]: the use cases of SPEC §5–§6, orchestrating the ports.
//!
//! The HTTP adapter calls one method per route; the server's background tasks call
//! [`Marketplace::verify_next`] and [`Marketplace::sweep`]. Nothing here knows about HTTP.

use crate::error::{DomainError, Result};
use crate::ids::{AgentId, JobId, TransferId, UserId};
use crate::job::{Job, JobDraft, JobStatus, LogLevel, Output, RawJson, Structured, Verdict};
use crate::money::{Cents, LedgerEntry, MIN_TOPUP, MIN_WITHDRAWAL, Price, Reason, TimeLimit};
use crate::ports::{
    Clock, LogSink, Page, PaymentGateway, PayoutGateway, Store, Structurer, SweepReport, Verifier,
    VerifyTask,
};
use crate::user::Agent;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 20_000;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_seconds: 30,
            quote_ttl_seconds: 15 * 60,
            verification_lease: Duration::from_secs(60),
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
}

/// A `run` request (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RunRequest {
    /// Natural-language task (required, non-blank).
    pub prompt: String,
    /// Secrets for the worker.
    pub env_vars: BTreeMap<String, String>,
    /// Attachments (a JSON array).
    pub attachments: RawJson,
    /// Price override in cents.
    pub price_cents: Option<i64>,
    /// Time limit override in seconds.
    pub time_limit_seconds: Option<i64>,
    /// Phase 2: create and pay.
    pub confirmed: bool,
}

/// What `run` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Phase 1: the structured job with the price and time limit that phase 2 will use.
    Estimate(Structured),
    /// Phase 2, paid: the job is `queued`.
    Queued(Job),
    /// Phase 2, wallet short: the job is `pending_payment`.
    PendingPayment {
        /// The job.
        job: Job,
        /// Its price.
        required: Cents,
        /// The wallet's balance.
        available: Cents,
    },
}

/// Which of the caller's agents acts: by id, by name, or (neither) the natural default.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AgentSelector {
    /// By id.
    pub id: Option<AgentId>,
    /// By name.
    pub name: Option<String>,
}

/// The marketplace's use cases.
#[derive(Clone)]
pub struct Marketplace {
    ports: Ports,
    config: Config,
}

/// Writes the verifier's progress into the job's log.
struct JobLog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    job: JobId,
}

#[async_trait]
impl LogSink for JobLog {
    async fn log(&self, level: LogLevel, message: String) {
        // A lost progress line must not fail the verification; the verdict is what counts.
        let _ = self
            .store
            .append_log(self.job, level, message, self.clock.now())
            .await;
    }
}

/// Drops progress lines (standalone verification stores nothing).
struct NoLog;

#[async_trait]
impl LogSink for NoLog {
    async fn log(&self, _level: LogLevel, _message: String) {}
}

impl Marketplace {
    /// A marketplace over `ports`.
    pub fn new(ports: Ports, config: Config) -> Self {
        Marketplace { ports, config }
    }

    /// The store (for routes that only read).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.ports.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ports.clock
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Two-phase `run`. Overrides are range-checked before anything else; the structurer is called
    /// at most once per sender and prompt within the quote's lifetime, so phase 2 charges exactly what
    /// phase 1 showed.
    pub async fn run(&self, sender: UserId, req: RunRequest) -> Result<RunOutcome> {
        let prompt = req.prompt.trim().to_string();
        if prompt.is_empty() {
            return Err(DomainError::invalid("prompt is required"));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(DomainError::invalid(format!(
                "prompt must be at most {MAX_PROMPT_CHARS} characters"
            )));
        }
        let price = req.price_cents.map(Price::new).transpose()?;
        let time_limit = req.time_limit_seconds.map(TimeLimit::new).transpose()?;
        let now = self.ports.clock.now();
        let store = &self.ports.store;
        let mut structured = match store.quote(sender, prompt.clone(), now).await? {
            Some(q) => q,
            None => {
                let s = self.ports.structurer.structure(&prompt).await?;
                let expires = now.plus_seconds(self.config.quote_ttl_seconds);
                store
                    .save_quote(sender, prompt.clone(), s.clone(), expires)
                    .await?;
                s
            }
        };
        if let Some(p) = price {
            structured.estimated_price = p;
        }
        if let Some(t) = time_limit {
            structured.estimated_time_limit = t;
        }
        if !req.confirmed {
            return Ok(RunOutcome::Estimate(structured));
        }
        let draft = JobDraft {
            prompt,
            price: structured.estimated_price,
            time_limit: structured.estimated_time_limit,
            structured,
            env_vars: req.env_vars,
            attachments: req.attachments,
        };
        let (job, available) = store.create_job(draft, sender, now).await?;
        Ok(if job.status == JobStatus::PendingPayment {
            RunOutcome::PendingPayment {
                required: job.price.cents(),
                available,
                job,
            }
        } else {
            RunOutcome::Queued(job)
        })
    }

    /// A job the caller may see. NotFound otherwise.
    pub async fn job(&self, user: UserId, id: JobId) -> Result<Job> {
        let job = self.ports.store.job(id).await?;
        if job.visible_to(user) {
            Ok(job)
        } else {
            Err(DomainError::NotFound("job"))
        }
    }

    /// The caller's sent jobs, newest first.
    pub async fn jobs(
        &self,
        sender: UserId,
        status: Option<JobStatus>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        self.ports.store.list_jobs(sender, status, page).await
    }

    /// Pays a `pending_payment` job.
    pub async fn pay(&self, user: UserId, id: JobId) -> Result<Job> {
        self.ports.store.pay(id, user, self.ports.clock.now()).await
    }

    /// Cancels a job (SPEC §3 table).
    pub async fn cancel(&self, user: UserId, id: JobId) -> Result<Job> {
        self.ports
            .store
            .cancel(id, user, self.ports.clock.now())
            .await
    }

    /// The caller's agent named by `sel`, or their default agent.
    pub async fn agent_for(&self, user: UserId, sel: &AgentSelector) -> Result<Agent> {
        let store = &self.ports.store;
        match (&sel.id, &sel.name) {
            (Some(id), _) => store.agent(user, *id).await,
            (None, Some(name)) => store.agent_by_name(user, name).await,
            (None, None) => {
                let agents = store.agents(user).await?;
                agents
                    .into_iter()
                    .find(|a| a.is_default)
                    .ok_or(DomainError::NotFound("agent"))
            }
        }
    }

    /// The agent acting on a specific job: the one named, else the caller's agent that holds (or
    /// last held) the job, else the default.
    async fn acting_agent(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Agent> {
        if sel.id.is_some() || sel.name.is_some() {
            return self.agent_for(user, sel).await;
        }
        let job = self.ports.store.job(id).await?;
        let store = &self.ports.store;
        if let Some(h) = job.holder.filter(|h| h.owner_id == user) {
            return store.agent(user, h.agent_id).await;
        }
        let mine = store.agents(user).await?;
        if let Some(a) = job
            .presented_to_agents
            .iter()
            .rev()
            .find_map(|p| mine.iter().find(|a| a.id == *p))
        {
            return Ok(a.clone());
        }
        self.agent_for(user, sel).await
    }

    /// Holds the best matching queued job for the caller's agent; `None` when nothing matches.
    pub async fn pull(&self, user: UserId, sel: &AgentSelector) -> Result<Option<Job>> {
        let agent = self.agent_for(user, sel).await?;
        let now = self.ports.clock.now();
        self.ports
            .store
            .pull(agent, self.config.hold_seconds, now)
            .await
    }

    /// Holds one specific queued job.
    pub async fn claim(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let agent = self.agent_for(user, sel).await?;
        let now = self.ports.clock.now();
        self.ports
            .store
            .claim(id, agent.as_ref(), self.config.hold_seconds, now)
            .await
    }

    /// Accepts a held job: the attempt starts.
    pub async fn accept(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let agent = self.acting_agent(user, id, sel).await?;
        let now = self.ports.clock.now();
        self.ports.store.accept(id, agent.as_ref(), now).await
    }

    /// Rejects a held job.
    pub async fn reject(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let agent = self.acting_agent(user, id, sel).await?;
        let now = self.ports.clock.now();
        self.ports.store.reject(id, agent.as_ref(), now).await
    }

    /// Submits output for the caller's running attempt.
    pub async fn submit(&self, user: UserId, id: JobId, output: Output) -> Result<Job> {
        let now = self.ports.clock.now();
        self.ports.store.submit(id, user, output, now).await
    }

    /// Gives up the caller's running attempt; the reason goes into the job's log.
    pub async fn give_up(&self, user: UserId, id: JobId, reason: Option<String>) -> Result<Job> {
        let now = self.ports.clock.now();
        let job = self.ports.store.give_up(id, user, now).await?;
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no reason given".into());
        let msg = format!(
            "attempt {} given up by the agent: {reason}",
            job.attempt_count
        );
        // The failure is committed; a lost log line must not turn it into an error.
        let _ = self
            .ports
            .store
            .append_log(id, LogLevel::Warn, msg, now)
            .await;
        Ok(job)
    }

    /// Standalone verification: judges an output, stores and pays nothing.
    pub async fn verify_standalone(
        &self,
        requirements: String,
        acceptance_criteria: Vec<String>,
        output: String,
    ) -> Result<Verdict> {
        if requirements.trim().is_empty() {
            return Err(DomainError::invalid("requirements is required"));
        }
        if output.trim().is_empty() {
            return Err(DomainError::invalid("output is required"));
        }
        let task = VerifyTask {
            title: String::new(),
            description: String::new(),
            requirements,
            acceptance_criteria,
            output,
            attachments: None,
        };
        let a = self.ports.verifier.verify(&task, Arc::new(NoLog)).await?;
        Ok(a.at(self.ports.clock.now()))
    }

    /// Verifies the oldest submitted job awaiting a verdict, if any, and applies the verdict.
    /// Returns the job after the verdict, or `None` when there was nothing to verify. A verifier
    /// error is logged on the job and returned; the job stays `submitted` and is taken up again when
    /// its lease lapses.
    pub async fn verify_next(&self) -> Result<Option<Job>> {
        let store = &self.ports.store;
        let clock = &self.ports.clock;
        let Some(job) = store
            .lease_verification(clock.now(), self.config.verification_lease)
            .await?
        else {
            return Ok(None);
        };
        let sink: Arc<dyn LogSink> = Arc::new(JobLog {
            store: store.clone(),
            clock: clock.clone(),
            job: job.id,
        });
        let task = VerifyTask::for_job(&job);
        match self.ports.verifier.verify(&task, sink.clone()).await {
            Ok(assessment) => {
                let now = clock.now();
                let verdict = assessment.at(now);
                let after = store
                    .apply_verdict(job.id, job.attempt_count, verdict, now)
                    .await?;
                Ok(Some(after))
            }
            Err(e) => {
                let retry = self.config.verification_lease.as_secs();
                sink.log(
                    LogLevel::Error,
                    format!("verifier error: {e}; retrying in {retry} s"),
                )
                .await;
                Err(e.into())
            }
        }
    }

    /// One deadline sweep.
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.ports.store.sweep(self.ports.clock.now()).await
    }

    /// Tops up the wallet through the payment port; returns the new balance.
    pub async fn topup(&self, user: UserId, amount: Cents) -> Result<Cents> {
        if amount < MIN_TOPUP {
            return Err(DomainError::invalid(format!(
                "amount_cents must be at least {}",
                MIN_TOPUP.get()
            )));
        }
        self.ports.payments.collect(user, amount).await?;
        let now = self.ports.clock.now();
        self.ports
            .store
            .adjust_balance(user, amount, Reason::Topup, now)
            .await
    }

    /// Withdraws from the wallet through the payout port; returns the new balance. The wallet is
    /// debited first (so it cannot be spent twice) and credited back if the payout fails.
    pub async fn withdraw(&self, user: UserId, amount: Cents) -> Result<Cents> {
        if amount < MIN_WITHDRAWAL {
            return Err(DomainError::invalid(format!(
                "amount_cents must be at least {}",
                MIN_WITHDRAWAL.get()
            )));
        }
        self.ports.payouts.available().await?;
        let store = &self.ports.store;
        let clock = &self.ports.clock;
        let neg = Cents(-amount.get());
        let after = store
            .adjust_balance(user, neg, Reason::Withdrawal, clock.now())
            .await?;
        if let Err(e) = self.ports.payouts.send(user, amount).await {
            store
                .adjust_balance(user, amount, Reason::Adjustment, clock.now())
                .await?;
            return Err(e);
        }
        Ok(after)
    }

    /// The wallet's balance and a page of its ledger.
    pub async fn wallet(
        &self,
        user: UserId,
        page: Page<TransferId>,
    ) -> Result<(Cents, Vec<LedgerEntry>)> {
        let u = self.ports.store.user(user).await?;
        let ledger = self.ports.store.ledger(user, page).await?;
        Ok((u.balance_cents, ledger))
    }
}
