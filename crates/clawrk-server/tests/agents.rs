//! What agents rely on, through the real server: a long-poll pull answered by a job created on
//! another instance of the same database; a hundred waiting pulls with a pool of four connections
//! while other requests are served; and the agent's own work list (`role=agent`).

mod common;

use clawrk_client::api::*;
use clawrk_client::{ErrorCode, JobsQuery, RunOutcome};
use common::*;
use std::time::{Duration, Instant};

async fn queue_one(client: &clawrk_client::Client, prompt: &str) -> Job {
    match client.run(&RunRequest::confirmed(prompt)).await.unwrap() {
        RunOutcome::Queued(job) => job,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_pull_is_answered_by_a_job_queued_on_another_instance() {
    let (_pg, db) = postgres();
    let one = Server::start(&db, &[]).await;
    let two = Server::start(&db, &[]).await;
    let alice = create_user(&db, "alice", 10_000);
    let bob = create_user(&db, "bob", 0);
    let agent = one.client(&bob.key);
    let sender = two.client(&alice.key);

    // Nothing queued: a short wait ends with nothing.
    let started = Instant::now();
    assert!(
        agent
            .pull(&PullRequest::new(AgentChoice::default(), 1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");

    // A long wait on instance one; the job is created on instance two meanwhile.
    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move {
            let held = agent
                .pull(&PullRequest::new(AgentChoice::default(), 25))
                .await
                .unwrap();
            (held, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = queue_one(&sender, "a haiku about the sea").await;
    let queued = Instant::now();
    let (held, answered) = waiting.await.unwrap();
    let held = held.expect("the waiting pull got the job");
    assert_eq!(held.job.id, job.id);
    // Woken by the other instance's notification: its 2 s poll would answer about 1.5 s after.
    let after = answered.saturating_duration_since(queued);
    assert!(
        after < Duration::from_secs(1),
        "answered when the job was queued, not at a poll or the end of the wait ({after:?})"
    );

    // Out of range: 400 naming the field.
    let e = agent
        .pull(&PullRequest {
            wait_seconds: Some(31),
            ..PullRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_waiting_pulls_do_not_take_the_pool() {
    let (_pg, db) = postgres();
    let server = Server::start(&db, &env(&[("CLAWRK_DB_POOL", "4")])).await;
    let alice = create_user(&db, "alice", 10_000);
    let bob = create_user(&db, "bob", 0);
    let (sender, agent) = (server.client(&alice.key), server.client(&bob.key));

    let pulls: Vec<_> = (0..100)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move {
                agent
                    .pull(&PullRequest::new(AgentChoice::default(), 8))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Other requests are served while they wait.
    let started = Instant::now();
    for _ in 0..20 {
        sender.whoami().await.unwrap();
        sender.stats().await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests were served beside the waiting pulls ({:?})",
        started.elapsed()
    );
    // One job: exactly one waiting pull holds it; the others end empty.
    let job = queue_one(&sender, "a haiku about the sea").await;
    let mut held = Vec::new();
    for p in pulls {
        if let Some(h) = p.await.unwrap().unwrap() {
            held.push(h.job.id);
        }
    }
    assert_eq!(held, [job.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_its_own_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("clawrk.db"));
    let server = Server::start(&db, &[]).await;
    let alice = create_user(&db, "alice", 10_000);
    let bob = create_user(&db, "bob", 0);
    let (sender, worker) = (server.client(&alice.key), server.client(&bob.key));
    let scribe = worker
        .create_agent(&NewAgent {
            name: "scribe".into(),
            ..NewAgent::default()
        })
        .await
        .unwrap();
    let first = queue_one(&sender, "a haiku about the sea").await;
    let second = queue_one(&sender, "a limerick about the sea").await;
    let _third = queue_one(&sender, "a sonnet about the sea").await;
    worker
        .claim(first.id, &AgentChoice::default())
        .await
        .unwrap();
    worker
        .accept(first.id, &AgentChoice::default())
        .await
        .unwrap();
    worker
        .claim(second.id, &AgentChoice::id(scribe.id))
        .await
        .unwrap();

    let mine = |agent_id, status| JobsQuery {
        role: JobRole::Agent,
        agent_id,
        status,
        ..JobsQuery::default()
    };
    let all = worker.jobs(&mine(None, None)).await.unwrap();
    assert_eq!(
        all.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        [second.id, first.id],
        "held and accepted jobs, newest first; not the one nobody took"
    );
    let by_scribe = worker.jobs(&mine(Some(scribe.id), None)).await.unwrap();
    assert_eq!(
        by_scribe.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        [second.id]
    );
    let accepted = worker
        .jobs(&mine(None, Some(JobStatus::Accepted)))
        .await
        .unwrap();
    assert_eq!(
        accepted.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        [first.id]
    );
    // The env vars of an accepted job are the worker's to see.
    assert!(accepted.items[0].env_vars.is_some());
    // The sender's list is unchanged; someone else's agent is not found.
    assert_eq!(
        sender
            .jobs(&JobsQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let e = sender.jobs(&mine(Some(scribe.id), None)).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
}
