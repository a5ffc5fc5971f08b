//! The offline heuristic structurer and verifier: deterministic, no network, used when no API key
//! is configured. It labels itself `heuristic` in `structured_by` and `verifier`.
//!
//! Structuring: the title is the first sentence's main clause, without politeness, cut at a clause
//! boundary and title-cased (it reads as a title, not as the prompt cut off); requirements and
//! acceptance criteria come from the prompt's sentences; price and time grow with the prompt's words
//! and sentences.
//!
//! Verifying checks form, not meaning — it is meant for trying clawrk out without an LLM, and the
//! server says so at start. The output must be non-empty and say something of its own (at least
//! two key terms that are not in the job's text: restating the prompt, "write haiku sea", fails).
//! Each criterion is then held to the form its words name: a haiku has three lines, a limerick
//! five, a sonnet fourteen, a poem several; a list has items; JSON parses; code looks like code;
//! "N words" is within half to twice N; "mention X" needs most of X's key terms. A criterion that
//! names no form passes on an output of its own.

use async_trait::async_trait;
use clawrk_domain::files::FileMeta;
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
    async fn structure(&self, prompt: &str, _files: &[FileMeta]) -> Result<Structured, LlmError> {
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

/// Key terms an output must have that the job's own text does not, to be more than a restatement.
const MIN_OWN_TERMS: usize = 2;

/// Distinct key terms of `output` not in `context`.
fn own_terms(output: &str, context: &std::collections::BTreeSet<String>) -> usize {
    terms(output).difference(context).count()
}

/// The non-empty lines of `output`.
fn lines(output: &str) -> usize {
    output.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Whether `words` (the criterion's, lowercased) contains any of `names`.
fn names(words: &[String], names: &[&str]) -> bool {
    words.iter().any(|w| names.contains(&w.as_str()))
}

/// "300 words", "300-word": the number of words asked for.
fn words_asked(text: &str) -> Option<usize> {
    let lower = text.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|t| !t.is_empty())
        .collect();
    tokens.windows(2).find_map(|w| {
        let word = w[1].trim_end_matches(|c: char| !c.is_alphanumeric());
        if word == "words" || word == "word" {
            w[0].parse::<usize>().ok().filter(|n| *n > 0)
        } else {
            None
        }
    })
}

/// The output without a Markdown code fence around it.
fn unfenced(output: &str) -> &str {
    let t = output.trim();
    match t.strip_prefix("```") {
        Some(rest) => {
            let body = rest.split_once('\n').map_or("", |(_, b)| b);
            body.trim_end().strip_suffix("```").unwrap_or(body).trim()
        }
        None => t,
    }
}

/// A criterion held to the form its words name; one that names none passes.
fn judge(criterion: &str, output: &str) -> CriterionResult {
    let text = criterion
        .strip_prefix(CRITERION_PREFIX)
        .unwrap_or(criterion);
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let n = lines(output);
    let mut checks: Vec<(bool, String)> = Vec::new();
    for (form, want) in [("haiku", 3), ("limerick", 5), ("sonnet", 14)] {
        if names(&words, &[form]) {
            checks.push((
                n == want,
                format!("a {form} has {want} lines; the output has {n}"),
            ));
        }
    }
    if checks.is_empty() && names(&words, &["poem", "poetry", "verse", "stanza"]) {
        checks.push((n >= 2, format!("a poem has lines; the output has {n}")));
    }
    // A poem about a language is still a poem, not code.
    let verse = !checks.is_empty();
    if names(&words, &["list", "bullet", "bullets", "enumerate"]) {
        let items = output
            .lines()
            .map(str::trim_start)
            .filter(|l| {
                l.starts_with(['-', '*', '•'])
                    || l.split_once(['.', ')']).is_some_and(|(d, _)| {
                        !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())
                    })
            })
            .count();
        checks.push((items >= 2, format!("a list of {items} item(s)")));
    }
    if names(&words, &["json"]) {
        let ok = serde_json::from_str::<serde_json::Value>(unfenced(output)).is_ok();
        checks.push((
            ok,
            if ok { "valid JSON" } else { "not valid JSON" }.to_string(),
        ));
    }
    if !verse
        && names(
            &words,
            &[
                "code",
                "function",
                "python",
                "rust",
                "javascript",
                "typescript",
                "script",
                "program",
                "sql",
                "class",
                "implement",
            ],
        )
    {
        let code = [
            "def ", "fn ", "function", "return", "class ", "select ", "=", "{", "();",
        ]
        .iter()
        .any(|m| output.to_lowercase().contains(m));
        checks.push((
            code,
            if code {
                "looks like code"
            } else {
                "no code in the output"
            }
            .to_string(),
        ));
    }
    if let Some(asked) = words_asked(text) {
        let count = output.split_whitespace().count();
        checks.push((
            count * 2 >= asked && count <= asked * 2,
            format!("{count} words for about {asked}"),
        ));
    }
    if let Some(first) = words.first()
        && matches!(
            first.as_str(),
            "mention" | "mentions" | "include" | "includes" | "name" | "names" | "cite"
        )
    {
        let key = terms(&words[1..].join(" "));
        let have = terms(output);
        let missing: Vec<&str> = key
            .iter()
            .filter(|t| !have.contains(*t))
            .map(String::as_str)
            .collect();
        let covered = key.len() - missing.len();
        checks.push((
            covered * 2 >= key.len(),
            if missing.is_empty() {
                format!("mentions all {} key terms", key.len())
            } else {
                format!(
                    "mentions {covered} of {} key terms (missing: {})",
                    key.len(),
                    missing.join(", ")
                )
            },
        ));
    }
    let passed = checks.iter().all(|(ok, _)| *ok);
    let note = if checks.is_empty() {
        "no form to check; the output has words of its own".to_string()
    } else {
        checks
            .into_iter()
            .map(|(_, why)| why)
            .collect::<Vec<_>>()
            .join("; ")
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
        // The criteria are judged on the output's text, or on its text files when it has no text
        // (a file beside a text is supporting material, not the deliverable whose form is
        // checked); the output's own terms count in all of them. Other files only show that
        // there is one.
        let file_text = task
            .files
            .iter()
            .filter_map(|f| f.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n");
        let text = task.output.trim();
        let judged = if text.is_empty() {
            file_text.trim()
        } else {
            text
        };
        let everything = format!("{text}\n{file_text}");
        let output = everything.trim();
        let opaque_files = task.files.iter().any(|f| f.text.is_none());
        let mut context = format!("{} {} {}", task.title, task.description, task.requirements);
        for c in &criteria {
            context.push(' ');
            context.push_str(c);
        }
        let own = own_terms(output, &terms(&context));
        let failure = if output.is_empty() && !opaque_files {
            Some("the output is empty".to_string())
        } else if own < MIN_OWN_TERMS && !opaque_files {
            Some(format!(
                "the output restates the task: {own} key term(s) of its own, {MIN_OWN_TERMS} needed"
            ))
        } else {
            None
        };
        let results: Vec<CriterionResult> = criteria
            .iter()
            .map(|c| match &failure {
                Some(why) => CriterionResult {
                    criterion: c.clone(),
                    passed: false,
                    note: why.clone(),
                },
                None => judge(c, judged),
            })
            .collect();
        let met = results.iter().filter(|r| r.passed).count();
        let passed = failure.is_none() && met == results.len();
        let a = Assessment {
            passed,
            reasoning: format!(
                "{met} of {} criteria met (offline heuristic: form and wording are checked, not \
                 meaning)",
                results.len()
            ),
            criteria: results,
            verifier: LABEL.into(),
        };
        Ok(a)
    }
}
