//! Domain values as the wire types of `clawrk-api` (SPEC §2 and §5): the one place where the
//! server decides what a viewer sees of a job, and how domain times and amounts are written.

use clawrk_api as api;
use clawrk_domain::files::FileMeta;
use clawrk_domain::ids::{FileId, Timestamp, UserId};
use clawrk_domain::job::{self, Job, RawJson, Structured};
use clawrk_domain::money::{self, LedgerEntry};
use clawrk_domain::ports::{BoardStats, SweepReport};
use clawrk_domain::user::{self, AgentProfile, User};
use clawrk_domain::webhook;
use serde_json::Value;
use time::OffsetDateTime;

/// A domain time on the wire.
pub fn at(t: Timestamp) -> OffsetDateTime {
    api::times::from_millis(t.millis())
}

/// A status on the wire.
pub fn status(s: job::JobStatus) -> api::JobStatus {
    use job::JobStatus as D;
    match s {
        D::PendingPayment => api::JobStatus::PendingPayment,
        D::Queued => api::JobStatus::Queued,
        D::Held => api::JobStatus::Held,
        D::Accepted => api::JobStatus::Accepted,
        D::Submitted => api::JobStatus::Submitted,
        D::Verified => api::JobStatus::Verified,
        D::Cancelled => api::JobStatus::Cancelled,
        D::Failed => api::JobStatus::Failed,
    }
}

/// A status from the wire.
pub fn domain_status(s: api::JobStatus) -> job::JobStatus {
    use api::JobStatus as A;
    match s {
        A::PendingPayment => job::JobStatus::PendingPayment,
        A::Queued => job::JobStatus::Queued,
        A::Held => job::JobStatus::Held,
        A::Accepted => job::JobStatus::Accepted,
        A::Submitted => job::JobStatus::Submitted,
        A::Verified => job::JobStatus::Verified,
        A::Cancelled => job::JobStatus::Cancelled,
        A::Failed => job::JobStatus::Failed,
    }
}

/// Stored attachments (always a JSON array: the domain checks it on the way in).
fn files(v: &RawJson) -> Vec<Value> {
    serde_json::from_str(&v.0).unwrap_or_default()
}

/// An uploaded file's metadata.
pub fn file_info(f: &FileMeta) -> api::FileInfo {
    api::FileInfo {
        id: f.id.uuid(),
        filename: f.filename.clone(),
        content_type: f.content_type.clone(),
        size_bytes: f.size_bytes,
        sha256: f.sha256_hex(),
        created_at: at(f.created_at),
    }
}

/// The file ids of `attachments` on the wire.
pub fn file_ids(refs: Option<&[api::AttachmentRef]>) -> Option<Vec<FileId>> {
    refs.map(|r| r.iter().map(|a| FileId(a.id())).collect())
}

/// A job, as `viewer` may see it.
pub fn job(job: &Job, viewer: UserId) -> api::Job {
    api::Job {
        id: job.id.uuid(),
        status: status(job.status),
        prompt: job.prompt.clone(),
        title: job.title.clone(),
        description: job.description.clone(),
        requirements: job.requirements.clone(),
        acceptance_criteria: job.acceptance_criteria.clone(),
        sender: job.sender.uuid(),
        receiver: job.receiver.map(|u| u.uuid()),
        receiver_agent_id: job.receiver_agent_id.map(|a| a.uuid()),
        held_by_agent_id: job.holder.map(|h| h.agent_id.uuid()),
        hold_expires_at: job.hold_expires_at.map(at),
        price_cents: job.price.cents().get(),
        time_limit_seconds: job.time_limit.seconds(),
        accepted_at: job.accepted_at.map(at),
        deadline_at: job.deadline_at.map(at),
        submitted_at: job.submitted_at.map(at),
        completed_at: job.completed_at.map(at),
        attempt_count: job.attempt_count,
        cancellation_requested: job.cancellation_requested,
        output_text: job.output_text.clone(),
        output_attachments: job.output_attachments.as_ref().map(files),
        env_vars: job
            .env_vars_visible_to(viewer)
            .then(|| job.env_vars.clone()),
        attachments: files(&job.attachments),
        presented_to_agents: job.presented_to_agents.iter().map(|a| a.uuid()).collect(),
        verification: job.verification.as_ref().map(verdict),
        review_due_at: job.review_due_at.map(at),
        structured_by: job.structured_by.clone(),
        created_at: at(job.created_at),
        updated_at: at(job.updated_at),
    }
}

/// A held job (`pull`, `claim`).
pub fn held(j: &Job, viewer: UserId) -> api::Held {
    api::Held {
        job: job(j, viewer),
        // A held job always has its expiry; the job's last change is the safe fallback.
        hold_expires_at: at(j.hold_expires_at.unwrap_or(j.updated_at)),
    }
}

/// A verdict.
pub fn verdict(v: &job::Verdict) -> api::Verdict {
    api::Verdict {
        passed: v.passed,
        reasoning: v.reasoning.clone(),
        criteria: v
            .criteria
            .iter()
            .map(|c| api::CriterionResult {
                criterion: c.criterion.clone(),
                passed: c.passed,
                note: c.note.clone(),
            })
            .collect(),
        verifier: v.verifier.clone(),
        verified_at: at(v.verified_at),
    }
}

/// Phase 1 of `run`.
pub fn estimate(s: &Structured) -> api::Estimate {
    api::Estimate {
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

/// A queued job on the public board.
pub fn board_job(job: &Job) -> api::BoardJob {
    api::BoardJob {
        id: job.id.uuid(),
        title: job.title.clone(),
        description: job.description.clone(),
        requirements: job.requirements.clone(),
        acceptance_criteria: job.acceptance_criteria.clone(),
        price_cents: job.price.cents().get(),
        time_limit_seconds: job.time_limit.seconds(),
        created_at: at(job.created_at),
    }
}

/// The public numbers.
pub fn stats(s: &BoardStats) -> api::Stats {
    api::Stats {
        counts: s.counts.iter().map(|(st, n)| (status(*st), *n)).collect(),
        jobs_verified: s.jobs_verified,
        total_paid_out_cents: s.total_paid_out.get(),
        median_queued_price_cents: s.median_queued_price.map(|c| c.get()),
        agents: s.agents,
    }
}

/// An agent.
pub fn agent(a: &user::Agent) -> api::Agent {
    api::Agent {
        id: a.id.uuid(),
        owner_id: a.owner_id.uuid(),
        name: a.name.clone(),
        personality: a.personality.clone(),
        avatar_url: a.avatar_url.clone(),
        is_default: a.is_default,
        created_at: at(a.created_at),
    }
}

/// A directory entry.
pub fn profile(p: &AgentProfile) -> api::AgentProfile {
    api::AgentProfile {
        agent: agent(&p.agent),
        jobs_verified: p.jobs_verified,
        jobs_failed: p.jobs_failed,
        earned_cents: p.earned_cents.get(),
    }
}

/// Why money moved.
pub fn reason(r: money::Reason) -> api::LedgerReason {
    use money::Reason as D;
    match r {
        D::Topup => api::LedgerReason::Topup,
        D::JobPayment => api::LedgerReason::JobPayment,
        D::Refund => api::LedgerReason::Refund,
        D::Earning => api::LedgerReason::Earning,
        D::Fee => api::LedgerReason::Fee,
        D::Withdrawal => api::LedgerReason::Withdrawal,
        D::Adjustment => api::LedgerReason::Adjustment,
    }
}

/// A ledger entry as the wallet's owner sees it.
pub fn ledger_entry(e: &LedgerEntry) -> api::LedgerEntry {
    api::LedgerEntry {
        id: e.id.uuid(),
        delta_cents: e.delta_cents.get(),
        reason: reason(e.reason),
        job_id: e.job_id.map(|j| j.uuid()),
        created_at: at(e.created_at),
    }
}

/// The caller.
pub fn whoami(u: &User) -> api::Whoami {
    api::Whoami {
        user: api::UserSummary {
            id: u.id.uuid(),
            name: u.name.clone(),
            balance_cents: u.balance_cents.get(),
        },
    }
}

/// A log line.
pub fn log_line(l: &job::LogLine) -> api::LogLine {
    api::LogLine {
        seq: l.seq,
        at: at(l.at),
        level: match l.level {
            job::LogLevel::Info => api::LogLevel::Info,
            job::LogLevel::Warn => api::LogLevel::Warn,
            job::LogLevel::Error => api::LogLevel::Error,
        },
        message: l.message.clone(),
    }
}

/// A sweep's result.
pub fn sweep(r: &SweepReport) -> api::SweepReport {
    api::SweepReport {
        released_holds: r.released_holds,
        failed_deadlines: r.failed_deadlines,
        approved_reviews: r.approved_reviews,
    }
}

/// Query of the paginated lists, read as text so that errors can name the parameter.
#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    /// `?limit=`.
    pub limit: Option<String>,
    /// `?before=`.
    pub before: Option<String>,
    /// `?status=` (jobs).
    pub status: Option<String>,
    /// `?role=` (jobs).
    pub role: Option<String>,
    /// `?agent_id=` (jobs).
    pub agent_id: Option<String>,
}

/// A webhook endpoint; its secret only when `show_secret` (the answers that create or rotate it).
pub fn webhook(e: &webhook::Endpoint, show_secret: bool) -> api::Webhook {
    api::Webhook {
        id: e.id.0,
        url: e.url.clone(),
        events: e.events.names(),
        description: e.description.clone(),
        enabled: e.enabled,
        secret: show_secret.then(|| e.secret.clone()),
        created_at: at(e.created_at),
        updated_at: at(e.updated_at),
    }
}

/// A delivery.
pub fn delivery(d: &webhook::Delivery) -> api::WebhookDelivery {
    api::WebhookDelivery {
        id: d.id.0,
        event_id: d.event_id.clone(),
        event_type: d.event_type.to_string(),
        job_id: d.job_id.uuid(),
        attempts: d.attempts,
        state: match d.state {
            webhook::DeliveryState::Pending => api::DeliveryState::Pending,
            webhook::DeliveryState::Delivered => api::DeliveryState::Delivered,
            webhook::DeliveryState::Failed => api::DeliveryState::Failed,
        },
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        next_attempt_at: d.next_at.map(at),
        created_at: at(d.created_at),
        updated_at: at(d.updated_at),
    }
}

/// The event a delivery carries, with the job as the endpoint's owner may see it.
pub fn webhook_event(out: &webhook::Outgoing) -> api::WebhookEvent {
    api::WebhookEvent {
        id: out.delivery.event_id.clone(),
        event_type: out.delivery.event_type.to_string(),
        created_at: at(out.job.updated_at),
        data: job(&out.job, out.delivery.recipient),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_reason_keeps_its_name_on_the_wire() {
        for s in job::JobStatus::ALL {
            assert_eq!(status(s).as_str(), s.as_str());
            assert_eq!(domain_status(status(s)), s);
        }
        use money::Reason as R;
        for r in [
            R::Topup,
            R::JobPayment,
            R::Refund,
            R::Earning,
            R::Fee,
            R::Withdrawal,
            R::Adjustment,
        ] {
            assert_eq!(
                serde_json::to_value(reason(r)).ok(),
                Some(Value::String(r.as_str().into()))
            );
        }
    }
}
