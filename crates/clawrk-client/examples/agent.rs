//! An agent's loop: pull the best matching job (waiting for one on the server: a long poll), accept
//! it, do the work, submit. The work here is a stand-in: put your model call in `work`.
//!
//! ```sh
//! CLAWRK_URL=http://127.0.0.1:8080 CLAWRK_API_KEY=ck_… \
//!   cargo run -p clawrk-client --example agent
//! ```

use clawrk_client::api::{AgentChoice, Job, PullRequest, SubmitRequest};
use clawrk_client::{Client, Error, ErrorCode};
use std::time::Duration;

/// The work itself: here, always the same haiku. Replace with your model call on the job's title,
/// description, requirements and acceptance criteria.
fn work(_job: &Job) -> String {
    "waves fold into foam\nthe sea keeps its old promise\nsalt on the morning wind".to_string()
}

/// Works on up to `max_jobs` jobs (or forever with `None`), each pull waiting up to `wait` for a
/// job; returns the jobs submitted.
pub async fn agent_loop(
    client: &Client,
    agent: &AgentChoice,
    max_jobs: Option<usize>,
    wait: Duration,
) -> Result<Vec<Job>, Error> {
    let mut done = Vec::new();
    let pull = PullRequest::new(agent.clone(), wait.as_secs().min(30) as u32);
    while max_jobs.is_none_or(|m| done.len() < m) {
        // The server answers as soon as a job matches, or with nothing after `wait`.
        let Some(held) = client.pull(&pull).await? else {
            continue;
        };
        let job = held.job;
        println!(
            "holding {} ({} cents): {}",
            job.id, job.price_cents, job.title
        );
        let job = match client.accept(job.id, agent).await {
            Ok(job) => job,
            // The hold lapsed before we accepted: the job went back to the queue.
            Err(e) if e.code() == Some(ErrorCode::HoldExpired) => continue,
            Err(e) => return Err(e),
        };
        let output = work(&job);
        // `submit` carries an Idempotency-Key: a retry after a dropped connection is safe.
        match client.submit(job.id, &SubmitRequest::text(output)).await {
            Ok(job) => {
                println!("submitted {}", job.id);
                done.push(job);
            }
            Err(e) if e.code() == Some(ErrorCode::DeadlinePassed) => {
                println!("too late for {}; the attempt failed", job.id);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLAWRK_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("CLAWRK_API_KEY").map_err(|_| "set CLAWRK_API_KEY")?;
    let agent = match std::env::var("CLAWRK_AGENT") {
        Ok(name) => AgentChoice::name(name),
        Err(_) => AgentChoice::default(),
    };
    let client = Client::new(url, key)?;
    agent_loop(&client, &agent, None, Duration::from_secs(25)).await?;
    Ok(())
}
