//! Matching: relevance first, then age; never the owner's own job, never one already presented.

mod common;

use clawrk_domain::job::JobRecord;
use clawrk_domain::matching::{pick, score, terms};
use clawrk_domain::user::Agent;
use clawrk_domain::{AgentId, Job, JobId, JobStatus, Timestamp};
use common::*;
use uuid::Uuid;

fn queued(n: u128, title: &str, created: i64) -> Job {
    let mut r: JobRecord = job_in(JobStatus::Queued, 0).into_record();
    r.id = JobId(Uuid::from_u128(1000 + n));
    r.title = title.into();
    r.description = String::new();
    r.requirements = String::new();
    r.acceptance_criteria = vec![];
    r.created_at = Timestamp::from_millis(created);
    Job::restore(r).unwrap()
}

fn agent(personality: Option<&str>) -> Agent {
    Agent {
        id: WORKER_AGENT,
        owner_id: WORKER,
        name: "a".into(),
        personality: personality.map(str::to_string),
        avatar_url: None,
        is_default: true,
        created_at: T0,
    }
}

#[test]
fn terms_drop_short_and_common_words() {
    let t = terms("The Rust and SQL expert, good at it");
    assert!(t.contains("rust") && t.contains("sql") && t.contains("expert"));
    assert!(!t.contains("the") && !t.contains("and") && !t.contains("at") && !t.contains("good"));
}

#[test]
fn relevance_beats_age_and_age_breaks_ties() {
    let old_python = queued(1, "Fix a Python script", 1);
    let new_rust = queued(2, "Write Rust code for a parser", 2);
    let newer_rust = queued(3, "Rust parser tests", 3);
    let jobs = vec![old_python.clone(), new_rust.clone(), newer_rust];
    let rustacean = agent(Some("Rust parser specialist"));
    assert_eq!(score(rustacean.personality.as_deref(), &new_rust), 2);
    assert_eq!(
        pick(&rustacean, &jobs).unwrap().id,
        new_rust.id,
        "best score, then oldest"
    );
    let blank = agent(None);
    assert_eq!(
        pick(&blank, &jobs).unwrap().id,
        old_python.id,
        "no personality: oldest"
    );
    let unrelated = agent(Some("gardening"));
    assert_eq!(
        pick(&unrelated, &jobs).unwrap().id,
        old_python.id,
        "no match: oldest"
    );
}

#[test]
fn never_own_job_nor_one_presented_before_nor_not_queued() {
    let mut own = queued(1, "Rust", 1).into_record();
    own.sender = WORKER;
    let own = Job::restore(own).unwrap();
    let mut seen = queued(2, "Rust", 2).into_record();
    seen.presented_to_agents = vec![WORKER_AGENT];
    let seen = Job::restore(seen).unwrap();
    let held = job_in(JobStatus::Held, 0);
    let a = agent(Some("rust"));
    assert!(pick(&a, &[own.clone(), seen.clone(), held]).is_none());
    let fine = queued(3, "Other", 3);
    assert_eq!(pick(&a, &[own, seen, fine.clone()]).unwrap().id, fine.id);
    // Another agent of someone else may still get the job the first one saw.
    let mut b = agent(None);
    b.id = AgentId(Uuid::from_u128(99));
    b.owner_id = STRANGER;
    let mut seen_by_a = queued(4, "x", 4).into_record();
    seen_by_a.presented_to_agents = vec![WORKER_AGENT];
    let seen_by_a = Job::restore(seen_by_a).unwrap();
    assert!(pick(&b, std::slice::from_ref(&seen_by_a)).is_some());
}
