//! [`Wakeups`]: the in-process side of the change notification, shared by both adapters. The
//! PostgreSQL adapter feeds it from LISTEN (so it hears every instance); the SQLite adapter feeds it
//! after its own commits. Each watcher holds a receiver made when it started watching, so nothing
//! announced after that is missed. Log watchers wait for their job; queue watchers (waiting pulls)
//! for any job that became queued.

use clawrk_domain::ids::JobId;
use clawrk_domain::ports::{Announcement, LogWatch, Waiter};
use std::time::Duration;
use tokio::sync::broadcast;

/// Announcements of changed jobs, to every watcher in this process.
pub struct Wakeups {
    tx: broadcast::Sender<Announcement>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Wakeups {
    /// Wakes the watchers the announcement concerns (nobody watching is fine).
    pub fn notify(&self, what: Announcement) {
        let _ = self.tx.send(what);
    }
}

impl LogWatch for Wakeups {
    fn watch(&self, job: JobId) -> Box<dyn Waiter> {
        Box::new(Watcher {
            job: Some(job),
            rx: self.tx.subscribe(),
        })
    }

    fn watch_queue(&self) -> Box<dyn Waiter> {
        Box::new(Watcher {
            job: None,
            rx: self.tx.subscribe(),
        })
    }
}

/// A watcher of one job's log, or (`job: None`) of the queue.
struct Watcher {
    job: Option<JobId>,
    rx: broadcast::Receiver<Announcement>,
}

impl Watcher {
    fn wants(&self, a: Announcement) -> bool {
        match (self.job, a) {
            (Some(job), Announcement::Log(j)) => j == job,
            (None, Announcement::Queued(_)) => true,
            _ => false,
        }
    }
}

#[async_trait::async_trait]
impl Waiter for Watcher {
    async fn wait(&mut self, timeout: Duration) {
        let this = &mut *self;
        let _ = tokio::time::timeout(timeout, async move {
            loop {
                match this.rx.recv().await {
                    Ok(a) if this.wants(a) => return,
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
