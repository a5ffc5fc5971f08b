//! The use cases of `Marketplace` on the in-memory store, with only the LLM and the payment ports
//! mocked (mockall): what each asks of those ports, what it returns, and what it leaves in the
//! store — balances, log lines, attempts.

mod common;

use clawrk_domain::job::AgentRef;
use clawrk_domain::memory::MemoryStore;
use clawrk_domain::money::MAX_AMOUNT;
use clawrk_domain::ports::*;
use clawrk_domain::service::{
    AgentSelector, Config, IdemState, JobsOf, Marketplace, Ports, RunOutcome, RunRequest,
};
use clawrk_domain::user::{KeyHash, NewAgent, User, api_key_from};
use clawrk_domain::{Account, Cents, DomainError, JobId, JobStatus, LogLevel, Output, Reason};
use common::*;
use futures::executor::block_on;
use mockall::predicate::*;
use std::sync::Arc;

struct Mocks {
    structurer: MockStructurer,
    verifier: Arc<dyn Verifier>,
    payments: MockPaymentGateway,
    payouts: MockPayoutGateway,
}

impl Mocks {
    fn new() -> Self {
        Mocks {
            structurer: MockStructurer::new(),
            verifier: SetVerifier::passing(true),
            payments: MockPaymentGateway::new(),
            payouts: MockPayoutGateway::new(),
        }
    }

    fn build(self, clock: Arc<TestClock>) -> (Marketplace, MemoryStore) {
        let store = MemoryStore::new();
        let m = Marketplace::new(
            Ports {
                store: Arc::new(store.clone()),
                structurer: Arc::new(self.structurer),
                verifier: self.verifier,
                clock,
                payments: Arc::new(self.payments),
                payouts: Arc::new(self.payouts),
                webhooks: Arc::new(MockWebhookSender::new()),
                files: std::sync::Arc::new(clawrk_domain::memory::MemoryFiles::new()),
            },
            Config::default(),
        );
        (m, store)
    }
}

/// A marketplace whose structurer answers every prompt and whose ports accept everything.
fn world() -> (Marketplace, MemoryStore, Arc<TestClock>) {
    let clock = TestClock::at(T0);
    let (m, s) = market(clock.clone(), SetVerifier::passing(true));
    (m, s, clock)
}

async fn funded(m: &Marketplace, name: &str, cents: i64) -> User {
    let u = m.create_user(name).await.unwrap();
    if cents > 0 {
        m.adjust_balance(u.id, Cents(cents), Reason::Adjustment)
            .await
            .unwrap();
    }
    u
}

fn confirmed(prompt: &str) -> RunRequest {
    RunRequest {
        prompt: prompt.into(),
        confirmed: true,
        ..RunRequest::default()
    }
}

async fn queued(m: &Marketplace, sender: &User) -> clawrk_domain::Job {
    match m.run(sender.id, confirmed("Write a haiku")).await.unwrap() {
        RunOutcome::Queued(j) => j,
        other => panic!("expected a queued job, got {other:?}"),
    }
}

fn output() -> Output {
    Output::new(Some("one\ntwo\nthree".into()), None).unwrap()
}

fn balance(s: &MemoryStore, a: Account) -> i64 {
    s.snapshot()
        .balances
        .get(&a)
        .copied()
        .unwrap_or_default()
        .get()
}

async fn log_of(m: &Marketplace, job: JobId) -> Vec<String> {
    m.log_update(job, 0)
        .await
        .unwrap()
        .lines
        .into_iter()
        .map(|l| l.message)
        .collect()
}

const NOBODY: AgentSelector = AgentSelector {
    id: None,
    name: None,
};

#[test]
fn run_structures_once_then_charges_what_it_showed() {
    block_on(async {
        let mut mocks = Mocks::new();
        mocks
            .structurer
            .expect_structure()
            .withf(|p, files| p == "Write a haiku" && files.is_empty())
            .times(1)
            .returning(|_, _| Ok(structured(700)));
        let clock = TestClock::at(T0);
        let (m, s) = mocks.build(clock.clone());
        let u = funded(&m, "alice", 1_000).await;
        let est = m
            .run(
                u.id,
                RunRequest {
                    prompt: "  Write a haiku ".into(),
                    ..RunRequest::default()
                },
            )
            .await
            .unwrap();
        let RunOutcome::Estimate(e) = est else {
            panic!("phase 1 estimates")
        };
        assert_eq!(e.estimated_price.cents(), Cents(700));
        // Phase 2 a minute later reuses the quote: the structurer is not called again.
        clock.advance_secs(60);
        let RunOutcome::Queued(job) = m.run(u.id, confirmed("Write a haiku")).await.unwrap() else {
            panic!("paid")
        };
        assert_eq!(
            (job.price.cents(), job.status),
            (Cents(700), JobStatus::Queued)
        );
        assert_eq!(balance(&s, Account::Wallet(u.id)), 300);
        assert_eq!(balance(&s, Account::Escrow(job.id)), 700);
        // An override wins over the estimate.
        let RunOutcome::PendingPayment {
            job,
            required,
            available,
        } = m
            .run(
                u.id,
                RunRequest {
                    price_cents: Some(400),
                    ..confirmed("Write a haiku")
                },
            )
            .await
            .unwrap()
        else {
            panic!("short")
        };
        assert_eq!(job.status, JobStatus::PendingPayment);
        assert_eq!((required, available), (Cents(400), Cents(300)));
        assert_eq!(balance(&s, Account::Wallet(u.id)), 300, "nothing moved");
    });
}

#[test]
fn bad_input_is_refused_before_any_port_is_called() {
    block_on(async {
        let mut mocks = Mocks::new();
        mocks.structurer.expect_structure().times(0);
        let (m, s) = mocks.build(TestClock::at(T0));
        let u = m.create_user("alice").await.unwrap();
        let cases = [
            (RunRequest::default(), "prompt is required"),
            (confirmed(&"x".repeat(20_001)), "at most 20000"),
            (confirmed("a\0b"), "prompt must not contain NUL"),
            (
                RunRequest {
                    env_vars: [("K".into(), "v\0".into())].into(),
                    ..confirmed("ok")
                },
                "envVars.K must not contain NUL",
            ),
            (
                RunRequest {
                    price_cents: Some(99),
                    ..confirmed("ok")
                },
                "price_cents must be between",
            ),
            (
                RunRequest {
                    time_limit_seconds: Some(86_401),
                    ..confirmed("ok")
                },
                "time_limit_seconds must be between",
            ),
        ];
        for (req, msg) in cases {
            let e = m.run(u.id, req).await.unwrap_err();
            assert!(matches!(e, DomainError::Invalid(_)), "{e:?}");
            assert!(e.to_string().contains(msg), "{e} / {msg}");
        }
        assert!(s.snapshot().jobs.is_empty());
        for bad in ["a\0b", " ", &"n".repeat(65)] {
            assert!(matches!(
                m.create_user(bad).await,
                Err(DomainError::Invalid(_))
            ));
        }
        let e = m
            .create_agent(
                u.id,
                NewAgent {
                    name: "poet".into(),
                    personality: Some("sea\0".into()),
                    avatar_url: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "personality must not contain NUL characters");
    });
}

#[test]
fn pending_payment_is_paid_once_the_wallet_covers_it() {
    block_on(async {
        let (m, s, _) = world();
        let u = m.create_user("alice").await.unwrap();
        let RunOutcome::PendingPayment { job, .. } =
            m.run(u.id, confirmed("Write a haiku")).await.unwrap()
        else {
            panic!("short")
        };
        let e = m.pay(u.id, job.id).await.unwrap_err();
        assert_eq!(
            e,
            DomainError::InsufficientBalance {
                required: Cents(500),
                available: Cents(0)
            }
        );
        assert_eq!(s.snapshot().jobs[&job.id].status, JobStatus::PendingPayment);
        m.adjust_balance(u.id, Cents(600), Reason::Adjustment)
            .await
            .unwrap();
        assert_eq!(m.pay(u.id, job.id).await.unwrap().status, JobStatus::Queued);
        assert!(matches!(
            m.pay(u.id, job.id).await,
            Err(DomainError::InvalidState { .. })
        ));
        assert_eq!(balance(&s, Account::Wallet(u.id)), 100);
        assert_eq!(balance(&s, Account::Escrow(job.id)), 500);
    });
}

#[test]
fn a_verified_job_pays_its_worker_and_logs_the_verification() {
    block_on(async {
        let (m, s, _) = world();
        let sender = funded(&m, "sender", 500).await;
        let worker = m.create_user("worker").await.unwrap();
        let job = queued(&m, &sender).await;
        let held = m.pull(worker.id, &NOBODY).await.unwrap().unwrap();
        assert_eq!(held.hold_expires_at, Some(T0.plus_seconds(30)));
        m.accept(worker.id, job.id, &NOBODY).await.unwrap();
        m.submit(worker.id, job.id, output()).await.unwrap();
        let done = m.verify_next().await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Verified);
        assert_eq!(balance(&s, Account::Wallet(worker.id)), 350);
        assert_eq!(balance(&s, Account::Platform), 150);
        assert_eq!(balance(&s, Account::Escrow(job.id)), 0);
        assert_eq!(
            log_of(&m, job.id).await,
            [
                "verification of attempt 1 started (test): 1 criteria",
                "reading the output",
                "criterion 1/1 met: Has three lines",
                "verdict: passed — all met",
                "the job is verified: the agent's owner earns $3.50",
            ]
        );
        // The queued job woke the waiting pulls; the lease line and the verdict each woke the
        // job's log watchers once.
        assert_eq!(
            s.snapshot().notified,
            [
                Announcement::Queued(job.id),
                Announcement::Log(job.id),
                Announcement::Log(job.id)
            ]
        );
        let dir = m.directory(Page::first()).await.unwrap();
        let me = dir.iter().find(|p| p.agent.owner_id == worker.id).unwrap();
        assert_eq!(
            (me.jobs_verified, me.jobs_failed, me.earned_cents),
            (1, 0, Cents(350))
        );
        assert!(m.verify_next().await.unwrap().is_none());
        let stats = m.stats().await.unwrap();
        assert_eq!((stats.jobs_verified, stats.total_paid_out), (1, Cents(350)));
    });
}

#[test]
fn three_failed_attempts_fail_the_job_and_refund_the_sender() {
    block_on(async {
        let clock = TestClock::at(T0);
        let verifier = SetVerifier::passing(false);
        let (m, s) = market(clock.clone(), verifier);
        let sender = funded(&m, "sender", 500).await;
        let job = queued(&m, &sender).await;
        let mut workers = vec![];
        for n in 0..3 {
            workers.push(m.create_user(&format!("w{n}")).await.unwrap());
        }
        // 1: gives up. 2: fails verification. 3: misses the deadline.
        m.pull(workers[0].id, &NOBODY).await.unwrap().unwrap();
        m.accept(workers[0].id, job.id, &NOBODY).await.unwrap();
        let j = m
            .give_up(workers[0].id, job.id, Some("no GPU".into()))
            .await
            .unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
        m.pull(workers[1].id, &NOBODY).await.unwrap().unwrap();
        m.accept(workers[1].id, job.id, &NOBODY).await.unwrap();
        m.submit(workers[1].id, job.id, output()).await.unwrap();
        let j = m.verify_next().await.unwrap().unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 2));
        m.pull(workers[2].id, &NOBODY).await.unwrap().unwrap();
        m.accept(workers[2].id, job.id, &NOBODY).await.unwrap();
        clock.advance_secs(601);
        let r = m.sweep().await.unwrap();
        assert_eq!((r.released_holds, r.failed_deadlines), (0, 1));
        let j = m.job(sender.id, job.id).await.unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Failed, 3));
        assert_eq!(balance(&s, Account::Wallet(sender.id)), 500);
        let log = log_of(&m, job.id).await;
        assert!(log.contains(&"attempt 1 failed: given up by the agent: no GPU".to_string()));
        assert!(log.contains(&"attempt 2 failed: the output did not pass verification".into()));
        assert!(log.contains(&"attempt 3 failed: the deadline passed without a submission".into()));
        assert_eq!(
            log.last().unwrap(),
            "the job failed after 3 attempts, and the sender is refunded"
        );
        let dir = m.directory(Page::first()).await.unwrap();
        for w in &workers {
            let p = dir.iter().find(|p| p.agent.owner_id == w.id).unwrap();
            assert_eq!((p.jobs_verified, p.jobs_failed), (0, 1), "{}", w.name);
        }
        // A fourth agent finds nothing; the sweep is idempotent.
        let w = m.create_user("w4").await.unwrap();
        assert!(m.pull(w.id, &NOBODY).await.unwrap().is_none());
        let r = m.sweep().await.unwrap();
        assert_eq!((r.released_holds, r.failed_deadlines), (0, 0));
    });
}

#[test]
fn a_verifier_error_is_logged_and_no_verdict_is_invented() {
    struct Down;
    #[async_trait::async_trait]
    impl Verifier for Down {
        fn name(&self) -> String {
            "down".into()
        }
        async fn verify(
            &self,
            _: &VerifyTask,
            log: Arc<dyn LogSink>,
        ) -> Result<Assessment, LlmError> {
            log.log(LogLevel::Warn, "first call failed".into()).await;
            Err(LlmError::Timeout)
        }
    }
    block_on(async {
        let clock = TestClock::at(T0);
        let (m, s) = market(clock.clone(), Arc::new(Down));
        let sender = funded(&m, "sender", 500).await;
        let worker = m.create_user("worker").await.unwrap();
        let job = queued(&m, &sender).await;
        m.claim(worker.id, job.id, &NOBODY).await.unwrap();
        m.accept(worker.id, job.id, &NOBODY).await.unwrap();
        m.submit(worker.id, job.id, output()).await.unwrap();
        let e = m.verify_next().await.unwrap_err();
        assert!(matches!(e, DomainError::Llm(LlmError::Timeout)), "{e:?}");
        let j = m.job(sender.id, job.id).await.unwrap();
        assert_eq!(
            (j.status, j.verification.is_none()),
            (JobStatus::Submitted, true)
        );
        assert_eq!(
            log_of(&m, job.id).await[1..],
            [
                "first call failed".to_string(),
                "verifier error (1/5): llm timed out; retrying in 30 s".to_string()
            ]
        );
        assert_eq!(j.verify_errors, 1);
        // Other workers stay off until the retry is due.
        assert!(m.verify_next().await.unwrap().is_none());
        clock.advance_secs(31);
        assert!(m.verify_next().await.is_err());
        assert_eq!(balance(&s, Account::Escrow(job.id)), 500);
    });
}

/// A verifier that always fails: after `verify_max_errors` failures the submission waits for the
/// sender's review; approving pays the agent, rejecting fails the attempt, and a review nobody
/// decides is approved when it is due. Never a verification loop with the price stuck in escrow.
#[test]
fn a_submission_the_verifier_cannot_judge_goes_to_the_senders_review() {
    let mut down = MockVerifier::new();
    down.expect_name().return_const("down".to_string());
    down.expect_verify()
        .returning(|_, _| Err(LlmError::Unavailable("connection refused".into())));
    block_on(async {
        let clock = TestClock::at(T0);
        let (m, s) = market(clock.clone(), Arc::new(down));
        let sender = funded(&m, "sender", 1_500).await;
        let worker = m.create_user("worker").await.unwrap();
        let stranger = m.create_user("stranger").await.unwrap();
        // Runs a job to the review: five verifier errors, 30 s apart.
        let to_review = || async {
            let job = queued(&m, &sender).await;
            m.claim(worker.id, job.id, &NOBODY).await.unwrap();
            m.accept(worker.id, job.id, &NOBODY).await.unwrap();
            m.submit(worker.id, job.id, output()).await.unwrap();
            for n in 1..=5 {
                assert!(m.verify_next().await.is_err(), "failure {n}");
                clock.advance_secs(31);
            }
            // No sixth attempt: the submission waits for its sender.
            assert!(m.verify_next().await.unwrap().is_none());
            m.job(sender.id, job.id).await.unwrap()
        };

        // Approved by the sender: verified, the agent's owner paid.
        let a = to_review().await;
        assert_eq!(a.status, JobStatus::Submitted);
        assert_eq!(a.verify_errors, 5);
        let due = a.review_due_at.expect("waits for review");
        assert_eq!(due, clock.now().plus_seconds(72 * 3600 - 31));
        let log = log_of(&m, a.id).await;
        assert!(
            log.last()
                .unwrap()
                .contains("the sender reviews the submission"),
            "{log:?}"
        );
        assert!(matches!(
            m.review(worker.id, a.id, true).await,
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            m.review(stranger.id, a.id, true).await,
            Err(DomainError::NotFound(_))
        ));
        let done = m.review(sender.id, a.id, true).await.unwrap();
        assert_eq!(done.status, JobStatus::Verified);
        assert_eq!(done.verification.as_ref().unwrap().verifier, "sender");
        assert_eq!(done.review_due_at, None);
        assert_eq!(balance(&s, Account::Wallet(worker.id)), 350);
        assert!(matches!(
            m.review(sender.id, a.id, true).await,
            Err(DomainError::InvalidState { .. })
        ));

        // Rejected after a cancellation request: the attempt fails, the job is cancelled and the
        // sender refunded.
        let b = to_review().await;
        m.cancel(sender.id, b.id).await.unwrap();
        let done = m.review(sender.id, b.id, false).await.unwrap();
        assert_eq!(done.status, JobStatus::Cancelled);
        assert_eq!(balance(&s, Account::Escrow(b.id)), 0);

        // Not decided in time: approved by the sweep.
        let c = to_review().await;
        clock.set(c.review_due_at.unwrap());
        let report = m.sweep().await.unwrap();
        assert_eq!(report.approved_reviews, 1);
        let done = m.job(sender.id, c.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Verified);
        assert_eq!(
            done.verification.as_ref().unwrap().verifier,
            "auto-approval"
        );
        assert_eq!(balance(&s, Account::Wallet(worker.id)), 700);
        // Money: 3 × 500 paid into escrow; 2 × 350 earned (and 2 × 150 fees), 500 refunded.
        assert_eq!(balance(&s, Account::Wallet(sender.id)), 500);
        for j in [a.id, b.id, c.id] {
            assert_eq!(balance(&s, Account::Escrow(j)), 0);
        }
    });
}

#[test]
fn visibility_claims_and_log_access() {
    block_on(async {
        let (m, _, _) = world();
        let sender = funded(&m, "sender", 1_000).await;
        let worker = m.create_user("worker").await.unwrap();
        let stranger = m.create_user("stranger").await.unwrap();
        let job = queued(&m, &sender).await;
        // Queued: anyone may claim it by id (the board is public); the job stays invisible.
        assert!(matches!(
            m.job(stranger.id, job.id).await,
            Err(DomainError::NotFound(_))
        ));
        m.claim(worker.id, job.id, &NOBODY).await.unwrap();
        // Held by another: to a stranger it does not exist; the sender sees "invalid state".
        assert_eq!(
            m.claim(stranger.id, job.id, &NOBODY).await.unwrap_err(),
            DomainError::NotFound("job")
        );
        let own = m.claim(sender.id, job.id, &NOBODY).await.unwrap_err();
        assert!(matches!(own, DomainError::InvalidState { .. }), "{own:?}");
        assert!(matches!(
            m.job(stranger.id, job.id).await,
            Err(DomainError::NotFound(_))
        ));
        // Log access: sender yes, holder 403, stranger 404; the receiver once accepted.
        m.open_log(sender.id, job.id).await.unwrap();
        assert!(matches!(
            m.open_log(worker.id, job.id).await,
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            m.open_log(stranger.id, job.id).await,
            Err(DomainError::NotFound(_))
        ));
        m.accept(worker.id, job.id, &NOBODY).await.unwrap();
        m.open_log(worker.id, job.id).await.unwrap();
        // The worker's list shows the job; the sender's list does not show the worker's jobs.
        let mine = m
            .jobs(worker.id, JobsOf::Agent, None, None, Page::first())
            .await
            .unwrap();
        assert_eq!(mine.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
        assert!(
            m.jobs(worker.id, JobsOf::Sender, None, None, Page::first())
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn accept_after_the_hold_lapsed_releases_the_job() {
    block_on(async {
        let (m, _, clock) = world();
        let sender = funded(&m, "sender", 1_000).await;
        let worker = m.create_user("worker").await.unwrap();
        let job = queued(&m, &sender).await;
        m.pull(worker.id, &NOBODY).await.unwrap().unwrap();
        clock.advance_secs(30);
        assert_eq!(
            m.accept(worker.id, job.id, &NOBODY).await.unwrap_err(),
            DomainError::HoldExpired
        );
        let j = m.job(sender.id, job.id).await.unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 0));
        // Never offered again to that agent by pull; a claim by id still works.
        assert!(m.pull(worker.id, &NOBODY).await.unwrap().is_none());
        m.claim(worker.id, job.id, &NOBODY).await.unwrap();
        m.accept(worker.id, job.id, &NOBODY).await.unwrap();
        clock.advance_secs(600);
        assert_eq!(
            m.submit(worker.id, job.id, output()).await.unwrap_err(),
            DomainError::DeadlinePassed
        );
        let j = m.job(sender.id, job.id).await.unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    });
}

#[test]
fn money_moves_through_the_payment_ports_within_bounds() {
    block_on(async {
        let mut mocks = Mocks::new();
        let mut seq = mockall::Sequence::new();
        mocks
            .payments
            .expect_collect()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        mocks.payouts.expect_available().returning(|| Ok(()));
        mocks
            .payouts
            .expect_send()
            .times(1)
            .returning(|_, _| Err(DomainError::Unavailable("bank down".into())));
        let (m, s) = mocks.build(TestClock::at(T0));
        let u = m.create_user("alice").await.unwrap();
        for (amount, msg) in [(499, "at least 500"), (MAX_AMOUNT.get() + 1, "at most")] {
            let e = m.topup(u.id, Cents(amount)).await.unwrap_err();
            assert!(e.to_string().contains(msg), "{e}");
        }
        assert_eq!(m.topup(u.id, Cents(2_000)).await.unwrap(), Cents(2_000));
        // A failed payout puts the money back.
        assert!(m.withdraw(u.id, Cents(1_000)).await.is_err());
        assert_eq!(balance(&s, Account::Wallet(u.id)), 2_000);
        let (bal, ledger) = m.wallet(u.id, Page::first()).await.unwrap();
        assert_eq!(bal, Cents(2_000));
        let reasons: Vec<_> = ledger.iter().map(|e| (e.reason, e.delta_cents)).collect();
        assert_eq!(
            reasons,
            [
                (Reason::Adjustment, Cents(1_000)),
                (Reason::Withdrawal, Cents(-1_000)),
                (Reason::Topup, Cents(2_000))
            ]
        );
        // More than the wallet holds.
        let e = m.withdraw(u.id, Cents(5_000)).await.unwrap_err();
        assert!(
            matches!(e, DomainError::InsufficientBalance { .. }),
            "{e:?}"
        );
        let e = m
            .adjust_balance(u.id, Cents(i64::MAX), Reason::Adjustment)
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::Invalid(_)), "{e:?}");
    });
}

#[test]
fn manual_payments_move_nothing() {
    block_on(async {
        let mut mocks = Mocks::new();
        mocks
            .payments
            .expect_collect()
            .returning(|_, _| Err(DomainError::NotSupported("manual".into())));
        mocks
            .payouts
            .expect_available()
            .returning(|| Err(DomainError::NotSupported("manual".into())));
        mocks.payouts.expect_send().times(0);
        let (m, s) = mocks.build(TestClock::at(T0));
        let u = funded(&m, "alice", 1_000).await;
        assert!(matches!(
            m.topup(u.id, Cents(500)).await,
            Err(DomainError::NotSupported(_))
        ));
        assert!(matches!(
            m.withdraw(u.id, Cents(500)).await,
            Err(DomainError::NotSupported(_))
        ));
        assert_eq!(balance(&s, Account::Wallet(u.id)), 1_000);
    });
}

#[test]
fn idempotency_keys_are_claimed_once() {
    block_on(async {
        let (m, _, clock) = world();
        let u = m.create_user("alice").await.unwrap();
        let d1 = [1u8; 32];
        assert_eq!(
            m.idem_begin(u.id, "k", d1).await.unwrap(),
            IdemState::Reserved
        );
        assert_eq!(
            m.idem_begin(u.id, "k", d1).await.unwrap(),
            IdemState::InProgress
        );
        m.idem_finish(u.id, "k", b"{}".to_vec()).await.unwrap();
        assert_eq!(
            m.idem_begin(u.id, "k", d1).await.unwrap(),
            IdemState::Replay(b"{}".to_vec())
        );
        assert_eq!(
            m.idem_begin(u.id, "k", [2; 32]).await.unwrap(),
            IdemState::Mismatch
        );
        assert_eq!(
            m.idem_begin(u.id, "k2", d1).await.unwrap(),
            IdemState::Reserved
        );
        m.idem_abandon(u.id, "k2").await.unwrap();
        assert_eq!(
            m.idem_begin(u.id, "k2", d1).await.unwrap(),
            IdemState::Reserved
        );
        // After 24 hours the key is free again, whatever it was used for.
        clock.advance_secs(24 * 3600);
        assert_eq!(
            m.idem_begin(u.id, "k", [2; 32]).await.unwrap(),
            IdemState::Reserved
        );
    });
}

#[test]
fn keys_authenticate_and_are_remembered() {
    block_on(async {
        let (m, _, clock) = world();
        let u = m.create_user("alice").await.unwrap();
        let key = api_key_from([7; 32]);
        m.add_api_key(u.id, KeyHash::of(&key)).await.unwrap();
        assert_eq!(m.is_known_key(&key), None, "not seen yet");
        let who = m.authenticate(&key).await.unwrap().unwrap();
        assert_eq!((who.id, who.name.as_str()), (u.id, "alice"));
        assert_eq!(m.is_known_key(&key), Some(u.id));
        assert!(m.authenticate("ck_test_alice").await.unwrap().is_none());
        assert!(
            m.authenticate(&api_key_from([8; 32]))
                .await
                .unwrap()
                .is_none()
        );
        clock.advance_secs(11);
        assert_eq!(
            m.is_known_key(&key),
            None,
            "forgotten after the time to live"
        );
        assert!(
            m.add_api_key(clawrk_domain::UserId(uuid::Uuid::nil()), KeyHash::of(&key))
                .await
                .is_err()
        );
    });
}

#[test]
fn agents_at_work_cannot_be_deleted() {
    block_on(async {
        let (m, _, _) = world();
        let sender = funded(&m, "sender", 1_000).await;
        let u = m.create_user("carol").await.unwrap();
        let coder = m
            .create_agent(
                u.id,
                NewAgent {
                    name: "coder".into(),
                    personality: Some(" rust ".into()),
                    avatar_url: Some("  ".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (coder.personality.as_deref(), coder.avatar_url),
            (Some("rust"), None)
        );
        let dup = m
            .create_agent(
                u.id,
                NewAgent {
                    name: "coder".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(dup.to_string(), "you already have an agent named \"coder\"");
        let default = m.agents(u.id).await.unwrap().remove(0);
        assert!(matches!(
            m.delete_agent(u.id, default.id).await,
            Err(DomainError::Conflict(_))
        ));
        let job = queued(&m, &sender).await;
        let by_coder = AgentSelector {
            id: Some(coder.id),
            name: None,
        };
        m.claim(u.id, job.id, &by_coder).await.unwrap();
        assert!(matches!(
            m.delete_agent(u.id, coder.id).await,
            Err(DomainError::Conflict(_))
        ));
        m.reject(u.id, job.id, &NOBODY).await.unwrap();
        assert!(matches!(
            m.delete_agent(sender.id, coder.id).await,
            Err(DomainError::NotFound(_))
        ));
        m.delete_agent(u.id, coder.id).await.unwrap();
        assert_eq!(m.agents(u.id).await.unwrap().len(), 1);
    });
}

#[test]
fn cancel_refunds_once_and_logs_it() {
    block_on(async {
        let (m, s, _) = world();
        let sender = funded(&m, "sender", 1_000).await;
        let worker = m.create_user("worker").await.unwrap();
        let job = queued(&m, &sender).await;
        m.claim(worker.id, job.id, &NOBODY).await.unwrap();
        assert!(matches!(
            m.cancel(worker.id, job.id).await,
            Err(DomainError::Forbidden(_))
        ));
        let c = m.cancel(sender.id, job.id).await.unwrap();
        assert_eq!(c.status, JobStatus::Cancelled);
        let again = m.cancel(sender.id, job.id).await.unwrap();
        assert_eq!(again, c, "a final job is left as it is");
        assert_eq!(balance(&s, Account::Wallet(sender.id)), 1_000);
        assert_eq!(
            log_of(&m, job.id).await,
            ["cancelled by the sender, and the sender refunded"]
        );
        let update = m.log_update(job.id, 1).await.unwrap();
        assert!(update.finished && update.lines.is_empty() && update.verdict.is_none());
        // The agent acts as the one that held the job when none is named.
        let j2 = queued(&m, &sender).await;
        let second = m
            .create_agent(
                worker.id,
                NewAgent {
                    name: "second".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let held = m
            .claim(
                worker.id,
                j2.id,
                &AgentSelector {
                    id: None,
                    name: Some("second".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(held.holder.map(|h: AgentRef| h.agent_id), Some(second.id));
        let accepted = m.accept(worker.id, j2.id, &NOBODY).await.unwrap();
        assert_eq!(accepted.receiver_agent_id, Some(second.id));
    });
}
