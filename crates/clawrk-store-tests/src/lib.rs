//! The store contract suite: the behaviour every clawrk store must have, written once and run by
//! each store crate against its real database.
//!
//! The contracts are plain `#[tokio::test]`s in [`contracts.rs`](../src/contracts.rs); a store's
//! `tests/contract.rs` defines `static HARNESS` and `include!`s that file, so every contract runs on
//! every store and none can be left out of a list. Each test drives the real
//! [`Marketplace`](clawrk_domain::service::Marketplace) over the store on a fresh database (with a
//! scripted structurer and verifier and payment ports that accept everything), walks a part of
//! SPEC §3 (lifecycle), §4 (money) or §5 (visibility, listing, idempotency), and ends by checking
//! the money invariants **in SQL** (portable queries run through [`Harness::number`] and
//! [`Harness::names`]): all accounts sum to zero, no balance is negative, each balance equals its
//! transfers, each job's escrow matches its status. The concurrency tests race real transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Formatted and linted with the crate; compiled by the stores that include it.
#[cfg(any())]
mod contracts;

use async_trait::async_trait;
use clawrk_domain::error::DomainError;
use clawrk_domain::files::FileMeta;
use clawrk_domain::ids::{AgentId, JobId, Timestamp, UserId};
use clawrk_domain::job::{CriterionResult, Job, JobStatus, LogLevel, Output, Structured};
use clawrk_domain::memory::MemoryFiles;
use clawrk_domain::money::{Cents, Price, Reason, TimeLimit};
use clawrk_domain::ports::{
    Assessment, Clock, LlmError, LogSink, LogWatch, PaymentGateway, PayoutGateway, Store,
    Structurer, Verifier, VerifyTask, WebhookSender,
};
use clawrk_domain::service::{AgentSelector, Config, Marketplace, Ports, RunOutcome, RunRequest};
use clawrk_domain::user::{Agent, User};
use clawrk_domain::webhook::{Outgoing, SendResult};
pub use futures::future::join_all;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

/// What the money invariants look like in the database; every list must be empty and `total` 0.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invariants {
    /// Sum of every account's balance (the world's and the platform's are their ledger sums).
    pub total: i64,
    /// Balance rows below zero, or kept for the world or the platform.
    pub negative: Vec<String>,
    /// Accounts whose balance differs from the sum of their transfers.
    pub unbalanced: Vec<String>,
    /// Jobs whose escrow is not their price while active (or not 0 otherwise).
    pub escrow_mismatch: Vec<String>,
}

/// A store under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// What SQL checks run on.
    type Handle: Send + Sync + 'static;
    /// The store on a fresh, empty, migrated database.
    async fn fresh(&self) -> (Arc<dyn Store>, Self::Handle);
    /// Runs `sql`, which selects one `BIGINT` column named `n` in one row.
    async fn number(&self, db: &Self::Handle, sql: String) -> i64;
    /// Runs `sql`, which selects one text column named `name`.
    async fn names(&self, db: &Self::Handle, sql: String) -> Vec<String>;
}

/// The invariant queries, in SQL both stores understand (`CAST`, not `::`).
mod sql {
    /// Balance rows plus the ledger sums of the accounts without one (world, platform).
    pub const TOTAL: &str = "SELECT CAST(\
         COALESCE((SELECT SUM(balance_cents) FROM balances), 0) \
         + COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit IN ('world', 'platform')), 0) \
         - COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit IN ('world', 'platform')), 0) \
         AS BIGINT) AS n";
    pub const NEGATIVE: &str = "SELECT account AS name FROM balances \
         WHERE balance_cents < 0 OR account IN ('world', 'platform')";
    pub const UNBALANCED: &str = "SELECT b.account AS name FROM balances b WHERE b.balance_cents <> \
         COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit = b.account), 0) - \
         COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit = b.account), 0)";
    pub const ESCROW_MISMATCH: &str = "SELECT CAST(j.id AS TEXT) AS name FROM jobs j \
         LEFT JOIN balances b ON b.account = 'escrow:' || CAST(j.id AS TEXT) \
         WHERE COALESCE(b.balance_cents, 0) <> CASE WHEN j.status IN \
         ('queued', 'held', 'accepted', 'submitted') THEN j.price_cents ELSE 0 END";
}

/// The money invariants of the store behind `db`, computed in SQL.
pub async fn invariants<H: Harness>(h: &H, db: &H::Handle) -> Invariants {
    Invariants {
        total: h.number(db, sql::TOTAL.into()).await,
        negative: h.names(db, sql::NEGATIVE.into()).await,
        unbalanced: h.names(db, sql::UNBALANCED.into()).await,
        escrow_mismatch: h.names(db, sql::ESCROW_MISMATCH.into()).await,
    }
}

/// A clock the tests move by hand; ids are fresh v7 UUIDs.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at a fixed instant.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(1_800_000_000_000)))
    }
    /// Moves time forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// Structures every prompt the same way and counts the calls.
#[derive(Default)]
pub struct FixedStructurer(pub AtomicUsize);

#[async_trait]
impl Structurer for FixedStructurer {
    async fn structure(&self, _prompt: &str, _files: &[FileMeta]) -> Result<Structured, LlmError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Structured {
            title: "Haiku".into(),
            description: "A haiku".into(),
            requirements: "three lines".into(),
            acceptance_criteria: vec!["has three lines".into()],
            estimated_price: Price::new(500).unwrap(),
            estimated_time_limit: TimeLimit::new(600).unwrap(),
            structured_by: "heuristic".into(),
        })
    }
}

/// Passes or fails every criterion, as the test says; or fails to answer.
pub struct ScriptedVerifier {
    pass: AtomicBool,
    down: AtomicBool,
}

impl ScriptedVerifier {
    /// Every verdict from now on passes (or fails).
    pub fn set(&self, pass: bool) {
        self.pass.store(pass, Ordering::SeqCst);
    }
    /// The verifier errors (or answers again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl Verifier for ScriptedVerifier {
    fn name(&self) -> String {
        "scripted".into()
    }
    async fn verify(
        &self,
        task: &VerifyTask,
        log: Arc<dyn LogSink>,
    ) -> Result<Assessment, LlmError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LlmError::Unavailable("scripted outage".into()));
        }
        log.log(LogLevel::Info, "reading the output".into()).await;
        let pass = self.pass.load(Ordering::SeqCst);
        Ok(Assessment {
            passed: pass,
            reasoning: "scripted".into(),
            criteria: task
                .criteria()
                .into_iter()
                .map(|c| CriterionResult {
                    criterion: c,
                    passed: pass,
                    note: String::new(),
                })
                .collect(),
            verifier: "scripted".into(),
        })
    }
}

/// Money in and out without any outside system.
pub struct FreeMoney;

#[async_trait]
impl PaymentGateway for FreeMoney {
    async fn collect(&self, _: UserId, _: Cents) -> clawrk_domain::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl PayoutGateway for FreeMoney {
    async fn available(&self) -> clawrk_domain::Result<()> {
        Ok(())
    }
    async fn send(&self, _: UserId, _: Cents) -> clawrk_domain::Result<()> {
        Ok(())
    }
}

/// One send: endpoint URL, event type, event id, the job's status in the event, and how many
/// tries the delivery had before.
pub type Sent = (String, String, String, JobStatus, u32);

/// A webhook sender that records what it was asked to send and answers as told.
#[derive(Default)]
pub struct RecordingSender {
    /// Every send, in order.
    pub sent: std::sync::Mutex<Vec<Sent>>,
    /// Sends fail (HTTP 500) while this is set.
    pub failing: AtomicBool,
}

#[async_trait]
impl WebhookSender for RecordingSender {
    async fn send(&self, out: &Outgoing) -> SendResult {
        self.sent.lock().unwrap().push((
            out.endpoint.url.clone(),
            out.delivery.event_type.to_string(),
            out.delivery.event_id.clone(),
            out.job.status,
            out.delivery.attempts,
        ));
        if self.failing.load(Ordering::SeqCst) {
            SendResult {
                status: Some(500),
                error: Some("HTTP 500".into()),
            }
        } else {
            SendResult {
                status: Some(200),
                error: None,
            }
        }
    }
}

/// A marketplace on a fresh database, with its clock and scripted LLM.
pub struct Fixture<H: Harness> {
    /// The use cases over the store under test.
    pub market: Arc<Marketplace>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Its verifier.
    pub verifier: Arc<ScriptedVerifier>,
    /// Its structurer.
    pub structurer: Arc<FixedStructurer>,
    /// Its webhook sender.
    pub webhooks: Arc<RecordingSender>,
    /// Its file storage (in memory: the stores keep the metadata under test).
    pub files: MemoryFiles,
    /// The store itself.
    pub store: Arc<dyn Store>,
    /// Where SQL checks run.
    pub db: H::Handle,
}

/// The hold every fixture's marketplace uses, in seconds.
pub const HOLD: u32 = 30;

/// Acts as this agent.
pub fn by(agent: &Agent) -> AgentSelector {
    AgentSelector {
        id: Some(agent.id),
        name: None,
    }
}

/// Acts as the natural default agent.
pub const DEFAULT: AgentSelector = AgentSelector {
    id: None,
    name: None,
};

impl<H: Harness> Fixture<H> {
    /// A fixture on a fresh database.
    pub async fn new(h: &H) -> Self {
        let (store, db) = h.fresh().await;
        Self::on(store, db)
    }

    /// A fixture on a store opened by the test itself.
    pub fn on(store: Arc<dyn Store>, db: H::Handle) -> Self {
        let clock = ManualClock::new();
        let verifier = Arc::new(ScriptedVerifier {
            pass: AtomicBool::new(true),
            down: AtomicBool::new(false),
        });
        let structurer = Arc::new(FixedStructurer::default());
        let webhooks = Arc::new(RecordingSender::default());
        let files = MemoryFiles::new();
        let market = Marketplace::new(
            Ports {
                store: store.clone(),
                structurer: structurer.clone(),
                verifier: verifier.clone(),
                clock: clock.clone(),
                payments: Arc::new(FreeMoney),
                payouts: Arc::new(FreeMoney),
                webhooks: webhooks.clone(),
                files: Arc::new(files.clone()),
            },
            Config {
                hold_seconds: HOLD,
                ..Config::default()
            },
        );
        Fixture {
            market: Arc::new(market),
            clock,
            verifier,
            structurer,
            webhooks,
            files,
            store,
            db,
        }
    }

    /// Another instance of the marketplace on the same database and ports (its own in-process
    /// state: key cache, recent jobs).
    pub fn second_instance(&self) -> Arc<Marketplace> {
        Arc::new(Marketplace::new(
            Ports {
                store: self.store.clone(),
                structurer: self.structurer.clone(),
                verifier: self.verifier.clone(),
                clock: self.clock.clone(),
                payments: Arc::new(FreeMoney),
                payouts: Arc::new(FreeMoney),
                webhooks: self.webhooks.clone(),
                files: Arc::new(self.files.clone()),
            },
            self.market.config().clone(),
        ))
    }

    /// Uploads `data` as `user`'s text file `name`.
    pub async fn upload(&self, user: UserId, name: &str, data: &'static [u8]) -> FileMeta {
        let body = futures::stream::iter([Ok(bytes::Bytes::from_static(data))]);
        let info = clawrk_domain::service::UploadInfo {
            filename: name.into(),
            content_type: Some("text/plain".into()),
            declared_len: None,
        };
        self.market.upload(user, info, body).await.unwrap()
    }

    /// A user with `cents` credited.
    pub async fn user(&self, name: &str, cents: i64) -> User {
        let u = self.market.create_user(name).await.unwrap();
        if cents > 0 {
            self.market
                .adjust_balance(u.id, Cents(cents), Reason::Topup)
                .await
                .unwrap();
        }
        self.market.find_user(&u.id.to_string()).await.unwrap()
    }

    /// The user's default agent.
    pub async fn agent(&self, user: UserId) -> Agent {
        self.market.agents(user).await.unwrap().remove(0)
    }

    /// A confirmed job at `price` cents: queued if the wallet covers it, else pending.
    pub async fn try_job(&self, sender: UserId, price: i64) -> RunOutcome {
        self.market
            .run(
                sender,
                RunRequest {
                    prompt: "write a haiku about the sea".into(),
                    env_vars: [("TOKEN".to_string(), "s3cret".to_string())].into(),
                    price_cents: Some(price),
                    confirmed: true,
                    ..RunRequest::default()
                },
            )
            .await
            .unwrap()
    }

    /// A queued job at `price` cents.
    pub async fn job(&self, sender: UserId, price: i64) -> Job {
        match self.try_job(sender, price).await {
            RunOutcome::Queued(j) => j,
            other => panic!("expected a queued job, got {other:?}"),
        }
    }

    /// A job at `price` cents that `worker` (by its default agent) pulled, accepted and submitted
    /// `output()` for: what a verification takes.
    pub async fn submitted_job(&self, sender: UserId, worker: UserId, price: i64) -> Job {
        let job = self.job(sender, price).await;
        let m = &self.market;
        m.claim(worker, job.id, &DEFAULT).await.unwrap();
        m.accept(worker, job.id, &DEFAULT).await.unwrap();
        m.submit(worker, job.id, output()).await.unwrap()
    }

    /// Asserts that cancelling `job` (which writes a log line) wakes a watcher of it made on
    /// `watch` just before, long before the watcher's 20 s timeout; `what` says what failed.
    pub async fn assert_cancel_wakes(
        &self,
        sender: UserId,
        job: JobId,
        watch: &dyn LogWatch,
        what: &str,
    ) {
        let started = std::time::Instant::now();
        let mut waiter = watch.watch(job);
        let waiter = tokio::spawn(async move { waiter.wait(Duration::from_secs(20)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.market.cancel(sender, job).await.unwrap();
        waiter.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }

    /// A job as its sender sees it.
    pub async fn read(&self, sender: UserId, id: JobId) -> Job {
        self.market.job(sender, id).await.unwrap()
    }

    /// The wallet balance.
    pub async fn balance(&self, user: UserId) -> i64 {
        self.market
            .find_user(&user.to_string())
            .await
            .unwrap()
            .balance_cents
            .get()
    }

    /// The job's log messages.
    pub async fn log(&self, job: JobId) -> Vec<String> {
        self.market
            .log_update(job, 0)
            .await
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.message)
            .collect()
    }

    /// How many rows `table` holds.
    pub async fn rows(&self, h: &H, table: &str) -> i64 {
        h.number(
            &self.db,
            format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"),
        )
        .await
    }

    /// Asserts the money invariants in SQL.
    pub async fn check(&self, h: &H) {
        assert_eq!(invariants(h, &self.db).await, Invariants::default());
    }

    /// Creates `n` queued jobs of 100 cents.
    pub async fn seed_jobs(&self, sender: UserId, n: usize) -> Vec<JobId> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(self.job(sender, 100).await.id);
        }
        ids
    }
}

/// An output worth submitting.
pub fn output() -> Output {
    Output::new(Some("waves / on the shore / again".into()), None).unwrap()
}

/// The id of an agent, for selectors.
pub fn agent_id(a: &Agent) -> AgentId {
    a.id
}

/// Retries an operation the store reported `Unavailable` (a serialization failure, a busy database
/// or a job that kept changing, which callers are told to retry); any other error fails the test.
pub async fn retry<T, F, Fut>(op: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = clawrk_domain::Result<T>>,
{
    match retry_result(op).await {
        Ok(v) => v,
        Err(e) => panic!("store error: {e:?}"),
    }
}

/// [`retry`], returning the last result instead of failing.
pub async fn retry_result<T, F, Fut>(op: F) -> clawrk_domain::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = clawrk_domain::Result<T>>,
{
    for _ in 0..50 {
        match op().await {
            Err(DomainError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    op().await
}
