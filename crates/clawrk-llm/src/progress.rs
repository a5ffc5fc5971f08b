//! What both verifiers share: the criteria a task is judged by, and the progress lines they write
//! to the job's log (started, one line per criterion, the verdict) — what the SSE stream shows.

use clawrk_domain::LogLevel;
use clawrk_domain::ports::{Assessment, LogSink, VerifyTask};

/// The criteria a task is judged by: its acceptance criteria, or its requirements when it has none.
pub(crate) fn criteria_of(task: &VerifyTask) -> Vec<String> {
    if task.acceptance_criteria.is_empty() {
        vec![task.requirements.clone()]
    } else {
        task.acceptance_criteria.clone()
    }
}

/// Writes the "verification started" line and returns the criteria to judge.
pub(crate) async fn begin(task: &VerifyTask, log: &dyn LogSink, verifier: &str) -> Vec<String> {
    let criteria = criteria_of(task);
    log.log(
        LogLevel::Info,
        format!(
            "verification started ({verifier}), {} criteria",
            criteria.len()
        ),
    )
    .await;
    criteria
}

/// Reports the criteria and the verdict to the job's log.
pub(crate) async fn report(log: &dyn LogSink, a: &Assessment) {
    let n = a.criteria.len();
    for (i, c) in a.criteria.iter().enumerate() {
        let (level, word) = if c.passed {
            (LogLevel::Info, "met")
        } else {
            (LogLevel::Warn, "not met")
        };
        let note = if c.note.is_empty() {
            String::new()
        } else {
            format!(" — {}", c.note)
        };
        log.log(
            level,
            format!("criterion {}/{n} {word}: {}{note}", i + 1, c.criterion),
        )
        .await;
    }
    let word = if a.passed { "passed" } else { "failed" };
    log.log(LogLevel::Info, format!("verdict: {word} — {}", a.reasoning))
        .await;
}
