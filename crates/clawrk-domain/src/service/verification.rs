//! Background work (SPEC §6): verifying submissions, and the deadline sweep; plus standalone
//! verification, which judges an output and stores nothing.
//!
//! A verification is two units of work around the LLM call, never one held open across it: the
//! lease with its first log line, then the verdict with its log lines and the payout.

use super::{Marketplace, apply};
use crate::error::{DomainError, Result};
use crate::ids::{JobId, Timestamp, UserId};
use crate::job::{Job, JobStatus, LogLevel, Verdict};
use crate::lifecycle::{self, Change};
use crate::ports::{Announcement, Leased, LogSink, NewLogLine, SweepReport, VerifyTask};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// How many jobs one sweep transaction handles before it commits and takes the next batch.
pub const SWEEP_BATCH: u32 = 200;

/// A verification applied by [`Marketplace::verify_one`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The job after its verdict.
    pub job: Job,
    /// Another submission was free to lease when this one was taken.
    pub more_waiting: bool,
}

/// Keeps a verifier's interim notes until they are written with the verdict.
#[derive(Default)]
struct Notes(Mutex<Vec<NewLogLine>>);

impl Notes {
    fn take(&self) -> Vec<NewLogLine> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl LogSink for Notes {
    async fn log(&self, level: LogLevel, message: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((level, message));
    }
}

/// Drops notes (standalone verification stores nothing).
struct NoLog;

#[async_trait]
impl LogSink for NoLog {
    async fn log(&self, _level: LogLevel, _message: String) {}
}

impl Marketplace {
    /// Standalone verification: judges an output, stores and pays nothing.
    pub async fn verify_standalone(
        &self,
        requirements: String,
        acceptance_criteria: Vec<String>,
        output: String,
    ) -> Result<Verdict> {
        if crate::text::is_blank(&requirements) {
            return Err(DomainError::invalid("requirements is required"));
        }
        if crate::text::is_blank(&output) {
            return Err(DomainError::invalid("output is required"));
        }
        let task = VerifyTask {
            title: String::new(),
            description: String::new(),
            requirements,
            acceptance_criteria,
            output,
            files: Vec::new(),
        };
        let a = self.ports.verifier.verify(&task, Arc::new(NoLog)).await?;
        Ok(a.at(self.now()))
    }

    /// Verifies the oldest submitted job awaiting a verdict, if any, and applies the verdict.
    /// Returns the job after the verdict, or `None` when there was nothing to verify. A verifier
    /// error is logged on the job and returned; the job stays `submitted` and is taken up again when
    /// its lease lapses.
    pub async fn verify_next(&self) -> Result<Option<Job>> {
        Ok(self.verify_one().await?.map(|v| v.job))
    }

    /// [`Marketplace::verify_next`], also saying whether another submission was waiting when
    /// this one was leased: a worker looks again at once only then, instead of spending a lease
    /// attempt that finds nothing after every verdict.
    pub async fn verify_one(&self) -> Result<Option<Verified>> {
        let now = self.now();
        let until = now.plus_millis(
            i64::try_from(self.config.verification_lease.as_millis()).unwrap_or(i64::MAX),
        );
        let verifier = self.ports.verifier.name();
        let Some((job, more_waiting)) = self
            .store()
            .transaction(move |tx| {
                let Some(Leased { job, more_waiting }) = tx.lease_submitted(now, until)? else {
                    return Ok(None);
                };
                let criteria = VerifyTask::for_job(&job, Vec::new()).criteria().len();
                let line = format!(
                    "verification of attempt {} started ({verifier}): {criteria} criteria",
                    job.attempt_count
                );
                tx.append_logs(job.id, &[(LogLevel::Info, line)], now)?;
                tx.notify(Announcement::Log(job.id))?;
                Ok(Some((job, more_waiting)))
            })
            .await?
        else {
            return Ok(None);
        };
        let notes = Arc::new(Notes::default());
        let attempt = job.attempt_count;
        let id = job.id;
        // The submission's files are read before the verifier is called (most submissions have
        // none: they cost no read). Storage that cannot be read counts as a verifier error (the
        // submission is tried again), never as a failure of the agent.
        let has_files = job
            .output_attachments
            .as_ref()
            .is_some_and(|a| !a.is_empty_array());
        let files = if has_files {
            self.verify_files(id, attempt).await
        } else {
            Ok(Vec::new())
        };
        let judged = match files {
            Ok(files) => {
                let task = VerifyTask::for_job(&job, files);
                self.ports.verifier.verify(&task, notes.clone()).await
            }
            Err(e) => Err(crate::ports::LlmError::Unavailable(format!(
                "the submission's files could not be read: {e}"
            ))),
        };
        match judged {
            Ok(assessment) => {
                let verdict = assessment.at(self.now());
                let interim = notes.take();
                let id = job.id;
                let after = self
                    .transition_from(
                        Some((job, ())),
                        id,
                        |_, _| Ok(()),
                        move |j, _, now| {
                            if j.status != JobStatus::Submitted || j.attempt_count != attempt {
                                // Settled already (by another worker, or the attempt ended).
                                return Ok(Change::unchanged(j));
                            }
                            let mut change = lifecycle::apply_verdict(j, verdict.clone(), now)?;
                            change.log.splice(0..0, interim.iter().cloned());
                            Ok(change)
                        },
                        None,
                    )
                    .await?
                    .value;
                Ok(Some(Verified {
                    job: after,
                    more_waiting,
                }))
            }
            Err(e) => {
                // Counted on the job; the submission is tried again after `verify_retry`, or goes
                // to the sender's review after `verify_max_errors` failures.
                let retry = self.config.verify_retry;
                let (max, review) = (self.config.verify_max_errors, self.config.review_seconds);
                let interim = notes.take();
                let why = e.to_string();
                let at = self.now();
                let until = at.plus_millis(i64::try_from(retry.as_millis()).unwrap_or(i64::MAX));
                let clock = self.ports.clock.clone();
                self.store()
                    .transaction(move |tx| {
                        let Some(j) = tx.lock_job(id)? else {
                            return Ok(());
                        };
                        let Some(mut change) = lifecycle::verifier_failed(
                            &j,
                            attempt,
                            &why,
                            max,
                            retry.as_secs(),
                            review,
                            at,
                        ) else {
                            return Ok(());
                        };
                        change.log.splice(0..0, interim.iter().cloned());
                        if !apply(tx, &*clock, &j, &change)? {
                            return Err(DomainError::Internal("a locked job changed".into()));
                        }
                        tx.postpone_verification(id, until)
                    })
                    .await?;
                Err(e.into())
            }
        }
    }

    /// The sender's review of a submission the verifier gave up on: approve (the agent is paid)
    /// or reject (the attempt fails).
    pub async fn review(&self, user: UserId, id: JobId, approve: bool) -> Result<Job> {
        self.transition(
            id,
            |_, _| Ok(()),
            move |job, _, now| lifecycle::review(job, user, approve, now),
        )
        .await
    }

    /// One deadline sweep: releases every lapsed hold, fails every attempt past its deadline and
    /// approves every review past its due time (in batches, each a transaction over rows it
    /// locked), then forgets expired quotes and idempotency records. Idempotent and safe to run
    /// concurrently: each job is handled once.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let now = self.now();
        let mut report = SweepReport {
            approved_reviews: self
                .sweep_batches(
                    now,
                    |tx, now| tx.reviews_due(now, SWEEP_BATCH),
                    lifecycle::auto_approve,
                )
                .await?,
            released_holds: self
                .sweep_batches(
                    now,
                    |tx, now| tx.expired_holds(now, SWEEP_BATCH),
                    lifecycle::expire_hold,
                )
                .await?,
            failed_deadlines: self
                .sweep_batches(
                    now,
                    |tx, now| tx.overdue(now, SWEEP_BATCH),
                    lifecycle::expire_deadline,
                )
                .await?,
            ..SweepReport::default()
        };
        // Housekeeping: expired quotes and idempotency records would otherwise pile up.
        self.store().single(move |tx| tx.purge_expired(now)).await?;
        self.purge_deliveries(now).await?;
        (report.removed_files, report.orphaned_files) = self.purge_files(now).await?;
        Ok(report)
    }

    async fn sweep_batches(
        &self,
        now: Timestamp,
        find: fn(&mut dyn crate::ports::Tx, Timestamp) -> Result<Vec<Job>>,
        change: fn(&Job, Timestamp) -> Result<Change>,
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let clock = self.ports.clock.clone();
            let n = self
                .store()
                .transaction(move |tx| {
                    let jobs = find(tx, now)?;
                    for j in &jobs {
                        if !apply(tx, &*clock, j, &change(j, now)?)? {
                            return Err(DomainError::Internal("a locked job changed".into()));
                        }
                    }
                    Ok(jobs.len())
                })
                .await?;
            total += n as u64;
            if n < SWEEP_BATCH as usize {
                return Ok(total);
            }
        }
    }
}
