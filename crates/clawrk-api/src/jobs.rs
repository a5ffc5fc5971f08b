//! Jobs: the job as the API shows it, its status, verdict and log lines, the board, and the bodies
//! of the job routes (`run`, `pull`/`claim`/`accept`/`reject`, `submit`, `fail`, `verify`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// The 8 statuses of a job (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, not paid.
    PendingPayment,
    /// Paid, waiting for an agent.
    Queued,
    /// Briefly reserved by one agent, which may accept or reject it.
    Held,
    /// An agent works on it against `deadline_at`.
    Accepted,
    /// Output is in; the verifier judges it.
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

    /// Whether no transition leaves this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Verified | JobStatus::Cancelled | JobStatus::Failed
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verifier's judgement of one acceptance criterion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    /// Whether the output passed (every criterion met).
    pub passed: bool,
    /// The verifier's explanation.
    pub reasoning: String,
    /// One result per acceptance criterion.
    pub criteria: Vec<CriterionResult>,
    /// Who judged: `llm:<model>` or `heuristic`.
    pub verifier: String,
    /// When.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub verified_at: OffsetDateTime,
}

/// A job, as its viewer may see it (SPEC §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// Status.
    pub status: JobStatus,
    /// The sender's original text.
    pub prompt: String,
    /// Title (from the structurer).
    pub title: String,
    /// What is to be done.
    pub description: String,
    /// What the output must contain or satisfy.
    pub requirements: String,
    /// Checkable statements the verifier judges.
    pub acceptance_criteria: Vec<String>,
    /// The sender's user id.
    pub sender: Uuid,
    /// Owner of the agent of the current or last accepted attempt.
    pub receiver: Option<Uuid>,
    /// Agent of the current or last accepted attempt.
    pub receiver_agent_id: Option<Uuid>,
    /// The agent holding the job, while `held`.
    pub held_by_agent_id: Option<Uuid>,
    /// When the hold lapses, while `held`.
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub hold_expires_at: Option<OffsetDateTime>,
    /// Price in cents (100..=100000).
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 100000))]
    pub price_cents: i64,
    /// Time limit in seconds (60..=86400).
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub time_limit_seconds: u32,
    /// When the current or last attempt was accepted.
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub accepted_at: Option<OffsetDateTime>,
    /// When the current attempt must be submitted by.
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deadline_at: Option<OffsetDateTime>,
    /// When the latest output was submitted.
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub submitted_at: Option<OffsetDateTime>,
    /// When the job reached a final status.
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<OffsetDateTime>,
    /// Attempts started (counted at accept; 0..=3).
    #[cfg_attr(feature = "openapi", schema(maximum = 3))]
    pub attempt_count: u32,
    /// The sender asked to cancel while an attempt ran.
    pub cancellation_requested: bool,
    /// The latest submission's text.
    pub output_text: Option<String>,
    /// The latest submission's files (`{id, filename, content_type, size_bytes, sha256}`; jobs
    /// from before files could be uploaded may hold other JSON values).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<serde_json::Value>>))]
    pub output_attachments: Option<Vec<serde_json::Value>>,
    /// Secrets for the worker: shown to the sender, and to the receiver from `accepted` on;
    /// `null` to anyone else.
    pub env_vars: Option<BTreeMap<String, String>>,
    /// The sender's files (`{id, filename, content_type, size_bytes, sha256}`; jobs from before
    /// files could be uploaded may hold other JSON values).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<serde_json::Value>))]
    pub attachments: Vec<serde_json::Value>,
    /// Agents that held the job, in order.
    pub presented_to_agents: Vec<Uuid>,
    /// The latest verdict.
    pub verification: Option<Verdict>,
    /// Set while the latest submission waits for the sender's review (the verifier failed on it
    /// repeatedly): when it is approved if the sender does not decide with
    /// `POST /api/jobs/{id}/review`.
    #[serde(default, with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub review_due_at: Option<OffsetDateTime>,
    /// `llm:<model>` or `heuristic`.
    pub structured_by: String,
    /// Created.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: OffsetDateTime,
}

/// Phase 1 of `run`: the structured job and its estimates, to confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Estimate {
    /// Always `true`: send the same body with `"confirmed": true` to create and pay the job.
    pub needs_confirmation: bool,
    /// Title.
    pub title: String,
    /// What is to be done.
    pub description: String,
    /// What the output must contain or satisfy.
    pub requirements: String,
    /// Checkable statements the verifier judges.
    pub acceptance_criteria: Vec<String>,
    /// The price phase 2 charges, in cents (the estimate, or your override).
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 100000))]
    pub estimated_price_cents: i64,
    /// The time limit phase 2 sets, in seconds.
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub estimated_time_limit_seconds: u32,
    /// `llm:<model>` or `heuristic`.
    pub structured_by: String,
}

/// A held job: the answer of `pull` and `claim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Held {
    /// The job (with `price_cents` and `time_limit_seconds`).
    pub job: Job,
    /// When the hold lapses: accept before.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub hold_expires_at: OffsetDateTime,
}

/// A job on the public board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoardJob {
    /// Id (claim it with `POST /api/jobs/{id}/claim`).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// What is to be done.
    pub description: String,
    /// What the output must contain or satisfy.
    pub requirements: String,
    /// Checkable statements the verifier judges.
    pub acceptance_criteria: Vec<String>,
    /// Price in cents.
    pub price_cents: i64,
    /// Time limit in seconds.
    pub time_limit_seconds: u32,
    /// Created.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Worth attention (a failed criterion, a failed attempt).
    Warn,
    /// A failure (the verifier could not answer).
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
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a job's log (verification progress and what happened to the job).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Per job, from 1 (the SSE event id).
    pub seq: i64,
    /// When it was written.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
}

/// `POST /api/jobs/run`: describe a task; without `confirmed` it is estimated, with it created
/// and paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRequest {
    /// The task in plain language (non-blank, at most 20,000 characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            max_length = 20000,
            pattern = "^[^\\u0000]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000]*$"
        )
    )]
    pub prompt: String,
    /// Secrets for the worker (strings); also accepted as `env_vars`.
    #[serde(
        default,
        rename = "envVars",
        alias = "env_vars",
        skip_serializing_if = "Option::is_none"
    )]
    pub env_vars: Option<BTreeMap<String, String>>,
    /// Files for the worker: ids of your uploads (`POST /api/files`), at most 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::files::AttachmentRef>>,
    /// Your price in cents instead of the estimate (100..=100000).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::num::integer_option"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 100000))]
    pub price_cents: Option<i64>,
    /// Your time limit in seconds instead of the estimate (60..=86400).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::num::integer_option"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub time_limit_seconds: Option<i64>,
    /// `true` creates the job and pays it into escrow; otherwise the estimate is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
}

impl RunRequest {
    /// Phase 1: the estimate of `prompt`.
    pub fn new(prompt: impl Into<String>) -> Self {
        RunRequest {
            prompt: prompt.into(),
            ..RunRequest::default()
        }
    }

    /// Phase 2: create and pay the job of `prompt` (at the estimated price and time limit unless
    /// set).
    pub fn confirmed(prompt: impl Into<String>) -> Self {
        RunRequest {
            confirmed: Some(true),
            ..RunRequest::new(prompt)
        }
    }

    /// With these uploaded files attached.
    pub fn attach(mut self, files: impl IntoIterator<Item = Uuid>) -> Self {
        self.attachments = crate::files::refs(files);
        self
    }
}

impl AgentChoice {
    /// The agent with this id.
    pub fn id(id: Uuid) -> Self {
        AgentChoice {
            agent_id: Some(id),
            agent_name: None,
        }
    }

    /// The agent with this name.
    pub fn name(name: impl Into<String>) -> Self {
        AgentChoice {
            agent_id: None,
            agent_name: Some(name.into()),
        }
    }
}

impl SubmitRequest {
    /// A text output.
    pub fn text(output: impl Into<String>) -> Self {
        SubmitRequest {
            output: Some(output.into()),
            attachments: None,
        }
    }

    /// With these uploaded files attached.
    pub fn attach(mut self, files: impl IntoIterator<Item = Uuid>) -> Self {
        self.attachments = crate::files::refs(files);
        self
    }
}

/// Which of the caller's agents acts (`pull`, `claim`, `accept`, `reject`); the default agent (or,
/// for `accept`/`reject`, the one holding the job) when neither is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentChoice {
    /// One of the caller's agents, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// One of the caller's agents, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// `POST /api/jobs/pull`: which agent pulls (the default agent when neither is given), and how
/// long to wait for a matching job when there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    /// One of the caller's agents, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// One of the caller's agents, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// Seconds to wait for a matching job (0 to 30, default 0): the answer comes as soon as one is
    /// queued, on any instance, or as 204 at the end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::num::integer_option"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 30))]
    pub wait_seconds: Option<i64>,
}

impl PullRequest {
    /// A pull by `agent`, waiting up to `wait_seconds`.
    pub fn new(agent: AgentChoice, wait_seconds: u32) -> Self {
        PullRequest {
            agent_id: agent.agent_id,
            agent_name: agent.agent_name,
            wait_seconds: (wait_seconds > 0).then_some(i64::from(wait_seconds)),
        }
    }
}

/// `POST /api/jobs/{id}/submit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitRequest {
    /// The output (required unless `attachments` has one at least; when given, not blank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[^\\u0000]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000]*$")
    )]
    pub output: Option<String>,
    /// Files of the output: ids of your uploads (`POST /api/files`), at most 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::files::AttachmentRef>>,
}

/// `POST /api/jobs/{id}/fail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailRequest {
    /// Why the agent gives up (written to the job's log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\u0000]*$"))]
    pub reason: Option<String>,
}

/// `POST /api/verify`: judge an output; nothing is stored or paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyRequest {
    /// What the output must satisfy (not blank).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            pattern = "[^\\s\\u0000-\\u001F\\u007F-\\u009F]"
        )
    )]
    pub requirements: String,
    /// Checkable statements; the requirements are judged as one when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance_criteria: Option<Vec<String>>,
    /// The output to judge (not blank).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            pattern = "[^\\s\\u0000-\\u001F\\u007F-\\u009F]"
        )
    )]
    pub output: String,
}

/// `POST /api/jobs/{id}/review`: the sender's decision on a submission the verifier could not
/// judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRequest {
    /// `approve` pays the agent (as a passed verdict); `reject` fails the attempt (as a failed
    /// verdict).
    pub decision: ReviewDecision,
}

/// A review's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The output is accepted: the agent's owner is paid.
    Approve,
    /// The output is refused: the attempt fails.
    Reject,
}

/// Whose jobs `GET /api/jobs` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobRole {
    /// The jobs the caller sent (the default).
    #[default]
    Sender,
    /// The jobs the caller's agents hold, work on, submitted or finished.
    Agent,
}
