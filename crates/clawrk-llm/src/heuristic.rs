//! The offline heuristic structurer and verifier: deterministic, no network, used when no API key
//! is configured. It labels itself `heuristic` in `structured_by` and `verifier`.
//!
//! Structuring: the title is the first sentence's main clause, without politeness, cut at a clause
//! boundary and title-cased (it reads as a title, not as the prompt cut off); requirements and
//! acceptance criteria come from the prompt's sentences; price and time grow with the prompt's words
//! and sentences. Verifying: the output must be non-empty, and each criterion passes when the
//! output contains at least half of the criterion's key terms.

use async_trait::async_trait;
use clawrk_domain::job::CriterionResult;
use clawrk_domain::matching::terms;
use clawrk_domain::ports::{Assessment, LlmError, LogSink, Structurer, Verifier, VerifyTask};
use clawrk_domain::{Price, Structured, TimeLimit};
use std::sync::Arc;

/// The label in `structured_by` and `verifier`.
pub const LABEL: &str = "heuristic";

/// Most criteria drawn from one prompt.
const MAX_CRITERIA: usize = 6;
/// Most words in a title.
const MAX_TITLE_WORDS: usize = 8;

/// Prefix of every criterion the heuristic writes.
const CRITERION_PREFIX: &str = "Addresses: ";

/// Openings that are politeness, not the task.
const OPENINGS: &[&str] = &[
    "please ",
    "can you ",
    "could you ",
    "would you ",
    "i need you to ",
    "i want you to ",
    "i would like you to ",
    "i'd like you to ",
    "i need ",
    "i want ",
    "we need ",
    "help me ",
    "kindly ",
];

/// Where a title's main clause ends.
const CLAUSE_ENDS: &[&str] = &[
    ",",
    ":",
    ";",
    " so that ",
    " in order to ",
    " because ",
    " which ",
    " that will ",
    " using ",
    " with the goal ",
];

/// Words kept lower-case inside a title and dropped from its end.
const SMALL: &[&str] = &[
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to",
    "with", "about",
];

/// The offline heuristic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Heuristic;

/// The prompt's sentences, trimmed, without their final punctuation.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = c == '\n'
            || (matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace()));
        if boundary {
            let s = cur.split_whitespace().collect::<Vec<_>>().join(" ");
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    let s = cur.split_whitespace().collect::<Vec<_>>().join(" ");
    if !s.is_empty() {
        out.push(s);
    }
    out
}

fn strip_opening(s: &str) -> &str {
    let mut s = s.trim();
    loop {
        // ASCII folding keeps byte offsets: the openings are ASCII, and a Unicode lowercase may
        // change a character's length (`İ`), which would cut `s` inside a character.
        let lower = s.to_ascii_lowercase();
        match OPENINGS.iter().find(|o| lower.starts_with(*o)) {
            Some(o) => s = s[o.len()..].trim_start(),
            None => return s,
        }
    }
}

/// A title from the prompt: its first sentence's main clause, title-cased, at most 8 words.
pub fn title(prompt: &str) -> String {
    let first = sentences(prompt).into_iter().next().unwrap_or_default();
    let mut clause = strip_opening(&first).to_string();
    // Offsets found in `lower` cut `clause`: ASCII folding keeps them valid (see `strip_opening`).
    let lower = clause.to_ascii_lowercase();
    if let Some(cut) = CLAUSE_ENDS
        .iter()
        .filter_map(|e| lower.find(e))
        .filter(|&i| i > 0)
        .min()
    {
        clause.truncate(cut);
    }
    let mut words: Vec<&str> = clause.split_whitespace().take(MAX_TITLE_WORDS).collect();
    while words
        .last()
        .is_some_and(|w| SMALL.contains(&w.to_lowercase().as_str()))
    {
        words.pop();
    }
    let titled: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let lw = w.to_lowercase();
            if i > 0 && SMALL.contains(&lw.as_str()) {
                lw
            } else if w.chars().skip(1).any(char::is_uppercase) {
                // Acronyms and names keep their spelling (SQL, iOS).
                (*w).to_string()
            } else {
                let mut cs = w.chars();
                match cs.next() {
                    Some(f) => f.to_uppercase().chain(cs).collect(),
                    None => String::new(),
                }
            }
        })
        .collect();
    let t = titled
        .join(" ")
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_string();
    if t.is_empty() {
        "Untitled task".into()
    } else {
        t
    }
}

fn round_to(v: i64, step: i64) -> i64 {
    (v + step / 2) / step * step
}

/// Price and time grow with the task's words and sentences.
pub fn estimates(prompt: &str) -> (Price, TimeLimit) {
    let words = prompt.split_whitespace().count() as i64;
    let extra_sentences = sentences(prompt).len().saturating_sub(1) as i64;
    let price = round_to(300 + 15 * words + 100 * extra_sentences, 50);
    let seconds = round_to(600 + 45 * words + 300 * extra_sentences, 60);
    (Price::clamped(price), TimeLimit::clamped(seconds))
}

#[async_trait]
impl Structurer for Heuristic {
    async fn structure(&self, prompt: &str) -> Result<Structured, LlmError> {
        let parts = sentences(prompt);
        if parts.is_empty() {
            return Err(LlmError::BadAnswer("the prompt is empty".into()));
        }
        let (price, time) = estimates(prompt);
        let requirements = parts
            .iter()
            .map(|s| format!("- {}", strip_opening(s)))
            .collect::<Vec<_>>()
            .join("\n");
        let criteria = parts
            .iter()
            .take(MAX_CRITERIA)
            .map(|s| format!("{CRITERION_PREFIX}{}", strip_opening(s)))
            .collect();
        Ok(Structured {
            title: title(prompt),
            description: prompt.split_whitespace().collect::<Vec<_>>().join(" "),
            requirements,
            acceptance_criteria: criteria,
            estimated_price: price,
            estimated_time_limit: time,
            structured_by: LABEL.into(),
        })
    }
}

/// Judges one criterion by key-term coverage.
fn judge(criterion: &str, output_terms: &std::collections::BTreeSet<String>) -> CriterionResult {
    let text = criterion
        .strip_prefix(CRITERION_PREFIX)
        .unwrap_or(criterion);
    let key = terms(text);
    if key.is_empty() {
        return CriterionResult {
            criterion: criterion.into(),
            passed: true,
            note: "no key terms to check; the output is non-empty".into(),
        };
    }
    let missing: Vec<&str> = key
        .iter()
        .filter(|t| !output_terms.contains(*t))
        .map(String::as_str)
        .collect();
    let covered = key.len() - missing.len();
    let passed = covered * 2 >= key.len();
    let note = if missing.is_empty() {
        format!("covers all {} key terms", key.len())
    } else {
        format!(
            "covers {covered} of {} key terms (missing: {})",
            key.len(),
            missing.join(", ")
        )
    };
    CriterionResult {
        criterion: criterion.into(),
        passed,
        note,
    }
}

#[async_trait]
impl Verifier for Heuristic {
    fn name(&self) -> String {
        LABEL.into()
    }

    async fn verify(
        &self,
        task: &VerifyTask,
        _log: Arc<dyn LogSink>,
    ) -> Result<Assessment, LlmError> {
        let criteria = task.criteria();
        let has_output = !task.output.trim().is_empty() || task.attachments.is_some();
        let output_terms = terms(&task.output);
        let results: Vec<CriterionResult> = criteria
            .iter()
            .map(|c| {
                if has_output {
                    judge(c, &output_terms)
                } else {
                    CriterionResult {
                        criterion: c.clone(),
                        passed: false,
                        note: "the output is empty".into(),
                    }
                }
            })
            .collect();
        let met = results.iter().filter(|r| r.passed).count();
        let passed = has_output && met == results.len();
        let a = Assessment {
            passed,
            reasoning: format!(
                "{met} of {} criteria met by key-term coverage of the output",
                results.len()
            ),
            criteria: results,
            verifier: LABEL.into(),
        };
        Ok(a)
    }
}
