//! [`Wakeups`]: the in-process side of the change notification, shared by both adapters. The
//! PostgreSQL adapter feeds it from LISTEN (so it hears every instance); the SQLite adapter feeds it
//! after its own commits. Each watcher holds a receiver made when it started watching, so nothing
//! announced after that is missed.

use clawrk_domain::ids::JobId;
use clawrk_domain::ports::{LogWatch, Waiter};
use std::time::Duration;
use tokio::sync::broadcast;

/// Announcements of changed jobs, to every watcher in this process.
pub struct Wakeups {
    tx: broadcast::Sender<JobId>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Wakeups {
    /// Wakes the watchers of `job` (nobody watching is fine).
    pub fn notify(&self, job: JobId) {
        let _ = self.tx.send(job);
    }
}

impl LogWatch for Wakeups {
    fn watch(&self, job: JobId) -> Box<dyn Waiter> {
        Box::new(Watcher {
            job,
            rx: self.tx.subscribe(),
        })
    }
}

/// A watcher of one job.
struct Watcher {
    job: JobId,
    rx: broadcast::Receiver<JobId>,
}

#[async_trait::async_trait]
impl Waiter for Watcher {
    async fn wait(&mut self, timeout: Duration) {
        let (job, rx) = (self.job, &mut self.rx);
        let _ = tokio::time::timeout(timeout, async move {
            loop {
                match rx.recv().await {
                    Ok(j) if j == job => return,
                    Ok(_) => continue,
                    // Missed some announcements: the caller re-reads, which covers them.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}
