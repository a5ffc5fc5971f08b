//! The JSON shapes of SPEC §2 and §5: what the API returns (views of domain values) and what it
//! accepts (request bodies). Timestamps are RFC 3339 UTC with milliseconds; money is integer cents.

use clawrk_domain::ids::{Timestamp, UserId};
use clawrk_domain::job::{Job, LogLine, RawJson, Structured, Verdict};
use clawrk_domain::money::LedgerEntry;
use clawrk_domain::ports::BoardStats;
use clawrk_domain::user::{Agent, AgentProfile, User};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;
use uuid::Uuid;

/// `2026-01-01T00:00:00.000Z`.
pub fn ts(t: Timestamp) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.millis()) * 1_000_000)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

fn raw(v: &RawJson) -> Value {
    serde_json::from_str(&v.0).unwrap_or(Value::Null)
}

/// A job, as its viewer may see it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `pending_payment`, `queued`, `held`, `accepted`, `submitted`, `verified`, `failed`, `cancelled`.
    pub status: String,
    pub prompt: String,
    pub title: String,
    pub description: String,
    pub requirements: String,
    pub acceptance_criteria: Vec<String>,
    pub sender: Uuid,
    pub receiver: Option<Uuid>,
    pub receiver_agent_id: Option<Uuid>,
    pub held_by_agent_id: Option<Uuid>,
    pub hold_expires_at: Option<String>,
    pub price_cents: i64,
    pub time_limit_seconds: u32,
    pub accepted_at: Option<String>,
    pub deadline_at: Option<String>,
    pub submitted_at: Option<String>,
    pub completed_at: Option<String>,
    pub attempt_count: u32,
    pub cancellation_requested: bool,
    pub output_text: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub output_attachments: Option<Value>,
    /// Shown to the sender, and to the receiver from `accepted` on; `null` otherwise.
    pub env_vars: Option<BTreeMap<String, String>>,
    #[schema(value_type = Object)]
    pub attachments: Value,
    pub presented_to_agents: Vec<Uuid>,
    pub verification: Option<VerdictView>,
    pub structured_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl JobView {
    /// The job as `viewer` sees it.
    pub fn of(job: &Job, viewer: UserId) -> JobView {
        JobView {
            id: job.id.uuid(),
            status: job.status.as_str().into(),
            prompt: job.prompt.clone(),
            title: job.title.clone(),
            description: job.description.clone(),
            requirements: job.requirements.clone(),
            acceptance_criteria: job.acceptance_criteria.clone(),
            sender: job.sender.uuid(),
            receiver: job.receiver.map(|u| u.uuid()),
            receiver_agent_id: job.receiver_agent_id.map(|a| a.uuid()),
            held_by_agent_id: job.holder.map(|h| h.agent_id.uuid()),
            hold_expires_at: job.hold_expires_at.map(ts),
            price_cents: job.price.cents().get(),
            time_limit_seconds: job.time_limit.seconds(),
            accepted_at: job.accepted_at.map(ts),
            deadline_at: job.deadline_at.map(ts),
            submitted_at: job.submitted_at.map(ts),
            completed_at: job.completed_at.map(ts),
            attempt_count: job.attempt_count,
            cancellation_requested: job.cancellation_requested,
            output_text: job.output_text.clone(),
            output_attachments: job.output_attachments.as_ref().map(raw),
            env_vars: job
                .env_vars_visible_to(viewer)
                .then(|| job.env_vars.clone()),
            attachments: raw(&job.attachments),
            presented_to_agents: job.presented_to_agents.iter().map(|a| a.uuid()).collect(),
            verification: job.verification.as_ref().map(VerdictView::of),
            structured_by: job.structured_by.clone(),
            created_at: ts(job.created_at),
            updated_at: ts(job.updated_at),
        }
    }
}

/// One criterion's result.
#[derive(Serialize, ToSchema)]
pub struct CriterionView {
    pub criterion: String,
    pub passed: bool,
    pub note: String,
}

/// A verdict.
#[derive(Serialize, ToSchema)]
pub struct VerdictView {
    pub passed: bool,
    pub reasoning: String,
    pub criteria: Vec<CriterionView>,
    /// `llm:<model>` or `heuristic`.
    pub verifier: String,
    pub verified_at: String,
}

impl VerdictView {
    /// The view of a verdict.
    pub fn of(v: &Verdict) -> VerdictView {
        VerdictView {
            passed: v.passed,
            reasoning: v.reasoning.clone(),
            criteria: v
                .criteria
                .iter()
                .map(|c| CriterionView {
                    criterion: c.criterion.clone(),
                    passed: c.passed,
                    note: c.note.clone(),
                })
                .collect(),
            verifier: v.verifier.clone(),
            verified_at: ts(v.verified_at),
        }
    }
}

/// Phase 1 of `run`: the estimate to confirm.
#[derive(Serialize, ToSchema)]
pub struct EstimateView {
    /// Always `true`.
    pub needs_confirmation: bool,
    pub title: String,
    pub description: String,
    pub requirements: String,
    pub acceptance_criteria: Vec<String>,
    pub estimated_price_cents: i64,
    pub estimated_time_limit_seconds: u32,
    pub structured_by: String,
}

impl EstimateView {
    /// The view of an estimate.
    pub fn of(s: &Structured) -> EstimateView {
        EstimateView {
            needs_confirmation: true,
            title: s.title.clone(),
            description: s.description.clone(),
            requirements: s.requirements.clone(),
            acceptance_criteria: s.acceptance_criteria.clone(),
            estimated_price_cents: s.estimated_price.cents().get(),
            estimated_time_limit_seconds: s.estimated_time_limit.seconds(),
            structured_by: s.structured_by.clone(),
        }
    }
}

/// 402 from `run`: the job waits for payment.
#[derive(Serialize, ToSchema)]
pub struct PendingPaymentView {
    pub error: String,
    pub job: JobView,
    pub required_cents: i64,
    pub available_cents: i64,
}

/// A held job: `pull` and `claim`.
#[derive(Serialize, ToSchema)]
pub struct HeldView {
    pub job: JobView,
    pub hold_expires_at: Option<String>,
}

/// An error.
#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    pub error: String,
}

/// A job on the public board.
#[derive(Serialize, ToSchema)]
pub struct BoardJobView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub requirements: String,
    pub acceptance_criteria: Vec<String>,
    pub price_cents: i64,
    pub time_limit_seconds: u32,
    pub created_at: String,
}

impl BoardJobView {
    /// The public view of a queued job.
    pub fn of(job: &Job) -> BoardJobView {
        BoardJobView {
            id: job.id.uuid(),
            title: job.title.clone(),
            description: job.description.clone(),
            requirements: job.requirements.clone(),
            acceptance_criteria: job.acceptance_criteria.clone(),
            price_cents: job.price.cents().get(),
            time_limit_seconds: job.time_limit.seconds(),
            created_at: ts(job.created_at),
        }
    }
}

/// The marketplace's public numbers.
#[derive(Serialize, ToSchema)]
pub struct StatsView {
    /// Jobs per status (all 8 statuses).
    pub counts: BTreeMap<String, i64>,
    pub jobs_verified: i64,
    pub total_paid_out_cents: i64,
    pub median_queued_price_cents: Option<i64>,
    pub agents: i64,
}

impl StatsView {
    /// The view of the stats.
    pub fn of(s: &BoardStats) -> StatsView {
        StatsView {
            counts: s
                .counts
                .iter()
                .map(|(st, n)| (st.as_str().to_string(), *n))
                .collect(),
            jobs_verified: s.jobs_verified,
            total_paid_out_cents: s.total_paid_out.get(),
            median_queued_price_cents: s.median_queued_price.map(|c| c.get()),
            agents: s.agents,
        }
    }
}

/// An agent.
#[derive(Serialize, ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub personality: Option<String>,
    pub avatar_url: Option<String>,
    pub is_default: bool,
    pub created_at: String,
}

impl AgentView {
    /// The view of an agent.
    pub fn of(a: &Agent) -> AgentView {
        AgentView {
            id: a.id.uuid(),
            owner_id: a.owner_id.uuid(),
            name: a.name.clone(),
            personality: a.personality.clone(),
            avatar_url: a.avatar_url.clone(),
            is_default: a.is_default,
            created_at: ts(a.created_at),
        }
    }
}

/// A directory entry: an agent with its public numbers.
#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    #[serde(flatten)]
    pub agent: AgentView,
    pub jobs_verified: i64,
    pub jobs_failed: i64,
    pub earned_cents: i64,
}

impl ProfileView {
    /// The view of a directory entry.
    pub fn of(p: &AgentProfile) -> ProfileView {
        ProfileView {
            agent: AgentView::of(&p.agent),
            jobs_verified: p.jobs_verified,
            jobs_failed: p.jobs_failed,
            earned_cents: p.earned_cents.get(),
        }
    }
}

/// A ledger entry as the wallet's owner sees it.
#[derive(Serialize, ToSchema)]
pub struct LedgerView {
    pub id: Uuid,
    /// Signed: positive in, negative out.
    pub delta_cents: i64,
    /// `topup`, `job_payment`, `refund`, `earning`, `withdrawal`, `adjustment`.
    pub reason: String,
    pub job_id: Option<Uuid>,
    pub created_at: String,
}

impl LedgerView {
    /// The view of a ledger entry.
    pub fn of(e: &LedgerEntry) -> LedgerView {
        LedgerView {
            id: e.id.uuid(),
            delta_cents: e.delta_cents.get(),
            reason: e.reason.as_str().into(),
            job_id: e.job_id.map(|j| j.uuid()),
            created_at: ts(e.created_at),
        }
    }
}

/// The wallet.
#[derive(Serialize, ToSchema)]
pub struct WalletView {
    pub balance_cents: i64,
    pub ledger: Vec<LedgerView>,
}

/// A balance after a top-up or withdrawal.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub balance_cents: i64,
}

/// The caller.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub name: String,
    pub balance_cents: i64,
}

/// `whoami`.
#[derive(Serialize, ToSchema)]
pub struct WhoamiView {
    pub user: UserView,
}

impl WhoamiView {
    /// The view of the caller.
    pub fn of(u: &User) -> WhoamiView {
        WhoamiView {
            user: UserView {
                id: u.id.uuid(),
                name: u.name.clone(),
                balance_cents: u.balance_cents.get(),
            },
        }
    }
}

/// A verification log line.
#[derive(Serialize, ToSchema)]
pub struct LogLineView {
    pub seq: i64,
    pub at: String,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

impl LogLineView {
    /// The view of a log line.
    pub fn of(l: &LogLine) -> LogLineView {
        LogLineView {
            seq: l.seq,
            at: ts(l.at),
            level: l.level.as_str().into(),
            message: l.message.clone(),
        }
    }
}

/// A sweep's result.
#[derive(Serialize, ToSchema)]
pub struct SweepView {
    pub released_holds: u64,
    pub failed_deadlines: u64,
}

/// Health.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`.
    pub status: String,
}

// ---- request bodies ----

/// `POST /api/jobs/run`.
#[derive(Deserialize, ToSchema, Default)]
pub struct RunBody {
    /// The task in plain language (required, non-blank).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Secrets for the worker (strings only).
    #[serde(default, rename = "envVars", alias = "env_vars")]
    pub env_vars: Option<BTreeMap<String, String>>,
    /// Files or links for the worker (a JSON array).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub attachments: Option<Value>,
    /// Overrides the estimated price (100..=100000).
    #[serde(default)]
    pub price_cents: Option<i64>,
    /// Overrides the estimated time limit (60..=86400).
    #[serde(default)]
    pub time_limit_seconds: Option<i64>,
    /// `true` creates the job; otherwise the estimate is returned.
    #[serde(default)]
    pub confirmed: Option<bool>,
}

/// Which of the caller's agents acts (`pull`, `claim`, `accept`, `reject`).
#[derive(Deserialize, ToSchema, Default)]
pub struct AgentBody {
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    #[serde(default)]
    pub agent_name: Option<String>,
}

/// `POST /api/jobs/:id/submit`.
#[derive(Deserialize, ToSchema, Default)]
pub struct SubmitBody {
    /// The output (required unless `attachments`).
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub attachments: Option<Value>,
}

/// `POST /api/jobs/:id/fail`.
#[derive(Deserialize, ToSchema, Default)]
pub struct FailBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/agents`.
#[derive(Deserialize, ToSchema, Default)]
pub struct NewAgentBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub personality: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /api/agents/:id`: absent fields stay; `null` clears.
#[derive(Deserialize, ToSchema, Default)]
pub struct AgentPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub personality: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

/// `POST /api/wallet/topup` and `/withdraw`.
#[derive(Deserialize, ToSchema, Default)]
pub struct AmountBody {
    #[serde(default)]
    pub amount_cents: Option<i64>,
}

/// `POST /api/verify`.
#[derive(Deserialize, ToSchema, Default)]
pub struct VerifyBody {
    #[serde(default)]
    pub requirements: Option<String>,
    #[serde(default)]
    pub acceptance_criteria: Option<Vec<String>>,
    #[serde(default)]
    pub output: Option<String>,
}

/// Query of the paginated lists.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
    pub status: Option<String>,
}
