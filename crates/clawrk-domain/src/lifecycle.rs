//! The job state machine of SPEC §3: one pure function per trigger.
//!
//! Each function takes the job as it is, who acts and `now`, and returns either a typed error (and
//! nothing changes) or a [`Change`]: the new job, the ledger transfers the step causes, the attempt
//! it ends and the lines it adds to the job's log. The service applies a change atomically. Two
//! triggers change the job *and* refuse the caller: an `accept` after the hold lapsed (the job is
//! released, the caller gets "hold expired") and a `submit` at or after the deadline (the attempt
//! fails, the caller gets "time limit exceeded"); those carry the error in [`Change::refusal`].

use crate::error::{DomainError, Result};
use crate::files::{self, FileRole, JobFile};
use crate::ids::{JobId, Timestamp, UserId};
use crate::job::{AgentRef, Job, JobDraft, JobRecord, JobStatus, LogLevel, Output, Verdict};
use crate::money::{self, Transfer};
use crate::ports::{AttemptOutcome, AttemptRecord, NewLogLine};

/// How many attempts a job gets before it fails for good.
pub const MAX_ATTEMPTS: u32 = 3;

/// The outcome of a legal transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The job after the transition.
    pub job: Job,
    /// Money moved by it (possibly none).
    pub transfers: Vec<Transfer>,
    /// The attempt it ended, if any.
    pub attempt: Option<AttemptRecord>,
    /// Lines it adds to the job's log (what log streams show).
    pub log: Vec<NewLogLine>,
    /// Files it makes the job reference (a submission's).
    pub files: Vec<JobFile>,
    /// Set when the change must be applied but the caller still gets this error.
    pub refusal: Option<DomainError>,
}

impl Change {
    fn new(record: JobRecord, transfers: Vec<Transfer>) -> Change {
        Change {
            job: Job::from_transition(record),
            transfers,
            attempt: None,
            log: Vec::new(),
            files: Vec::new(),
            refusal: None,
        }
    }

    /// The job unchanged (a cancel of a final job, say).
    pub fn unchanged(job: &Job) -> Change {
        Change::new(job.record().clone(), Vec::new())
    }

    fn refused(mut self, error: DomainError) -> Change {
        self.refusal = Some(error);
        self
    }

    fn note(mut self, level: LogLevel, message: impl Into<String>) -> Change {
        self.log.push((level, message.into()));
        self
    }

    /// Whether the job or the money changed at all (a no-op cancel does not).
    pub fn is_noop(&self, before: &Job) -> bool {
        self.transfers.is_empty() && self.log.is_empty() && self.job == *before
    }

    /// Whether applying it takes more than the job's own row (money, an attempt record, log
    /// lines): then it needs a transaction.
    pub fn has_effects(&self) -> bool {
        !self.transfers.is_empty()
            || self.attempt.is_some()
            || !self.log.is_empty()
            || !self.files.is_empty()
    }
}

/// The job's record, stamped as changed at `now` (one version later).
fn edit(job: &Job, now: Timestamp) -> JobRecord {
    let mut r = job.record().clone();
    r.updated_at = now;
    r.version = job.version + 1;
    r
}

fn invalid(job: &Job, action: &'static str) -> DomainError {
    DomainError::InvalidState {
        status: job.status,
        action,
    }
}

fn ensure_visible(job: &Job, user: UserId) -> Result<()> {
    if job.visible_to(user) {
        Ok(())
    } else {
        Err(DomainError::NotFound("job"))
    }
}

fn ensure_sender(job: &Job, user: UserId, action: &str) -> Result<()> {
    ensure_visible(job, user)?;
    if job.sender == user {
        Ok(())
    } else {
        Err(DomainError::forbidden(format!(
            "only the sender can {action} this job"
        )))
    }
}

/// A confirmed `run`: a new job, `queued` with its price moved from the sender's wallet into escrow
/// when `paid`, else `pending_payment` with nothing moved. The service tries the paid job first;
/// the ledger refuses it when the wallet does not cover the price, and then the unpaid one is made.
pub fn create(draft: JobDraft, id: JobId, sender: UserId, paid: bool, now: Timestamp) -> Change {
    let record = JobRecord {
        id,
        status: if paid {
            JobStatus::Queued
        } else {
            JobStatus::PendingPayment
        },
        prompt: draft.prompt,
        title: draft.structured.title,
        description: draft.structured.description,
        requirements: draft.structured.requirements,
        acceptance_criteria: draft.structured.acceptance_criteria,
        sender,
        receiver: None,
        receiver_agent_id: None,
        holder: None,
        hold_expires_at: None,
        price: draft.price,
        time_limit: draft.time_limit,
        accepted_at: None,
        deadline_at: None,
        submitted_at: None,
        completed_at: None,
        attempt_count: 0,
        cancellation_requested: false,
        output_text: None,
        output_attachments: None,
        env_vars: draft.env_vars,
        attachments: files::attachments_json(&draft.files),
        presented_to_agents: Vec::new(),
        verification: None,
        verify_errors: 0,
        review_due_at: None,
        structured_by: draft.structured.structured_by,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    if paid {
        Change::new(record, vec![money::payment(id, draft.price, sender)])
    } else {
        Change::new(record, Vec::new())
    }
}

/// `pay` a `pending_payment` job from the sender's wallet. The ledger refuses the payment with
/// [`DomainError::InsufficientBalance`] when the wallet does not cover the price.
pub fn pay(job: &Job, user: UserId, now: Timestamp) -> Result<Change> {
    ensure_sender(job, user, "pay for")?;
    if job.status != JobStatus::PendingPayment {
        return Err(invalid(job, "pay for"));
    }
    let mut r = edit(job, now);
    r.status = JobStatus::Queued;
    Ok(Change::new(
        r,
        vec![money::payment(job.id, job.price, job.sender)],
    ))
}

/// `pull` or `claim`: the agent holds a `queued` job until `now + hold_seconds`. A job that is not
/// `queued` is "invalid state" to a caller who can see it, and "not found" to anyone else, so that
/// a stranger never learns that a job exists.
pub fn hold(job: &Job, agent: AgentRef, hold_seconds: u32, now: Timestamp) -> Result<Change> {
    if job.status != JobStatus::Queued {
        ensure_visible(job, agent.owner_id)?;
        return Err(invalid(job, "claim"));
    }
    if job.sender == agent.owner_id {
        return Err(DomainError::forbidden("you cannot take your own job"));
    }
    let mut r = edit(job, now);
    r.status = JobStatus::Held;
    r.holder = Some(agent);
    r.hold_expires_at = Some(now.plus_seconds(hold_seconds));
    if !r.presented_to_agents.contains(&agent.agent_id) {
        r.presented_to_agents.push(agent.agent_id);
    }
    Ok(Change::new(r, Vec::new()))
}

fn release(job: &Job, now: Timestamp) -> JobRecord {
    let mut r = edit(job, now);
    r.status = JobStatus::Queued;
    r.holder = None;
    r.hold_expires_at = None;
    r
}

/// Whether `agent` lost a hold it had on this job (it was presented, and holds it no longer).
fn lost_hold(job: &Job, agent: AgentRef) -> bool {
    job.was_presented_to(agent.agent_id) && job.holder.map(|h| h.agent_id) != Some(agent.agent_id)
}

/// Checks that `agent` may act as this job's holder; the error tells a stranger (404), a visible
/// non-holder (403) and a lapsed holder (410) apart.
fn ensure_holder(job: &Job, agent: AgentRef, action: &'static str) -> Result<()> {
    let holds = job.holder.map(|h| h.agent_id) == Some(agent.agent_id);
    if holds {
        return Ok(());
    }
    if lost_hold(job, agent) && matches!(job.status, JobStatus::Queued | JobStatus::Held) {
        return Err(DomainError::HoldExpired);
    }
    ensure_visible(job, agent.owner_id)?;
    if job.status == JobStatus::Held || job.status == JobStatus::Queued {
        Err(DomainError::forbidden(format!(
            "only the agent holding this job can {action} it"
        )))
    } else {
        Err(invalid(job, action))
    }
}

/// `reject` by the holder: back to `queued`, no penalty. A holder whose hold already lapsed gets
/// [`DomainError::HoldExpired`] — the job is already back in the queue.
pub fn reject(job: &Job, agent: AgentRef, now: Timestamp) -> Result<Change> {
    ensure_holder(job, agent, "reject")?;
    Ok(Change::new(release(job, now), Vec::new()))
}

/// The sweeper releases a hold that lapsed (`hold_expires_at <= now`).
pub fn expire_hold(job: &Job, now: Timestamp) -> Result<Change> {
    match (job.status, job.hold_expires_at) {
        (JobStatus::Held, Some(at)) if at <= now => Ok(Change::new(release(job, now), Vec::new())),
        _ => Err(invalid(job, "release the hold of")),
    }
}

/// `accept` by the holder before the hold lapses: the attempt starts and the clock runs. Found
/// lapsed, the job is released and the caller refused with [`DomainError::HoldExpired`].
pub fn accept(job: &Job, agent: AgentRef, now: Timestamp) -> Result<Change> {
    ensure_holder(job, agent, "accept")?;
    if job.hold_expires_at.is_some_and(|at| at <= now) {
        return Ok(Change::new(release(job, now), Vec::new()).refused(DomainError::HoldExpired));
    }
    let mut r = edit(job, now);
    r.status = JobStatus::Accepted;
    r.holder = None;
    r.hold_expires_at = None;
    r.receiver = Some(agent.owner_id);
    r.receiver_agent_id = Some(agent.agent_id);
    r.accepted_at = Some(now);
    r.deadline_at = Some(now.plus_seconds(job.time_limit.seconds()));
    r.submitted_at = None;
    r.output_text = None;
    r.output_attachments = None;
    r.verification = None;
    r.attempt_count = job
        .attempt_count
        .checked_add(1)
        .ok_or_else(|| DomainError::Internal("attempt count overflow".into()))?;
    Ok(Change::new(r, Vec::new()))
}

/// Checks that `user` is the receiver of the running attempt.
fn ensure_receiver(job: &Job, user: UserId, action: &'static str) -> Result<()> {
    ensure_visible(job, user)?;
    if job.receiver != Some(user) {
        return Err(DomainError::forbidden(format!(
            "only the agent working on this job can {action} it"
        )));
    }
    if job.status != JobStatus::Accepted {
        return Err(invalid(job, action));
    }
    Ok(())
}

/// The attempt-failure rule (the seed's "failJob"), in this order: a requested cancellation cancels
/// and refunds; a third failed attempt fails and refunds; otherwise the job goes back to the queue
/// for another agent, receiver fields kept for history and the deadline cleared. Attempts are
/// counted at accept only, so this reads the count and never increments it. The attempt is
/// recorded as failed and `why` (what ended it) goes into the log with what happens next.
fn fail_attempt(mut r: JobRecord, why: String, now: Timestamp) -> Change {
    r.deadline_at = None;
    r.holder = None;
    r.hold_expires_at = None;
    let n = r.attempt_count;
    let attempt = r.receiver_agent_id.map(|agent_id| AttemptRecord {
        job_id: r.id,
        number: n,
        agent_id,
        outcome: AttemptOutcome::Failed,
        earned: crate::money::Cents::ZERO,
    });
    let refund = money::refund(r.id, r.price, r.sender);
    let (change, next) = if r.cancellation_requested {
        r.status = JobStatus::Cancelled;
        r.completed_at = Some(now);
        (
            Change::new(r, vec![refund]),
            "the job is cancelled as the sender asked, and the sender refunded".to_string(),
        )
    } else if n >= MAX_ATTEMPTS {
        r.status = JobStatus::Failed;
        r.completed_at = Some(now);
        (
            Change::new(r, vec![refund]),
            format!("the job failed after {MAX_ATTEMPTS} attempts, and the sender is refunded"),
        )
    } else {
        r.status = JobStatus::Queued;
        (
            Change::new(r, Vec::new()),
            format!("re-queued for another agent (attempt {n}/{MAX_ATTEMPTS} used)"),
        )
    };
    let mut change = change
        .note(LogLevel::Warn, format!("attempt {n} failed: {why}"))
        .note(LogLevel::Info, next);
    change.attempt = attempt;
    change
}

/// `submit` by the receiver before the deadline: output stored, verification starts. At or after
/// the deadline the attempt fails and the caller is refused with [`DomainError::DeadlinePassed`].
pub fn submit(job: &Job, user: UserId, output: Output, now: Timestamp) -> Result<Change> {
    ensure_receiver(job, user, "submit")?;
    if job.deadline_at.is_none_or(|d| now >= d) {
        let why = "submitted after the deadline".to_string();
        return Ok(fail_attempt(edit(job, now), why, now).refused(DomainError::DeadlinePassed));
    }
    let mut r = edit(job, now);
    r.status = JobStatus::Submitted;
    r.submitted_at = Some(now);
    r.verify_errors = 0;
    r.review_due_at = None;
    r.output_text = output.text().map(str::to_string);
    r.output_attachments = Some(files::attachments_json(output.files()));
    let attempt = r.attempt_count;
    let mut change = Change::new(r, Vec::new());
    change.files = output
        .files()
        .iter()
        .map(|f| JobFile {
            file: f.id,
            role: FileRole::Output,
            attempt,
        })
        .collect();
    Ok(change)
}

/// `fail` by the receiver: the agent gives up the attempt, with an optional reason for the log.
pub fn give_up(job: &Job, user: UserId, reason: Option<&str>, now: Timestamp) -> Result<Change> {
    ensure_receiver(job, user, "fail")?;
    let why = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("given up by the agent: {r}"),
        None => "given up by the agent (no reason given)".to_string(),
    };
    Ok(fail_attempt(edit(job, now), why, now))
}

/// The sweeper fails an attempt whose deadline passed (`deadline_at <= now`).
pub fn expire_deadline(job: &Job, now: Timestamp) -> Result<Change> {
    match (job.status, job.deadline_at) {
        (JobStatus::Accepted, Some(d)) if d <= now => Ok(fail_attempt(
            edit(job, now),
            "the deadline passed without a submission".to_string(),
            now,
        )),
        _ => Err(invalid(job, "expire the deadline of")),
    }
}

/// The log lines that report a verdict: one per criterion, then the verdict.
pub fn verdict_lines(verdict: &Verdict) -> Vec<NewLogLine> {
    let n = verdict.criteria.len();
    let mut lines: Vec<NewLogLine> = verdict
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (level, word) = if c.passed {
                (LogLevel::Info, "met")
            } else {
                (LogLevel::Warn, "not met")
            };
            let note = if c.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", c.note)
            };
            (
                level,
                format!("criterion {}/{n} {word}: {}{note}", i + 1, c.criterion),
            )
        })
        .collect();
    let word = if verdict.passed { "passed" } else { "failed" };
    lines.push((
        LogLevel::Info,
        format!("verdict: {word} — {}", verdict.reasoning),
    ));
    lines
}

/// The verifier's verdict on a `submitted` job: a pass settles the escrow (the receiver gets price −
/// fee, the platform the fee) — also when cancellation was requested, since the work was done in
/// good faith; a fail keeps the verdict and fails the attempt.
pub fn apply_verdict(job: &Job, verdict: Verdict, now: Timestamp) -> Result<Change> {
    if job.status != JobStatus::Submitted {
        return Err(invalid(job, "apply a verdict to"));
    }
    let receiver = job
        .receiver
        .ok_or_else(|| DomainError::Internal("submitted job without receiver".into()))?;
    let mut r = edit(job, now);
    let passed = verdict.passed;
    let report = verdict_lines(&verdict);
    r.verification = Some(verdict);
    r.review_due_at = None;
    let mut change = if passed {
        r.status = JobStatus::Verified;
        r.completed_at = Some(now);
        r.deadline_at = None;
        let transfers = money::settlement(job.id, job.price, receiver);
        let share = job.price.worker_share();
        let mut c = Change::new(r, transfers).note(
            LogLevel::Info,
            format!("the job is verified: the agent's owner earns {share}"),
        );
        c.attempt = job.receiver_agent_id.map(|agent_id| AttemptRecord {
            job_id: job.id,
            number: job.attempt_count,
            agent_id,
            outcome: AttemptOutcome::Verified,
            earned: share,
        });
        c
    } else {
        fail_attempt(r, "the output did not pass verification".into(), now)
    };
    // The verdict's own lines come before what it caused.
    change.log.splice(0..0, report);
    Ok(change)
}

/// The verifier failed on a `submitted` job (`why`): the failure is counted, and at the
/// `max_errors`-th the submission goes to the sender's review, approved automatically after
/// `review_seconds` without a decision — never held against the agent. `None` when the job moved
/// on meanwhile (another attempt, a verdict), so nothing is written.
pub fn verifier_failed(
    job: &Job,
    attempt: u32,
    why: &str,
    max_errors: u32,
    retry_seconds: u64,
    review_seconds: u32,
    now: Timestamp,
) -> Option<Change> {
    if job.status != JobStatus::Submitted
        || job.attempt_count != attempt
        || job.review_due_at.is_some()
    {
        return None;
    }
    let mut r = edit(job, now);
    r.verify_errors = job.verify_errors.saturating_add(1);
    let n = r.verify_errors;
    let change =
        if n >= max_errors.max(1) {
            let due = now.plus_seconds(review_seconds);
            r.review_due_at = Some(due);
            Change::new(r, Vec::new())
            .note(LogLevel::Error, format!("verifier error ({n}/{max_errors}): {why}"))
            .note(
                LogLevel::Warn,
                format!(
                    "the verifier failed {n} times: the sender reviews the submission (approve or \
                     reject with POST /api/jobs/{}/review); without a decision within {} h it is \
                     approved",
                    job.id,
                    review_seconds.div_ceil(3600)
                ),
            )
        } else {
            Change::new(r, Vec::new()).note(
                LogLevel::Error,
                format!("verifier error ({n}/{max_errors}): {why}; retrying in {retry_seconds} s"),
            )
        };
    Some(change)
}

/// A verdict that is a person's decision (or the lack of one), not the verifier's: every criterion
/// takes the decision.
fn decided(job: &Job, passed: bool, reasoning: String, verifier: &str, now: Timestamp) -> Verdict {
    Verdict {
        passed,
        reasoning,
        criteria: job
            .acceptance_criteria
            .iter()
            .map(|c| crate::job::CriterionResult {
                criterion: c.clone(),
                passed,
                note: format!("decided by {verifier}"),
            })
            .collect(),
        verifier: verifier.to_string(),
        verified_at: now,
    }
}

/// The sender's review of a submission the verifier could not judge: approval pays the agent as
/// a passed verdict does; rejection fails the attempt as a failed verdict does.
pub fn review(job: &Job, user: UserId, approve: bool, now: Timestamp) -> Result<Change> {
    ensure_sender(job, user, "review")?;
    // Only a submission the verifier gave up on waits for the sender's review.
    if job.status != JobStatus::Submitted || job.review_due_at.is_none() {
        return Err(invalid(job, "review"));
    }
    let reasoning = if approve {
        "approved by the sender (the verifier could not judge it)"
    } else {
        "rejected by the sender (the verifier could not judge it)"
    };
    apply_verdict(
        job,
        decided(job, approve, reasoning.into(), "sender", now),
        now,
    )
}

/// A review nobody decided by its due time: the submission is approved (as marketplaces do when
/// the requester does not review in time).
pub fn auto_approve(job: &Job, now: Timestamp) -> Result<Change> {
    match (job.status, job.review_due_at) {
        (JobStatus::Submitted, Some(due)) if due <= now => apply_verdict(
            job,
            decided(
                job,
                true,
                "approved automatically: the sender did not review it in time".into(),
                "auto-approval",
                now,
            ),
            now,
        ),
        _ => Err(invalid(job, "approve")),
    }
}

/// `cancel` by the sender. Unpaid: cancelled. Waiting for or held by an agent: cancelled and
/// refunded. At work: only flagged, acting on the next failure. Final: unchanged.
pub fn cancel(job: &Job, user: UserId, now: Timestamp) -> Result<Change> {
    ensure_sender(job, user, "cancel")?;
    match job.status {
        JobStatus::PendingPayment => {
            let mut r = edit(job, now);
            r.status = JobStatus::Cancelled;
            r.completed_at = Some(now);
            Ok(Change::new(r, Vec::new())
                .note(LogLevel::Info, "cancelled by the sender before payment"))
        }
        JobStatus::Queued | JobStatus::Held => {
            let mut r = release(job, now);
            r.status = JobStatus::Cancelled;
            r.completed_at = Some(now);
            Ok(
                Change::new(r, vec![money::refund(job.id, job.price, job.sender)]).note(
                    LogLevel::Info,
                    "cancelled by the sender, and the sender refunded",
                ),
            )
        }
        JobStatus::Accepted | JobStatus::Submitted => {
            if job.cancellation_requested {
                return Ok(Change::unchanged(job));
            }
            let mut r = edit(job, now);
            r.cancellation_requested = true;
            Ok(Change::new(r, Vec::new()).note(
                LogLevel::Info,
                "cancellation requested by the sender: it takes effect if this attempt fails",
            ))
        }
        JobStatus::Verified | JobStatus::Cancelled | JobStatus::Failed => {
            Ok(Change::unchanged(job))
        }
    }
}
