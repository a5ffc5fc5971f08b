//! The (status × trigger) table of SPEC §3: every pair, legal and illegal, with the resulting status,
//! the money it moves and the error it gives; and what each change records beside the job (the
//! attempt it ends, its log lines, the version it moves the job to).

mod common;

use clawrk_domain::job::CriterionResult;
use clawrk_domain::lifecycle::{self, Change, MAX_ATTEMPTS};
use clawrk_domain::{Account, Cents, DomainError, Job, JobStatus, Output, Reason, Verdict};
use common::*;

#[derive(Clone, Copy, Debug)]
enum Trigger {
    Pay,
    Hold,
    ClaimVisible,
    Reject,
    AcceptInTime,
    AcceptLate,
    ExpireHold,
    SubmitInTime,
    SubmitLate,
    GiveUp,
    ExpireDeadline,
    VerdictPass,
    VerdictFail,
    Cancel,
}

const TRIGGERS: [Trigger; 14] = [
    Trigger::Pay,
    Trigger::Hold,
    Trigger::ClaimVisible,
    Trigger::Reject,
    Trigger::AcceptInTime,
    Trigger::AcceptLate,
    Trigger::ExpireHold,
    Trigger::SubmitInTime,
    Trigger::SubmitLate,
    Trigger::GiveUp,
    Trigger::ExpireDeadline,
    Trigger::VerdictPass,
    Trigger::VerdictFail,
    Trigger::Cancel,
];

fn verdict(passed: bool) -> Verdict {
    Verdict {
        passed,
        reasoning: "checked".into(),
        criteria: vec![CriterionResult {
            criterion: "Has three lines".into(),
            passed,
            note: String::new(),
        }],
        verifier: "heuristic".into(),
        verified_at: T0.plus_seconds(20),
    }
}

fn fire(job: &Job, t: Trigger) -> Result<Change, DomainError> {
    let in_time = T0.plus_seconds(5);
    let late_hold = T0.plus_seconds(HOLD);
    let late_deadline = T0.plus_seconds(LIMIT);
    let output = || Output::new(Some("three\nlines\nhere".into()), None).unwrap();
    match t {
        Trigger::Pay => lifecycle::pay(job, SENDER, in_time),
        // A stranger's agent (sees nothing but queued jobs on the board)…
        Trigger::Hold => lifecycle::hold(job, other(), HOLD, in_time),
        // …and the worker's agent, which sees the job once it held or accepted it.
        Trigger::ClaimVisible => lifecycle::hold(job, worker(), HOLD, in_time),
        Trigger::Reject => lifecycle::reject(job, worker(), in_time),
        Trigger::AcceptInTime => lifecycle::accept(job, worker(), in_time),
        Trigger::AcceptLate => lifecycle::accept(job, worker(), late_hold),
        Trigger::ExpireHold => lifecycle::expire_hold(job, late_hold),
        Trigger::SubmitInTime => lifecycle::submit(job, WORKER, output(), in_time),
        Trigger::SubmitLate => lifecycle::submit(job, WORKER, output(), late_deadline),
        Trigger::GiveUp => lifecycle::give_up(job, WORKER, Some("stuck"), in_time),
        Trigger::ExpireDeadline => lifecycle::expire_deadline(job, late_deadline),
        Trigger::VerdictPass => lifecycle::apply_verdict(job, verdict(true), in_time),
        Trigger::VerdictFail => lifecycle::apply_verdict(job, verdict(false), in_time),
        Trigger::Cancel => lifecycle::cancel(job, SENDER, in_time),
    }
}

/// What a (status, trigger) pair must do.
#[derive(Debug, PartialEq)]
enum Expect {
    /// New status, reasons of the transfers, refusal (as its Display).
    To(JobStatus, Vec<Reason>, Option<&'static str>),
    /// Refused with this kind of error, nothing changed.
    Err(&'static str),
}

fn kind(e: &DomainError) -> &'static str {
    match e {
        DomainError::NotFound(_) => "not_found",
        DomainError::Forbidden(_) => "forbidden",
        DomainError::InvalidState { .. } => "invalid_state",
        DomainError::HoldExpired => "hold_expired",
        DomainError::DeadlinePassed => "deadline_passed",
        DomainError::InsufficientBalance { .. } => "insufficient",
        _ => "other",
    }
}

fn expect(status: JobStatus, t: Trigger) -> Expect {
    use Expect::{Err, To};
    use JobStatus::*;
    use Trigger::*;
    match (status, t) {
        (PendingPayment, Pay) => To(Queued, vec![Reason::JobPayment], None),
        (_, Pay) => Err("invalid_state"),

        (Queued, Hold | ClaimVisible) => To(Held, vec![], None),
        // A job that is not queued does not exist for a stranger.
        (_, Hold) => Err("not_found"),
        (Held | Accepted | Submitted | Verified, ClaimVisible) => Err("invalid_state"),
        (_, ClaimVisible) => Err("not_found"),

        (Held, Reject) => To(Queued, vec![], None),
        (Held, AcceptInTime) => To(Accepted, vec![], None),
        (Held, AcceptLate) => To(Queued, vec![], Some("hold expired")),
        (Held, ExpireHold) => To(Queued, vec![], None),
        // The worker's agent was presented the job in these statuses but holds it no longer.
        (Accepted | Submitted | Verified, Reject | AcceptInTime | AcceptLate) => {
            Err("invalid_state")
        }
        // Never presented to the worker, and invisible to it.
        (PendingPayment | Queued | Cancelled | Failed, Reject | AcceptInTime | AcceptLate) => {
            Err("not_found")
        }
        (_, ExpireHold) => Err("invalid_state"),

        (Accepted, SubmitInTime) => To(Submitted, vec![], None),
        (Accepted, SubmitLate) => To(Queued, vec![], Some("time limit exceeded")),
        (Accepted, GiveUp) => To(Queued, vec![], None),
        (Accepted, ExpireDeadline) => To(Queued, vec![], None),
        (Submitted | Verified, SubmitInTime | SubmitLate | GiveUp) => Err("invalid_state"),
        (Held, SubmitInTime | SubmitLate | GiveUp) => Err("forbidden"),
        (_, SubmitInTime | SubmitLate | GiveUp) => Err("not_found"),
        (_, ExpireDeadline) => Err("invalid_state"),

        (Submitted, VerdictPass) => To(Verified, vec![Reason::Earning, Reason::Fee], None),
        (Submitted, VerdictFail) => To(Queued, vec![], None),
        (_, VerdictPass | VerdictFail) => Err("invalid_state"),

        (PendingPayment, Cancel) => To(Cancelled, vec![], None),
        (Queued | Held, Cancel) => To(Cancelled, vec![Reason::Refund], None),
        (Accepted | Submitted, Cancel) => To(status, vec![], None),
        (Verified | Cancelled | Failed, Cancel) => To(status, vec![], None),
    }
}

#[test]
fn every_status_and_trigger() {
    let mut checked = 0;
    for status in JobStatus::ALL {
        for t in TRIGGERS {
            let job = job_in(status, 1);
            let got = match fire(&job, t) {
                Ok(c) => Expect::To(
                    c.job.status,
                    c.transfers.iter().map(|x| x.reason).collect(),
                    c.refusal.as_ref().map(|e| match e {
                        DomainError::HoldExpired => "hold expired",
                        DomainError::DeadlinePassed => "time limit exceeded",
                        _ => "other",
                    }),
                ),
                Err(e) => Expect::Err(kind(&e)),
            };
            assert_eq!(got, expect(status, t), "{status} × {t:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * TRIGGERS.len());
}

#[test]
fn accept_starts_the_attempt_and_the_clock() {
    let job = job_in(JobStatus::Held, 0);
    let now = T0.plus_seconds(5);
    let c = lifecycle::accept(&job, worker(), now).unwrap();
    assert_eq!(c.job.attempt_count, 1);
    assert_eq!(c.job.receiver, Some(WORKER));
    assert_eq!(c.job.receiver_agent_id, Some(WORKER_AGENT));
    assert_eq!(c.job.accepted_at, Some(now));
    assert_eq!(c.job.deadline_at, Some(now.plus_seconds(LIMIT)));
    assert_eq!(c.job.holder, None);
}

#[test]
fn fail_job_rule_in_order() {
    let now = T0.plus_seconds(5);
    // Attempts 1 and 2: back to the queue, receiver kept, deadline cleared, nothing refunded.
    for n in 1..MAX_ATTEMPTS {
        let c = lifecycle::give_up(&job_in(JobStatus::Accepted, n), WORKER, None, now).unwrap();
        assert_eq!(c.job.status, JobStatus::Queued, "attempt {n}");
        assert_eq!(c.job.attempt_count, n, "failJob never counts");
        assert_eq!(c.job.receiver, Some(WORKER));
        assert_eq!(c.job.deadline_at, None);
        assert!(c.transfers.is_empty());
    }
    // Attempt 3: failed and refunded in full.
    let c = lifecycle::give_up(&job_in(JobStatus::Accepted, 3), WORKER, None, now).unwrap();
    assert_eq!(c.job.status, JobStatus::Failed);
    assert_eq!(c.job.completed_at, Some(now));
    assert_eq!(c.transfers.len(), 1);
    assert_eq!(c.transfers[0].from, Account::Escrow(c.job.id));
    assert_eq!(c.transfers[0].to, Account::Wallet(SENDER));
    assert_eq!(c.transfers[0].amount, Cents(PRICE));
    // Cancellation requested wins over the count, also at the first attempt.
    let flagged = lifecycle::cancel(&job_in(JobStatus::Accepted, 1), SENDER, now)
        .unwrap()
        .job;
    assert!(flagged.cancellation_requested);
    let c = lifecycle::give_up(&flagged, WORKER, None, now).unwrap();
    assert_eq!(c.job.status, JobStatus::Cancelled);
    assert_eq!(c.transfers[0].reason, Reason::Refund);
}

#[test]
fn verdict_fail_keeps_the_verdict_and_third_fail_refunds() {
    let now = T0.plus_seconds(30);
    let c =
        lifecycle::apply_verdict(&job_in(JobStatus::Submitted, 1), verdict(false), now).unwrap();
    assert_eq!(c.job.status, JobStatus::Queued);
    assert_eq!(c.job.verification.as_ref().map(|v| v.passed), Some(false));
    let c =
        lifecycle::apply_verdict(&job_in(JobStatus::Submitted, 3), verdict(false), now).unwrap();
    assert_eq!(c.job.status, JobStatus::Failed);
    assert_eq!(
        c.transfers.iter().map(|t| t.amount.get()).sum::<i64>(),
        PRICE
    );
}

#[test]
fn verdict_pass_pays_even_when_cancellation_was_requested() {
    let flagged = lifecycle::cancel(&job_in(JobStatus::Submitted, 1), SENDER, T0)
        .unwrap()
        .job;
    let c = lifecycle::apply_verdict(&flagged, verdict(true), T0.plus_seconds(30)).unwrap();
    assert_eq!(c.job.status, JobStatus::Verified);
    let to_worker: i64 = c
        .transfers
        .iter()
        .filter(|t| t.to == Account::Wallet(WORKER))
        .map(|t| t.amount.get())
        .sum();
    let fee: i64 = c
        .transfers
        .iter()
        .filter(|t| t.to == Account::Platform)
        .map(|t| t.amount.get())
        .sum();
    assert_eq!((to_worker, fee), (350, 150), "$5.00 → $3.50 and $1.50");
}

#[test]
fn roles_and_visibility() {
    let now = T0.plus_seconds(5);
    // A stranger cannot see a job: 404-kind, for every action.
    let held = job_in(JobStatus::Held, 0);
    assert_eq!(
        kind(&lifecycle::cancel(&held, STRANGER, now).unwrap_err()),
        "not_found"
    );
    assert_eq!(
        kind(&lifecycle::accept(&held, other(), now).unwrap_err()),
        "not_found"
    );
    // The holder sees it but may not cancel it: 403-kind.
    assert_eq!(
        kind(&lifecycle::cancel(&held, WORKER, now).unwrap_err()),
        "forbidden"
    );
    // The sender's own agent may not take the job.
    let own = clawrk_domain::job::AgentRef {
        agent_id: OTHER_AGENT,
        owner_id: SENDER,
    };
    let queued = job_in(JobStatus::Queued, 0);
    assert_eq!(
        kind(&lifecycle::hold(&queued, own, HOLD, now).unwrap_err()),
        "forbidden"
    );
    // The sender sees the held job but is not the holder.
    assert_eq!(
        kind(&lifecycle::accept(&held, own, now).unwrap_err()),
        "forbidden"
    );
    // An agent whose hold was released by the sweeper gets "hold expired".
    let released = lifecycle::expire_hold(&held, T0.plus_seconds(HOLD))
        .unwrap()
        .job;
    assert_eq!(
        kind(&lifecycle::accept(&released, worker(), now).unwrap_err()),
        "hold_expired"
    );
}

#[test]
fn env_vars_visibility() {
    let held = job_in(JobStatus::Held, 0);
    assert!(held.env_vars_visible_to(SENDER));
    assert!(!held.env_vars_visible_to(WORKER), "never to a holder");
    let accepted = job_in(JobStatus::Accepted, 1);
    assert!(
        accepted.env_vars_visible_to(WORKER),
        "to the receiver from accepted on"
    );
    assert!(!accepted.env_vars_visible_to(STRANGER));
    // Back in the queue after a failure, the old receiver no longer sees them.
    let requeued = lifecycle::give_up(&accepted, WORKER, None, T0).unwrap().job;
    assert!(!requeued.env_vars_visible_to(WORKER));
}

#[test]
fn hold_presents_once_and_create_pays_or_waits() {
    let queued = job_in(JobStatus::Queued, 0);
    let c = lifecycle::hold(&queued, worker(), HOLD, T0).unwrap();
    assert_eq!(c.job.presented_to_agents, vec![WORKER_AGENT]);
    assert_eq!(c.job.hold_expires_at, Some(T0.plus_seconds(HOLD)));
    let again = lifecycle::hold(
        &lifecycle::reject(&c.job, worker(), T0).unwrap().job,
        worker(),
        HOLD,
        T0,
    )
    .unwrap();
    assert_eq!(
        again.job.presented_to_agents,
        vec![WORKER_AGENT],
        "claimed again, listed once"
    );
}

#[test]
fn every_change_moves_the_version_once() {
    for status in JobStatus::ALL {
        for t in TRIGGERS {
            let job = job_in(status, 1);
            if let Ok(c) = fire(&job, t) {
                let want = if c.is_noop(&job) { 0 } else { 1 };
                assert_eq!(c.job.version - job.version, want, "{status} × {t:?}");
            }
        }
    }
}

#[test]
fn ended_attempts_are_recorded_with_their_log_lines() {
    use clawrk_domain::LogLevel;
    use clawrk_domain::ports::AttemptOutcome;
    let now = T0.plus_seconds(5);
    let c =
        lifecycle::give_up(&job_in(JobStatus::Accepted, 1), WORKER, Some("no GPU"), now).unwrap();
    let a = c.attempt.expect("a failed attempt is recorded");
    assert_eq!(
        (a.number, a.agent_id, a.outcome, a.earned),
        (1, WORKER_AGENT, AttemptOutcome::Failed, Cents(0))
    );
    let lines: Vec<&str> = c.log.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        lines,
        [
            "attempt 1 failed: given up by the agent: no GPU",
            "re-queued for another agent (attempt 1/3 used)"
        ]
    );
    let c = lifecycle::apply_verdict(&job_in(JobStatus::Submitted, 2), verdict(true), now).unwrap();
    let a = c.attempt.unwrap();
    assert_eq!(
        (a.number, a.outcome, a.earned),
        (2, AttemptOutcome::Verified, Cents(350))
    );
    // The verdict's lines first (one per criterion, then the verdict), then what it caused.
    assert_eq!(c.log.len(), 3);
    assert_eq!(
        c.log[0],
        (LogLevel::Info, "criterion 1/1 met: Has three lines".into())
    );
    assert!(c.log[1].1.starts_with("verdict: passed"));
    assert!(c.log[2].1.contains("$3.50"));
    // Holds, accepts and submissions touch nothing but the job.
    let held = lifecycle::hold(&job_in(JobStatus::Queued, 0), worker(), HOLD, now).unwrap();
    assert!(!held.has_effects());
    let accepted = lifecycle::accept(&held.job, worker(), now).unwrap();
    assert!(!accepted.has_effects() && accepted.attempt.is_none());
}
