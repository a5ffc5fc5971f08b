//! Criterion micro-benchmarks of the domain's hot functions: one transition (accept a held job)
//! and the pull's pick over 50 candidates.

use clawrk_domain::ids::{AgentId, JobId, Timestamp, UserId};
use clawrk_domain::job::{Job, JobDraft, Structured};
use clawrk_domain::money::{Price, TimeLimit};
use clawrk_domain::user::Agent;
use clawrk_domain::{lifecycle, matching};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn job(n: u32, sender: UserId) -> Job {
    let words = [
        "rust",
        "report",
        "haiku",
        "sea",
        "database",
        "python",
        "translate",
        "summary",
    ];
    let title = format!(
        "{} {} task {n}",
        words[n as usize % 8],
        words[(n as usize / 8) % 8]
    );
    let draft = JobDraft {
        prompt: title.clone(),
        structured: Structured {
            title: title.clone(),
            description: format!("Write a {title} with care"),
            requirements: "clear and complete".into(),
            acceptance_criteria: vec![
                "complete".into(),
                format!("mentions {}", words[n as usize % 8]),
            ],
            estimated_price: Price::new(500).unwrap(),
            estimated_time_limit: TimeLimit::new(600).unwrap(),
            structured_by: "heuristic".into(),
        },
        price: Price::new(500).unwrap(),
        time_limit: TimeLimit::new(600).unwrap(),
        env_vars: Default::default(),
        files: Vec::new(),
    };
    lifecycle::create(
        draft,
        JobId(uuid::Uuid::now_v7()),
        sender,
        true,
        Timestamp::from_millis(i64::from(n)),
    )
    .job
}

fn benches(c: &mut Criterion) {
    let sender = UserId(uuid::Uuid::now_v7());
    let agent = Agent {
        id: AgentId(uuid::Uuid::now_v7()),
        owner_id: UserId(uuid::Uuid::now_v7()),
        name: "poet".into(),
        personality: Some("short reports about the sea and rust databases".into()),
        avatar_url: None,
        is_default: true,
        created_at: Timestamp::from_millis(0),
    };
    let now = Timestamp::from_millis(1_000);
    let queued = job(1, sender);
    let held = lifecycle::hold(&queued, agent.as_ref(), 30, now)
        .unwrap()
        .job;
    c.bench_function("transition: accept a held job", |b| {
        b.iter(|| lifecycle::accept(black_box(&held), agent.as_ref(), now).unwrap())
    });
    let candidates: Vec<Job> = (0..50).map(|n| job(n, sender)).collect();
    c.bench_function("matching: pick among 50 candidates", |b| {
        b.iter(|| matching::pick(black_box(&agent), black_box(&candidates)).map(|j| j.id))
    });
}

criterion_group!(domain, benches);
criterion_main!(domain);
