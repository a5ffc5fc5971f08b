//! The store contract suite: the behaviour every clawrk store must have, written once and run by
//! each store crate against its real database (`contract_tests!`).
//!
//! Each test drives the domain's [`TxStore`] over the store's [`TxRunner`] on a fresh database,
//! walks a part of SPEC §3 (lifecycle), §4 (money) or §5 (visibility, listing), and ends by checking
//! the money invariants **in SQL** (portable queries run through [`Harness::number`] and
//! [`Harness::names`]): all accounts sum to zero, no
//! wallet is negative, each balance equals its transfers, each job's escrow matches its status.
//! The concurrency tests race real transactions: pulls, payments, cancel against claim, sweeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use clawrk_domain::error::DomainError;
use clawrk_domain::ids::{JobId, Timestamp, UserId};
use clawrk_domain::job::{
    Job, JobDraft, JobStatus, LogLevel, Output, RawJson, Structured, Verdict,
};
use clawrk_domain::money::{Cents, Price, Reason, TimeLimit};
use clawrk_domain::ports::{Clock, IdemState, Page, Store, TxRunner};
use clawrk_domain::store::TxStore;
use clawrk_domain::user::{Agent, AgentPatch, KeyHash, NewAgent, User};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// What the money invariants look like in the database; every list must be empty and `total` 0.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invariants {
    /// Sum of every account's balance.
    pub total: i64,
    /// Accounts other than the world below zero.
    pub negative: Vec<String>,
    /// Accounts whose balance differs from the sum of their transfers.
    pub unbalanced: Vec<String>,
    /// Jobs whose escrow is not their price while active (or not 0 otherwise).
    pub escrow_mismatch: Vec<String>,
}

/// A store under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store's runner.
    type Runner: TxRunner + Clone;
    /// A runner on a fresh, empty, migrated database.
    async fn fresh(&self) -> Self::Runner;
    /// Runs `sql`, which selects one `BIGINT` column named `n` in one row.
    async fn number(&self, runner: &Self::Runner, sql: String) -> i64;
    /// Runs `sql`, which selects one text column named `name`.
    async fn names(&self, runner: &Self::Runner, sql: String) -> Vec<String>;
}

/// The invariant queries, in SQL both stores understand (`CAST`, not `::`).
mod sql {
    pub const TOTAL: &str =
        "SELECT CAST(COALESCE(SUM(balance_cents), 0) AS BIGINT) AS n FROM balances";
    pub const NEGATIVE: &str =
        "SELECT account AS name FROM balances WHERE balance_cents < 0 AND account <> 'world'";
    pub const UNBALANCED: &str = "SELECT b.account AS name FROM balances b WHERE b.balance_cents <> \
         COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit = b.account), 0) - \
         COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit = b.account), 0)";
    pub const ESCROW_MISMATCH: &str = "SELECT CAST(j.id AS TEXT) AS name FROM jobs j \
         LEFT JOIN balances b ON b.account = 'escrow:' || CAST(j.id AS TEXT) \
         WHERE COALESCE(b.balance_cents, 0) <> CASE WHEN j.status IN \
         ('queued', 'held', 'accepted', 'submitted') THEN j.price_cents ELSE 0 END";
}

/// The money invariants of the store behind `runner`, computed in SQL.
pub async fn invariants<H: Harness>(h: &H, runner: &H::Runner) -> Invariants {
    Invariants {
        total: h.number(runner, sql::TOTAL.into()).await,
        negative: h.names(runner, sql::NEGATIVE.into()).await,
        unbalanced: h.names(runner, sql::UNBALANCED.into()).await,
        escrow_mismatch: h.names(runner, sql::ESCROW_MISMATCH.into()).await,
    }
}

/// How many rows `table` holds.
async fn rows<H: Harness>(h: &H, runner: &H::Runner, table: &str) -> i64 {
    h.number(
        runner,
        format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"),
    )
    .await
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
        Timestamp::from_millis(self.0.fetch_add(1, Ordering::SeqCst))
    }
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// A store on a fresh database with its clock.
pub struct Fixture<H: Harness> {
    /// The store under test.
    pub store: Arc<TxStore<H::Runner>>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    runner: H::Runner,
}

impl<H: Harness> Fixture<H> {
    /// A fixture on a fresh database.
    pub async fn new(h: &H) -> Self {
        let runner = h.fresh().await;
        let clock = ManualClock::new();
        Fixture {
            store: Arc::new(TxStore::new(runner.clone(), clock.clone())),
            clock,
            runner,
        }
    }

    /// Now, on the fixture's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A user with `cents` topped up.
    pub async fn user(&self, name: &str, cents: i64) -> User {
        let u = self.store.create_user(name, self.now()).await.unwrap();
        if cents > 0 {
            self.store
                .adjust_balance(u.id, Cents(cents), Reason::Topup, self.now())
                .await
                .unwrap();
        }
        self.store.user(u.id).await.unwrap()
    }

    /// The user's default agent.
    pub async fn agent(&self, user: UserId) -> Agent {
        self.store.agents(user).await.unwrap().remove(0)
    }

    /// A confirmed job.
    pub async fn job(&self, sender: UserId, price: i64) -> Job {
        self.store
            .create_job(
                draft("write a haiku about the sea", price),
                sender,
                self.now(),
            )
            .await
            .unwrap()
            .0
    }

    /// The wallet balance.
    pub async fn balance(&self, user: UserId) -> i64 {
        self.store.user(user).await.unwrap().balance_cents.get()
    }

    /// Asserts the money invariants in SQL.
    pub async fn check(&self, h: &H) {
        assert_eq!(invariants(h, &self.runner).await, Invariants::default());
    }
}

/// A draft at `price` cents, 10 minutes.
pub fn draft(prompt: &str, price: i64) -> JobDraft {
    JobDraft {
        prompt: prompt.into(),
        structured: Structured {
            title: "Haiku".into(),
            description: "A haiku".into(),
            requirements: "three lines".into(),
            acceptance_criteria: vec!["has three lines".into()],
            estimated_price: Price::new(price).unwrap(),
            estimated_time_limit: TimeLimit::new(600).unwrap(),
            structured_by: "heuristic".into(),
        },
        price: Price::new(price).unwrap(),
        time_limit: TimeLimit::new(600).unwrap(),
        env_vars: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
        attachments: RawJson::empty_array(),
    }
}

/// A verdict.
pub fn verdict(passed: bool, at: Timestamp) -> Verdict {
    Verdict {
        passed,
        reasoning: "checked".into(),
        criteria: vec![],
        verifier: "heuristic".into(),
        verified_at: at,
    }
}

fn output() -> Output {
    Output::new(Some("waves / on the shore / again".into()), None).unwrap()
}

const HOLD: u32 = 30;

/// Runs the whole contract as `#[tokio::test]`s; `$harness` is an expression giving a `&'static`
/// harness.
#[macro_export]
macro_rules! contract_tests {
    ($harness:expr) => {
        $crate::contract_tests!(@each $harness;
            verified_path, payment_and_cancel_in_every_status, three_failed_attempts_refund,
            pull_rules, hold_expiry, late_submit, listing_and_board, users_agents_and_keys,
            logs_quotes_and_idempotency, verification_lease, concurrent_pulls_hold_each_job_once,
            concurrent_payments_never_overdraw, cancel_races_claim, concurrent_sweeps_release_once);
    };
    (@each $harness:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::$name($harness).await;
            }
        )*
    };
}

/// Paid, held, accepted, submitted, verified: the worker gets price − fee, the platform the fee.
pub async fn verified_path<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 1_000).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let job = f.job(sender.id, 500).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(f.balance(sender.id).await, 500);
    f.check(h).await;

    let held = f
        .store
        .pull(agent.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.id, job.id);
    assert_eq!(held.status, JobStatus::Held);
    assert_eq!(held.presented_to_agents, vec![agent.id]);
    let accepted = f
        .store
        .accept(job.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    assert_eq!(accepted.status, JobStatus::Accepted);
    assert_eq!(accepted.attempt_count, 1);
    assert!(accepted.deadline_at.is_some());
    let submitted = f
        .store
        .submit(job.id, worker.id, output(), f.now())
        .await
        .unwrap();
    assert_eq!(submitted.status, JobStatus::Submitted);
    let leased = f
        .store
        .lease_verification(f.now(), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased.id, job.id);
    let done = f
        .store
        .apply_verdict(job.id, 1, verdict(true, f.now()), f.now())
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Verified);
    assert!(done.verification.as_ref().unwrap().passed);
    // $5.00: fee $1.50, worker $3.50.
    assert_eq!(f.balance(worker.id).await, 350);
    assert_eq!(f.balance(sender.id).await, 500);
    let ledger = f.store.ledger(worker.id, Page::first()).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].delta_cents, ledger[0].reason),
        (Cents(350), Reason::Earning)
    );
    assert_eq!(ledger[0].job_id, Some(job.id));
    let sender_ledger = f.store.ledger(sender.id, Page::first()).await.unwrap();
    assert_eq!(sender_ledger[0].delta_cents, Cents(-500));
    assert_eq!(sender_ledger[0].reason, Reason::JobPayment);
    let stats = f.store.stats().await.unwrap();
    assert_eq!(stats.jobs_verified, 1);
    assert_eq!(stats.total_paid_out, Cents(350));
    let dir = f.store.directory(Page::first()).await.unwrap();
    let me = dir.iter().find(|p| p.agent.id == agent.id).unwrap();
    assert_eq!(
        (me.jobs_verified, me.jobs_failed, me.earned_cents),
        (1, 0, Cents(350))
    );
    // A duplicate verdict for the same attempt changes nothing.
    let again = f
        .store
        .apply_verdict(job.id, 1, verdict(false, f.now()), f.now())
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Verified);
    assert_eq!(f.balance(worker.id).await, 350);
    f.check(h).await;
}

/// 402 then pay; cancel from every status with the right refund.
pub async fn payment_and_cancel_in_every_status<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 0).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let (pending, seen) = f
        .store
        .create_job(draft("p", 300), sender.id, f.now())
        .await
        .unwrap();
    assert_eq!(
        (pending.status, seen),
        (JobStatus::PendingPayment, Cents(0))
    );
    let short = f
        .store
        .pay(pending.id, sender.id, f.now())
        .await
        .unwrap_err();
    assert!(
        matches!(short, DomainError::InsufficientBalance { .. }),
        "{short:?}"
    );
    f.store
        .adjust_balance(sender.id, Cents(2_000), Reason::Topup, f.now())
        .await
        .unwrap();
    let paid = f.store.pay(pending.id, sender.id, f.now()).await.unwrap();
    assert_eq!(paid.status, JobStatus::Queued);
    assert_eq!(f.balance(sender.id).await, 1_700);
    let twice = f
        .store
        .pay(pending.id, sender.id, f.now())
        .await
        .unwrap_err();
    assert!(
        matches!(twice, DomainError::InvalidState { .. }),
        "{twice:?}"
    );
    // Cancel queued: refunded.
    let c = f.store.cancel(paid.id, sender.id, f.now()).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel a pending job: nothing to refund.
    let (p2, _) = f
        .store
        .create_job(draft("p2", 5_000), sender.id, f.now())
        .await
        .unwrap();
    assert_eq!(p2.status, JobStatus::PendingPayment);
    let c2 = f.store.cancel(p2.id, sender.id, f.now()).await.unwrap();
    assert_eq!(c2.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel held: refunded.
    let j3 = f.job(sender.id, 400).await;
    f.store
        .claim(j3.id, agent.as_ref(), HOLD, f.now())
        .await
        .unwrap();
    let c3 = f.store.cancel(j3.id, sender.id, f.now()).await.unwrap();
    assert_eq!(c3.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel accepted: only requested; the next failure cancels and refunds.
    let j4 = f.job(sender.id, 400).await;
    f.store
        .claim(j4.id, agent.as_ref(), HOLD, f.now())
        .await
        .unwrap();
    f.store
        .accept(j4.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    let c4 = f.store.cancel(j4.id, sender.id, f.now()).await.unwrap();
    assert_eq!(c4.status, JobStatus::Accepted);
    assert!(c4.cancellation_requested);
    assert_eq!(f.balance(sender.id).await, 1_600);
    let failed = f.store.give_up(j4.id, worker.id, f.now()).await.unwrap();
    assert_eq!(failed.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel a final job: a no-op.
    let again = f.store.cancel(j4.id, sender.id, f.now()).await.unwrap();
    assert_eq!(again.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Only the sender cancels.
    let j5 = f.job(sender.id, 400).await;
    let e = f.store.cancel(j5.id, worker.id, f.now()).await.unwrap_err();
    assert!(
        matches!(e, DomainError::Forbidden(_) | DomainError::NotFound(_)),
        "{e:?}"
    );
    assert_eq!(f.store.job(j5.id).await.unwrap().status, JobStatus::Queued);
    f.check(h).await;
}

/// Give-up, failed verdict, missed deadline: the third failure fails the job and refunds it.
pub async fn three_failed_attempts_refund<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 1_000).await;
    let job = f.job(sender.id, 1_000).await;
    let mut agents = vec![];
    for n in 0..3 {
        let w = f.user(&format!("worker{n}"), 0).await;
        agents.push((w.id, f.agent(w.id).await));
    }
    // 1: gives up.
    let (w, a) = &agents[0];
    f.store
        .pull(a.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    f.store.accept(job.id, a.as_ref(), f.now()).await.unwrap();
    let j = f.store.give_up(job.id, *w, f.now()).await.unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    // 2: fails verification.
    let (w, a) = &agents[1];
    f.store
        .pull(a.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    f.store.accept(job.id, a.as_ref(), f.now()).await.unwrap();
    f.store.submit(job.id, *w, output(), f.now()).await.unwrap();
    let j = f
        .store
        .apply_verdict(job.id, 2, verdict(false, f.now()), f.now())
        .await
        .unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 2));
    assert!(!j.verification.as_ref().unwrap().passed);
    // 3: misses the deadline; the sweeper fails it for good.
    let (_, a) = &agents[2];
    f.store
        .pull(a.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    f.store.accept(job.id, a.as_ref(), f.now()).await.unwrap();
    f.clock.advance(Duration::from_secs(601));
    let report = f.store.sweep(f.now()).await.unwrap();
    assert_eq!(report.failed_deadlines, 1);
    let j = f.store.job(job.id).await.unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Failed, 3));
    assert_eq!(f.balance(sender.id).await, 1_000);
    let refunds: Vec<_> = f
        .store
        .ledger(sender.id, Page::first())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.reason == Reason::Refund)
        .collect();
    assert_eq!(refunds.len(), 1);
    let dir = f.store.directory(Page::first()).await.unwrap();
    for (_, a) in &agents {
        let p = dir.iter().find(|p| p.agent.id == a.id).unwrap();
        assert_eq!((p.jobs_verified, p.jobs_failed), (0, 1), "{}", a.name);
    }
    f.check(h).await;
}

/// Pull never offers the owner's own jobs nor a job already presented to the agent; oldest first.
pub async fn pull_rules<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let own = f.agent(sender.id).await;
    let agent = f.agent(worker.id).await;
    assert!(
        f.store
            .pull(agent.clone(), HOLD, f.now())
            .await
            .unwrap()
            .is_none()
    );
    let first = f.job(sender.id, 500).await;
    let second = f.job(sender.id, 500).await;
    assert!(
        f.store
            .pull(own.clone(), HOLD, f.now())
            .await
            .unwrap()
            .is_none()
    );
    let p1 = f
        .store
        .pull(agent.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p1.id, first.id);
    let r = f
        .store
        .reject(first.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    assert!(r.holder.is_none());
    let p2 = f
        .store
        .pull(agent.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p2.id, second.id);
    f.store
        .reject(second.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    assert!(
        f.store
            .pull(agent.clone(), HOLD, f.now())
            .await
            .unwrap()
            .is_none()
    );
    // Claim by id still works after a reject, and the sender's agent may not claim its own job.
    let c = f
        .store
        .claim(first.id, agent.as_ref(), HOLD, f.now())
        .await
        .unwrap();
    assert_eq!(c.status, JobStatus::Held);
    let e = f
        .store
        .claim(second.id, own.as_ref(), HOLD, f.now())
        .await
        .unwrap_err();
    assert!(matches!(e, DomainError::Forbidden(_)), "{e:?}");
    let busy = f
        .store
        .claim(first.id, own.as_ref(), HOLD, f.now())
        .await
        .unwrap_err();
    assert!(!matches!(busy, DomainError::Internal(_)), "{busy:?}");
    f.check(h).await;
}

/// A lapsed hold: accept answers HoldExpired and the job is back in the queue; the sweeper
/// releases lapsed holds too.
pub async fn hold_expiry<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let job = f.job(sender.id, 500).await;
    f.store
        .pull(agent.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    f.clock.advance(Duration::from_secs(31));
    let e = f
        .store
        .accept(job.id, agent.as_ref(), f.now())
        .await
        .unwrap_err();
    assert_eq!(e, DomainError::HoldExpired);
    let j = f.store.job(job.id).await.unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 0));
    assert!(j.holder.is_none());

    let other = f.user("other", 0).await;
    let oa = f.agent(other.id).await;
    f.store
        .pull(oa.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.store.sweep(f.now()).await.unwrap().released_holds, 0);
    f.clock.advance(Duration::from_secs(31));
    let report = f.store.sweep(f.now()).await.unwrap();
    assert_eq!((report.released_holds, report.failed_deadlines), (1, 0));
    assert_eq!(f.store.job(job.id).await.unwrap().status, JobStatus::Queued);
    assert_eq!(f.store.sweep(f.now()).await.unwrap().released_holds, 0);
    let e = f
        .store
        .accept(job.id, oa.as_ref(), f.now())
        .await
        .unwrap_err();
    assert_eq!(e, DomainError::HoldExpired);
    f.check(h).await;
}

/// A submission at the deadline fails the attempt (and says so); the job goes back to the queue.
pub async fn late_submit<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let job = f.job(sender.id, 500).await;
    f.store
        .pull(agent.clone(), HOLD, f.now())
        .await
        .unwrap()
        .unwrap();
    f.store
        .accept(job.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(600));
    let e = f
        .store
        .submit(job.id, worker.id, output(), f.now())
        .await
        .unwrap_err();
    assert_eq!(e, DomainError::DeadlinePassed);
    let j = f.store.job(job.id).await.unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    assert!(j.deadline_at.is_none());
    assert_eq!(j.receiver, Some(worker.id));
    // Not the receiver: refused, nothing changes.
    let sender_submit = f.store.submit(job.id, sender.id, output(), f.now()).await;
    assert!(sender_submit.is_err());
    f.check(h).await;
}

/// Listing is the sender's own jobs, newest first, paged by cursor; the board is `queued` only.
pub async fn listing_and_board<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let a = f.user("alice", 10_000).await;
    let b = f.user("bob", 10_000).await;
    let mut mine = vec![];
    for _ in 0..5 {
        mine.push(f.job(a.id, 200).await.id);
    }
    let theirs = f.job(b.id, 300).await;
    f.store.cancel(mine[0], a.id, f.now()).await.unwrap();
    mine.reverse();
    let p1 = f
        .store
        .list_jobs(a.id, None, Page::new(Some(2), None).unwrap())
        .await
        .unwrap();
    assert_eq!(p1.iter().map(|j| j.id).collect::<Vec<_>>(), mine[..2]);
    let p2 = f
        .store
        .list_jobs(a.id, None, Page::new(Some(2), Some(p1[1].id)).unwrap())
        .await
        .unwrap();
    assert_eq!(p2.iter().map(|j| j.id).collect::<Vec<_>>(), mine[2..4]);
    let p3 = f
        .store
        .list_jobs(a.id, None, Page::new(Some(2), Some(p2[1].id)).unwrap())
        .await
        .unwrap();
    assert_eq!(p3.iter().map(|j| j.id).collect::<Vec<_>>(), mine[4..]);
    let cancelled = f
        .store
        .list_jobs(a.id, Some(JobStatus::Cancelled), Page::first())
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(
        !f.store
            .list_jobs(a.id, None, Page::first())
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == theirs.id)
    );
    let board = f.store.board(Page::first()).await.unwrap();
    assert_eq!(board.len(), 5);
    assert_eq!(board[0].id, theirs.id);
    assert!(board.iter().all(|j| j.status == JobStatus::Queued));
    let stats = f.store.stats().await.unwrap();
    let count = |s| stats.counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(
        (count(JobStatus::Queued), count(JobStatus::Cancelled)),
        (5, 1)
    );
    assert_eq!(stats.counts.len(), 8);
    assert_eq!(stats.median_queued_price, Some(Cents(200)));
    assert_eq!(stats.agents, 2);
    f.check(h).await;
}

/// Users, keys and agents: uniqueness, lookups, the rules of deleting an agent.
pub async fn users_agents_and_keys<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let u = f.user("carol", 0).await;
    let dup = f.store.create_user("carol", f.now()).await.unwrap_err();
    assert!(matches!(dup, DomainError::Conflict(_)), "{dup:?}");
    assert_eq!(f.store.find_user("carol").await.unwrap().id, u.id);
    assert_eq!(f.store.find_user(&u.id.to_string()).await.unwrap().id, u.id);
    assert!(matches!(
        f.store.find_user("nobody").await,
        Err(DomainError::NotFound(_))
    ));
    let key = KeyHash::of("ck_secret");
    f.store.create_api_key(u.id, key, f.now()).await.unwrap();
    assert_eq!(f.store.authenticate(key).await.unwrap().unwrap().id, u.id);
    assert!(
        f.store
            .authenticate(KeyHash::of("other"))
            .await
            .unwrap()
            .is_none()
    );

    let default = f.agent(u.id).await;
    assert!(default.is_default);
    let coder = f
        .store
        .create_agent(
            u.id,
            NewAgent {
                name: "coder".into(),
                personality: Some("rust services".into()),
                avatar_url: None,
            },
            f.now(),
        )
        .await
        .unwrap();
    let dup = f
        .store
        .create_agent(
            u.id,
            NewAgent {
                name: "coder".into(),
                ..Default::default()
            },
            f.now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, DomainError::Conflict(_)), "{dup:?}");
    let rename = f
        .store
        .update_agent(
            u.id,
            coder.id,
            AgentPatch {
                name: Some("default".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(rename, DomainError::Conflict(_)), "{rename:?}");
    let changed = f
        .store
        .update_agent(
            u.id,
            coder.id,
            AgentPatch {
                personality: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.personality, None);
    let names: Vec<String> = f
        .store
        .agents(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["default", "coder"]);
    assert_eq!(
        f.store.agent_by_name(u.id, "coder").await.unwrap().id,
        coder.id
    );
    let e = f.store.delete_agent(u.id, default.id).await.unwrap_err();
    assert!(matches!(e, DomainError::Conflict(_)), "{e:?}");
    // Busy agents cannot be deleted.
    let sender = f.user("dave", 1_000).await;
    let job = f.job(sender.id, 500).await;
    f.store
        .claim(job.id, coder.as_ref(), HOLD, f.now())
        .await
        .unwrap();
    let e = f.store.delete_agent(u.id, coder.id).await.unwrap_err();
    assert!(matches!(e, DomainError::Conflict(_)), "{e:?}");
    f.store
        .reject(job.id, coder.as_ref(), f.now())
        .await
        .unwrap();
    // Someone else's agent is not found.
    let e = f.store.delete_agent(sender.id, coder.id).await.unwrap_err();
    assert!(matches!(e, DomainError::NotFound(_)), "{e:?}");
    f.store.delete_agent(u.id, coder.id).await.unwrap();
    assert_eq!(f.store.agents(u.id).await.unwrap().len(), 1);
    // Operator debits cannot overdraw.
    let e = f
        .store
        .adjust_balance(u.id, Cents(-1), Reason::Adjustment, f.now())
        .await
        .unwrap_err();
    assert!(
        matches!(e, DomainError::InsufficientBalance { .. }),
        "{e:?}"
    );
    f.check(h).await;
}

/// Log lines are numbered per job from 1; quotes expire; idempotency keys replay or refuse.
pub async fn logs_quotes_and_idempotency<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let u = f.user("erin", 1_000).await;
    let job = f.job(u.id, 500).await;
    let other = f.job(u.id, 500).await;
    for m in ["one", "two", "three"] {
        f.store
            .append_log(job.id, LogLevel::Info, m.into(), f.now())
            .await
            .unwrap();
    }
    let l = f
        .store
        .append_log(other.id, LogLevel::Warn, "x".into(), f.now())
        .await
        .unwrap();
    assert_eq!(l.seq, 1);
    let all = f.store.logs(job.id, 0).await.unwrap();
    assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let later = f.store.logs(job.id, 1).await.unwrap();
    assert_eq!(
        later.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["two", "three"]
    );

    let s = draft("q", 700).structured;
    let until = f.now().plus_seconds(900);
    f.store
        .save_quote(u.id, "q".into(), s.clone(), until)
        .await
        .unwrap();
    assert_eq!(
        f.store.quote(u.id, "q".into(), f.now()).await.unwrap(),
        Some(s)
    );
    assert_eq!(
        f.store.quote(u.id, "other".into(), f.now()).await.unwrap(),
        None
    );
    f.clock.advance(Duration::from_secs(901));
    assert_eq!(
        f.store.quote(u.id, "q".into(), f.now()).await.unwrap(),
        None
    );

    let exp = f.now().plus_seconds(86_400);
    let d1 = [1u8; 32];
    let r = |k: &str, d: [u8; 32]| f.store.idem_reserve(u.id, k.into(), d, f.now(), exp);
    assert_eq!(r("k", d1).await.unwrap(), IdemState::Reserved);
    assert_eq!(r("k", d1).await.unwrap(), IdemState::InProgress);
    f.store
        .idem_complete(u.id, "k".into(), b"{\"ok\":1}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        r("k", d1).await.unwrap(),
        IdemState::Replay(b"{\"ok\":1}".to_vec())
    );
    assert_eq!(r("k", [2u8; 32]).await.unwrap(), IdemState::Mismatch);
    assert_eq!(r("k2", d1).await.unwrap(), IdemState::Reserved);
    f.store.idem_release(u.id, "k2".into()).await.unwrap();
    assert_eq!(r("k2", d1).await.unwrap(), IdemState::Reserved);
    // The sweeper forgets expired quotes and idempotency records, and only those.
    assert_eq!(rows(h, &f.runner, "quotes").await, 1);
    assert_eq!(rows(h, &f.runner, "idempotency").await, 2);
    let fresh = f.now().plus_seconds(60);
    f.store
        .idem_reserve(u.id, "k3".into(), d1, f.now(), fresh)
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(86_401));
    f.store.sweep(f.now()).await.unwrap();
    assert_eq!(rows(h, &f.runner, "quotes").await, 0);
    assert_eq!(rows(h, &f.runner, "idempotency").await, 0);
    f.check(h).await;
}

/// A leased verification is not leased again until the lease lapses.
pub async fn verification_lease<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let job = f.job(sender.id, 500).await;
    f.store
        .claim(job.id, agent.as_ref(), HOLD, f.now())
        .await
        .unwrap();
    f.store
        .accept(job.id, agent.as_ref(), f.now())
        .await
        .unwrap();
    f.store
        .submit(job.id, worker.id, output(), f.now())
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    assert!(
        f.store
            .lease_verification(f.now(), lease)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .lease_verification(f.now(), lease)
            .await
            .unwrap()
            .is_none()
    );
    f.clock.advance(Duration::from_secs(61));
    let again = f.store.lease_verification(f.now(), lease).await.unwrap();
    assert_eq!(again.map(|j| j.id), Some(job.id));
    f.check(h).await;
}

/// 64 concurrent pullers over 2,000 queued jobs: every job is held exactly once.
pub async fn concurrent_pulls_hold_each_job_once<H: Harness>(h: &H) {
    const PULLERS: usize = 64;
    const JOBS: usize = 2_000;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100 * JOBS as i64).await;
    seed_jobs(&f, sender.id, JOBS).await;
    let mut agents = vec![];
    for n in 0..PULLERS {
        let w = f.user(&format!("w{n}"), 0).await;
        agents.push(f.agent(w.id).await);
    }
    let now = f.now();
    let tasks = agents.into_iter().map(|a| {
        let store = f.store.clone();
        tokio::spawn(async move {
            let mut got = vec![];
            while let Some(j) = retry(|| store.pull(a.clone(), 3_600, now)).await {
                assert_eq!(j.holder.map(|h| h.agent_id), Some(a.id));
                got.push(j.id);
            }
            got
        })
    });
    let mut seen = HashSet::new();
    for t in futures::future::join_all(tasks).await {
        for id in t.unwrap() {
            assert!(seen.insert(id), "job {id} held twice");
        }
    }
    assert_eq!(seen.len(), JOBS);
    f.check(h).await;
}

/// 20 concurrent payments of 100 cents from a 1,000-cent wallet: exactly 10 succeed, balance 0.
pub async fn concurrent_payments_never_overdraw<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let u = f.user("payer", 0).await;
    let mut jobs = vec![];
    for _ in 0..20 {
        let (j, _) = f
            .store
            .create_job(draft("x", 100), u.id, f.now())
            .await
            .unwrap();
        jobs.push(j.id);
    }
    f.store
        .adjust_balance(u.id, Cents(1_000), Reason::Topup, f.now())
        .await
        .unwrap();
    let now = f.now();
    let tasks = jobs.into_iter().map(|id| {
        let store = f.store.clone();
        tokio::spawn(async move { retry_result(|| store.pay(id, u.id, now)).await })
    });
    let mut ok = 0;
    for r in futures::future::join_all(tasks).await {
        match r.unwrap() {
            Ok(j) => {
                assert_eq!(j.status, JobStatus::Queued);
                ok += 1;
            }
            Err(DomainError::InsufficientBalance { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(f.balance(u.id).await, 0);
    f.check(h).await;
}

/// Cancel racing claim on the same job, 200 times: the job always ends cancelled and refunded
/// exactly once; a successful claim saw it `held` before the cancel.
pub async fn cancel_races_claim<H: Harness>(h: &H) {
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 200 * 100).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let jobs = seed_jobs(&f, sender.id, 200).await;
    for id in jobs {
        let now = f.now();
        let (s1, s2, a) = (f.store.clone(), f.store.clone(), agent.as_ref());
        let cancel =
            tokio::spawn(async move { retry_result(|| s1.cancel(id, sender.id, now)).await });
        let claim = tokio::spawn(async move { retry_result(|| s2.claim(id, a, HOLD, now)).await });
        let (cancel, claim) = (cancel.await.unwrap(), claim.await.unwrap());
        assert_eq!(cancel.unwrap().status, JobStatus::Cancelled);
        match claim {
            Ok(j) => assert_eq!(j.status, JobStatus::Held),
            Err(DomainError::InvalidState { status, .. }) => {
                assert_eq!(status, JobStatus::Cancelled)
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_eq!(f.store.job(id).await.unwrap().status, JobStatus::Cancelled);
    }
    assert_eq!(f.balance(sender.id).await, 200 * 100);
    f.check(h).await;
}

/// 10 concurrent sweeps over 500 lapsed holds: each hold is released exactly once.
pub async fn concurrent_sweeps_release_once<H: Harness>(h: &H) {
    const JOBS: usize = 500;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100 * JOBS as i64).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let jobs = seed_jobs(&f, sender.id, JOBS).await;
    for id in &jobs {
        f.store
            .claim(*id, agent.as_ref(), HOLD, f.now())
            .await
            .unwrap();
    }
    f.clock.advance(Duration::from_secs(31));
    let now = f.now();
    let tasks = (0..10).map(|_| {
        let store = f.store.clone();
        tokio::spawn(async move { retry(|| store.sweep(now)).await })
    });
    let released: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().released_holds)
        .sum();
    assert_eq!(released, JOBS as u64);
    for id in jobs {
        assert_eq!(f.store.job(id).await.unwrap().status, JobStatus::Queued);
    }
    f.check(h).await;
}

/// Creates `n` queued jobs of 100 cents.
async fn seed_jobs<H: Harness>(f: &Fixture<H>, sender: UserId, n: usize) -> Vec<JobId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (j, _) = f
            .store
            .create_job(draft(&format!("job {i}"), 100), sender, f.now())
            .await
            .unwrap();
        assert_eq!(j.status, JobStatus::Queued);
        ids.push(j.id);
    }
    ids
}

/// Retries an operation the store reported `Unavailable` (a serialization failure or a busy
/// database, which callers are told to retry); any other error fails the test.
async fn retry<T, F, Fut>(op: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = clawrk_domain::error::Result<T>>,
{
    match retry_result(op).await {
        Ok(v) => v,
        Err(e) => panic!("store error: {e:?}"),
    }
}

async fn retry_result<T, F, Fut>(op: F) -> clawrk_domain::error::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = clawrk_domain::error::Result<T>>,
{
    for _ in 0..20 {
        match op().await {
            Err(DomainError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    op().await
}
