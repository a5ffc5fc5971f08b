//! The use cases with every port mocked (mockall): what each one asks of the store, the LLM and the
//! payment ports, and what it returns.

mod common;

use clawrk_domain::job::{CriterionResult, Structured};
use clawrk_domain::ports::*;
use clawrk_domain::service::{Config, Marketplace, Ports, RunOutcome, RunRequest};
use clawrk_domain::{Cents, DomainError, JobStatus, LogLevel, Price, Reason, TimeLimit, Timestamp};
use common::*;
use futures::executor::block_on;
use mockall::predicate::*;
use std::sync::Arc;
use uuid::Uuid;

fn structured() -> Structured {
    Structured {
        title: "Haiku".into(),
        description: "A haiku".into(),
        requirements: "Three lines".into(),
        acceptance_criteria: vec!["three lines".into()],
        estimated_price: Price::new(700).unwrap(),
        estimated_time_limit: TimeLimit::new(600).unwrap(),
        structured_by: "heuristic".into(),
    }
}

struct Mocks {
    store: MockStore,
    structurer: MockStructurer,
    verifier: MockVerifier,
    payments: MockPaymentGateway,
    payouts: MockPayoutGateway,
}

impl Mocks {
    fn new() -> Self {
        Mocks {
            store: MockStore::new(),
            structurer: MockStructurer::new(),
            verifier: MockVerifier::new(),
            payments: MockPaymentGateway::new(),
            payouts: MockPayoutGateway::new(),
        }
    }

    fn build(self) -> Marketplace {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(T0);
        clock.expect_new_id().returning(Uuid::now_v7);
        Marketplace::new(
            Ports {
                store: Arc::new(self.store),
                structurer: Arc::new(self.structurer),
                verifier: Arc::new(self.verifier),
                clock: Arc::new(clock),
                payments: Arc::new(self.payments),
                payouts: Arc::new(self.payouts),
            },
            Config::default(),
        )
    }
}

#[test]
fn run_phase_one_structures_once_and_caches_the_quote() {
    let mut m = Mocks::new();
    m.store
        .expect_quote()
        .times(1)
        .returning(|_, _, _| Ok(None));
    m.structurer
        .expect_structure()
        .with(eq("Write a haiku"))
        .times(1)
        .returning(|_| Ok(structured()));
    m.store
        .expect_save_quote()
        .withf(|s, p, _, exp| *s == SENDER && p == "Write a haiku" && *exp == T0.plus_seconds(900))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mp = m.build();
    let req = RunRequest {
        prompt: "  Write a haiku ".into(),
        price_cents: Some(1000),
        ..Default::default()
    };
    match block_on(mp.run(SENDER, req)).unwrap() {
        RunOutcome::Estimate(s) => {
            assert_eq!(
                s.estimated_price,
                Price::new(1000).unwrap(),
                "override shown"
            );
            assert_eq!(s.estimated_time_limit.seconds(), 600, "estimate kept");
        }
        other => panic!("expected an estimate, got {other:?}"),
    }
}

#[test]
fn run_phase_two_reuses_the_quote_and_reports_pending_payment() {
    let mut m = Mocks::new();
    m.store
        .expect_quote()
        .returning(|_, _, _| Ok(Some(structured())));
    m.structurer.expect_structure().never();
    m.store
        .expect_create_job()
        .withf(|d, s, _| d.price.cents() == Cents(700) && *s == SENDER)
        .times(1)
        .returning(|_, _, _| Ok((job_in(JobStatus::PendingPayment, 0), Cents(120))));
    let mp = m.build();
    let req = RunRequest {
        prompt: "Write a haiku".into(),
        confirmed: true,
        ..Default::default()
    };
    match block_on(mp.run(SENDER, req)).unwrap() {
        RunOutcome::PendingPayment {
            required,
            available,
            ..
        } => assert_eq!((required, available), (Cents(PRICE), Cents(120))),
        other => panic!("expected pending payment, got {other:?}"),
    }
}

#[test]
fn run_rejects_bad_input_before_any_port_is_called() {
    let mp = Mocks::new().build();
    for (req, field) in [
        (RunRequest::default(), "prompt"),
        (
            RunRequest {
                prompt: "x".into(),
                price_cents: Some(99),
                ..Default::default()
            },
            "price_cents",
        ),
        (
            RunRequest {
                prompt: "x".into(),
                time_limit_seconds: Some(86_401),
                ..Default::default()
            },
            "time_limit_seconds",
        ),
    ] {
        let e = block_on(mp.run(SENDER, req)).unwrap_err();
        assert!(
            matches!(&e, DomainError::Invalid(m) if m.contains(field)),
            "{e}"
        );
    }
}

#[test]
fn job_is_invisible_to_strangers() {
    let mut m = Mocks::new();
    m.store
        .expect_job()
        .returning(|_| Ok(job_in(JobStatus::Held, 0)));
    let mp = m.build();
    let id = job_in(JobStatus::Held, 0).id;
    assert!(block_on(mp.job(SENDER, id)).is_ok());
    assert!(
        block_on(mp.job(WORKER, id)).is_ok(),
        "the holder's owner sees it"
    );
    assert_eq!(
        block_on(mp.job(STRANGER, id)).unwrap_err(),
        DomainError::NotFound("job")
    );
}

#[test]
fn verify_next_logs_through_the_store_and_applies_the_verdict() {
    let mut m = Mocks::new();
    let submitted = job_in(JobStatus::Submitted, 2);
    let id = submitted.id;
    m.store
        .expect_lease_verification()
        .times(1)
        .returning(move |_, _| Ok(Some(job_in(JobStatus::Submitted, 2))));
    m.verifier.expect_verify().times(1).returning(|task, log| {
        assert_eq!(
            task.acceptance_criteria,
            vec!["Has three lines".to_string()]
        );
        // The mock runs inside the test's executor: report from a thread of its own.
        std::thread::spawn(move || block_on(log.log(LogLevel::Info, "checking".into())))
            .join()
            .unwrap();
        Ok(Assessment {
            passed: true,
            reasoning: "fine".into(),
            criteria: vec![CriterionResult {
                criterion: "Has three lines".into(),
                passed: true,
                note: String::new(),
            }],
            verifier: "heuristic".into(),
        })
    });
    m.store
        .expect_append_log()
        .withf(move |j, l, msg, _| *j == id && *l == LogLevel::Info && msg == "checking")
        .times(1)
        .returning(|_, l, m, at| {
            Ok(clawrk_domain::LogLine {
                seq: 1,
                at,
                level: l,
                message: m,
            })
        });
    m.store
        .expect_apply_verdict()
        .withf(move |j, attempt, v, _| *j == id && *attempt == 2 && v.passed && v.verified_at == T0)
        .times(1)
        .returning(|_, _, _, _| Ok(job_in(JobStatus::Verified, 2)));
    let mp = m.build();
    let after = block_on(mp.verify_next()).unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Verified);
}

#[test]
fn verifier_error_is_logged_and_no_verdict_is_invented() {
    let mut m = Mocks::new();
    m.store
        .expect_lease_verification()
        .returning(|_, _| Ok(Some(job_in(JobStatus::Submitted, 1))));
    m.verifier
        .expect_verify()
        .returning(|_, _| Err(LlmError::Timeout));
    m.store
        .expect_append_log()
        .withf(|_, l, msg, _| *l == LogLevel::Error && msg.contains("retrying"))
        .times(1)
        .returning(|_, l, m, at| {
            Ok(clawrk_domain::LogLine {
                seq: 1,
                at,
                level: l,
                message: m,
            })
        });
    m.store.expect_apply_verdict().never();
    let mp = m.build();
    assert!(matches!(
        block_on(mp.verify_next()),
        Err(DomainError::Unavailable(_))
    ));
}

#[test]
fn topup_collects_before_crediting_and_enforces_the_minimum() {
    let mut m = Mocks::new();
    m.payments
        .expect_collect()
        .with(eq(SENDER), eq(Cents(500)))
        .times(1)
        .returning(|_, _| Ok(()));
    m.store
        .expect_adjust_balance()
        .with(eq(SENDER), eq(Cents(500)), eq(Reason::Topup), eq(T0))
        .times(1)
        .returning(|_, _, _, _| Ok(Cents(500)));
    let mp = m.build();
    assert!(matches!(
        block_on(mp.topup(SENDER, Cents(499))),
        Err(DomainError::Invalid(_))
    ));
    assert_eq!(block_on(mp.topup(SENDER, Cents(500))).unwrap(), Cents(500));
}

#[test]
fn manual_topups_move_nothing() {
    let mut m = Mocks::new();
    m.payments
        .expect_collect()
        .returning(|_, _| Err(DomainError::NotSupported("manual".into())));
    m.store.expect_adjust_balance().never();
    let mp = m.build();
    assert!(matches!(
        block_on(mp.topup(SENDER, Cents(900))),
        Err(DomainError::NotSupported(_))
    ));
}

#[test]
fn failed_payout_puts_the_money_back() {
    let mut m = Mocks::new();
    m.payouts.expect_available().returning(|| Ok(()));
    m.payouts
        .expect_send()
        .returning(|_, _| Err(DomainError::Unavailable("bank down".into())));
    let mut seq = mockall::Sequence::new();
    m.store
        .expect_adjust_balance()
        .with(
            eq(SENDER),
            eq(Cents(-600)),
            eq(Reason::Withdrawal),
            always(),
        )
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(Cents(400)));
    m.store
        .expect_adjust_balance()
        .with(eq(SENDER), eq(Cents(600)), eq(Reason::Adjustment), always())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(Cents(1000)));
    let mp = m.build();
    assert!(block_on(mp.withdraw(SENDER, Cents(600))).is_err());
}

#[test]
fn pull_uses_the_default_agent_and_the_configured_hold() {
    let mut m = Mocks::new();
    let default_agent = clawrk_domain::user::Agent {
        id: WORKER_AGENT,
        owner_id: WORKER,
        name: "default".into(),
        personality: None,
        avatar_url: None,
        is_default: true,
        created_at: Timestamp::from_millis(0),
    };
    let a = default_agent.clone();
    m.store
        .expect_agents()
        .with(eq(WORKER))
        .returning(move |_| Ok(vec![a.clone()]));
    m.store
        .expect_pull()
        .withf(|agent, hold, now| agent.id == WORKER_AGENT && *hold == 30 && *now == T0)
        .times(1)
        .returning(|_, _, _| Ok(None));
    let mp = m.build();
    assert_eq!(
        block_on(mp.pull(WORKER, &Default::default())).unwrap(),
        None
    );
}
