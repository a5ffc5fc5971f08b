//! The job and the values around it: status, verdict, log lines, the structured form of a prompt.
//!
//! A [`Job`] has no public mutable state: its fields are read through `Deref` to [`JobRecord`], and
//! it changes only through the transitions of [`crate::lifecycle`]. Stores rebuild jobs from rows with
//! [`Job::restore`], which checks that the record is consistent.

use crate::error::{DomainError, Result};
use crate::files::FileMeta;
use crate::ids::{AgentId, FileId, JobId, Timestamp, UserId};
use crate::money::{Price, TimeLimit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

/// The 8 statuses of a job (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, not paid.
    PendingPayment,
    /// Paid, waiting for an agent.
    Queued,
    /// Briefly reserved by one agent, which may accept or reject it.
    Held,
    /// An agent is working on it against `deadline_at`.
    Accepted,
    /// Output is in; the verifier is judging it.
    Submitted,
    /// Output passed; the agent's owner was paid. Final.
    Verified,
    /// Cancelled by the sender; refunded if it was paid. Final.
    Cancelled,
    /// Three attempts failed; refunded. Final.
    Failed,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::PendingPayment,
        JobStatus::Queued,
        JobStatus::Held,
        JobStatus::Accepted,
        JobStatus::Submitted,
        JobStatus::Verified,
        JobStatus::Cancelled,
        JobStatus::Failed,
    ];

    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::PendingPayment => "pending_payment",
            JobStatus::Queued => "queued",
            JobStatus::Held => "held",
            JobStatus::Accepted => "accepted",
            JobStatus::Submitted => "submitted",
            JobStatus::Verified => "verified",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses [`JobStatus::as_str`].
    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job's escrow holds its price in this status (paid and not yet settled).
    pub fn escrow_funded(self) -> bool {
        matches!(
            self,
            JobStatus::Queued | JobStatus::Held | JobStatus::Accepted | JobStatus::Submitted
        )
    }

    /// Whether no transition leaves this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Verified | JobStatus::Cancelled | JobStatus::Failed
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON document kept as text (attachments), opaque to the domain. The HTTP adapter checks its
/// shape on the way in; stores keep it verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub String);

impl RawJson {
    /// The empty JSON array.
    pub fn empty_array() -> Self {
        RawJson("[]".into())
    }

    /// Whether this is an empty JSON array.
    pub fn is_empty_array(&self) -> bool {
        self.0
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            == "[]"
    }
}

impl Default for RawJson {
    fn default() -> Self {
        Self::empty_array()
    }
}

/// The agent holding a job, with its owner (whom visibility is decided by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    /// The agent.
    pub agent_id: AgentId,
    /// Its owner.
    pub owner_id: UserId,
}

/// The verifier's judgement on one acceptance criterion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// The criterion, as written on the job.
    pub criterion: String,
    /// Whether the output meets it.
    pub passed: bool,
    /// Why.
    pub note: String,
}

/// A verdict on a submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Overall result.
    pub passed: bool,
    /// The verifier's explanation.
    pub reasoning: String,
    /// One result per acceptance criterion.
    pub criteria: Vec<CriterionResult>,
    /// Who judged: `llm:<model>` or `heuristic`.
    pub verifier: String,
    /// When.
    pub verified_at: Timestamp,
}

/// What an agent submits: a text, files, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    text: Option<String>,
    file_ids: Vec<FileId>,
    files: Vec<FileMeta>,
}

impl Output {
    /// An output: text, or attachments (file ids), or both — never neither. A text, when given,
    /// must be visible (omit it to submit attachments only).
    pub fn new(text: Option<String>, attachments: Option<Vec<FileId>>) -> Result<Output> {
        if text.as_deref().is_some_and(crate::text::is_blank) {
            return Err(DomainError::invalid(
                "output must not be blank (omit it to submit attachments only)",
            ));
        }
        let file_ids = attachments.unwrap_or_default();
        if text.is_none() && file_ids.is_empty() {
            return Err(DomainError::invalid(
                "output is required (a non-empty string, or attachments)",
            ));
        }
        Ok(Output {
            text,
            file_ids,
            files: Vec::new(),
        })
    }

    /// The text, if any.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The ids of the files it attaches, as given.
    pub fn file_ids(&self) -> &[FileId] {
        &self.file_ids
    }

    /// The files it attaches, once [`Output::with_files`] resolved them.
    pub fn files(&self) -> &[FileMeta] {
        &self.files
    }

    /// The output with its files' metadata (checked to be the submitter's by the caller).
    pub fn with_files(mut self, files: Vec<FileMeta>) -> Output {
        self.files = files;
        self
    }
}

/// The structured form of a prompt, as the structurer returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Structured {
    /// A short title.
    pub title: String,
    /// What is to be done.
    pub description: String,
    /// What the output must contain or satisfy.
    pub requirements: String,
    /// Checkable statements the verifier judges.
    pub acceptance_criteria: Vec<String>,
    /// Estimated fair price (already clamped into range).
    pub estimated_price: Price,
    /// Estimated time limit (already clamped into range).
    pub estimated_time_limit: TimeLimit,
    /// `llm:<model>` or `heuristic`.
    pub structured_by: String,
}

/// Everything needed to create a job (the sender confirmed the estimates or their overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDraft {
    /// The sender's original text.
    pub prompt: String,
    /// The structurer's output.
    pub structured: Structured,
    /// The price charged (the estimate or the sender's override).
    pub price: Price,
    /// The time limit (the estimate or the sender's override).
    pub time_limit: TimeLimit,
    /// Secrets for the worker.
    pub env_vars: BTreeMap<String, String>,
    /// The sender's files (checked to be theirs).
    pub files: Vec<FileMeta>,
}

/// The full persisted state of a job. Read-only through [`Job`]; stores build it from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// Status.
    pub status: JobStatus,
    /// The sender's original text.
    pub prompt: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Requirements.
    pub requirements: String,
    /// Acceptance criteria.
    pub acceptance_criteria: Vec<String>,
    /// The sender.
    pub sender: UserId,
    /// Owner of the agent of the current or last accepted attempt.
    pub receiver: Option<UserId>,
    /// Agent of the current or last accepted attempt.
    pub receiver_agent_id: Option<AgentId>,
    /// The agent holding the job while `held`.
    pub holder: Option<AgentRef>,
    /// When the hold lapses, while `held`.
    pub hold_expires_at: Option<Timestamp>,
    /// Price.
    pub price: Price,
    /// Time limit.
    pub time_limit: TimeLimit,
    /// When the current or last attempt was accepted.
    pub accepted_at: Option<Timestamp>,
    /// When the current attempt must be submitted by.
    pub deadline_at: Option<Timestamp>,
    /// When the latest output was submitted.
    pub submitted_at: Option<Timestamp>,
    /// When the job reached a final status.
    pub completed_at: Option<Timestamp>,
    /// Attempts started (counted at accept).
    pub attempt_count: u32,
    /// The sender asked to cancel while an attempt was running.
    pub cancellation_requested: bool,
    /// The latest submission's text.
    pub output_text: Option<String>,
    /// The latest submission's attachments.
    pub output_attachments: Option<RawJson>,
    /// Secrets for the worker (shown to the sender, and to the receiver from `accepted` on).
    pub env_vars: BTreeMap<String, String>,
    /// The sender's attachments.
    pub attachments: RawJson,
    /// Agents that held the job, in order.
    pub presented_to_agents: Vec<AgentId>,
    /// The latest verdict.
    pub verification: Option<Verdict>,
    /// How often the verifier failed on the latest submission (each submission starts at 0).
    pub verify_errors: u32,
    /// Set while the latest submission waits for the sender's review (the verifier failed too
    /// often): when it is approved if the sender does not decide.
    pub review_due_at: Option<Timestamp>,
    /// `llm:<model>` or `heuristic`.
    pub structured_by: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// How many times the job was changed: a store writes a change only over the version it was
    /// computed from (compare-and-set), so concurrent writers never overwrite each other. Not part
    /// of the API.
    pub version: i64,
}

/// A job. Read its fields through `Deref`; change it only with [`crate::lifecycle`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Job(JobRecord);

impl Deref for Job {
    type Target = JobRecord;
    fn deref(&self) -> &JobRecord {
        &self.0
    }
}

impl Job {
    /// Rebuilds a job from its persisted record, checking the fields that each status requires.
    pub fn restore(record: JobRecord) -> Result<Job> {
        let r = &record;
        let bad = |what: &str| {
            Err(DomainError::Internal(format!(
                "inconsistent job {} ({}): {what}",
                r.id, r.status
            )))
        };
        match r.status {
            JobStatus::Held if r.holder.is_none() || r.hold_expires_at.is_none() => {
                return bad("held without a holder");
            }
            JobStatus::Accepted | JobStatus::Submitted
                if r.receiver.is_none() || r.deadline_at.is_none() || r.attempt_count == 0 =>
            {
                return bad("at work without a receiver or deadline");
            }
            JobStatus::Verified if r.receiver.is_none() => return bad("verified without receiver"),
            s if s != JobStatus::Held && r.holder.is_some() => return bad("holder while not held"),
            _ => {}
        }
        Ok(Job(record))
    }

    /// The record, to persist.
    pub fn record(&self) -> &JobRecord {
        &self.0
    }

    /// Takes the record out (for stores that move it into a row).
    pub fn into_record(self) -> JobRecord {
        self.0
    }

    /// Builds a job from a record without checks; only the transitions use it.
    pub(crate) fn from_transition(record: JobRecord) -> Job {
        Job(record)
    }

    /// Whether `user` may see this job: its sender, the owner of the agent holding it, or its receiver.
    pub fn visible_to(&self, user: UserId) -> bool {
        self.sender == user
            || self.holder.is_some_and(|h| h.owner_id == user)
            || self.receiver == Some(user)
    }

    /// Whether `user` may see the job's `env_vars`: the sender always, the receiver from `accepted`
    /// on (while the attempt is theirs or finished), a holder never.
    pub fn env_vars_visible_to(&self, user: UserId) -> bool {
        if self.sender == user {
            return true;
        }
        self.receiver == Some(user)
            && matches!(
                self.status,
                JobStatus::Accepted
                    | JobStatus::Submitted
                    | JobStatus::Verified
                    | JobStatus::Failed
                    | JobStatus::Cancelled
            )
    }

    /// Whether the agent already held this job once (pull never offers it again).
    pub fn was_presented_to(&self, agent: AgentId) -> bool {
        self.presented_to_agents.contains(&agent)
    }

    /// Whether `user` may follow the job's log: its sender and the receiver of the current or last
    /// attempt. A holder who has not accepted may see the job but not its log (403); anyone else
    /// does not learn that the job exists (404).
    pub fn ensure_log_access(&self, user: UserId) -> Result<()> {
        if !self.visible_to(user) {
            return Err(DomainError::NotFound("job"));
        }
        if self.sender == user || self.receiver == Some(user) {
            Ok(())
        } else {
            Err(DomainError::forbidden(
                "only the sender and the receiver may follow a job's log",
            ))
        }
    }

    /// Whether a log stream of this job is over: the latest submission has its verdict (the job is
    /// not `submitted` and has one), or the job is final. While `submitted`, or before any verdict,
    /// the stream follows.
    pub fn log_finished(&self) -> bool {
        match self.status {
            JobStatus::Submitted => false,
            s if s.is_final() => true,
            _ => self.verification.is_some(),
        }
    }
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something worth attention (a retry, a failed criterion).
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The level as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Parses [`LogLevel::as_str`].
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s {
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// One line of verification progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Per job, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: Timestamp,
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
}
