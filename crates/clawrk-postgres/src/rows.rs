//! Rows as PostgreSQL returns them, and their conversion to and from domain values.
//!
//! Ids are native UUIDs, times as UTC milliseconds, lists and maps as JSON text.
//! A row that does not decode is a broken invariant: it becomes [`DomainError::Internal`].

use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::{AgentId, JobId, Timestamp, TransferId, UserId};
use clawrk_domain::job::{AgentRef, Job, JobRecord, JobStatus, LogLevel, LogLine, RawJson};
use clawrk_domain::money::{Account, Cents, LedgerEntry, Price, Reason, TimeLimit};
use clawrk_domain::user::{Agent, AgentProfile, User};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Uuid as PgUuid};
use uuid::Uuid;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("stored {what} does not decode: {detail}"))
}

pub(crate) fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("id", e))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| DomainError::Internal(format!("encode: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// The job columns, in the order of [`JOB_COLUMNS`].
pub(crate) const JOB_COLUMNS: &str = "id, status, prompt, title, description, requirements, \
     acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, \
     hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, \
     completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, \
     attachments, presented_to_agents, verification, structured_by, created_at, updated_at";

/// One row of `jobs`.
#[derive(QueryableByName, Debug)]
pub(crate) struct JobRow {
    #[diesel(sql_type = PgUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub prompt: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub requirements: String,
    #[diesel(sql_type = Text)]
    pub acceptance_criteria: String,
    #[diesel(sql_type = PgUuid)]
    pub sender: Uuid,
    #[diesel(sql_type = Nullable<PgUuid>)]
    pub receiver: Option<Uuid>,
    #[diesel(sql_type = Nullable<PgUuid>)]
    pub receiver_agent_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<PgUuid>)]
    pub held_by_agent_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<PgUuid>)]
    pub held_by_owner_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub hold_expires_at: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub price_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub time_limit_seconds: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub accepted_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub deadline_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub submitted_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub completed_at: Option<i64>,
    #[diesel(sql_type = Integer)]
    pub attempt_count: i32,
    #[diesel(sql_type = Bool)]
    pub cancellation_requested: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub output_text: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub output_attachments: Option<String>,
    #[diesel(sql_type = Text)]
    pub env_vars: String,
    #[diesel(sql_type = Text)]
    pub attachments: String,
    #[diesel(sql_type = Text)]
    pub presented_to_agents: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub verification: Option<String>,
    #[diesel(sql_type = Text)]
    pub structured_by: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub updated_at: i64,
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

fn ms(v: Option<Timestamp>) -> Option<i64> {
    v.map(Timestamp::millis)
}

impl JobRow {
    /// The row of a job, ready to be bound.
    pub fn of(job: &Job) -> Result<JobRow> {
        let r = job.record();
        let presented: Vec<String> = r
            .presented_to_agents
            .iter()
            .map(|a| a.to_string())
            .collect();
        Ok(JobRow {
            id: r.id.uuid(),
            status: r.status.as_str().to_string(),
            prompt: r.prompt.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            requirements: r.requirements.clone(),
            acceptance_criteria: to_json(&r.acceptance_criteria)?,
            sender: r.sender.uuid(),
            receiver: r.receiver.map(|u| u.uuid()),
            receiver_agent_id: r.receiver_agent_id.map(|a| a.uuid()),
            held_by_agent_id: r.holder.map(|h| h.agent_id.uuid()),
            held_by_owner_id: r.holder.map(|h| h.owner_id.uuid()),
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
            structured_by: r.structured_by.clone(),
            created_at: r.created_at.millis(),
            updated_at: r.updated_at.millis(),
        })
    }

    /// The job this row holds.
    pub fn into_job(self) -> Result<Job> {
        let holder = match (self.held_by_agent_id, self.held_by_owner_id) {
            (Some(a), Some(o)) => Some(AgentRef {
                agent_id: AgentId(a),
                owner_id: UserId(o),
            }),
            _ => None,
        };
        let presented: Vec<String> = from_json("presented_to_agents", &self.presented_to_agents)?;
        let record = JobRecord {
            id: JobId(self.id),
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            prompt: self.prompt,
            title: self.title,
            description: self.description,
            requirements: self.requirements,
            acceptance_criteria: from_json("acceptance_criteria", &self.acceptance_criteria)?,
            sender: UserId(self.sender),
            receiver: self.receiver.map(UserId),
            receiver_agent_id: self.receiver_agent_id.map(AgentId),
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
                .map(|s| uuid(s).map(AgentId))
                .collect::<Result<_>>()?,
            verification: self
                .verification
                .as_deref()
                .map(|v| from_json("verification", v))
                .transpose()?,
            structured_by: self.structured_by,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        };
        Job::restore(record)
    }
}

/// A user with its wallet balance.
#[derive(QueryableByName)]
pub(crate) struct UserRow {
    #[diesel(sql_type = PgUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_cents: i64,
}

impl UserRow {
    pub fn into_user(self) -> Result<User> {
        Ok(User {
            id: UserId(self.id),
            name: self.name,
            balance_cents: Cents(self.balance_cents),
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// The user columns with the wallet balance (the query joins `balances` as `b`).
pub(crate) const USER_SELECT: &str = "SELECT u.id, u.name, u.created_at, \
     COALESCE(b.balance_cents, 0) AS balance_cents FROM users u \
     LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text";

/// One row of `agents`, with the directory's numbers when selected.
#[derive(QueryableByName)]
pub(crate) struct AgentRow {
    #[diesel(sql_type = PgUuid)]
    pub id: Uuid,
    #[diesel(sql_type = PgUuid)]
    pub owner_id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub personality: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub avatar_url: Option<String>,
    #[diesel(sql_type = Bool)]
    pub is_default: bool,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

pub(crate) const AGENT_COLUMNS: &str =
    "id, owner_id, name, personality, avatar_url, is_default, created_at";

impl AgentRow {
    pub fn into_agent(self) -> Result<Agent> {
        Ok(Agent {
            id: AgentId(self.id),
            owner_id: UserId(self.owner_id),
            name: self.name,
            personality: self.personality,
            avatar_url: self.avatar_url,
            is_default: self.is_default,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// An agent with its public numbers.
#[derive(QueryableByName)]
pub(crate) struct ProfileRow {
    #[diesel(embed)]
    pub agent: AgentRow,
    #[diesel(sql_type = BigInt)]
    pub jobs_verified: i64,
    #[diesel(sql_type = BigInt)]
    pub jobs_failed: i64,
    #[diesel(sql_type = BigInt)]
    pub earned_cents: i64,
}

impl ProfileRow {
    pub fn into_profile(self) -> Result<AgentProfile> {
        Ok(AgentProfile {
            agent: self.agent.into_agent()?,
            jobs_verified: self.jobs_verified,
            jobs_failed: self.jobs_failed,
            earned_cents: Cents(self.earned_cents),
        })
    }
}

/// A transfer as one wallet sees it.
#[derive(QueryableByName)]
pub(crate) struct TransferRow {
    #[diesel(sql_type = PgUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub credit: String,
    #[diesel(sql_type = BigInt)]
    pub amount_cents: i64,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = Nullable<PgUuid>)]
    pub job_id: Option<Uuid>,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

impl TransferRow {
    /// The entry as `wallet` sees it (credited: positive; debited: negative).
    pub fn into_entry(self, wallet: Account) -> Result<LedgerEntry> {
        let credited = Account::from_key(&self.credit) == Some(wallet);
        Ok(LedgerEntry {
            id: TransferId(self.id),
            delta_cents: Cents(if credited {
                self.amount_cents
            } else {
                -self.amount_cents
            }),
            reason: Reason::parse(&self.reason).ok_or_else(|| corrupt("reason", &self.reason))?,
            job_id: self.job_id.map(JobId),
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// One verification log line.
#[derive(QueryableByName)]
pub(crate) struct LogRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Text)]
    pub level: String,
    #[diesel(sql_type = Text)]
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

/// A single number.
#[derive(QueryableByName)]
pub(crate) struct Num {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A single optional number.
#[derive(QueryableByName)]
pub(crate) struct OptNum {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub n: Option<i64>,
}

/// A status with its count.
#[derive(QueryableByName)]
pub(crate) struct StatusCount {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A single text.
#[derive(QueryableByName)]
pub(crate) struct OneText {
    #[diesel(sql_type = Text)]
    pub t: String,
}

/// A stored idempotency record.
#[derive(QueryableByName)]
pub(crate) struct IdemRow {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    pub digest: Vec<u8>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Binary>)]
    pub response: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    pub expires_at: i64,
}
