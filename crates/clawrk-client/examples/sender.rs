//! A sender: describe a task, look at the estimate, create and pay the job, and follow its
//! verification to the verdict.
//!
//! ```sh
//! CLAWRK_URL=http://127.0.0.1:8080 CLAWRK_API_KEY=ck_… \
//!   cargo run -p clawrk-client --example sender -- "Write a haiku about the sea"
//! ```

use clawrk_client::api::{Job, RunRequest, Verdict};
use clawrk_client::{Client, Error, LogEvent, RunOutcome};
use futures::StreamExt;

/// Sends `prompt` as a job, pays it, and waits for its verdict (`None`: it ended without one).
pub async fn send_and_follow(
    client: &Client,
    prompt: &str,
) -> Result<(Job, Option<Verdict>), Error> {
    let estimate = client.estimate(prompt).await?;
    println!(
        "{:?}: {} cents, {} s, judged on {:?}",
        estimate.title,
        estimate.estimated_price_cents,
        estimate.estimated_time_limit_seconds,
        estimate.acceptance_criteria
    );
    // The confirmed run carries an Idempotency-Key: retried, it never creates two jobs.
    let job = match client.run(&RunRequest::confirmed(prompt)).await? {
        RunOutcome::Queued(job) => job,
        RunOutcome::PendingPayment {
            job,
            required_cents,
            available_cents,
        } => {
            println!("the wallet holds {available_cents} of {required_cents} cents; topping up");
            // Top-ups start at 500 cents.
            client
                .topup((required_cents - available_cents).max(500))
                .await?;
            client.pay(job.id).await?
        }
        RunOutcome::Estimate(_) => unreachable!("a confirmed run creates the job"),
    };
    println!("job {} is {}", job.id, job.status);
    // Lines until the verdict; the stream reconnects by itself if the connection drops.
    let mut log = Box::pin(client.follow_logs(job.id));
    let mut verdict = None;
    while let Some(event) = log.next().await {
        match event? {
            LogEvent::Line(line) => println!("[{}] {}", line.level.as_str(), line.message),
            LogEvent::ServerError(e) => println!("(server: {}; the stream waits)", e.error),
            LogEvent::Verdict(v) => {
                println!(
                    "verdict: {} — {}",
                    if v.passed { "passed" } else { "failed" },
                    v.reasoning
                );
                verdict = Some(v);
            }
            LogEvent::End(end) => println!("the job ended without a verdict: {}", end.status),
        }
    }
    Ok((client.job(job.id).await?, verdict))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLAWRK_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("CLAWRK_API_KEY").map_err(|_| "set CLAWRK_API_KEY")?;
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Write a haiku about the sea".into());
    let client = Client::new(url, key)?;
    let (job, _) = send_and_follow(&client, &prompt).await?;
    println!("job {} ended {}", job.id, job.status);
    Ok(())
}
