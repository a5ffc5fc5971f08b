// The store contracts. Not a module of this crate: each store's `tests/contract.rs` defines
// `static HARNESS` and includes this file, so every contract below runs on every store.

use clawrk_domain::error::DomainError;
use clawrk_domain::job::{JobStatus, Output};
use clawrk_domain::money::{Cents, MAX_AMOUNT, Reason};
use clawrk_domain::ports::{Clock, Page};
use clawrk_domain::service::{AgentSelector, Answer, IdemState, JobsOf, RunOutcome, RunRequest};
use clawrk_domain::user::{AgentPatch, KeyHash, NewAgent, api_key_from};
use clawrk_store_tests::*;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Paid, held, accepted, submitted, verified: the worker gets price − fee, the platform the fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verified_path() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let worker = f.user("worker", 0).await;
    let agent = f.agent(worker.id).await;
    let job = f.job(sender.id, 500).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(f.balance(sender.id).await, 500);
    f.check(h).await;

    let held = m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    assert_eq!((held.id, held.status), (job.id, JobStatus::Held));
    assert_eq!(held.presented_to_agents, vec![agent.id]);
    let accepted = m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    assert_eq!(
        (accepted.status, accepted.attempt_count),
        (JobStatus::Accepted, 1)
    );
    assert!(accepted.deadline_at.is_some());
    let submitted = m.submit(worker.id, job.id, output()).await.unwrap();
    assert_eq!(submitted.status, JobStatus::Submitted);
    let done = m.verify_next().await.unwrap().unwrap();
    assert_eq!(done.id, job.id);
    assert_eq!(done.status, JobStatus::Verified);
    assert!(done.verification.as_ref().unwrap().passed);
    // $5.00: fee $1.50, worker $3.50.
    assert_eq!(f.balance(worker.id).await, 350);
    assert_eq!(f.balance(sender.id).await, 500);
    let (_, ledger) = m.wallet(worker.id, Page::first()).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].delta_cents, ledger[0].reason, ledger[0].job_id),
        (Cents(350), Reason::Earning, Some(job.id))
    );
    let (_, sender_ledger) = m.wallet(sender.id, Page::first()).await.unwrap();
    assert_eq!(
        (sender_ledger[0].delta_cents, sender_ledger[0].reason),
        (Cents(-500), Reason::JobPayment)
    );
    let stats = m.stats().await.unwrap();
    assert_eq!((stats.jobs_verified, stats.total_paid_out), (1, Cents(350)));
    let dir = m.directory(Page::first()).await.unwrap();
    let me = dir.iter().find(|p| p.agent.id == agent.id).unwrap();
    assert_eq!(
        (me.jobs_verified, me.jobs_failed, me.earned_cents),
        (1, 0, Cents(350))
    );
    // The lease's line, the verifier's note, the criterion, the verdict, the payout: numbered 1…
    let lines = m.log_update(job.id, 0).await.unwrap();
    assert_eq!(
        lines.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(lines.finished && lines.verdict.is_some());
    assert!(m.verify_next().await.unwrap().is_none());
    f.check(h).await;
}

/// 402 then pay; cancel from every status with the right refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_and_cancel_in_every_status() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 0).await;
    let worker = f.user("worker", 0).await;
    let RunOutcome::PendingPayment {
        job: pending,
        required,
        available,
    } = f.try_job(sender.id, 300).await
    else {
        panic!("short")
    };
    assert_eq!(pending.status, JobStatus::PendingPayment);
    assert_eq!((required, available), (Cents(300), Cents(0)));
    let short = m.pay(sender.id, pending.id).await.unwrap_err();
    assert!(
        matches!(short, DomainError::InsufficientBalance { .. }),
        "{short:?}"
    );
    m.adjust_balance(sender.id, Cents(2_000), Reason::Topup)
        .await
        .unwrap();
    let paid = m.pay(sender.id, pending.id).await.unwrap();
    assert_eq!(paid.status, JobStatus::Queued);
    assert_eq!(f.balance(sender.id).await, 1_700);
    let twice = m.pay(sender.id, pending.id).await.unwrap_err();
    assert!(
        matches!(twice, DomainError::InvalidState { .. }),
        "{twice:?}"
    );
    // Cancel queued: refunded.
    let c = m.cancel(sender.id, paid.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel a pending job: nothing to refund.
    let RunOutcome::PendingPayment { job: p2, .. } = f.try_job(sender.id, 5_000).await else {
        panic!("short")
    };
    assert_eq!(
        m.cancel(sender.id, p2.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel held: refunded.
    let j3 = f.job(sender.id, 400).await;
    m.claim(worker.id, j3.id, &DEFAULT).await.unwrap();
    assert_eq!(
        m.cancel(sender.id, j3.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel accepted: only requested; the next failure cancels and refunds.
    let j4 = f.job(sender.id, 400).await;
    m.claim(worker.id, j4.id, &DEFAULT).await.unwrap();
    m.accept(worker.id, j4.id, &DEFAULT).await.unwrap();
    let c4 = m.cancel(sender.id, j4.id).await.unwrap();
    assert_eq!(c4.status, JobStatus::Accepted);
    assert!(c4.cancellation_requested);
    assert_eq!(f.balance(sender.id).await, 1_600);
    let failed = m.give_up(worker.id, j4.id, None).await.unwrap();
    assert_eq!(failed.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Cancel a final job: a no-op.
    let again = m.cancel(sender.id, j4.id).await.unwrap();
    assert_eq!(again.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, 2_000);
    // Only the sender cancels.
    let j5 = f.job(sender.id, 400).await;
    let e = m.cancel(worker.id, j5.id).await.unwrap_err();
    assert!(matches!(e, DomainError::NotFound(_)), "{e:?}");
    assert_eq!(f.read(sender.id, j5.id).await.status, JobStatus::Queued);
    f.check(h).await;
}

/// Give-up, failed verdict, missed deadline: the third failure fails the job and refunds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_failed_attempts_refund() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let job = f.job(sender.id, 1_000).await;
    let mut workers = vec![];
    for n in 0..3 {
        let w = f.user(&format!("worker{n}"), 0).await;
        workers.push((w.id, f.agent(w.id).await));
    }
    // 1: gives up.
    let w = workers[0].0;
    m.pull(w, &DEFAULT).await.unwrap().unwrap();
    m.accept(w, job.id, &DEFAULT).await.unwrap();
    let j = m.give_up(w, job.id, Some("no GPU".into())).await.unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    // 2: fails verification.
    let w = workers[1].0;
    m.pull(w, &DEFAULT).await.unwrap().unwrap();
    m.accept(w, job.id, &DEFAULT).await.unwrap();
    m.submit(w, job.id, output()).await.unwrap();
    f.verifier.set(false);
    let j = m.verify_next().await.unwrap().unwrap();
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 2));
    assert!(!j.verification.as_ref().unwrap().passed);
    // 3: misses the deadline; the sweeper fails it for good.
    let w = workers[2].0;
    m.pull(w, &DEFAULT).await.unwrap().unwrap();
    m.accept(w, job.id, &DEFAULT).await.unwrap();
    f.clock.advance(Duration::from_secs(601));
    assert_eq!(m.sweep().await.unwrap().failed_deadlines, 1);
    let j = f.read(sender.id, job.id).await;
    assert_eq!((j.status, j.attempt_count), (JobStatus::Failed, 3));
    assert_eq!(f.balance(sender.id).await, 1_000);
    let (_, ledger) = m.wallet(sender.id, Page::first()).await.unwrap();
    assert_eq!(
        ledger.iter().filter(|e| e.reason == Reason::Refund).count(),
        1
    );
    let dir = m.directory(Page::first()).await.unwrap();
    for (_, a) in &workers {
        let p = dir.iter().find(|p| p.agent.id == a.id).unwrap();
        assert_eq!((p.jobs_verified, p.jobs_failed), (0, 1), "{}", a.name);
    }
    let log = f.log(job.id).await;
    assert!(log.contains(&"attempt 1 failed: given up by the agent: no GPU".to_string()));
    assert_eq!(
        log.last().unwrap(),
        "the job failed after 3 attempts, and the sender is refunded"
    );
    f.check(h).await;
}

/// Pull never offers the owner's own jobs nor a job already presented to the agent; oldest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_rules() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    assert!(m.pull(worker.id, &DEFAULT).await.unwrap().is_none());
    let first = f.job(sender.id, 500).await;
    let second = f.job(sender.id, 500).await;
    assert!(
        m.pull(sender.id, &DEFAULT).await.unwrap().is_none(),
        "never one's own"
    );
    let p1 = m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    assert_eq!(p1.id, first.id);
    let r = m.reject(worker.id, first.id, &DEFAULT).await.unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    assert!(r.holder.is_none());
    let p2 = m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    assert_eq!(p2.id, second.id);
    m.reject(worker.id, second.id, &DEFAULT).await.unwrap();
    assert!(m.pull(worker.id, &DEFAULT).await.unwrap().is_none());
    // Another agent of the same owner has not seen them.
    let other = m
        .create_agent(
            worker.id,
            NewAgent {
                name: "other".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let p3 = m.pull(worker.id, &by(&other)).await.unwrap().unwrap();
    assert_eq!(p3.id, first.id);
    m.reject(worker.id, first.id, &by(&other)).await.unwrap();
    // By its name (trimmed), the same agent; an agent the caller does not own, or no agent of that
    // name, is not found although there are jobs it could pull.
    let named = AgentSelector {
        id: None,
        name: Some("  other ".into()),
    };
    let p4 = m.pull(worker.id, &named).await.unwrap().unwrap();
    assert_eq!(p4.id, second.id);
    m.reject(worker.id, second.id, &named).await.unwrap();
    let nobody = AgentSelector {
        id: None,
        name: Some("nobody".into()),
    };
    for sel in [nobody, by(&f.agent(sender.id).await)] {
        assert_eq!(
            m.pull(worker.id, &sel).await.unwrap_err(),
            DomainError::NotFound("agent")
        );
    }
    // Claim by id still works after a reject; the sender's agent may not claim its own job.
    let c = m.claim(worker.id, first.id, &DEFAULT).await.unwrap();
    assert_eq!(c.status, JobStatus::Held);
    let e = m.claim(sender.id, second.id, &DEFAULT).await.unwrap_err();
    assert!(matches!(e, DomainError::Forbidden(_)), "{e:?}");
    // A held job: 400 for a caller who sees it (the sender), 404 for a stranger.
    let busy = m.claim(sender.id, first.id, &DEFAULT).await.unwrap_err();
    assert!(matches!(busy, DomainError::InvalidState { .. }), "{busy:?}");
    let stranger = f.user("stranger", 0).await;
    let hidden = m.claim(stranger.id, first.id, &DEFAULT).await.unwrap_err();
    assert_eq!(hidden, DomainError::NotFound("job"));
    f.check(h).await;
}

/// A lapsed hold: accept answers HoldExpired and the job is back in the queue; the sweeper
/// releases lapsed holds too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hold_expiry() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let job = f.job(sender.id, 500).await;
    m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    f.clock.advance(Duration::from_secs(31));
    let e = m.accept(worker.id, job.id, &DEFAULT).await.unwrap_err();
    assert_eq!(e, DomainError::HoldExpired);
    let j = f.read(sender.id, job.id).await;
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 0));
    // Reject after losing the hold: also "hold expired".
    assert_eq!(
        m.reject(worker.id, job.id, &DEFAULT).await.unwrap_err(),
        DomainError::HoldExpired
    );
    let other = f.user("other", 0).await;
    m.claim(other.id, job.id, &DEFAULT).await.unwrap();
    f.clock.advance(Duration::from_secs(31));
    let r = m.sweep().await.unwrap();
    assert_eq!((r.released_holds, r.failed_deadlines), (1, 0));
    assert_eq!(f.read(sender.id, job.id).await.status, JobStatus::Queued);
    assert_eq!(m.sweep().await.unwrap().released_holds, 0, "idempotent");
    f.check(h).await;
}

/// A submission at the deadline fails the attempt and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_submit() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let job = f.job(sender.id, 500).await;
    m.claim(worker.id, job.id, &DEFAULT).await.unwrap();
    m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    f.clock.advance(Duration::from_secs(600));
    let e = m.submit(worker.id, job.id, output()).await.unwrap_err();
    assert_eq!(e, DomainError::DeadlinePassed);
    let j = f.read(sender.id, job.id).await;
    assert_eq!((j.status, j.attempt_count), (JobStatus::Queued, 1));
    assert_eq!(j.receiver, Some(worker.id), "kept for history");
    assert!(
        f.log(job.id)
            .await
            .contains(&"attempt 1 failed: submitted after the deadline".to_string())
    );
    f.check(h).await;
}

/// Newest first, paged by cursor, filtered by status; the board; the agent's own work list; stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_and_board() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let a = f.user("a", 100_000).await;
    let b = f.user("b", 100_000).await;
    let mut mine = vec![];
    for p in [100, 200, 300, 400, 500] {
        mine.push(f.job(a.id, p).await.id);
        f.clock.advance(Duration::from_millis(5));
    }
    mine.reverse();
    let theirs = f.job(b.id, 900).await;
    m.cancel(a.id, mine[4]).await.unwrap();
    let page = |limit, before| Page::new(Some(limit), before).unwrap();
    let p1 = m
        .jobs(a.id, JobsOf::Sender, None, None, page(2, None))
        .await
        .unwrap();
    assert_eq!(p1.iter().map(|j| j.id).collect::<Vec<_>>(), mine[..2]);
    let p2 = m
        .jobs(a.id, JobsOf::Sender, None, None, page(2, Some(p1[1].id)))
        .await
        .unwrap();
    assert_eq!(p2.iter().map(|j| j.id).collect::<Vec<_>>(), mine[2..4]);
    let p3 = m
        .jobs(a.id, JobsOf::Sender, None, None, page(2, Some(p2[1].id)))
        .await
        .unwrap();
    assert_eq!(p3.iter().map(|j| j.id).collect::<Vec<_>>(), mine[4..]);
    let cancelled = m
        .jobs(
            a.id,
            JobsOf::Sender,
            Some(JobStatus::Cancelled),
            None,
            Page::first(),
        )
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(
        !m.jobs(a.id, JobsOf::Sender, None, None, Page::first())
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == theirs.id)
    );
    let board = m.board(Page::first()).await.unwrap();
    assert_eq!(board.len(), 5);
    assert_eq!(board[0].id, theirs.id);
    assert!(board.iter().all(|j| j.status == JobStatus::Queued));
    // b's agents work on two of a's jobs: b's work list shows them, newest first, and by agent.
    m.claim(b.id, mine[0], &DEFAULT).await.unwrap();
    m.claim(b.id, mine[1], &DEFAULT).await.unwrap();
    m.accept(b.id, mine[1], &DEFAULT).await.unwrap();
    let work = m
        .jobs(b.id, JobsOf::Agent, None, None, Page::first())
        .await
        .unwrap();
    assert_eq!(work.iter().map(|j| j.id).collect::<Vec<_>>(), mine[..2]);
    let held = m
        .jobs(
            b.id,
            JobsOf::Agent,
            Some(JobStatus::Held),
            None,
            Page::first(),
        )
        .await
        .unwrap();
    assert_eq!(held.iter().map(|j| j.id).collect::<Vec<_>>(), mine[..1]);
    let bs = f.agent(b.id).await;
    let by_agent = m
        .jobs(b.id, JobsOf::Agent, None, Some(bs.id), Page::first())
        .await
        .unwrap();
    assert_eq!(by_agent.len(), 2);
    let not_mine = m
        .jobs(a.id, JobsOf::Agent, None, Some(bs.id), Page::first())
        .await;
    assert!(matches!(not_mine, Err(DomainError::NotFound(_))));
    let stats = m.stats().await.unwrap();
    let count = |s| stats.counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(
        (
            count(JobStatus::Queued),
            count(JobStatus::Held),
            count(JobStatus::Cancelled)
        ),
        (3, 1, 1)
    );
    assert_eq!(stats.counts.len(), 8);
    // Queued prices 200, 300, 900 (500 and 400 are at work, 100 cancelled): the median is 300.
    assert_eq!(stats.median_queued_price, Some(Cents(300)));
    assert_eq!(stats.agents, 2);
    f.check(h).await;
}

/// Users, keys and agents: uniqueness, lookups, the rules of deleting an agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_agents_and_keys() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let u = f.user("carol", 0).await;
    let dup = m.create_user("carol").await.unwrap_err();
    assert_eq!(
        dup,
        DomainError::Conflict("user name \"carol\" is taken".into())
    );
    assert_eq!(m.find_user("carol").await.unwrap().id, u.id);
    assert_eq!(m.find_user(&u.id.to_string()).await.unwrap().id, u.id);
    assert!(matches!(
        m.find_user("nobody").await,
        Err(DomainError::NotFound(_))
    ));
    let key = api_key_from([3; 32]);
    m.add_api_key(u.id, KeyHash::of(&key)).await.unwrap();
    assert_eq!(m.authenticate(&key).await.unwrap().unwrap().id, u.id);
    assert!(
        m.authenticate(&api_key_from([4; 32]))
            .await
            .unwrap()
            .is_none()
    );

    let default = f.agent(u.id).await;
    assert!(default.is_default);
    let coder = m
        .create_agent(
            u.id,
            NewAgent {
                name: "coder".into(),
                personality: Some("rust services".into()),
                avatar_url: None,
            },
        )
        .await
        .unwrap();
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
    assert_eq!(
        dup,
        DomainError::Conflict("you already have an agent named \"coder\"".into())
    );
    let rename = m
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
    let changed = m
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
    let names: Vec<String> = m
        .agents(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["default", "coder"]);
    assert!(matches!(
        m.delete_agent(u.id, default.id).await,
        Err(DomainError::Conflict(_))
    ));
    // Busy agents cannot be deleted.
    let sender = f.user("dave", 1_000).await;
    let job = f.job(sender.id, 500).await;
    m.claim(u.id, job.id, &by(&coder)).await.unwrap();
    assert!(matches!(
        m.delete_agent(u.id, coder.id).await,
        Err(DomainError::Conflict(_))
    ));
    m.reject(u.id, job.id, &DEFAULT).await.unwrap();
    // Someone else's agent is not found.
    assert!(matches!(
        m.delete_agent(sender.id, coder.id).await,
        Err(DomainError::NotFound(_))
    ));
    m.delete_agent(u.id, coder.id).await.unwrap();
    assert_eq!(m.agents(u.id).await.unwrap().len(), 1);
    // Operator debits cannot overdraw.
    let e = m
        .adjust_balance(u.id, Cents(-1), Reason::Adjustment)
        .await
        .unwrap_err();
    assert!(
        matches!(e, DomainError::InsufficientBalance { .. }),
        "{e:?}"
    );
    f.check(h).await;
}

/// Phase 2 reuses phase 1's quote (the structurer is called once), which expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotes_are_reused_then_expire() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let u = f.user("erin", 1_000).await;
    let ask = |confirmed| RunRequest {
        prompt: "a haiku".into(),
        confirmed,
        ..RunRequest::default()
    };
    assert!(matches!(
        m.run(u.id, ask(false)).await.unwrap(),
        RunOutcome::Estimate(_)
    ));
    assert!(matches!(
        m.run(u.id, ask(true)).await.unwrap(),
        RunOutcome::Queued(_)
    ));
    assert_eq!(f.structurer.0.load(Ordering::SeqCst), 1);
    f.clock.advance(Duration::from_secs(901));
    m.run(u.id, ask(false)).await.unwrap();
    assert_eq!(f.structurer.0.load(Ordering::SeqCst), 2);
    assert_eq!(f.rows(h, "quotes").await, 1);
    f.clock.advance(Duration::from_secs(901));
    m.sweep().await.unwrap();
    assert_eq!(
        f.rows(h, "quotes").await,
        0,
        "the sweeper forgets expired quotes"
    );
    f.check(h).await;
}

/// Idempotency keys: claimed once, replayed, refused for another request, forgotten when expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let u = f.user("erin", 0).await;
    let d1 = [1u8; 32];
    assert_eq!(
        m.idem_begin(u.id, "k", d1).await.unwrap(),
        IdemState::Reserved
    );
    assert_eq!(
        m.idem_begin(u.id, "k", d1).await.unwrap(),
        IdemState::InProgress
    );
    m.idem_finish(u.id, "k", b"{\"ok\":1}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        m.idem_begin(u.id, "k", d1).await.unwrap(),
        IdemState::Replay(b"{\"ok\":1}".to_vec())
    );
    assert_eq!(
        m.idem_begin(u.id, "k", [2u8; 32]).await.unwrap(),
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
    assert_eq!(f.rows(h, "idempotency").await, 2);
    f.clock.advance(Duration::from_secs(86_401));
    // An expired key is claimed anew, whatever it was used for.
    assert_eq!(
        m.idem_begin(u.id, "k", [9u8; 32]).await.unwrap(),
        IdemState::Reserved
    );
    f.clock.advance(Duration::from_secs(86_401));
    m.sweep().await.unwrap();
    assert_eq!(f.rows(h, "idempotency").await, 0);
    f.check(h).await;
}

/// The money-moving use cases store a key's answer in the transaction of their effect (a confirmed
/// run that queues, pay, submit, top-up); what they did not write — a job left waiting for
/// payment (its transaction rolled back), a refused submit — leaves the key to its caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_answers_commit_with_their_effect() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 600).await;
    let worker = f.user("worker", 0).await;
    let claim = |user, key: &'static str| async move {
        assert_eq!(
            m.idem_begin(user, key, [3u8; 32]).await.unwrap(),
            IdemState::Reserved
        );
    };
    let replay =
        |user, key: &'static str| async move { m.idem_begin(user, key, [3u8; 32]).await.unwrap() };
    let run = |price| RunRequest {
        prompt: "write a haiku about the sea".into(),
        price_cents: Some(price),
        confirmed: true,
        ..RunRequest::default()
    };
    let job_answer = |tag: &'static str| {
        move |j: &clawrk_domain::job::Job| Some(format!("{tag} {:?}", j.status).into_bytes())
    };

    claim(sender.id, "run").await;
    let answer = Answer::new(sender.id, "run", |o: &RunOutcome| match o {
        RunOutcome::Queued(j) => Some(format!("queued {}", j.id).into_bytes()),
        _ => None,
    });
    let queued = m
        .run_keyed(sender.id, run(500), Some(answer))
        .await
        .unwrap();
    let RunOutcome::Queued(job) = &queued.value else {
        panic!("expected a queued job, got {:?}", queued.value);
    };
    assert!(queued.stored);
    assert_eq!(
        replay(sender.id, "run").await,
        IdemState::Replay(format!("queued {}", job.id).into_bytes())
    );

    // 100 cents left: the paid insert rolls back with its answer; the unpaid job is answered by
    // the caller.
    claim(sender.id, "short").await;
    let answer = Answer::new(sender.id, "short", |_: &RunOutcome| Some(b"never".to_vec()));
    let pending = m
        .run_keyed(sender.id, run(400), Some(answer))
        .await
        .unwrap();
    assert!(matches!(pending.value, RunOutcome::PendingPayment { .. }));
    assert!(!pending.stored);
    assert_eq!(replay(sender.id, "short").await, IdemState::InProgress);

    claim(sender.id, "topup").await;
    let answer = Answer::new(sender.id, "topup", |c: &Cents| {
        Some(c.get().to_string().into_bytes())
    });
    let topped = m
        .topup_keyed(sender.id, Cents(500), Some(answer))
        .await
        .unwrap();
    assert_eq!((topped.value, topped.stored), (Cents(600), true));
    assert_eq!(
        replay(sender.id, "topup").await,
        IdemState::Replay(b"600".to_vec())
    );

    let RunOutcome::PendingPayment { job: unpaid, .. } = pending.value else {
        unreachable!()
    };
    claim(sender.id, "pay").await;
    let answer = Answer::new(sender.id, "pay", job_answer("paid"));
    let paid = m
        .pay_keyed(sender.id, unpaid.id, Some(answer))
        .await
        .unwrap();
    assert!(paid.stored);
    assert_eq!(
        replay(sender.id, "pay").await,
        IdemState::Replay(b"paid Queued".to_vec())
    );

    // Two queued jobs: the agent takes one, whichever matching gives it.
    let mine = m.pull(worker.id, &DEFAULT).await.unwrap().unwrap().id;
    m.accept(worker.id, mine, &DEFAULT).await.unwrap();
    // Refused (the sender holds no attempt): nothing written, the caller answers.
    claim(sender.id, "not-yours").await;
    let answer = Answer::new(sender.id, "not-yours", job_answer("submitted"));
    let refused = m
        .submit_keyed(sender.id, mine, output(), Some(answer))
        .await;
    assert!(refused.is_err());
    assert_eq!(replay(sender.id, "not-yours").await, IdemState::InProgress);
    claim(worker.id, "submit").await;
    let answer = Answer::new(worker.id, "submit", job_answer("submitted"));
    let submitted = m
        .submit_keyed(worker.id, mine, output(), Some(answer))
        .await
        .unwrap();
    assert_eq!(
        (submitted.value.status, submitted.stored),
        (JobStatus::Submitted, true)
    );
    assert_eq!(
        replay(worker.id, "submit").await,
        IdemState::Replay(b"submitted Submitted".to_vec())
    );
    f.check(h).await;
}

/// A request answered 503 releases its key while its change may still be on its way (its caller
/// stopped waiting): the change then fails instead of committing under a key a retry runs anew,
/// and a release that comes after the change committed leaves its answer for the retry. Either
/// way the money moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_idempotency_key_never_lets_money_move_twice() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let u = f.user("payer", 0).await;
    let topup = |key: &'static str| {
        let answer = Answer::new(u.id, key, |c: &Cents| {
            Some(c.get().to_string().into_bytes())
        });
        m.topup_keyed(u.id, Cents(500), Some(answer))
    };
    let claim =
        |key: &'static str| async move { m.idem_begin(u.id, key, [5u8; 32]).await.unwrap() };

    // Released first: the change fails and moves nothing; the retry runs it once.
    assert_eq!(claim("late").await, IdemState::Reserved);
    m.idem_abandon(u.id, "late").await.unwrap();
    assert!(matches!(
        topup("late").await,
        Err(DomainError::Unavailable(_))
    ));
    assert_eq!(f.balance(u.id).await, 0);
    assert_eq!(claim("late").await, IdemState::Reserved);
    assert!(topup("late").await.unwrap().stored);
    assert_eq!(f.balance(u.id).await, 500);

    // Committed first: the release keeps the answer, and the retry replays it.
    assert_eq!(claim("early").await, IdemState::Reserved);
    assert!(topup("early").await.unwrap().stored);
    m.idem_abandon(u.id, "early").await.unwrap();
    assert_eq!(claim("early").await, IdemState::Replay(b"1000".to_vec()));
    assert_eq!(f.balance(u.id).await, 1_000);
    f.check(h).await;
}

/// 20 requests with one key at once, 10 rounds: exactly one runs each time, the others are told
/// it is in progress or get its answer; the money moved once per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_moves_money_once() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let u = f.user("payer", 0).await;
    for round in 0..10 {
        let key = format!("topup-{round}");
        let tasks = (0..20).map(|_| {
            let m = f.market.clone();
            let key = key.clone();
            tokio::spawn(async move {
                match retry(|| m.idem_begin(u.id, &key, [7u8; 32])).await {
                    IdemState::Reserved => {
                        m.topup(u.id, Cents(500)).await.unwrap();
                        m.idem_finish(u.id, &key, b"done".to_vec()).await.unwrap();
                        1
                    }
                    IdemState::InProgress | IdemState::Replay(_) => 0,
                    IdemState::Mismatch => panic!("same request"),
                }
            })
        });
        let ran: i32 = join_all(tasks).await.into_iter().map(|r| r.unwrap()).sum();
        assert_eq!(ran, 1, "round {round}");
    }
    assert_eq!(f.balance(u.id).await, 10 * 500);
    f.check(h).await;
}

/// A leased verification is not leased again until the lease lapses; a verifier error is logged
/// and the job stays submitted until a later verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verification_lease_and_errors() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let job = f.submitted_job(sender.id, worker.id, 500).await;
    f.verifier.set_down(true);
    assert!(matches!(m.verify_next().await, Err(DomainError::Llm(_))));
    assert!(m.verify_next().await.unwrap().is_none(), "leased");
    assert_eq!(f.read(sender.id, job.id).await.status, JobStatus::Submitted);
    f.clock.advance(Duration::from_secs(31));
    f.verifier.set_down(false);
    let done = m.verify_next().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Verified);
    let log = f.log(job.id).await;
    assert_eq!(
        log[..2],
        [
            "verification of attempt 1 started (scripted): 1 criteria".to_string(),
            "verifier error (1/5): llm unavailable: scripted outage; retrying in 30 s".to_string(),
        ]
    );
    let seqs: Vec<i64> = m
        .log_update(job.id, 0)
        .await
        .unwrap()
        .lines
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    f.check(h).await;
}

/// Work whose caller stopped waiting before it committed is rolled back: a verification lease
/// taken for a worker that gave up (its bound expired while the database was out of reach) would
/// otherwise keep the job from every worker until the lease lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_whose_caller_left_is_rolled_back() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let job = f.submitted_job(sender.id, worker.id, 500).await;
    let now = f.clock.now();
    let until = now.plus_seconds(600);
    let leasing = f.store.transaction(move |tx| {
        let leased = tx.lease_submitted(now, until)?.is_some();
        // Still running when its caller leaves.
        std::thread::sleep(Duration::from_millis(600));
        Ok(leased)
    });
    let left = tokio::time::timeout(Duration::from_millis(150), leasing).await;
    assert!(left.is_err(), "the caller left before the work ended");
    // Past the work's end: it rolled back, so a worker leases the job at once.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let done = m.verify_next().await.unwrap().expect("the job was free");
    assert_eq!(done.status, JobStatus::Verified);
    assert_eq!(
        f.log(job.id).await[0],
        "verification of attempt 1 started (scripted): 1 criteria"
    );
    f.check(h).await;
}

/// A verification says whether another submission was free to lease when it took its own (so a
/// worker looks again at once only then): a leased one, or one postponed after a verifier error,
/// does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_says_whether_another_waits() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let mut jobs = vec![];
    for _ in 0..3 {
        let job = f.submitted_job(sender.id, worker.id, 500).await;
        jobs.push(job.id);
        f.clock.advance(Duration::from_secs(1));
    }
    // The oldest fails to be judged: it is postponed, and two remain free.
    f.verifier.set_down(true);
    assert!(matches!(m.verify_one().await, Err(DomainError::Llm(_))));
    f.verifier.set_down(false);
    let first = m.verify_one().await.unwrap().unwrap();
    assert_eq!(first.job.id, jobs[1]);
    assert!(first.more_waiting, "the third was free");
    let second = m.verify_one().await.unwrap().unwrap();
    assert_eq!(second.job.id, jobs[2]);
    assert!(!second.more_waiting, "the first is postponed");
    assert!(m.verify_one().await.unwrap().is_none());
    f.clock.advance(Duration::from_secs(31));
    let last = m.verify_one().await.unwrap().unwrap();
    assert_eq!((last.job.id, last.more_waiting), (jobs[0], false));
    assert_eq!(last.job.status, JobStatus::Verified);
    f.check(h).await;
}

/// A submission the verifier cannot judge after its errors goes to the sender's review: no worker
/// takes it again, the sender's approval pays the agent, a rejection re-queues it, and a review
/// left unanswered is approved by the sweep when it is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifier_outage_goes_to_review() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let job = f.submitted_job(sender.id, worker.id, 500).await;
        jobs.push(job.id);
    }
    f.verifier.set_down(true);
    for _ in 0..5 {
        for _ in 0..4 {
            assert!(matches!(m.verify_next().await, Err(DomainError::Llm(_))));
        }
        f.clock.advance(Duration::from_secs(31));
    }
    assert!(
        m.verify_next().await.unwrap().is_none(),
        "in review, not leased"
    );
    f.verifier.set_down(false);
    assert!(
        m.verify_next().await.unwrap().is_none(),
        "the sender decides now"
    );
    let waiting = f.read(sender.id, jobs[0]).await;
    assert_eq!(waiting.status, JobStatus::Submitted);
    assert!(waiting.review_due_at.is_some());
    assert!(matches!(
        m.review(worker.id, jobs[0], true).await,
        Err(DomainError::Forbidden(_))
    ));

    let paid = m.review(sender.id, jobs[0], true).await.unwrap();
    assert_eq!(paid.status, JobStatus::Verified);
    assert_eq!(paid.review_due_at, None);
    let rejected = m.review(sender.id, jobs[1], false).await.unwrap();
    assert_eq!(rejected.status, JobStatus::Queued);
    assert_eq!(rejected.attempt_count, 1);
    assert!(
        m.review(sender.id, jobs[0], true).await.is_err(),
        "decided once"
    );
    // Cancel on a submission in review acts as on any submission: flagged, it takes effect on a
    // failure — the sender's rejection ends the job and refunds them.
    let before = f.balance(sender.id).await;
    let flagged = m.cancel(sender.id, jobs[3]).await.unwrap();
    assert!(flagged.cancellation_requested);
    assert_eq!(flagged.status, JobStatus::Submitted);
    let ended = m.review(sender.id, jobs[3], false).await.unwrap();
    assert_eq!(ended.status, JobStatus::Cancelled);
    assert_eq!(f.balance(sender.id).await, before + 500);

    assert_eq!(m.sweep().await.unwrap().approved_reviews, 0, "not due yet");
    f.clock.advance(Duration::from_secs(72 * 3600 + 1));
    assert_eq!(m.sweep().await.unwrap().approved_reviews, 1);
    assert_eq!(f.read(sender.id, jobs[2]).await.status, JobStatus::Verified);
    assert_eq!(m.sweep().await.unwrap().approved_reviews, 0, "idempotent");
    assert_eq!(
        f.balance(worker.id).await,
        2 * (500 - (500 * 20 / 100 + 50))
    );
    f.check(h).await;
}

/// The monitoring counts: jobs per status in one read, and when the oldest queued job was queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_stats_count_by_status() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    assert_eq!(m.job_stats().await.unwrap(), Default::default());
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let first = f.job(sender.id, 500).await;
    f.clock.advance(Duration::from_secs(5));
    f.job(sender.id, 500).await;
    let held = f.job(sender.id, 500).await;
    m.claim(worker.id, held.id, &DEFAULT).await.unwrap();
    let stats = m.job_stats().await.unwrap();
    let count = |s: JobStatus| {
        stats
            .by_status
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!((count(JobStatus::Queued), count(JobStatus::Held)), (2, 1));
    assert_eq!(stats.oldest_queued, Some(first.updated_at));
}

/// Texts with NUL are refused with the field named, on both stores, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_bytes_are_refused() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    let worker = f.user("worker", 0).await;
    let nul = m
        .run(
            sender.id,
            RunRequest {
                prompt: "sea\0".into(),
                confirmed: true,
                ..RunRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(nul.to_string(), "prompt must not contain NUL characters");
    let e = m
        .create_agent(
            worker.id,
            NewAgent {
                name: "poet".into(),
                avatar_url: Some("https://x/\0".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "avatar_url must not contain NUL characters");
    let job = f.job(sender.id, 500).await;
    m.claim(worker.id, job.id, &DEFAULT).await.unwrap();
    m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    let out = Output::new(Some("a\0b".into()), None).unwrap();
    let e = m.submit(worker.id, job.id, out).await.unwrap_err();
    assert_eq!(e.to_string(), "output must not contain NUL characters");
    let e = m
        .give_up(worker.id, job.id, Some("x\0".into()))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "reason must not contain NUL characters");
    assert_eq!(f.read(sender.id, job.id).await.status, JobStatus::Accepted);
    assert_eq!(f.rows(h, "jobs").await, 1);
    assert_eq!(f.rows(h, "agents").await, 2);
    f.check(h).await;
}

/// Amounts beyond the documented maximum are refused before anything moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amounts_are_bounded() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let u = f.user("u", 0).await;
    for amount in [i64::MAX, MAX_AMOUNT.get() + 1] {
        let e = m.topup(u.id, Cents(amount)).await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid(_)), "{e:?}");
        let e = m
            .adjust_balance(u.id, Cents(-amount), Reason::Adjustment)
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::Invalid(_)), "{e:?}");
    }
    assert_eq!(m.topup(u.id, MAX_AMOUNT).await.unwrap(), MAX_AMOUNT);
    assert_eq!(f.rows(h, "transfers").await, 1);
    f.check(h).await;
}

/// Two instances on one database: an agent's next step over the copy its instance kept of the
/// job is decided again over a fresh read when the other instance changed the job meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_over_an_outdated_copy_reads_again() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let (a, b) = (&f.market, f.second_instance());
    let sender = f.user("sender", 1_000).await;
    let first = f.user("first", 0).await;
    let second = f.user("second", 0).await;
    let job = f.job(sender.id, 500).await;
    // A keeps its copy: held by `first`. Through B, `first` rejects and `second` takes the job.
    a.pull(first.id, &DEFAULT).await.unwrap().unwrap();
    b.reject(first.id, job.id, &DEFAULT).await.unwrap();
    b.pull(second.id, &DEFAULT).await.unwrap().unwrap();
    // The answer is the one a read gives (B keeps no copy held by `first`).
    let refused = a.accept(first.id, job.id, &DEFAULT).await.unwrap_err();
    assert_eq!(
        refused,
        b.accept(first.id, job.id, &DEFAULT).await.unwrap_err()
    );
    let now = f.read(sender.id, job.id).await;
    assert_eq!(now.status, JobStatus::Held);
    assert_eq!(now.holder.map(|h| h.owner_id), Some(second.id));
    // `second` accepts through A (A keeps the accepted copy) and gives up through B: the submit
    // over A's copy is refused, and the job stays as B left it.
    let accepted = a.accept(second.id, job.id, &DEFAULT).await.unwrap();
    assert_eq!(accepted.status, JobStatus::Accepted);
    let given_up = b.give_up(second.id, job.id, None).await.unwrap();
    assert!(a.submit(second.id, job.id, output()).await.is_err());
    let now = f.read(sender.id, job.id).await;
    assert_eq!(
        (now.status, now.version),
        (given_up.status, given_up.version)
    );
    f.check(h).await;
}

/// 64 concurrent pullers over 2,000 queued jobs: every job is held exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pulls_hold_each_job_once() {
    const PULLERS: usize = 64;
    const JOBS: usize = 2_000;
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100 * JOBS as i64).await;
    f.seed_jobs(sender.id, JOBS).await;
    let mut workers = vec![];
    for n in 0..PULLERS {
        workers.push(f.user(&format!("w{n}"), 0).await.id);
    }
    let tasks = workers.into_iter().map(|w| {
        let m = f.market.clone();
        tokio::spawn(async move {
            let mut got = vec![];
            while let Some(j) = retry(|| m.pull(w, &DEFAULT)).await {
                assert_eq!(j.holder.map(|h| h.owner_id), Some(w));
                got.push(j.id);
            }
            got
        })
    });
    let mut seen = HashSet::new();
    for t in join_all(tasks).await {
        for id in t.unwrap() {
            assert!(seen.insert(id), "job {id} held twice");
        }
    }
    assert_eq!(seen.len(), JOBS);
    f.check(h).await;
}

/// 20 concurrent payments of 100 cents from a 1,000-cent wallet: exactly 10 succeed, balance 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_never_overdraw() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let u = f.user("payer", 0).await;
    let mut jobs = vec![];
    for _ in 0..20 {
        let RunOutcome::PendingPayment { job, .. } = f.try_job(u.id, 100).await else {
            panic!("short")
        };
        jobs.push(job.id);
    }
    f.market
        .adjust_balance(u.id, Cents(1_000), Reason::Topup)
        .await
        .unwrap();
    let tasks = jobs.into_iter().map(|id| {
        let m = f.market.clone();
        tokio::spawn(async move { retry_result(|| m.pay(u.id, id)).await })
    });
    let mut ok = 0;
    for r in join_all(tasks).await {
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
/// exactly once; a successful claim saw it `queued` before the cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_races_claim() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 200 * 100).await;
    let worker = f.user("worker", 0).await;
    let jobs = f.seed_jobs(sender.id, 200).await;
    for id in jobs {
        let (m1, m2) = (f.market.clone(), f.market.clone());
        let cancel = tokio::spawn(async move { retry_result(|| m1.cancel(sender.id, id)).await });
        let claim =
            tokio::spawn(async move { retry_result(|| m2.claim(worker.id, id, &DEFAULT)).await });
        let (cancel, claim) = (cancel.await.unwrap(), claim.await.unwrap());
        assert_eq!(cancel.unwrap().status, JobStatus::Cancelled);
        match claim {
            Ok(j) => assert_eq!(j.status, JobStatus::Held),
            // Cancelled first: the job is invisible to the worker now.
            Err(DomainError::NotFound(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_eq!(f.read(sender.id, id).await.status, JobStatus::Cancelled);
    }
    assert_eq!(f.balance(sender.id).await, 200 * 100);
    f.check(h).await;
}

/// Accept, reject and cancel racing on held jobs: each job ends in one consistent state, money
/// exact, and its log numbered without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transitions_race_on_one_job() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100 * 100).await;
    let worker = f.user("worker", 0).await;
    let jobs = f.seed_jobs(sender.id, 50).await;
    for id in &jobs {
        f.market.claim(worker.id, *id, &DEFAULT).await.unwrap();
    }
    for id in jobs.clone() {
        let (a, r, c) = (f.market.clone(), f.market.clone(), f.market.clone());
        let accept =
            tokio::spawn(async move { retry_result(|| a.accept(worker.id, id, &DEFAULT)).await });
        let reject =
            tokio::spawn(async move { retry_result(|| r.reject(worker.id, id, &DEFAULT)).await });
        let cancel = tokio::spawn(async move { retry_result(|| c.cancel(sender.id, id)).await });
        let (accept, reject, cancel) = (
            accept.await.unwrap(),
            reject.await.unwrap(),
            cancel.await.unwrap(),
        );
        assert!(
            !(accept.is_ok() && reject.is_ok()),
            "accepted and rejected at once"
        );
        let cancel = cancel.unwrap();
        let j = f.read(sender.id, id).await;
        match j.status {
            // Accepted before the cancel: only flagged.
            JobStatus::Accepted => {
                assert!(accept.is_ok() && j.cancellation_requested && cancel.cancellation_requested)
            }
            JobStatus::Cancelled => {
                assert!(accept.is_err() || cancel.status == JobStatus::Cancelled)
            }
            s => panic!("unexpected end state {s}"),
        }
        let seqs: Vec<i64> = f
            .market
            .log_update(id, 0)
            .await
            .unwrap()
            .lines
            .iter()
            .map(|l| l.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
    f.check(h).await;
}

/// 10 concurrent sweeps over 500 lapsed holds: each hold is released exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweeps_release_once() {
    const JOBS: usize = 500;
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100 * JOBS as i64).await;
    let worker = f.user("worker", 0).await;
    let jobs = f.seed_jobs(sender.id, JOBS).await;
    for id in &jobs {
        f.market.claim(worker.id, *id, &DEFAULT).await.unwrap();
    }
    f.clock.advance(Duration::from_secs(31));
    let tasks = (0..10).map(|_| {
        let m = f.market.clone();
        tokio::spawn(async move { retry(|| m.sweep()).await })
    });
    let released: u64 = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().released_holds)
        .sum();
    assert_eq!(released, JOBS as u64);
    for id in jobs {
        assert_eq!(f.read(sender.id, id).await.status, JobStatus::Queued);
    }
    f.check(h).await;
}

/// Drains the webhook outbox and sends what is due (at the fixture's clock).
async fn deliver_all<H: Harness>(f: &Fixture<H>) {
    while f.market.dispatch_webhook_events().await.unwrap() > 0 {}
    while f
        .market
        .deliver_webhooks(Duration::from_secs(10), Duration::from_secs(60))
        .await
        .unwrap()
        .sent()
        > 0
    {}
}

fn hook(url: &str, events: &[&str]) -> clawrk_domain::webhook::NewEndpoint {
    clawrk_domain::webhook::NewEndpoint {
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: None,
    }
}

/// Every status change is in the outbox with the job as it became, and reaches the endpoints of
/// the job's sender and of the operator whose agent held or worked on it — a requeue included —
/// filtered by each endpoint's events; nobody else's, and no disabled one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_events_follow_the_lifecycle() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let worker = f.user("worker", 0).await;
    let stranger = f.user("stranger", 1_000).await;
    m.create_webhook(sender.id, hook("https://s.example/", &["*"]), "k".into())
        .await
        .unwrap();
    let off = m
        .create_webhook(sender.id, hook("https://off.example/", &["*"]), "k".into())
        .await
        .unwrap();
    let patch = clawrk_domain::webhook::EndpointPatch {
        enabled: Some(false),
        ..Default::default()
    };
    m.update_webhook(sender.id, off.id, patch).await.unwrap();
    m.create_webhook(
        worker.id,
        hook(
            "https://w.example/",
            &["job.held", "job.requeued", "payout.completed"],
        ),
        "k".into(),
    )
    .await
    .unwrap();
    m.create_webhook(stranger.id, hook("https://x.example/", &["*"]), "k".into())
        .await
        .unwrap();
    let job = f.job(sender.id, 500).await;
    m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    m.give_up(worker.id, job.id, None).await.unwrap();
    // The second attempt by another of the operator's agents (one agent sees a job once).
    let second = m
        .create_agent(
            worker.id,
            NewAgent {
                name: "second".into(),
                personality: None,
                avatar_url: None,
            },
        )
        .await
        .unwrap();
    m.pull(worker.id, &by(&second)).await.unwrap().unwrap();
    m.accept(worker.id, job.id, &by(&second)).await.unwrap();
    m.submit(worker.id, job.id, output()).await.unwrap();
    m.verify_next().await.unwrap().unwrap();
    // A job nobody listens to leaves nothing behind once dispatched.
    let quiet = f.user("quiet", 1_000).await;
    f.job(quiet.id, 500).await;
    // Its change had nobody to tell: it was never written to the outbox.
    assert_eq!(
        h.number(&f.db, "SELECT COUNT(*) AS n FROM job_events".into())
            .await,
        8
    );
    deliver_all(&f).await;

    let sent = f.webhooks.sent.lock().unwrap().clone();
    let to = |url: &str| -> Vec<(String, JobStatus)> {
        sent.iter()
            .filter(|s| s.0 == url)
            .map(|s| (s.1.clone(), s.3))
            .collect()
    };
    use JobStatus as S;
    let s = |t: &str, st: S| (t.to_string(), st);
    assert_eq!(
        to("https://s.example/"),
        [
            s("job.queued", S::Queued),
            s("job.held", S::Held),
            s("job.accepted", S::Accepted),
            s("job.requeued", S::Queued),
            s("job.held", S::Held),
            s("job.accepted", S::Accepted),
            s("job.submitted", S::Submitted),
            s("job.verified", S::Verified),
            s("payout.completed", S::Verified),
        ]
    );
    assert_eq!(
        to("https://w.example/"),
        [
            s("job.held", S::Held),
            s("job.requeued", S::Queued),
            s("job.held", S::Held),
            s("payout.completed", S::Verified),
        ]
    );
    assert!(to("https://x.example/").is_empty());
    assert!(to("https://off.example/").is_empty());
    assert_eq!(
        h.number(
            &f.db,
            "SELECT COUNT(*) AS n FROM job_events WHERE NOT dispatched".into()
        )
        .await,
        0
    );
    // The quiet job's event was dropped; the listened-to job's 8 changes are kept for redelivery.
    assert_eq!(
        h.number(&f.db, "SELECT COUNT(*) AS n FROM job_events".into())
            .await,
        8
    );
    // Finished deliveries and their events are purged by the sweep after the retention.
    f.clock.advance(Duration::from_secs(31 * 24 * 3600));
    m.sweep().await.unwrap();
    assert_eq!(
        h.number(&f.db, "SELECT COUNT(*) AS n FROM job_events".into())
            .await,
        0
    );
    assert_eq!(
        h.number(&f.db, "SELECT COUNT(*) AS n FROM webhook_deliveries".into())
            .await,
        0
    );
    f.check(h).await;
}

/// The owner of the agent alone listening is told of its hold and, once it gives the job up, of
/// the requeue (it no longer works on the job then: the outbox keeps whose agent it was).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_alone_listening_is_told_of_its_jobs() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let worker = f.user("worker", 0).await;
    f.agent(worker.id).await;
    m.create_webhook(worker.id, hook("https://w.example/", &["*"]), "k".into())
        .await
        .unwrap();
    let job = f.job(sender.id, 500).await;
    m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    m.give_up(worker.id, job.id, None).await.unwrap();
    deliver_all(&f).await;
    let sent: Vec<String> = f
        .webhooks
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.1.clone())
        .collect();
    assert_eq!(sent, ["job.held", "job.accepted", "job.requeued"]);
    f.check(h).await;
}

/// A receiver that fails is retried after a backoff until it takes the event, then never again;
/// a redelivery sends the same event id once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_webhook_is_retried_then_delivered_once() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let ep = m
        .create_webhook(
            sender.id,
            hook("https://s.example/", &["job.queued"]),
            "k".into(),
        )
        .await
        .unwrap();
    f.webhooks.failing.store(true, Ordering::SeqCst);
    f.job(sender.id, 500).await;
    deliver_all(&f).await;
    // Not due again before its backoff.
    deliver_all(&f).await;
    assert_eq!(f.webhooks.sent.lock().unwrap().len(), 1);
    for _ in 0..2 {
        f.clock.advance(Duration::from_secs(3600));
        deliver_all(&f).await;
    }
    f.webhooks.failing.store(false, Ordering::SeqCst);
    f.clock.advance(Duration::from_secs(3600));
    deliver_all(&f).await;
    f.clock.advance(Duration::from_secs(3600));
    deliver_all(&f).await;
    let sent = f.webhooks.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter().map(|s| s.4).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "three failures and one success"
    );
    assert!(sent.iter().all(|s| s.2 == sent[0].2), "one event id");
    let ds = m.deliveries(sender.id, ep.id, Page::first()).await.unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(
        (ds[0].attempts, ds[0].state, ds[0].last_status),
        (
            4,
            clawrk_domain::webhook::DeliveryState::Delivered,
            Some(200)
        )
    );
    m.redeliver(sender.id, ep.id, ds[0].id).await.unwrap();
    deliver_all(&f).await;
    let sent = f.webhooks.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[4].2, sent[0].2);
}

/// Concurrent delivery workers send each delivery once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_webhook_workers_send_each_delivery_once() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 10_000).await;
    for i in 0..5 {
        m.create_webhook(
            sender.id,
            hook(&format!("https://s{i}.example/"), &["*"]),
            "k".into(),
        )
        .await
        .unwrap();
    }
    for _ in 0..8 {
        f.job(sender.id, 500).await;
    }
    while m.dispatch_webhook_events().await.unwrap() > 0 {}
    let workers = (0..4).map(|_| async {
        let mut n = 0;
        loop {
            match m
                .deliver_webhooks(Duration::from_secs(10), Duration::from_secs(60))
                .await
            {
                Ok(r) if r.sent() == 0 => return n,
                Ok(r) => n += r.sent(),
                // SQLite's single writer may answer busy under this race; try again.
                Err(DomainError::Unavailable(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    let sent: usize = join_all(workers).await.into_iter().sum();
    assert_eq!(sent, 40);
    let mut ids: Vec<(String, String)> = f
        .webhooks
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.0.clone(), s.2.clone()))
        .collect();
    assert_eq!(ids.len(), 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "a delivery was sent twice");
}

/// A disabled endpoint's queued deliveries wait until it is enabled again; events while it is
/// disabled are not queued for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_webhook_holds_its_deliveries() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let ep = m
        .create_webhook(sender.id, hook("https://s.example/", &["*"]), "k".into())
        .await
        .unwrap();
    let job = f.job(sender.id, 500).await;
    while m.dispatch_webhook_events().await.unwrap() > 0 {}
    let toggle = |on: bool| clawrk_domain::webhook::EndpointPatch {
        enabled: Some(on),
        ..Default::default()
    };
    m.update_webhook(sender.id, ep.id, toggle(false))
        .await
        .unwrap();
    m.cancel(sender.id, job.id).await.unwrap();
    deliver_all(&f).await;
    assert!(f.webhooks.sent.lock().unwrap().is_empty());
    m.update_webhook(sender.id, ep.id, toggle(true))
        .await
        .unwrap();
    deliver_all(&f).await;
    let sent = f.webhooks.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        ["job.queued"],
        "the cancel happened while disabled"
    );
}

/// Files' metadata round trip, what a user's files take, references from a job's attachments
/// and submissions, who may read them, and the sweeper keeping what is referenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_kept_referenced_and_swept() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let m = &f.market;
    let sender = f.user("sender", 1_000).await;
    let worker = f.user("worker", 0).await;
    let stranger = f.user("stranger", 0).await;
    f.agent(worker.id).await;
    let input = f.upload(sender.id, "in \"q\".txt", b"input bytes").await;
    let loose = f.upload(sender.id, "loose.txt", b"loose").await;
    assert_eq!(m.file(sender.id, input.id).await.unwrap(), input);
    let (sid, ids) = (sender.id, vec![input.id, loose.id]);
    let used = f
        .store
        .read(move |tx| Ok((tx.storage_used(sid)?, tx.files(&ids)?.len())))
        .await
        .unwrap();
    assert_eq!(used, (16, 2));

    let run = RunRequest {
        prompt: "Summarise the file".into(),
        attachments: vec![input.id],
        confirmed: true,
        ..RunRequest::default()
    };
    let RunOutcome::Queued(job) = m.run(sender.id, run).await.unwrap() else {
        panic!("not queued");
    };
    let shown = &job.attachments.0;
    assert!(
        shown.contains(&format!("\"id\":\"{}\"", input.id)),
        "{shown}"
    );
    assert!(shown.contains(r#""filename":"in \"q\".txt""#), "{shown}");
    assert!(shown.contains(&input.sha256_hex()), "{shown}");
    // The stored job shows the same.
    assert_eq!(
        m.job(sender.id, job.id).await.unwrap().attachments,
        job.attachments
    );
    assert!(
        m.file(worker.id, input.id).await.is_err(),
        "not before it holds the job"
    );
    m.pull(worker.id, &DEFAULT).await.unwrap().unwrap();
    assert_eq!(m.file(worker.id, input.id).await.unwrap().id, input.id);
    m.accept(worker.id, job.id, &DEFAULT).await.unwrap();
    let out = f.upload(worker.id, "out.txt", b"the summary").await;
    let submitted = m
        .submit(
            worker.id,
            job.id,
            Output::new(None, Some(vec![out.id])).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(submitted.status, JobStatus::Submitted);
    assert_eq!(m.file(sender.id, out.id).await.unwrap().id, out.id);
    assert!(m.file(stranger.id, out.id).await.is_err());
    assert!(m.file(stranger.id, input.id).await.is_err());
    let jid = job.id;
    let (inputs, outputs, of_attempt_2, refs) = f
        .store
        .read(move |tx| {
            use clawrk_domain::files::FileRole;
            Ok((
                tx.job_files(jid, FileRole::Input, None)?,
                tx.job_files(jid, FileRole::Output, Some(1))?,
                tx.job_files(jid, FileRole::Output, Some(2))?,
                tx.file_references(out.id)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(inputs, vec![input.clone()]);
    assert_eq!(outputs.len(), 1);
    assert!(of_attempt_2.is_empty());
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].0.id, job.id);

    // A day later, only the unreferenced upload goes.
    f.clock.advance(Duration::from_secs(25 * 3600));
    let report = m.sweep().await.unwrap();
    assert_eq!(report.removed_files, 1);
    assert!(m.file(sender.id, loose.id).await.is_err());
    assert!(!f.files.keys().contains(&loose.id.to_string()));
    assert!(m.file(sender.id, input.id).await.is_ok());
    assert!(m.file(worker.id, out.id).await.is_ok());
    assert_eq!(m.sweep().await.unwrap().removed_files, 0);
    f.check(h).await;
}

/// Jobs created with day-old uploads while sweeps run: each job keeps its file, and every file
/// removed is referenced by no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_racing_new_references_never_leave_a_job_without_its_file() {
    let h = &HARNESS;
    let f = Fixture::new(h).await;
    let sender = f.user("sender", 100_000).await;
    let mut uploads = Vec::new();
    for i in 0..12 {
        let name: &'static str = Box::leak(format!("f{i}.txt").into_boxed_str());
        uploads.push(f.upload(sender.id, name, b"data").await);
    }
    f.clock.advance(Duration::from_secs(25 * 3600));
    let mut tasks = Vec::new();
    for u in &uploads {
        let m = f.market.clone();
        let (sid, fid) = (sender.id, u.id);
        tasks.push(tokio::spawn(async move {
            let run = RunRequest {
                prompt: format!("Use file {fid}"),
                attachments: vec![fid],
                confirmed: true,
                ..RunRequest::default()
            };
            (Some(fid), m.run(sid, run).await)
        }));
    }
    for _ in 0..3 {
        let m = f.market.clone();
        tasks.push(tokio::spawn(async move {
            let _ = m.sweep().await;
            (None, Err(DomainError::invalid("a sweep")))
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        if let (Some(fid), Ok(RunOutcome::Queued(job))) = t.await.unwrap() {
            created.push((fid, job.id));
        }
    }
    let _ = f.market.sweep().await.unwrap();
    for (fid, jid) in &created {
        assert!(
            f.market.file(sender.id, *fid).await.is_ok(),
            "job {jid}'s file {fid} was removed"
        );
    }
    let kept: HashSet<_> = created.iter().map(|(fid, _)| *fid).collect();
    for u in &uploads {
        if !kept.contains(&u.id) {
            assert!(
                f.market.file(sender.id, u.id).await.is_err(),
                "{} kept",
                u.id
            );
        }
    }
    f.check(h).await;
}
