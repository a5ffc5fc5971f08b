//! The jobs this instance just held or accepted for an agent, kept so that the agent's next step on
//! the same job (accept or reject after a pull, submit or give up after an accept) can skip reading
//! the job first.
//!
//! A copy is only ever a guess: the step computes its change over it and writes by compare-and-set
//! on the copy's version, exactly as over a fresh read. When anyone changed the job since (another
//! instance, a sweep, the sender), the write matches no row and the step reads the job and decides
//! again; a refusal computed over a copy is never answered, it is checked against a read. So a
//! stale copy costs one statement and never a wrong answer.

use crate::ids::JobId;
use crate::job::Job;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most copies kept; beyond it the oldest go. An agent's next step follows within seconds, so one
/// per agent at work on this instance is what is used; a job can weigh up to a few hundred KiB
/// (a 20,000-character prompt, its structuring, its env vars), which bounds this at tens of MiB.
/// A copy that was dropped costs only the read it saves.
const MAX_RECENT_JOBS: usize = 256;

/// Recently written jobs, by id, oldest first out.
#[derive(Default)]
pub(super) struct RecentJobs(Mutex<Recent>);

#[derive(Default)]
struct Recent {
    jobs: HashMap<JobId, Job>,
    /// Insertion order; may name jobs forgotten since (skipped when evicting).
    order: VecDeque<JobId>,
}

impl RecentJobs {
    /// The copy of `id`, if one is kept.
    pub(super) fn get(&self, id: JobId) -> Option<Job> {
        self.lock().jobs.get(&id).cloned()
    }

    /// Keeps `job` as the latest copy of its id.
    pub(super) fn put(&self, job: &Job) {
        let mut r = self.lock();
        if r.jobs.insert(job.id, job.clone()).is_none() {
            r.order.push_back(job.id);
        }
        while r.jobs.len() > MAX_RECENT_JOBS {
            match r.order.pop_front() {
                Some(old) => {
                    r.jobs.remove(&old);
                }
                None => break,
            }
        }
        // Forgotten ids pile up in `order` between evictions; drop them once they outnumber
        // the copies.
        if r.order.len() > 2 * MAX_RECENT_JOBS {
            let Recent { jobs, order } = &mut *r;
            order.retain(|id| jobs.contains_key(id));
        }
    }

    /// Drops the copy of `id` (its agent is done with it).
    pub(super) fn forget(&self, id: JobId) {
        self.lock().jobs.remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // A panic while holding the lock cannot leave a half-written copy (every change is one
        // map operation), so a poisoned lock is still sound to use.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Timestamp, UserId};
    use crate::job::{JobDraft, Structured};
    use crate::lifecycle;
    use crate::money::{Price, TimeLimit};
    use uuid::Uuid;

    fn job(n: u128, prompt: &str) -> Job {
        let price = Price::new(500).unwrap();
        let time_limit = TimeLimit::new(600).unwrap();
        let draft = JobDraft {
            prompt: prompt.into(),
            structured: Structured {
                title: "t".into(),
                description: "d".into(),
                requirements: "r".into(),
                acceptance_criteria: vec!["c".into()],
                estimated_price: price,
                estimated_time_limit: time_limit,
                structured_by: "heuristic".into(),
            },
            price,
            time_limit,
            env_vars: Default::default(),
            files: Vec::new(),
        };
        let id = JobId(Uuid::from_u128(n));
        let sender = UserId(Uuid::from_u128(u128::MAX));
        lifecycle::create(draft, id, sender, true, Timestamp::from_millis(1)).job
    }

    #[test]
    fn keeps_the_latest_copy_until_forgotten() {
        let recent = RecentJobs::default();
        recent.put(&job(0, "first"));
        recent.put(&job(0, "second"));
        let kept = recent
            .get(JobId(Uuid::from_u128(0)))
            .map(|j| j.prompt.clone());
        assert_eq!(kept.as_deref(), Some("second"));
        recent.forget(JobId(Uuid::from_u128(0)));
        assert!(recent.get(JobId(Uuid::from_u128(0))).is_none());
    }

    #[test]
    fn drops_the_oldest_beyond_the_cap() {
        let recent = RecentJobs::default();
        let cap = MAX_RECENT_JOBS as u128;
        for n in 0..=cap {
            recent.put(&job(n, "p"));
        }
        assert!(
            recent.get(JobId(Uuid::from_u128(0))).is_none(),
            "the oldest went"
        );
        assert!(recent.get(JobId(Uuid::from_u128(1))).is_some());
        assert!(
            recent.get(JobId(Uuid::from_u128(cap))).is_some(),
            "the newest stays"
        );
        // Forgetting and putting again, over and over, never grows either structure past its
        // bound.
        for round in 0..4 {
            for n in 0..2 * cap {
                recent.put(&job(n, "p"));
                if (n + round) % 3 == 0 {
                    recent.forget(JobId(Uuid::from_u128(n)));
                }
            }
        }
        let r = recent.lock();
        assert!(r.jobs.len() <= MAX_RECENT_JOBS, "{}", r.jobs.len());
        assert!(
            r.order.len() <= 2 * MAX_RECENT_JOBS + 1,
            "{}",
            r.order.len()
        );
    }
}
