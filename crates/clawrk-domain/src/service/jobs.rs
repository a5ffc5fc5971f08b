//! The job use cases: run (two phases), read and list, pay, cancel, pull, claim, accept, reject,
//! submit, give up, and what a log stream reads.

use super::idempotency::write_answer;
use super::{Answer, Answered, MAX_PROMPT_CHARS, Marketplace, apply};
use crate::error::{DomainError, Result};
use crate::files::{self, FileId, FileRole, JobFile};
use crate::ids::{AgentId, JobId, UserId};
use crate::job::{AgentRef, Job, JobDraft, JobStatus, LogLine, Output, Structured, Verdict};
use crate::lifecycle;
use crate::matching;
use crate::money::{Cents, Price, TimeLimit};
use crate::ports::{AgentLookup, Announcement, BoardStats, JobFilter, LogWatch, Page, Tx};
use crate::text::{is_blank, no_nul, no_nul_opt};
use crate::user::{self, Agent};
use std::collections::BTreeMap;

/// How many queued jobs a pull considers at once (the oldest eligible ones), among which matching
/// picks the best. Bounded so that a pull locks little and stays fast whatever the queue's size.
pub const PULL_CANDIDATES: u32 = 32;

/// A `run` request (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RunRequest {
    /// Natural-language task (required, non-blank).
    pub prompt: String,
    /// Secrets for the worker.
    pub env_vars: BTreeMap<String, String>,
    /// The sender's files (ids of their uploads).
    pub attachments: Vec<FileId>,
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

impl AgentSelector {
    /// The agent it names: the id wins over the name (trimmed), and neither is the default.
    pub fn lookup(&self) -> AgentLookup {
        match (self.id, &self.name) {
            (Some(id), _) => AgentLookup::Id(id),
            (None, Some(name)) => AgentLookup::Name(name.trim().to_string()),
            (None, None) => AgentLookup::Default,
        }
    }
}

/// The longest a pull may wait for a job, in seconds.
pub const MAX_PULL_WAIT_SECONDS: u32 = 30;

/// How often a waiting pull looks again without a wake-up (another process on the same SQLite
/// file, an announcement lost while the listener reconnected).
const PULL_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Whose jobs a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JobsOf {
    /// The jobs the caller sent.
    #[default]
    Sender,
    /// The jobs the caller's agents hold or worked on.
    Agent,
}

/// What a log stream reads in one round: the new lines, and whether the stream is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogUpdate {
    /// Lines after the stream's cursor, in order.
    pub lines: Vec<LogLine>,
    /// The latest verdict, once the stream is over ([`Job::log_finished`]).
    pub verdict: Option<Verdict>,
    /// Whether the stream is over.
    pub finished: bool,
    /// The job's status at this read.
    pub status: JobStatus,
}

/// The caller's agent named by `sel`, or their default agent.
fn agent_for(tx: &mut dyn Tx, user: UserId, sel: &AgentSelector) -> Result<Agent> {
    let found = match sel.lookup() {
        AgentLookup::Id(id) => tx.agent(id)?.filter(|a| a.owner_id == user),
        AgentLookup::Name(name) => tx.agents_of(user)?.into_iter().find(|a| a.name == name),
        AgentLookup::Default => tx.agents_of(user)?.into_iter().find(|a| a.is_default),
    };
    found.ok_or(DomainError::NotFound("agent"))
}

/// The agent acting on a specific job: the one named, else the caller's agent that holds the job,
/// else the caller's agent it was last presented to, else the default.
fn acting_agent(tx: &mut dyn Tx, user: UserId, job: &Job, sel: &AgentSelector) -> Result<AgentRef> {
    if let Some(h) = holding_agent(user, job, sel) {
        return Ok(h);
    }
    if sel.id.is_some() || sel.name.is_some() {
        return agent_for(tx, user, sel).map(|a| a.as_ref());
    }
    let mine = tx.agents_of(user)?;
    if let Some(a) = job
        .presented_to_agents
        .iter()
        .rev()
        .find_map(|p| mine.iter().find(|a| a.id == *p))
    {
        return Ok(a.as_ref());
    }
    mine.iter()
        .find(|a| a.is_default)
        .map(Agent::as_ref)
        .ok_or(DomainError::NotFound("agent"))
}

/// The agent acting on `job` without a read: the caller's agent that holds it, when the request
/// names none.
fn holding_agent(user: UserId, job: &Job, sel: &AgentSelector) -> Option<AgentRef> {
    if sel.id.is_some() || sel.name.is_some() {
        return None;
    }
    job.holder.filter(|h| h.owner_id == user)
}

fn no_context(_: &mut dyn Tx, _: &Job) -> Result<()> {
    Ok(())
}

impl Marketplace {
    /// Two-phase `run`. Input is checked before anything else; the structurer is called at most
    /// once per sender and prompt within the quote's lifetime, so phase 2 charges exactly what
    /// phase 1 showed.
    pub async fn run(&self, sender: UserId, req: RunRequest) -> Result<RunOutcome> {
        Ok(self.run_keyed(sender, req, None).await?.value)
    }

    /// [`Self::run`] for a request with an idempotency key: a job queued and paid is stored with
    /// its `answer` (an estimate is not idempotent, and a job waiting for payment is answered by
    /// the caller).
    pub async fn run_keyed(
        &self,
        sender: UserId,
        req: RunRequest,
        answer: Option<Answer<RunOutcome>>,
    ) -> Result<Answered<RunOutcome>> {
        if is_blank(&req.prompt) {
            return Err(DomainError::invalid("prompt is required"));
        }
        if req.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(DomainError::invalid(format!(
                "prompt must be at most {MAX_PROMPT_CHARS} characters"
            )));
        }
        no_nul("prompt", &req.prompt)?;
        let prompt = req.prompt.trim().to_string();
        for (k, v) in &req.env_vars {
            no_nul("envVars", k)?;
            no_nul(&format!("envVars.{k}"), v)?;
        }
        let price = req.price_cents.map(Price::new).transpose()?;
        let time_limit = req.time_limit_seconds.map(TimeLimit::new).transpose()?;
        let now = self.now();
        // The quote is for the prompt with these files: other files, another quote.
        let mut quoted = prompt.clone();
        for id in &req.attachments {
            quoted.push_str(&format!("\0{id}"));
        }
        let digest = user::prompt_digest(&quoted);
        let ids = req.attachments.clone();
        let (cached, found) = self
            .store()
            .read(move |tx| {
                let found = if ids.is_empty() {
                    Vec::new()
                } else {
                    tx.files(&ids)?
                };
                Ok((tx.quote(sender, &digest, now)?, found))
            })
            .await?;
        let files = files::owned(sender, &req.attachments, &found)?;
        let mut structured = match cached {
            Some(q) => q,
            None => {
                let s = self.ports.structurer.structure(&prompt, &files).await?;
                // A quote is kept so that phase 2 charges what phase 1 showed; a confirmed run
                // without a phase 1 showed nothing to keep.
                if !req.confirmed {
                    let expires = now.plus_seconds(self.config.quote_ttl_seconds);
                    let quote = s.clone();
                    self.store()
                        .single(move |tx| tx.put_quote(sender, &digest, &quote, expires))
                        .await?;
                }
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
            return Ok(Answered::unstored(RunOutcome::Estimate(structured)));
        }
        let draft = JobDraft {
            prompt,
            price: structured.estimated_price,
            time_limit: structured.estimated_time_limit,
            structured,
            env_vars: req.env_vars,
            files,
        };
        self.create_job(draft, sender, answer).await
    }

    /// Creates a confirmed job: paid and `queued` if the wallet covers the price, else
    /// `pending_payment` (the ledger decides, atomically with the job's creation).
    async fn create_job(
        &self,
        draft: JobDraft,
        sender: UserId,
        answer: Option<Answer<RunOutcome>>,
    ) -> Result<Answered<RunOutcome>> {
        let id = JobId(self.ports.clock.new_id());
        let now = self.now();
        let paid = lifecycle::create(draft.clone(), id, sender, true, now);
        let clock = self.ports.clock.clone();
        let inputs: Vec<JobFile> = draft
            .files
            .iter()
            .map(|f| JobFile {
                file: f.id,
                role: FileRole::Input,
                attempt: 0,
            })
            .collect();
        let attached = inputs.clone();
        let with_files = !inputs.is_empty();
        let attempt = self
            .store()
            .transaction(move |tx| {
                tx.insert_job(&paid.job)?;
                if !attached.is_empty() {
                    tx.attach_files(paid.job.id, &attached)?;
                }
                tx.notify(Announcement::Queued(paid.job.id))?;
                super::post(tx, &*clock, &paid.transfers, now)?;
                let queued = RunOutcome::Queued(paid.job);
                let stored = write_answer(tx, answer.as_ref(), &queued)?;
                Ok(Answered {
                    value: queued,
                    stored,
                })
            })
            .await;
        match attempt {
            Ok(queued) => Ok(queued),
            Err(DomainError::InsufficientBalance { available, .. }) => {
                let unpaid = lifecycle::create(draft, id, sender, false, now).job;
                let row = unpaid.clone();
                let write = move |tx: &mut dyn Tx| {
                    tx.insert_job(&row)?;
                    if !inputs.is_empty() {
                        tx.attach_files(row.id, &inputs)?;
                    }
                    Ok(())
                };
                // The job and its references together; a job alone is one statement.
                if with_files {
                    self.store().transaction(write).await?;
                } else {
                    self.store().single(write).await?;
                }
                Ok(Answered::unstored(RunOutcome::PendingPayment {
                    required: unpaid.price.cents(),
                    available,
                    job: unpaid,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// A job the caller may see. NotFound otherwise.
    pub async fn job(&self, user: UserId, id: JobId) -> Result<Job> {
        let job = self
            .store()
            .read(move |tx| tx.job(id))
            .await?
            .filter(|j| j.visible_to(user));
        job.ok_or(DomainError::NotFound("job"))
    }

    /// The caller's jobs, newest first: those they sent, or those their agents hold or worked on
    /// (of one of their agents, with `agent`).
    pub async fn jobs(
        &self,
        user: UserId,
        of: JobsOf,
        status: Option<JobStatus>,
        agent: Option<AgentId>,
        page: Page<JobId>,
    ) -> Result<Vec<Job>> {
        self.store()
            .read(move |tx| {
                if let Some(a) = agent {
                    match tx.agent(a)? {
                        Some(found) if found.owner_id == user => {}
                        _ => return Err(DomainError::NotFound("agent")),
                    }
                }
                let filter = JobFilter {
                    sender: (of == JobsOf::Sender).then_some(user),
                    worker: (of == JobsOf::Agent).then_some(user),
                    agent,
                    statuses: status.into_iter().collect(),
                };
                tx.jobs(&filter, page)
            })
            .await
    }

    /// The public board: `queued` jobs, newest first.
    pub async fn board(&self, page: Page<JobId>) -> Result<Vec<Job>> {
        let filter = JobFilter {
            statuses: vec![JobStatus::Queued],
            ..JobFilter::default()
        };
        self.store().read(move |tx| tx.jobs(&filter, page)).await
    }

    /// The marketplace's public numbers.
    pub async fn stats(&self) -> Result<BoardStats> {
        self.store()
            .read(|tx| {
                let found = tx.count_by_status()?;
                let count =
                    |s: JobStatus| found.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
                let counts: Vec<(JobStatus, i64)> =
                    JobStatus::ALL.iter().map(|s| (*s, count(*s))).collect();
                let queued = count(JobStatus::Queued);
                // The lower middle for an even count.
                let median = if queued > 0 {
                    tx.queued_price_at((queued - 1) / 2)?
                } else {
                    None
                };
                Ok(BoardStats {
                    jobs_verified: count(JobStatus::Verified),
                    counts,
                    total_paid_out: tx.transfer_total(crate::money::Reason::Earning)?,
                    median_queued_price: median,
                    agents: tx.count_agents()?,
                })
            })
            .await
    }

    /// Pays a `pending_payment` job.
    pub async fn pay(&self, user: UserId, id: JobId) -> Result<Job> {
        Ok(self.pay_keyed(user, id, None).await?.value)
    }

    /// [`Self::pay`], storing the idempotency `answer` with the payment.
    pub async fn pay_keyed(
        &self,
        user: UserId,
        id: JobId,
        answer: Option<Answer<Job>>,
    ) -> Result<Answered<Job>> {
        self.transition_from(
            None,
            id,
            no_context,
            move |job, _, now| lifecycle::pay(job, user, now),
            answer,
        )
        .await
    }

    /// Cancels a job (SPEC §3 table).
    pub async fn cancel(&self, user: UserId, id: JobId) -> Result<Job> {
        self.transition(id, no_context, move |job, _, now| {
            lifecycle::cancel(job, user, now)
        })
        .await
    }

    /// [`Marketplace::pull`], waiting up to `wait_seconds` (at most [`MAX_PULL_WAIT_SECONDS`]) for
    /// a matching job when there is none: every job queued on any instance wakes the waiting
    /// pulls (`watch`), which try again; a poll covers what no announcement reaches. Waiting holds
    /// no store connection.
    pub async fn pull_waiting(
        &self,
        user: UserId,
        sel: &AgentSelector,
        wait_seconds: i64,
        watch: &dyn LogWatch,
    ) -> Result<Option<Job>> {
        if !(0..=i64::from(MAX_PULL_WAIT_SECONDS)).contains(&wait_seconds) {
            return Err(DomainError::invalid(format!(
                "wait_seconds must be between 0 and {MAX_PULL_WAIT_SECONDS}"
            )));
        }
        // Watching starts before the first try, so a job queued in between is not missed.
        let mut waiter = watch.watch_queue();
        let until = self.now().plus_millis(wait_seconds * 1000);
        loop {
            if let Some(job) = self.pull(user, sel).await? {
                return Ok(Some(job));
            }
            let left = until.millis() - self.now().millis();
            if left <= 0 {
                return Ok(None);
            }
            let left = std::time::Duration::from_millis(left.unsigned_abs());
            waiter.wait(left.min(PULL_POLL)).await;
        }
    }

    /// Holds the best matching queued job for the caller's agent; `None` when nothing matches.
    /// One transaction: the agent, the candidates (locked, skipping those other pullers hold), the
    /// hold.
    pub async fn pull(&self, user: UserId, sel: &AgentSelector) -> Result<Option<Job>> {
        let sel = sel.clone();
        let hold = self.config.hold_seconds;
        let now = self.now();
        let clock = self.ports.clock.clone();
        let held = self
            .store()
            .transaction(move |tx| {
                // The agent comes with its candidates; without any, whether the agent exists
                // decides between "no such agent" and "no job".
                let Some((agent, candidates)) =
                    tx.pull_candidates(user, &sel.lookup(), PULL_CANDIDATES)?
                else {
                    agent_for(tx, user, &sel)?;
                    return Ok(None);
                };
                let Some(best) = matching::pick(&agent, &candidates) else {
                    return Ok(None);
                };
                let change = lifecycle::hold(best, agent.as_ref(), hold, now)?;
                if !apply(tx, &*clock, best, &change)? {
                    return Err(DomainError::Internal("a locked candidate changed".into()));
                }
                Ok(Some(change.job))
            })
            .await?;
        if let Some(job) = &held {
            self.recent.put(job);
        }
        Ok(held)
    }

    /// Holds one specific queued job.
    pub async fn claim(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let sel = sel.clone();
        let hold = self.config.hold_seconds;
        let held = self
            .transition(
                id,
                move |tx, _| agent_for(tx, user, &sel).map(|a| a.as_ref()),
                move |job, agent, now| lifecycle::hold(job, *agent, hold, now),
            )
            .await?;
        self.recent.put(&held);
        Ok(held)
    }

    /// The copy this instance kept of job `id` while one of `user`'s agents holds it and the
    /// request names no agent: the holder acts then ([`holding_agent`]), so accept and reject
    /// need no read to know who.
    fn recent_hold(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Option<(Job, AgentRef)> {
        let job = self.recent.get(id)?;
        let holder = holding_agent(user, &job, sel)?;
        Some((job, holder))
    }

    /// Accepts a held job: the attempt starts.
    pub async fn accept(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let known = self.recent_hold(user, id, sel);
        let sel = sel.clone();
        let accepted = self
            .transition_from(
                known,
                id,
                move |tx, job| acting_agent(tx, user, job, &sel),
                |job, agent, now| lifecycle::accept(job, *agent, now),
                None,
            )
            .await;
        match &accepted {
            Ok(a) => self.recent.put(&a.value),
            Err(_) => self.recent.forget(id),
        }
        Ok(accepted?.value)
    }

    /// Rejects a held job.
    pub async fn reject(&self, user: UserId, id: JobId, sel: &AgentSelector) -> Result<Job> {
        let known = self.recent_hold(user, id, sel);
        let sel = sel.clone();
        let rejected = self
            .transition_from(
                known,
                id,
                move |tx, job| acting_agent(tx, user, job, &sel),
                |job, agent, now| lifecycle::reject(job, *agent, now),
                None,
            )
            .await;
        self.recent.forget(id);
        Ok(rejected?.value)
    }

    /// Submits output for the caller's running attempt.
    pub async fn submit(&self, user: UserId, id: JobId, output: Output) -> Result<Job> {
        Ok(self.submit_keyed(user, id, output, None).await?.value)
    }

    /// [`Self::submit`], storing the idempotency `answer` with the submission.
    pub async fn submit_keyed(
        &self,
        user: UserId,
        id: JobId,
        output: Output,
        answer: Option<Answer<Job>>,
    ) -> Result<Answered<Job>> {
        no_nul_opt("output", output.text())?;
        let ids = output.file_ids().to_vec();
        // Without files there is nothing to read beside the job, which this instance may have.
        let known = if ids.is_empty() {
            self.recent.get(id).map(|job| (job, Vec::new()))
        } else {
            None
        };
        let submitted = self
            .transition_from(
                known,
                id,
                move |tx, _| {
                    if ids.is_empty() {
                        Ok(Vec::new())
                    } else {
                        tx.files(&ids)
                    }
                },
                move |job, found, now| {
                    if !job.visible_to(user) {
                        return Err(DomainError::NotFound("job"));
                    }
                    let files = files::owned(user, output.file_ids(), found)?;
                    lifecycle::submit(job, user, output.clone().with_files(files), now)
                },
                answer,
            )
            .await;
        self.recent.forget(id);
        submitted
    }

    /// Gives up the caller's running attempt; the reason goes into the job's log.
    pub async fn give_up(&self, user: UserId, id: JobId, reason: Option<String>) -> Result<Job> {
        no_nul_opt("reason", reason.as_deref())?;
        let known = self.recent.get(id).map(|job| (job, ()));
        let given_up = self
            .transition_from(
                known,
                id,
                no_context,
                move |job, _, now| lifecycle::give_up(job, user, reason.as_deref(), now),
                None,
            )
            .await;
        self.recent.forget(id);
        Ok(given_up?.value)
    }

    /// Opens the job's log for `user` ([`Job::ensure_log_access`]): every line so far, and whether
    /// the stream is over already.
    pub async fn open_log(&self, user: UserId, id: JobId) -> Result<LogUpdate> {
        let (job, update) = self.read_log(id, 0).await?;
        job.ensure_log_access(user)?;
        Ok(update)
    }

    /// The job's log lines after `after`, and whether its stream is over.
    pub async fn log_update(&self, id: JobId, after: i64) -> Result<LogUpdate> {
        Ok(self.read_log(id, after).await?.1)
    }

    /// The job and its lines after `after`, in one statement: a verdict commits together with its
    /// lines, so a read that sees the stream over has all of them.
    async fn read_log(&self, id: JobId, after: i64) -> Result<(Job, LogUpdate)> {
        let (job, lines) = self
            .store()
            .read(move |tx| tx.job_with_logs(id, after))
            .await?
            .ok_or(DomainError::NotFound("job"))?;
        let finished = job.log_finished();
        let status = job.status;
        let verdict = if finished {
            job.verification.clone()
        } else {
            None
        };
        Ok((
            job,
            LogUpdate {
                lines,
                verdict,
                finished,
                status,
            },
        ))
    }
}
