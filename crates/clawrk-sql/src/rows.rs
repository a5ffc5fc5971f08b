//! Rows as both backends return them, and their conversion to and from domain values. JSON values
//! (criteria, env vars, attachments, verdicts) are text; a row that does not decode is a broken
//! invariant and becomes [`DomainError::Internal`].

use crate::id::DbId;
use crate::schema::*;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::files::FileMeta;
use clawrk_domain::ids::{AgentId, FileId, JobId, Timestamp, TransferId, UserId};
use clawrk_domain::job::{AgentRef, Job, JobRecord, JobStatus, LogLevel, LogLine, RawJson};
use clawrk_domain::money::{Account, Cents, LedgerEntry, Price, Reason, TimeLimit};
use clawrk_domain::user::{Agent, AgentProfile, User};
use clawrk_domain::webhook::{
    Delivery, DeliveryId, DeliveryState, Endpoint, EventFilter, JobEvent, WebhookId,
};
use diesel::prelude::*;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("stored {what} does not decode: {detail}"))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| DomainError::Internal(format!("encode: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

fn ms(v: Option<Timestamp>) -> Option<i64> {
    v.map(Timestamp::millis)
}

/// One row of `jobs`, every column in the schema's order: what a job change writes, and what
/// reads return.
#[derive(Queryable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = jobs, treat_none_as_null = true, treat_none_as_default_value = false)]
pub(crate) struct JobRow {
    pub id: DbId,
    pub status: String,
    pub prompt: String,
    pub title: String,
    pub description: String,
    pub requirements: String,
    pub acceptance_criteria: String,
    pub sender: DbId,
    pub receiver: Option<DbId>,
    pub receiver_agent_id: Option<DbId>,
    pub held_by_agent_id: Option<DbId>,
    pub held_by_owner_id: Option<DbId>,
    pub hold_expires_at: Option<i64>,
    pub price_cents: i64,
    pub time_limit_seconds: i64,
    pub accepted_at: Option<i64>,
    pub deadline_at: Option<i64>,
    pub submitted_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub attempt_count: i32,
    pub cancellation_requested: bool,
    pub output_text: Option<String>,
    pub output_attachments: Option<String>,
    pub env_vars: String,
    pub attachments: String,
    pub presented_to_agents: String,
    pub verification: Option<String>,
    pub verify_errors: i32,
    pub review_due_at: Option<i64>,
    pub structured_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    /// The verification worker's lease: not part of the job, never written by a job change.
    #[diesel(skip_insertion, skip_update)]
    #[allow(dead_code)]
    pub verify_lease_until: Option<i64>,
}

impl JobRow {
    /// The row of a job, ready to be written.
    pub fn of(job: &Job) -> Result<JobRow> {
        let r = job.record();
        let presented: Vec<String> = r
            .presented_to_agents
            .iter()
            .map(|a| a.to_string())
            .collect();
        Ok(JobRow {
            id: r.id.into(),
            status: r.status.as_str().to_string(),
            prompt: r.prompt.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            requirements: r.requirements.clone(),
            acceptance_criteria: to_json(&r.acceptance_criteria)?,
            sender: r.sender.into(),
            receiver: r.receiver.map(DbId::from),
            receiver_agent_id: r.receiver_agent_id.map(DbId::from),
            held_by_agent_id: r.holder.map(|h| h.agent_id.into()),
            held_by_owner_id: r.holder.map(|h| h.owner_id.into()),
            hold_expires_at: ms(r.hold_expires_at),
            price_cents: r.price.cents().get(),
            time_limit_seconds: i64::from(r.time_limit.seconds()),
            accepted_at: ms(r.accepted_at),
            deadline_at: ms(r.deadline_at),
            submitted_at: ms(r.submitted_at),
            completed_at: ms(r.completed_at),
            attempt_count: i32::try_from(r.attempt_count)
                .map_err(|_| DomainError::Internal("attempt count out of range".into()))?,
            cancellation_requested: r.cancellation_requested,
            output_text: r.output_text.clone(),
            output_attachments: r.output_attachments.as_ref().map(|a| a.0.clone()),
            env_vars: to_json(&r.env_vars)?,
            attachments: r.attachments.0.clone(),
            presented_to_agents: to_json(&presented)?,
            verification: r.verification.as_ref().map(to_json).transpose()?,
            verify_errors: i32::try_from(r.verify_errors).unwrap_or(i32::MAX),
            review_due_at: ms(r.review_due_at),
            structured_by: r.structured_by.clone(),
            created_at: r.created_at.millis(),
            updated_at: r.updated_at.millis(),
            version: r.version,
            verify_lease_until: None,
        })
    }
}

impl JobRow {
    /// The job this row holds.
    pub fn into_job(self) -> Result<Job> {
        let holder = match (self.held_by_agent_id, self.held_by_owner_id) {
            (Some(a), Some(o)) => Some(AgentRef {
                agent_id: AgentId(a.0),
                owner_id: UserId(o.0),
            }),
            _ => None,
        };
        let presented: Vec<String> = from_json("presented_to_agents", &self.presented_to_agents)?;
        let record = JobRecord {
            id: JobId(self.id.0),
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            prompt: self.prompt,
            title: self.title,
            description: self.description,
            requirements: self.requirements,
            acceptance_criteria: from_json("acceptance_criteria", &self.acceptance_criteria)?,
            sender: UserId(self.sender.0),
            receiver: self.receiver.map(|u| UserId(u.0)),
            receiver_agent_id: self.receiver_agent_id.map(|a| AgentId(a.0)),
            holder,
            hold_expires_at: ts(self.hold_expires_at),
            price: Price::new(self.price_cents).map_err(|e| corrupt("price", e))?,
            time_limit: TimeLimit::new(self.time_limit_seconds)
                .map_err(|e| corrupt("time limit", e))?,
            accepted_at: ts(self.accepted_at),
            deadline_at: ts(self.deadline_at),
            submitted_at: ts(self.submitted_at),
            completed_at: ts(self.completed_at),
            attempt_count: u32::try_from(self.attempt_count)
                .map_err(|e| corrupt("attempt count", e))?,
            cancellation_requested: self.cancellation_requested,
            output_text: self.output_text,
            output_attachments: self.output_attachments.map(RawJson),
            env_vars: from_json("env_vars", &self.env_vars)?,
            attachments: RawJson(self.attachments),
            presented_to_agents: presented
                .iter()
                .map(|s| s.parse().map(AgentId).map_err(|e| corrupt("agent id", e)))
                .collect::<Result<_>>()?,
            verification: self
                .verification
                .as_deref()
                .map(|v| from_json("verification", v))
                .transpose()?,
            verify_errors: u32::try_from(self.verify_errors)
                .map_err(|e| corrupt("verify errors", e))?,
            review_due_at: ts(self.review_due_at),
            structured_by: self.structured_by,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            version: self.version,
        };
        Job::restore(record)
    }
}

/// Loaded jobs, decoded.
pub(crate) fn jobs(rows: Vec<JobRow>) -> Result<Vec<Job>> {
    rows.into_iter().map(JobRow::into_job).collect()
}

/// A user with their wallet's balance (absent before the first movement: 0).
#[derive(Queryable)]
pub(crate) struct UserRow {
    pub id: DbId,
    pub name: String,
    pub created_at: i64,
    pub balance_cents: Option<i64>,
}

impl UserRow {
    pub fn into_user(self) -> User {
        User {
            id: UserId(self.id.0),
            name: self.name,
            balance_cents: Cents(self.balance_cents.unwrap_or(0)),
            created_at: Timestamp::from_millis(self.created_at),
        }
    }
}

/// One row of `agents`.
#[derive(Queryable, Insertable, Debug)]
#[diesel(table_name = agents, treat_none_as_default_value = false)]
pub(crate) struct AgentRow {
    pub id: DbId,
    pub owner_id: DbId,
    pub name: String,
    pub personality: Option<String>,
    pub avatar_url: Option<String>,
    pub is_default: bool,
    pub created_at: i64,
}

impl AgentRow {
    pub fn of(a: &Agent) -> AgentRow {
        AgentRow {
            id: a.id.into(),
            owner_id: a.owner_id.into(),
            name: a.name.clone(),
            personality: a.personality.clone(),
            avatar_url: a.avatar_url.clone(),
            is_default: a.is_default,
            created_at: a.created_at.millis(),
        }
    }

    pub fn into_agent(self) -> Agent {
        Agent {
            id: AgentId(self.id.0),
            owner_id: UserId(self.owner_id.0),
            name: self.name,
            personality: self.personality,
            avatar_url: self.avatar_url,
            is_default: self.is_default,
            created_at: Timestamp::from_millis(self.created_at),
        }
    }
}

/// An agent with the numbers of its ended attempts.
#[derive(Queryable)]
pub(crate) struct ProfileRow {
    pub agent: AgentRow,
    pub jobs_verified: i64,
    pub jobs_failed: i64,
    pub earned_cents: i64,
}

impl ProfileRow {
    pub fn into_profile(self) -> AgentProfile {
        AgentProfile {
            agent: self.agent.into_agent(),
            jobs_verified: self.jobs_verified,
            jobs_failed: self.jobs_failed,
            earned_cents: Cents(self.earned_cents),
        }
    }
}

/// One row of `transfers`.
#[derive(Queryable, Insertable)]
#[diesel(table_name = transfers, treat_none_as_default_value = false)]
pub(crate) struct TransferRow {
    pub id: DbId,
    pub debit: String,
    pub credit: String,
    pub amount_cents: i64,
    pub reason: String,
    pub job_id: Option<DbId>,
    pub created_at: i64,
}

impl TransferRow {
    /// The entry as `wallet` sees it (credited: positive; debited: negative).
    pub fn into_entry(self, wallet: Account) -> Result<LedgerEntry> {
        let credited = Account::from_key(&self.credit) == Some(wallet);
        Ok(LedgerEntry {
            id: TransferId(self.id.0),
            delta_cents: Cents(if credited {
                self.amount_cents
            } else {
                -self.amount_cents
            }),
            reason: Reason::parse(&self.reason).ok_or_else(|| corrupt("reason", &self.reason))?,
            job_id: self.job_id.map(|j| JobId(j.0)),
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// One verification log line.
#[derive(Queryable)]
pub(crate) struct LogRow {
    pub seq: i64,
    pub at: i64,
    pub level: String,
    pub message: String,
}

impl LogRow {
    pub fn into_line(self) -> Result<LogLine> {
        Ok(LogLine {
            seq: self.seq,
            at: Timestamp::from_millis(self.at),
            level: LogLevel::parse(&self.level).ok_or_else(|| corrupt("level", &self.level))?,
            message: self.message,
        })
    }
}

/// One row of `webhook_endpoints`.
#[derive(Queryable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true, treat_none_as_default_value = false)]
pub(crate) struct EndpointRow {
    pub id: DbId,
    pub owner_id: DbId,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndpointRow {
    pub fn of(e: &Endpoint) -> Result<EndpointRow> {
        Ok(EndpointRow {
            id: e.id.0.into(),
            owner_id: e.owner.into(),
            url: e.url.clone(),
            events: to_json(&e.events.names())?,
            description: e.description.clone(),
            enabled: e.enabled,
            secret: e.secret.clone(),
            created_at: e.created_at.millis(),
            updated_at: e.updated_at.millis(),
        })
    }

    pub fn into_endpoint(self) -> Result<Endpoint> {
        let names: Vec<String> = from_json("webhook events", &self.events)?;
        Ok(Endpoint {
            id: WebhookId(self.id.0),
            owner: UserId(self.owner_id.0),
            url: self.url,
            events: EventFilter::parse(&names).map_err(|e| corrupt("webhook events", e))?,
            description: self.description,
            enabled: self.enabled,
            secret: self.secret,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

/// One row of `webhook_deliveries`.
#[derive(Queryable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = webhook_deliveries, treat_none_as_null = true, treat_none_as_default_value = false)]
pub(crate) struct DeliveryRow {
    pub id: DbId,
    pub endpoint_id: DbId,
    pub event_seq: i64,
    pub event_type: String,
    pub event_id: String,
    pub job_id: DbId,
    pub recipient: DbId,
    pub attempts: i32,
    pub state: String,
    pub next_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub give_up_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DeliveryRow {
    pub fn of(d: &Delivery) -> DeliveryRow {
        DeliveryRow {
            id: d.id.0.into(),
            endpoint_id: d.endpoint.0.into(),
            event_seq: d.event_seq,
            event_type: d.event_type.as_str().into(),
            event_id: d.event_id.clone(),
            job_id: d.job_id.into(),
            recipient: d.recipient.into(),
            attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
            state: d.state.as_str().into(),
            next_at: ms(d.next_at),
            last_status: d.last_status.map(i32::from),
            // Receivers' error texts are bounded where they are made; the cap is a backstop.
            last_error: d.last_error.as_ref().map(|e| e.chars().take(500).collect()),
            give_up_at: d.give_up_at.millis(),
            created_at: d.created_at.millis(),
            updated_at: d.updated_at.millis(),
        }
    }

    pub fn into_delivery(self) -> Result<Delivery> {
        Ok(Delivery {
            id: DeliveryId(self.id.0),
            endpoint: WebhookId(self.endpoint_id.0),
            event_seq: self.event_seq,
            event_type: self
                .event_type
                .parse()
                .map_err(|e| corrupt("event type", e))?,
            event_id: self.event_id,
            job_id: JobId(self.job_id.0),
            recipient: UserId(self.recipient.0),
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
            state: DeliveryState::parse(&self.state)
                .ok_or_else(|| corrupt("delivery state", &self.state))?,
            next_at: ts(self.next_at),
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            give_up_at: Timestamp::from_millis(self.give_up_at),
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

/// An outbox row: its place, the status it left, who held the job before, and the job.
pub(crate) type EventRow = (i64, Option<String>, Option<DbId>, JobRow);

pub(crate) fn into_event((seq, from, prev, job): EventRow) -> Result<JobEvent> {
    Ok(JobEvent {
        seq,
        from: from
            .map(|s| JobStatus::parse(&s).ok_or_else(|| corrupt("event status", s)))
            .transpose()?,
        prev_operator: prev.map(|p| UserId(p.0)),
        job: job.into_job()?,
    })
}

/// One row of `files`.
#[derive(Queryable, Insertable, Debug)]
#[diesel(table_name = files)]
pub(crate) struct FileRow {
    pub id: DbId,
    pub owner_id: DbId,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_at: i64,
}

impl FileRow {
    pub fn of(f: &FileMeta) -> Result<FileRow> {
        Ok(FileRow {
            id: f.id.0.into(),
            owner_id: f.owner.into(),
            filename: f.filename.clone(),
            content_type: f.content_type.clone(),
            size_bytes: i64::try_from(f.size_bytes)
                .map_err(|_| DomainError::Internal("file size out of range".into()))?,
            sha256: f.sha256_hex(),
            created_at: f.created_at.millis(),
        })
    }

    pub fn into_file(self) -> Result<FileMeta> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha256).map_err(|e| corrupt("file sha256", e))?;
        Ok(FileMeta {
            id: FileId(self.id.0),
            owner: UserId(self.owner_id.0),
            filename: self.filename,
            content_type: self.content_type,
            size_bytes: u64::try_from(self.size_bytes).map_err(|e| corrupt("file size", e))?,
            sha256,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}
