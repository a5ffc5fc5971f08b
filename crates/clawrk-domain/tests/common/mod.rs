//! Builders shared by the domain's integration tests: users, agents and a job in any status.

#![allow(dead_code)]

use clawrk_domain::job::{AgentRef, JobRecord};
use clawrk_domain::ports::Clock;
use clawrk_domain::{AgentId, Job, JobId, JobStatus, Price, RawJson, TimeLimit, Timestamp, UserId};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

pub const SENDER: UserId = UserId(Uuid::from_u128(1));
pub const WORKER: UserId = UserId(Uuid::from_u128(2));
pub const STRANGER: UserId = UserId(Uuid::from_u128(3));
pub const WORKER_AGENT: AgentId = AgentId(Uuid::from_u128(20));
pub const OTHER_AGENT: AgentId = AgentId(Uuid::from_u128(30));
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
pub const PRICE: i64 = 500;
pub const LIMIT: u32 = 600;
pub const HOLD: u32 = 30;

pub fn worker() -> AgentRef {
    AgentRef {
        agent_id: WORKER_AGENT,
        owner_id: WORKER,
    }
}

pub fn other() -> AgentRef {
    AgentRef {
        agent_id: OTHER_AGENT,
        owner_id: STRANGER,
    }
}

/// A job of SENDER in `status`; where an agent is involved it is WORKER's agent, held or accepted at
/// T0 with attempt `attempts` (at least 1 once accepted).
pub fn job_in(status: JobStatus, attempts: u32) -> Job {
    let mut r = JobRecord {
        id: JobId(Uuid::from_u128(100)),
        status,
        prompt: "Write a haiku about rust".into(),
        title: "Haiku".into(),
        description: "A haiku".into(),
        requirements: "Three lines".into(),
        acceptance_criteria: vec!["Has three lines".into()],
        sender: SENDER,
        receiver: None,
        receiver_agent_id: None,
        holder: None,
        hold_expires_at: None,
        price: Price::new(PRICE).unwrap(),
        time_limit: TimeLimit::new(i64::from(LIMIT)).unwrap(),
        accepted_at: None,
        deadline_at: None,
        submitted_at: None,
        completed_at: None,
        attempt_count: 0,
        cancellation_requested: false,
        output_text: None,
        output_attachments: None,
        env_vars: [("TOKEN".to_string(), "s3cret".to_string())].into(),
        attachments: RawJson::empty_array(),
        presented_to_agents: vec![],
        verification: None,
        structured_by: "heuristic".into(),
        created_at: T0,
        updated_at: T0,
    };
    match status {
        JobStatus::Held => {
            r.holder = Some(worker());
            r.hold_expires_at = Some(T0.plus_seconds(HOLD));
            r.presented_to_agents = vec![WORKER_AGENT];
        }
        JobStatus::Accepted | JobStatus::Submitted | JobStatus::Verified => {
            r.receiver = Some(WORKER);
            r.receiver_agent_id = Some(WORKER_AGENT);
            r.presented_to_agents = vec![WORKER_AGENT];
            r.accepted_at = Some(T0);
            r.deadline_at = Some(T0.plus_seconds(LIMIT));
            r.attempt_count = attempts.max(1);
            if status != JobStatus::Accepted {
                r.submitted_at = Some(T0.plus_seconds(10));
                r.output_text = Some("line one\nline two\nline three".into());
            }
        }
        _ => {}
    }
    Job::restore(r).unwrap()
}

/// A clock for the store's ids only (tests pass `now` explicitly): ids in creation order, from 1,000
/// up, so that small ids such as `Uuid::from_u128(7)` never name a stored object.
#[derive(Default)]
pub struct SeqClock(AtomicU64);

impl Clock for SeqClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(0)
    }
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.0.fetch_add(1, Ordering::Relaxed)) + 1_000)
    }
}
