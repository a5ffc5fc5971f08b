//! Background work of one instance (SPEC §6): verification workers, webhook delivery workers and
//! the deadline sweeper.
//!
//! - A worker leases the oldest `submitted` job (row-locked, so instances never verify one job
//!   twice), verifies it and applies the verdict, then takes the next at once if one was waiting
//!   at its lease, else idles until a submission on this instance wakes it or its poll comes. A
//!   verifier error is logged on the job, which is tried again after
//!   `CLAWRK_VERIFY_RETRY_SECONDS` (after `CLAWRK_VERIFY_MAX_ERRORS` errors it goes to the
//!   sender's review); the failing worker itself backs off exponentially, so a down LLM is not
//!   hammered. A job left `submitted` by a crash is leased again once its lease lapses,
//!   so nothing is lost across restarts.
//! - The sweeper releases lapsed holds, fails attempts past their deadline and approves reviews
//!   left unanswered past their due time, every interval.
//!
//! - A webhook worker turns new outbox rows into deliveries and sends the due ones (leased, so
//!   instances never send one at the same time; a crash retries after the lease).
//!
//! All stop at shutdown between two units of work: a verification in progress completes.

use clawrk_domain::error::DomainError;
use clawrk_domain::job::JobStatus;
use clawrk_domain::ports::LlmError;
use clawrk_domain::service::{Marketplace, Verified};
use clawrk_http::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How often an idle worker looks for submitted jobs: a submission on this instance wakes one at
/// once; this bounds how long a submission made on another instance waits.
const IDLE_POLL: Duration = Duration::from_millis(500);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Sleeps for `d` (less if `wake` rings), or stops if shutdown is requested; returns whether to
/// go on.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration, wake: Option<&Notify>) -> bool {
    if *stop.borrow() {
        return false;
    }
    let woken = async {
        match wake {
            Some(w) => w.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = woken => true,
        _ = stop.changed() => false,
    }
}

/// Starts `n` verification workers.
pub fn verification_workers(
    market: Arc<Marketplace>,
    n: usize,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let market = market.clone();
            let wake = wake.clone();
            let mut stop = stop.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _alive = metrics.worker_started();
                let mut backoff = BACKOFF_START;
                loop {
                    let started = std::time::Instant::now();
                    let wait = match market.verify_one().await {
                        Ok(Some(Verified { job, more_waiting })) => {
                            let outcome = match job.status {
                                JobStatus::Verified => "verified",
                                JobStatus::Failed => "failed",
                                JobStatus::Queued => "requeued",
                                _ => "other",
                            };
                            metrics.verification(outcome, started.elapsed());
                            backoff = BACKOFF_START;
                            tracing::info!(worker = i, job = %job.id, status = %job.status, "verdict applied");
                            // Straight on to the next only when one was waiting at the lease;
                            // else idle: a submission since on this instance rings at once (its
                            // wake-up is kept while no worker waits), one elsewhere is polled.
                            if more_waiting {
                                Duration::ZERO
                            } else {
                                IDLE_POLL
                            }
                        }
                        Ok(None) => IDLE_POLL,
                        Err(e) => {
                            let kind = match &e {
                                DomainError::Llm(LlmError::Timeout) => "timeout",
                                DomainError::Llm(LlmError::BadAnswer(_)) => "bad_answer",
                                DomainError::Llm(LlmError::Unavailable(_)) => "unavailable",
                                _ => "store",
                            };
                            metrics.verification_error(kind, started.elapsed());
                            let wait = backoff;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            tracing::warn!(worker = i, error = %e, retry_in_s = wait.as_secs(), "verification failed");
                            wait
                        }
                    };
                    // Only an idle worker is woken early by a submission; a failing one backs off.
                    let ring = (wait == IDLE_POLL).then_some(&*wake);
                    if !pause(&mut stop, wait, ring).await {
                        return;
                    }
                }
            })
        })
        .collect()
}

/// Starts `n` webhook delivery workers. Each drains the outbox into deliveries and sends what is
/// due, then idles for [`IDLE_POLL`]; a store error backs it off. A lease covers a whole batch:
/// a batch sends to each endpoint in turn and stops at its first failure, so one batch takes at
/// most `timeout` per delivery.
pub fn webhook_workers(
    market: Arc<Marketplace>,
    n: usize,
    retry_base: Duration,
    timeout: Duration,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let lease = timeout * (clawrk_domain::service::DELIVERY_BATCH + 1);
    (0..n)
        .map(|i| {
            let market = market.clone();
            let mut stop = stop.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut backoff = BACKOFF_START;
                loop {
                    let step = async {
                        let mut busy = market.dispatch_webhook_events().await? > 0;
                        let sent = market.deliver_webhooks(retry_base, lease).await?;
                        metrics.webhook_sends(sent.delivered, sent.retrying, sent.failed);
                        busy |= sent.sent() > 0;
                        Ok::<bool, DomainError>(busy)
                    };
                    let wait = match step.await {
                        Ok(true) => Duration::ZERO,
                        Ok(false) => {
                            backoff = BACKOFF_START;
                            IDLE_POLL
                        }
                        Err(e) => {
                            let wait = backoff;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            tracing::warn!(worker = i, error = %e, retry_in_s = wait.as_secs(), "webhook delivery step failed");
                            wait
                        }
                    };
                    if !pause(&mut stop, wait, None).await {
                        return;
                    }
                }
            })
        })
        .collect()
}

/// Starts the deadline sweeper (none when `every` is zero).
pub fn sweeper(
    market: Arc<Marketplace>,
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    metrics.set_sweeper_alive(true);
    Some(tokio::spawn(async move {
        /// Marks the sweeper stopped however its task ends.
        struct Alive(Arc<Metrics>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.set_sweeper_alive(false);
            }
        }
        let _alive = Alive(metrics);
        while pause(&mut stop, every, None).await {
            match market.sweep().await {
                Ok(r)
                    if r.released_holds
                        + r.failed_deadlines
                        + r.approved_reviews
                        + r.removed_files
                        > 0 =>
                {
                    tracing::info!(
                        released_holds = r.released_holds,
                        failed_deadlines = r.failed_deadlines,
                        approved_reviews = r.approved_reviews,
                        removed_files = r.removed_files,
                        "swept"
                    );
                    if r.orphaned_files > 0 {
                        tracing::warn!(
                            orphaned_files = r.orphaned_files,
                            "unreferenced files were forgotten but their bytes could not be \
                             deleted from storage"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
        }
    }))
}
