//! The SDK's examples (`crates/clawrk-client/examples/`) run against the real server: the sender's
//! flow from an empty wallet to the verdict, and the agent's loop doing the work.

mod common;

// The examples' own code, compiled here as modules (their `main`s go unused).
#[allow(dead_code)]
#[path = "../../clawrk-client/examples/agent.rs"]
mod agent;
#[allow(dead_code)]
#[path = "../../clawrk-client/examples/sender.rs"]
mod sender;

use clawrk_client::api::{AgentChoice, JobStatus};
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_and_agent_examples_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("clawrk.db"));
    // The offline heuristic LLM, as on a fresh machine; dev payments, as the sender tops up.
    let server = Server::start(&db, &env(&[("CLAWRK_PAYMENTS", "dev")])).await;
    let alice = create_user(&db, "alice", 0);
    let bob = create_user(&db, "bob", 0);
    let (a, b) = (server.client(&alice.key), server.client(&bob.key));

    let worker = tokio::spawn(async move {
        agent::agent_loop(&b, &AgentChoice::default(), Some(1), Duration::from_secs(5)).await
    });
    let (job, verdict) = sender::send_and_follow(&a, "Write a haiku about the sea")
        .await
        .unwrap();
    let submitted = worker.await.unwrap().unwrap();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].id, job.id);
    let verdict = verdict.expect("the sender saw the verdict");
    assert!(verdict.passed, "{verdict:?}");
    assert_eq!(job.status, JobStatus::Verified);
}
