//! Whole lifecycles through the real `TxStore` operations on the in-memory store: the paths of
//! SPEC §3 end to end, with the balances they leave.

mod common;

use clawrk_domain::job::{JobDraft, Structured};
use clawrk_domain::memory::{self, MemoryRunner};
use clawrk_domain::ports::Store;
use clawrk_domain::store::TxStore;
use clawrk_domain::{
    Cents, DomainError, JobStatus, Output, Price, RawJson, Reason, TimeLimit, Timestamp, Verdict,
};
use common::SeqClock;
use futures::executor::block_on;
use std::sync::Arc;

fn store() -> TxStore<MemoryRunner> {
    memory::store(Arc::new(SeqClock::default()))
}

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn draft(price: i64) -> JobDraft {
    JobDraft {
        prompt: "Write a haiku".into(),
        structured: Structured {
            title: "Haiku".into(),
            description: "A haiku".into(),
            requirements: "Three lines".into(),
            acceptance_criteria: vec!["three lines".into()],
            estimated_price: Price::clamped(price),
            estimated_time_limit: TimeLimit::clamped(60),
            structured_by: "heuristic".into(),
        },
        price: Price::clamped(price),
        time_limit: TimeLimit::clamped(60),
        env_vars: Default::default(),
        attachments: RawJson::empty_array(),
    }
}

fn verdict(passed: bool) -> Verdict {
    Verdict {
        passed,
        reasoning: "r".into(),
        criteria: vec![],
        verifier: "test".into(),
        verified_at: T0,
    }
}

#[test]
fn three_failed_attempts_fail_and_refund() {
    block_on(async {
        let s = store();
        let sender = s.create_user("sender", T0).await.unwrap();
        s.adjust_balance(sender.id, Cents(1000), Reason::Adjustment, T0)
            .await
            .unwrap();
        let (job, _) = s.create_job(draft(500), sender.id, T0).await.unwrap();
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(s.user(sender.id).await.unwrap().balance_cents, Cents(500));
        let mut workers = vec![];
        for i in 0..3 {
            let w = s.create_user(&format!("w{i}"), T0).await.unwrap();
            workers.push(s.agents(w.id).await.unwrap().remove(0));
        }
        for (n, agent) in workers.iter().enumerate() {
            let held = s
                .pull(agent.clone(), 30, T0)
                .await
                .unwrap()
                .expect("a job to pull");
            assert_eq!(held.id, job.id);
            let acc = s.accept(job.id, agent.as_ref(), T0).await.unwrap();
            assert_eq!(acc.attempt_count as usize, n + 1);
            let after = s.give_up(job.id, agent.owner_id, T0).await.unwrap();
            let expected = if n < 2 {
                JobStatus::Queued
            } else {
                JobStatus::Failed
            };
            assert_eq!(after.status, expected, "after attempt {}", n + 1);
        }
        assert_eq!(
            s.user(sender.id).await.unwrap().balance_cents,
            Cents(1000),
            "refunded"
        );
        // A fourth agent finds nothing to pull.
        let w = s.create_user("w4", T0).await.unwrap();
        let a = s.agents(w.id).await.unwrap().remove(0);
        assert!(s.pull(a, 30, T0).await.unwrap().is_none());
    });
}

#[test]
fn verified_job_pays_worker_and_platform() {
    block_on(async {
        let s = store();
        let sender = s.create_user("sender", T0).await.unwrap();
        let worker = s.create_user("worker", T0).await.unwrap();
        s.adjust_balance(sender.id, Cents(500), Reason::Adjustment, T0)
            .await
            .unwrap();
        let (job, _) = s.create_job(draft(500), sender.id, T0).await.unwrap();
        let agent = s.agents(worker.id).await.unwrap().remove(0);
        s.claim(job.id, agent.as_ref(), 30, T0).await.unwrap();
        s.accept(job.id, agent.as_ref(), T0).await.unwrap();
        let out = Output::new(Some("one\ntwo\nthree".into()), None).unwrap();
        s.submit(job.id, worker.id, out, T0.plus_seconds(10))
            .await
            .unwrap();
        let leased = s
            .lease_verification(T0, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(leased.id, job.id);
        assert!(
            s.lease_verification(T0, std::time::Duration::from_secs(60))
                .await
                .unwrap()
                .is_none(),
            "a leased job is not handed out twice"
        );
        let done = s
            .apply_verdict(job.id, 1, verdict(true), T0.plus_seconds(20))
            .await
            .unwrap();
        assert_eq!(done.status, JobStatus::Verified);
        assert_eq!(s.user(worker.id).await.unwrap().balance_cents, Cents(350));
        assert_eq!(s.user(sender.id).await.unwrap().balance_cents, Cents(0));
        let ledger = s
            .ledger(worker.id, clawrk_domain::ports::Page::first())
            .await
            .unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!(
            (ledger[0].delta_cents, ledger[0].reason),
            (Cents(350), Reason::Earning)
        );
        assert_eq!(s.stats().await.unwrap().total_paid_out, Cents(350));
    });
}

#[test]
fn pending_payment_then_pay_and_late_accept_and_submit() {
    block_on(async {
        let s = store();
        let sender = s.create_user("sender", T0).await.unwrap();
        let worker = s.create_user("worker", T0).await.unwrap();
        let (job, seen) = s.create_job(draft(500), sender.id, T0).await.unwrap();
        assert_eq!((job.status, seen), (JobStatus::PendingPayment, Cents(0)));
        let short = s.pay(job.id, sender.id, T0).await.unwrap_err();
        assert!(matches!(short, DomainError::InsufficientBalance { .. }));
        s.adjust_balance(sender.id, Cents(600), Reason::Adjustment, T0)
            .await
            .unwrap();
        assert_eq!(
            s.pay(job.id, sender.id, T0).await.unwrap().status,
            JobStatus::Queued
        );
        assert!(matches!(
            s.pay(job.id, sender.id, T0).await.unwrap_err(),
            DomainError::InvalidState { .. }
        ));
        let agent = s.agents(worker.id).await.unwrap().remove(0);
        s.claim(job.id, agent.as_ref(), 30, T0).await.unwrap();
        // Accepting at the hold's end: refused, and the job is back in the queue.
        let late = s
            .accept(job.id, agent.as_ref(), T0.plus_seconds(30))
            .await
            .unwrap_err();
        assert_eq!(late, DomainError::HoldExpired);
        assert_eq!(s.job(job.id).await.unwrap().status, JobStatus::Queued);
        s.claim(job.id, agent.as_ref(), 30, T0.plus_seconds(40))
            .await
            .unwrap();
        s.accept(job.id, agent.as_ref(), T0.plus_seconds(41))
            .await
            .unwrap();
        let out = Output::new(Some("x".into()), None).unwrap();
        let err = s
            .submit(job.id, worker.id, out, T0.plus_seconds(41 + 60))
            .await
            .unwrap_err();
        assert_eq!(err, DomainError::DeadlinePassed);
        let j = s.job(job.id).await.unwrap();
        assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    });
}

#[test]
fn sweep_is_idempotent() {
    block_on(async {
        let s = store();
        let sender = s.create_user("sender", T0).await.unwrap();
        s.adjust_balance(sender.id, Cents(10_000), Reason::Adjustment, T0)
            .await
            .unwrap();
        let worker = s.create_user("worker", T0).await.unwrap();
        let agent = s.agents(worker.id).await.unwrap().remove(0);
        for _ in 0..3 {
            s.create_job(draft(500), sender.id, T0).await.unwrap();
        }
        let a = s.pull(agent.clone(), 30, T0).await.unwrap().unwrap();
        let b = s.pull(agent.clone(), 30, T0).await.unwrap().unwrap();
        s.accept(b.id, agent.as_ref(), T0).await.unwrap();
        let later = T0.plus_seconds(120);
        let r = s.sweep(later).await.unwrap();
        assert_eq!((r.released_holds, r.failed_deadlines), (1, 1));
        let r = s.sweep(later).await.unwrap();
        assert_eq!((r.released_holds, r.failed_deadlines), (0, 0));
        assert_eq!(s.job(a.id).await.unwrap().status, JobStatus::Queued);
    });
}
