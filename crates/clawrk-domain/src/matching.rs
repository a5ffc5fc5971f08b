//! Matching: which queued job an agent gets when it pulls.
//!
//! The rule (documented in `docs/MATCHING.md`): a candidate is any `queued` job that is not the
//! agent owner's own and that this agent was never presented. Candidates are ranked by relevance —
//! the number of distinct words of the agent's personality (lower-cased, at least 3 letters, common
//! English words dropped) that occur in the job's title, description, requirements or acceptance
//! criteria — then by age (oldest first), then by id, so the pick is deterministic. An agent without
//! a personality scores 0 everywhere and simply gets the oldest job.

use crate::job::{Job, JobStatus};
use crate::user::Agent;
use std::collections::BTreeSet;

/// Words too common to say anything about a match.
const STOPWORDS: &[&str] = &[
    "and", "the", "for", "with", "that", "this", "are", "was", "you", "your", "but", "not", "all",
    "any", "can", "from", "has", "have", "into", "its", "our", "out", "who", "will", "use",
    "using", "good", "great", "very", "who", "what", "when", "where", "which", "they", "them",
    "their", "also", "about", "than", "then", "there", "these", "those", "such", "like", "just",
    "more", "most", "some", "each", "other", "only", "over", "both", "well", "able", "agent",
    "job", "jobs", "task", "tasks", "work",
];

/// The distinct significant words of a text, lower-cased.
pub fn terms(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The words of a job that matching looks at.
fn job_terms(job: &Job) -> BTreeSet<String> {
    let mut text = String::with_capacity(
        job.title.len() + job.description.len() + job.requirements.len() + 64,
    );
    for part in [&job.title, &job.description, &job.requirements] {
        text.push_str(part);
        text.push(' ');
    }
    for c in &job.acceptance_criteria {
        text.push_str(c);
        text.push(' ');
    }
    terms(&text)
}

/// Distinct `wanted` words found in the job (0 when nothing is wanted).
fn overlap(wanted: &BTreeSet<String>, job: &Job) -> usize {
    if wanted.is_empty() {
        return 0;
    }
    wanted.intersection(&job_terms(job)).count()
}

/// How well an agent's personality fits a job: distinct personality words found in the job.
pub fn score(personality: Option<&str>, job: &Job) -> usize {
    personality.map_or(0, |p| overlap(&terms(p), job))
}

/// Whether `job` may be offered to `agent` by pull at all.
pub fn eligible(agent: &Agent, job: &Job) -> bool {
    job.status == JobStatus::Queued
        && job.sender != agent.owner_id
        && !job.was_presented_to(agent.id)
}

/// The best candidate for `agent`: highest score, then oldest, then smallest id; `None` if no
/// candidate is eligible.
pub fn pick<'a>(agent: &Agent, candidates: &'a [Job]) -> Option<&'a Job> {
    let wanted = agent.personality.as_deref().map(terms).unwrap_or_default();
    candidates
        .iter()
        .filter(|j| eligible(agent, j))
        .map(|j| (overlap(&wanted, j), j))
        // max by score; among equals the oldest (smallest created_at, then id) wins.
        .max_by(|(sa, a), (sb, b)| {
            sa.cmp(sb)
                .then_with(|| b.created_at.cmp(&a.created_at))
                .then_with(|| b.id.cmp(&a.id))
        })
        .map(|(_, j)| j)
}
