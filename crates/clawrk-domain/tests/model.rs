//! Model-based property test of the whole marketplace on the in-memory store.
//!
//! Random sequences of every operation (top-ups, withdrawals, confirmed runs, pay, cancel, pull,
//! claim, accept, reject, submit on time or late, give up, verdicts, time passing, sweeps) run
//! through the real `Marketplace` use cases over 20 wallets. After every step the money invariants of
//! SPEC §4 are checked on the store's state: all accounts sum to zero; no wallet, escrow or the
//! platform is negative; a job's escrow holds exactly its price while it is active and paid and
//! nothing otherwise; each wallet's balance is the sum of its ledger; a job is paid and refunded at
//! most once; a job is held by at most one agent, and only while `held`.

mod common;

use clawrk_domain::memory::MemoryStore;
use clawrk_domain::service::{AgentSelector, Marketplace, RunOutcome, RunRequest};
use clawrk_domain::user::{Agent, NewAgent};
use clawrk_domain::{
    Account, Cents, DomainError, JobId, JobStatus, Output, Reason, Timestamp, UserId,
};
use common::{SetVerifier, TestClock};
use futures::executor::block_on;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

const USERS: usize = 20;
const LIMIT: i64 = 60;

/// Who acts on a job: resolved against the job's state when the step runs, so that sequences walk
/// the lifecycle instead of mostly bouncing off role checks.
#[derive(Clone, Copy, Debug)]
enum Who {
    Sender,
    Worker,
    Anyone(usize),
}

#[derive(Clone, Copy, Debug)]
enum End {
    GiveUp,
    Late,
    VerdictFail,
}

#[derive(Clone, Debug)]
enum Op {
    Topup {
        user: usize,
        cents: i64,
    },
    Withdraw {
        user: usize,
        cents: i64,
    },
    Run {
        user: usize,
        price: i64,
    },
    Pay {
        who: Who,
        job: usize,
    },
    Cancel {
        who: Who,
        job: usize,
    },
    Pull {
        user: usize,
        second_agent: bool,
    },
    Claim {
        who: Who,
        job: usize,
    },
    Accept {
        who: Who,
        job: usize,
    },
    Reject {
        who: Who,
        job: usize,
    },
    Submit {
        who: Who,
        job: usize,
    },
    GiveUp {
        who: Who,
        job: usize,
    },
    Verdict {
        pass: bool,
    },
    /// A whole attempt by `user`'s default agent: claim, accept, then end it badly.
    Attempt {
        user: usize,
        job: usize,
        end: End,
    },
    Wait {
        seconds: u32,
    },
    Sweep,
}

/// The reference: how many jobs exist (so generated indices mostly hit one) and the time.
#[derive(Clone, Debug, Default)]
struct Model {
    jobs: usize,
    now_ms: i64,
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            jobs: 0,
            now_ms: 1_700_000_000_000,
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let u = 0..USERS;
        // Mostly the newest job, so that one job often goes through several attempts in a sequence.
        let last = state.jobs.saturating_sub(1);
        let j = prop_oneof![3 => Just(last), 1 => 0..(state.jobs + 1)];
        let who = || {
            prop_oneof![
                2 => Just(Who::Sender),
                3 => Just(Who::Worker),
                1 => (0..USERS).prop_map(Who::Anyone),
            ]
        };
        prop_oneof![
            3 => (u.clone(), 500i64..5_000).prop_map(|(user, cents)| Op::Topup { user, cents }),
            1 => (u.clone(), 1i64..6_000).prop_map(|(user, cents)| Op::Withdraw { user, cents }),
            4 => (u.clone(), 100i64..3_000).prop_map(|(user, price)| Op::Run { user, price }),
            1 => (who(), j.clone()).prop_map(|(who, job)| Op::Pay { who, job }),
            1 => (who(), j.clone()).prop_map(|(who, job)| Op::Cancel { who, job }),
            4 => (u.clone(), any::<bool>()).prop_map(|(user, second_agent)| Op::Pull { user, second_agent }),
            3 => (who(), j.clone()).prop_map(|(who, job)| Op::Claim { who, job }),
            4 => (who(), j.clone()).prop_map(|(who, job)| Op::Accept { who, job }),
            1 => (who(), j.clone()).prop_map(|(who, job)| Op::Reject { who, job }),
            4 => (who(), j.clone()).prop_map(|(who, job)| Op::Submit { who, job }),
            3 => (who(), j.clone()).prop_map(|(who, job)| Op::GiveUp { who, job }),
            3 => any::<bool>().prop_map(|pass| Op::Verdict { pass }),
            2 => (1u32..90).prop_map(|seconds| Op::Wait { seconds }),
            1 => Just(Op::Sweep),
            3 => (u.clone(), j.clone(), prop_oneof![Just(End::GiveUp), Just(End::Late), Just(End::VerdictFail)])
                .prop_map(|(user, job, end)| Op::Attempt { user, job, end }),
        ]
        .boxed()
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        match op {
            Op::Run { .. } => state.jobs += 1,
            Op::Wait { seconds } => state.now_ms += i64::from(*seconds) * 1000,
            _ => {}
        }
        state
    }
}

struct Sut {
    market: Marketplace,
    store: MemoryStore,
    clock: Arc<TestClock>,
    verifier: Arc<SetVerifier>,
    users: Vec<UserId>,
    agents: HashMap<UserId, Vec<Agent>>,
    jobs: Vec<JobId>,
}

fn by(agent: &Agent) -> AgentSelector {
    AgentSelector {
        id: Some(agent.id),
        name: None,
    }
}

impl Sut {
    fn job(&self, i: usize) -> JobId {
        // An index past the end names a job that does not exist.
        self.jobs
            .get(i)
            .copied()
            .unwrap_or(JobId(Uuid::from_u128(7)))
    }

    fn user(&self, who: Who, job: JobId) -> UserId {
        let snap = self.store.snapshot();
        let j = snap.jobs.get(&job);
        match (who, j) {
            (Who::Sender, Some(j)) => j.sender,
            (Who::Worker, Some(j)) => j
                .holder
                .map(|h| h.owner_id)
                .or(j.receiver)
                .unwrap_or(self.users[0]),
            (Who::Anyone(i), _) => self.users[i],
            (_, None) => self.users[0],
        }
    }

    fn balance(&self, u: UserId) -> Cents {
        self.store
            .snapshot()
            .balances
            .get(&Account::Wallet(u))
            .copied()
            .unwrap_or_default()
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(model: &Model) -> Sut {
        let clock = TestClock::at(Timestamp::from_millis(model.now_ms));
        let verifier = SetVerifier::passing(true);
        let (market, store) = common::market(clock.clone(), verifier.clone());
        let mut users = Vec::new();
        let mut agents = HashMap::new();
        block_on(async {
            for i in 0..USERS {
                let u = market.create_user(&format!("user{i}")).await.unwrap();
                let second = market
                    .create_agent(
                        u.id,
                        NewAgent {
                            name: "second".into(),
                            personality: Some("summarise rust ownership".into()),
                            avatar_url: None,
                        },
                    )
                    .await
                    .unwrap();
                let mut mine = market.agents(u.id).await.unwrap();
                assert!(mine[0].is_default);
                assert_eq!(mine.len(), 2);
                mine.retain(|a| a.id != second.id);
                mine.push(second);
                agents.insert(u.id, mine);
                users.push(u.id);
            }
        });
        Sut {
            market,
            store,
            clock,
            verifier,
            users,
            agents,
            jobs: Vec::new(),
        }
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let now = Timestamp::from_millis(model.now_ms);
        sut.clock.set(now);
        let mut created = None;
        let m = &sut.market;
        block_on(async {
            match op {
                Op::Topup { user, cents } => {
                    let u = sut.users[user];
                    let before = sut.balance(u);
                    let after = m
                        .adjust_balance(u, Cents(cents), Reason::Topup)
                        .await
                        .unwrap();
                    assert_eq!(after.get(), before.get() + cents);
                }
                Op::Withdraw { user, cents } => {
                    let u = sut.users[user];
                    let before = sut.balance(u);
                    let r = m.adjust_balance(u, Cents(-cents), Reason::Withdrawal).await;
                    assert_eq!(
                        r.is_ok(),
                        before.get() >= cents,
                        "withdrawal allowed iff covered"
                    );
                }
                Op::Run { user, price } => {
                    let u = sut.users[user];
                    let before = sut.balance(u);
                    let req = RunRequest {
                        prompt: "Summarise the rust book".into(),
                        price_cents: Some(price.clamp(100, 100_000)),
                        time_limit_seconds: Some(LIMIT),
                        confirmed: true,
                        ..RunRequest::default()
                    };
                    let job = match m.run(u, req).await.unwrap() {
                        RunOutcome::Queued(job) => {
                            assert!(before >= job.price.cents(), "queued only when covered");
                            job
                        }
                        RunOutcome::PendingPayment {
                            job,
                            required,
                            available,
                        } => {
                            assert_eq!((required, available), (job.price.cents(), before));
                            assert!(before < required, "pending only when short");
                            job
                        }
                        RunOutcome::Estimate(_) => panic!("confirmed runs create jobs"),
                    };
                    created = Some(job.id);
                }
                Op::Pay { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    let _ = m.pay(user, job).await;
                }
                Op::Cancel { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    let _ = m.cancel(user, job).await;
                }
                Op::Pull { user, second_agent } => {
                    let u = sut.users[user];
                    let agent = sut.agents[&u][usize::from(second_agent)].clone();
                    let snapshot = sut.store.snapshot();
                    let eligible = snapshot.jobs.values().any(|j| {
                        j.status == JobStatus::Queued
                            && j.sender != u
                            && !j.presented_to_agents.contains(&agent.id)
                    });
                    let got = m.pull(u, &by(&agent)).await.unwrap();
                    assert_eq!(
                        got.is_some(),
                        eligible,
                        "pull finds a job iff one is eligible"
                    );
                    if let Some(j) = got {
                        assert_ne!(j.sender, u, "never the caller's own job");
                        let before = &snapshot.jobs[&j.id];
                        assert!(
                            !before.presented_to_agents.contains(&agent.id),
                            "never presented twice"
                        );
                        assert_eq!(j.status, JobStatus::Held);
                    }
                }
                Op::Claim { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    let agent = sut.agents[&user][0].clone();
                    let _ = m.claim(user, job, &by(&agent)).await;
                }
                Op::Accept { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    for a in sut.agents[&user].clone() {
                        let _ = m.accept(user, job, &by(&a)).await;
                    }
                }
                Op::Reject { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    for a in sut.agents[&user].clone() {
                        let _ = m.reject(user, job, &by(&a)).await;
                    }
                }
                Op::Submit { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    let out = Output::new(Some("ownership and borrowing".into()), None).unwrap();
                    let _ = m.submit(user, job, out).await;
                }
                Op::GiveUp { who, job } => {
                    let (job, user) = (sut.job(job), sut.user(who, sut.job(job)));
                    let _ = m.give_up(user, job, None).await;
                }
                Op::Verdict { pass } => {
                    sut.verifier.set(pass);
                    if let Some(after) = m.verify_next().await.unwrap() {
                        assert_ne!(after.status, JobStatus::Submitted);
                    }
                }
                Op::Attempt { user, job, end } => {
                    let (job, user) = (sut.job(job), sut.users[user]);
                    let agent = sut.agents[&user][0].clone();
                    if m.claim(user, job, &by(&agent)).await.is_ok()
                        && m.accept(user, job, &by(&agent)).await.is_ok()
                    {
                        let out = || Output::new(Some("x".into()), None).unwrap();
                        match end {
                            End::GiveUp => {
                                m.give_up(user, job, Some("stuck".into())).await.unwrap();
                            }
                            End::Late => {
                                sut.clock.set(now.plus_seconds(LIMIT as u32));
                                let e = m.submit(user, job, out()).await.unwrap_err();
                                assert_eq!(e, DomainError::DeadlinePassed);
                                sut.clock.set(now);
                            }
                            End::VerdictFail => {
                                m.submit(user, job, out()).await.unwrap();
                                // Settle every waiting submission, this one included.
                                sut.verifier.set(false);
                                while m.verify_next().await.unwrap().is_some() {}
                            }
                        }
                        let after = sut.store.snapshot().jobs[&job].clone();
                        assert!(
                            matches!(
                                after.status,
                                JobStatus::Queued | JobStatus::Failed | JobStatus::Cancelled
                            ),
                            "a failed attempt requeues, fails or cancels (got {})",
                            after.status
                        );
                        assert_eq!(
                            after.status == JobStatus::Failed,
                            after.attempt_count >= 3 && !after.cancellation_requested
                        );
                    }
                }
                Op::Wait { .. } => {}
                Op::Sweep => {
                    m.sweep().await.unwrap();
                    let snap = sut.store.snapshot();
                    for j in snap.jobs.values() {
                        assert!(
                            !(j.status == JobStatus::Held
                                && j.hold_expires_at.is_some_and(|t| t <= now)),
                            "sweep released every lapsed hold"
                        );
                        assert!(
                            !(j.status == JobStatus::Accepted
                                && j.deadline_at.is_some_and(|t| t <= now)),
                            "sweep failed every overdue attempt"
                        );
                    }
                }
            }
        });
        sut.jobs.extend(created);
        sut
    }

    fn teardown(sut: Sut, _model: Model) {
        for j in sut.store.snapshot().jobs.values() {
            REACHED[j.status as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn check_invariants(sut: &Sut, _model: &Model) {
        let st = sut.store.snapshot();
        let total: i64 = st.balances.values().map(|c| c.get()).sum();
        assert_eq!(total, 0, "all accounts sum to zero");
        for (acct, bal) in &st.balances {
            if !acct.may_be_negative() {
                assert!(bal.get() >= 0, "{} is negative: {bal}", acct.key());
            }
        }
        let mut payments: HashMap<JobId, usize> = HashMap::new();
        let mut refunds: HashMap<JobId, usize> = HashMap::new();
        for (_, t, _) in &st.transfers {
            assert!(t.amount.get() > 0);
            if let Some(j) = t.job_id {
                match t.reason {
                    Reason::JobPayment => *payments.entry(j).or_default() += 1,
                    Reason::Refund => *refunds.entry(j).or_default() += 1,
                    _ => {}
                }
            }
        }
        for j in st.jobs.values() {
            let escrow = st
                .balances
                .get(&Account::Escrow(j.id))
                .copied()
                .unwrap_or_default();
            if j.status.escrow_funded() {
                assert_eq!(
                    escrow,
                    j.price.cents(),
                    "escrow of active job {} ({})",
                    j.id,
                    j.status
                );
            } else {
                assert_eq!(escrow, Cents::ZERO, "escrow of job {} ({})", j.id, j.status);
            }
            assert!(
                payments.get(&j.id).copied().unwrap_or(0) <= 1,
                "paid at most once"
            );
            assert!(
                refunds.get(&j.id).copied().unwrap_or(0) <= 1,
                "refunded at most once"
            );
            assert_eq!(
                j.holder.is_some(),
                j.status == JobStatus::Held,
                "holder iff held"
            );
            assert!(j.attempt_count <= 3);
        }
        for u in &sut.users {
            let wallet = Account::Wallet(*u);
            let from_ledger: i64 = st
                .transfers
                .iter()
                .map(|(_, t, _)| t.delta_for(wallet).get())
                .sum();
            let balance = st.balances.get(&wallet).copied().unwrap_or_default();
            assert_eq!(
                balance.get(),
                from_ledger,
                "balance equals the sum of the ledger"
            );
        }
    }
}

/// How many jobs ended a sequence in each status, to check the sequences reach every status.
static REACHED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    fn marketplace_conserves_money_prop(sequential 1..60 => Sut);
}

#[test]
fn marketplace_conserves_money() {
    marketplace_conserves_money_prop();
    // The sequences must actually walk the lifecycle, or the invariants above prove little.
    for s in JobStatus::ALL {
        let n = REACHED[s as usize].load(Ordering::Relaxed);
        assert!(n > 0, "no sequence ended with a job {s}");
    }
}
