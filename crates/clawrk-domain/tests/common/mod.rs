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
        verify_errors: 0,
        review_due_at: None,
        structured_by: "heuristic".into(),
        created_at: T0,
        updated_at: T0,
        version: 3,
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

/// A clock the test sets and moves; ids in creation order, like [`SeqClock`]'s.
#[derive(Default)]
pub struct TestClock {
    now: std::sync::atomic::AtomicI64,
    ids: AtomicU64,
}

impl TestClock {
    /// A clock at `at`.
    pub fn at(at: Timestamp) -> std::sync::Arc<TestClock> {
        let c = TestClock::default();
        c.set(at);
        std::sync::Arc::new(c)
    }
    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.now.store(at.millis(), Ordering::SeqCst);
    }
    /// Moves the time forward.
    pub fn advance_secs(&self, s: u32) {
        self.now.fetch_add(i64::from(s) * 1000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(Ordering::SeqCst))
    }
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.ids.fetch_add(1, Ordering::Relaxed)) + 1_000)
    }
}

/// A verifier whose verdict the test sets: every criterion met (or not), with one interim note.
pub struct SetVerifier(pub std::sync::atomic::AtomicBool);

impl SetVerifier {
    pub fn passing(pass: bool) -> std::sync::Arc<SetVerifier> {
        std::sync::Arc::new(SetVerifier(std::sync::atomic::AtomicBool::new(pass)))
    }
    pub fn set(&self, pass: bool) {
        self.0.store(pass, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl clawrk_domain::ports::Verifier for SetVerifier {
    fn name(&self) -> String {
        "test".into()
    }
    async fn verify(
        &self,
        task: &clawrk_domain::ports::VerifyTask,
        log: std::sync::Arc<dyn clawrk_domain::ports::LogSink>,
    ) -> Result<clawrk_domain::ports::Assessment, clawrk_domain::ports::LlmError> {
        let pass = self.0.load(Ordering::SeqCst);
        log.log(clawrk_domain::LogLevel::Info, "reading the output".into())
            .await;
        Ok(clawrk_domain::ports::Assessment {
            passed: pass,
            reasoning: if pass { "all met" } else { "not met" }.into(),
            criteria: task
                .criteria()
                .into_iter()
                .map(|c| clawrk_domain::job::CriterionResult {
                    criterion: c,
                    passed: pass,
                    note: String::new(),
                })
                .collect(),
            verifier: "test".into(),
        })
    }
}

/// The structured form every test prompt gets.
pub fn structured(price: i64) -> clawrk_domain::Structured {
    clawrk_domain::Structured {
        title: "Haiku".into(),
        description: "A haiku".into(),
        requirements: "Three lines".into(),
        acceptance_criteria: vec!["Has three lines".into()],
        estimated_price: Price::clamped(price),
        estimated_time_limit: TimeLimit::clamped(i64::from(LIMIT)),
        structured_by: "heuristic".into(),
    }
}

/// A marketplace on a fresh in-memory store: a structurer that always answers
/// [`structured`]`(500)`, `verifier`, payment ports that accept everything.
pub fn market(
    clock: std::sync::Arc<TestClock>,
    verifier: std::sync::Arc<dyn clawrk_domain::ports::Verifier>,
) -> (
    clawrk_domain::service::Marketplace,
    clawrk_domain::memory::MemoryStore,
) {
    use clawrk_domain::ports::*;
    let store = clawrk_domain::memory::MemoryStore::new();
    let mut structurer = MockStructurer::new();
    structurer
        .expect_structure()
        .returning(|_, _| Ok(structured(500)));
    let mut payments = MockPaymentGateway::new();
    payments.expect_collect().returning(|_, _| Ok(()));
    let mut payouts = MockPayoutGateway::new();
    payouts.expect_available().returning(|| Ok(()));
    payouts.expect_send().returning(|_, _| Ok(()));
    let m = clawrk_domain::service::Marketplace::new(
        clawrk_domain::service::Ports {
            store: std::sync::Arc::new(store.clone()),
            structurer: std::sync::Arc::new(structurer),
            verifier,
            clock,
            payments: std::sync::Arc::new(payments),
            payouts: std::sync::Arc::new(payouts),
            webhooks: std::sync::Arc::new(MockWebhookSender::new()),
            files: std::sync::Arc::new(clawrk_domain::memory::MemoryFiles::new()),
        },
        clawrk_domain::service::Config::default(),
    );
    (m, store)
}
