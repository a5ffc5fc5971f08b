//! The JSON shapes the LLM must answer with, their JSON Schemas (derived with schemars, then made
//! "strict" as OpenAI's structured output requires), and their checks.
//!
//! Every array, number and string carries a bound, in the keywords OpenAI's strict mode documents
//! (`minItems`/`maxItems`, `minimum`/`maximum`, `pattern`): a server that turns the schema into a
//! grammar (llama.cpp) then cannot loop until its context is full. Strings are bounded by a
//! `pattern` (one line of 1 to N characters) rather than `maxLength`, which strict mode does not
//! list. The answer is still checked after parsing: what comes back out of range is clamped or cut
//! here, never trusted.

use schemars::{JsonSchema, schema_for};
use serde::Deserialize;
use serde_json::Value;

/// The structured form of a prompt, as the model answers it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobAnswer {
    /// A short title (at most 8 words).
    #[schemars(regex(pattern = r"^.{1,120}$"))]
    pub title: String,
    /// What is to be done, in a few sentences.
    #[schemars(regex(pattern = r"^.{1,600}$"))]
    pub description: String,
    /// What the output must contain or satisfy.
    #[schemars(regex(pattern = r"^.{1,600}$"))]
    pub requirements: String,
    /// 1 to 8 distinct, checkable statements about the output.
    #[schemars(length(min = 1, max = 8), inner(regex(pattern = r"^.{1,200}$")))]
    pub acceptance_criteria: Vec<String>,
    /// A fair price in US cents.
    #[schemars(range(min = 100, max = 100000))]
    pub estimated_price_cents: i64,
    /// A fair time limit in seconds.
    #[schemars(range(min = 60, max = 86400))]
    pub estimated_time_limit_seconds: i64,
}

/// Longest title kept, in characters.
pub const TITLE_CHARS: usize = 120;
/// Longest description or requirements kept, in characters.
pub const TEXT_CHARS: usize = 600;
/// Longest criterion kept, in characters.
pub const CRITERION_CHARS: usize = 200;
/// Longest judgement note kept, in characters.
pub const NOTE_CHARS: usize = 300;
/// Most criteria kept.
pub const MAX_CRITERIA: usize = 8;

/// The judgement of one criterion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionAnswer {
    /// The criterion, copied verbatim.
    #[schemars(regex(pattern = r"^.{1,200}$"))]
    pub criterion: String,
    /// Whether the submission meets it.
    pub passed: bool,
    /// A short justification.
    #[schemars(regex(pattern = r"^.{1,300}$"))]
    pub note: String,
}

/// A verdict, as the model answers it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictAnswer {
    /// Whether the submission meets every criterion.
    pub passed: bool,
    /// Why.
    #[schemars(regex(pattern = r"^.{1,600}$"))]
    pub reasoning: String,
    /// One entry per criterion, in order.
    #[schemars(length(min = 1, max = 8))]
    pub criteria: Vec<CriterionAnswer>,
}

/// OpenAI strict mode: every object closed (`additionalProperties: false`) and every property
/// required. Applied recursively, including to `$defs`.
fn make_strict(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("object")
                && let Some(Value::Object(props)) = map.get("properties")
            {
                let keys: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                map.insert("required".into(), Value::Array(keys));
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            // Descriptions and formats are fine; `$schema` and `title` are noise for the API.
            map.remove("$schema");
            map.remove("format");
            for (_, child) in map.iter_mut() {
                make_strict(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

/// `s` trimmed and cut to at most `max` characters (never inside a character).
pub fn cut(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A criterion's text as compared: leading list markers ("1.", "2)", "-", "*") removed, case and
/// runs of whitespace ignored, trailing punctuation dropped.
pub fn normalized(c: &str) -> String {
    let words: Vec<String> = strip_marker(c)
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    words
        .join(" ")
        .trim_end_matches(['.', ';', ',', ':', '!'])
        .to_string()
}

/// `c` without the list markers a model may put before it ("1. ", "1) ", "- ", repeated).
pub fn strip_marker(c: &str) -> &str {
    let mut rest = c.trim();
    loop {
        let digits = rest.len()
            - rest
                .trim_start_matches(|ch: char| ch.is_ascii_digit())
                .len();
        let after = &rest[digits..];
        let next = if digits > 0 && digits <= 3 {
            after
                .strip_prefix(". ")
                .or_else(|| after.strip_prefix(") "))
                .or_else(|| after.strip_prefix('.').filter(|a| a.is_empty()))
        } else {
            rest.strip_prefix("- ").or_else(|| rest.strip_prefix("* "))
        };
        match next {
            Some(n) => rest = n.trim_start(),
            None => return rest,
        }
    }
}

/// The criteria a job keeps: markers stripped, cut to length, empty and repeated ones dropped, at
/// most [`MAX_CRITERIA`].
pub fn clean_criteria(raw: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    raw.iter()
        .map(|c| cut(strip_marker(c), CRITERION_CHARS))
        .filter(|c| !c.is_empty() && seen.insert(normalized(c)))
        .take(MAX_CRITERIA)
        .collect()
}

/// The strict JSON Schema of `T`.
pub fn strict_schema<T: JsonSchema>() -> Value {
    let mut v = serde_json::to_value(schema_for!(T)).unwrap_or(Value::Null);
    make_strict(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_strict() {
        let s = strict_schema::<VerdictAnswer>();
        assert_eq!(s["additionalProperties"], Value::Bool(false));
        assert_eq!(s["required"].as_array().map(Vec::len), Some(3));
        let item = &s["$defs"]["CriterionAnswer"];
        assert_eq!(item["additionalProperties"], Value::Bool(false));
        assert_eq!(item["required"].as_array().map(Vec::len), Some(3));
        let j = strict_schema::<JobAnswer>();
        assert_eq!(j["required"].as_array().map(Vec::len), Some(6));
        assert!(j.get("$schema").is_none());
    }

    #[test]
    fn every_array_number_and_string_is_bounded() {
        let j = strict_schema::<JobAnswer>();
        let p = &j["properties"];
        assert_eq!(p["acceptance_criteria"]["minItems"], 1);
        assert_eq!(p["acceptance_criteria"]["maxItems"], 8);
        assert_eq!(p["acceptance_criteria"]["items"]["pattern"], "^.{1,200}$");
        assert_eq!(p["estimated_price_cents"]["minimum"], 100);
        assert_eq!(p["estimated_price_cents"]["maximum"], 100000);
        assert_eq!(p["estimated_time_limit_seconds"]["minimum"], 60);
        assert_eq!(p["estimated_time_limit_seconds"]["maximum"], 86400);
        for f in ["title", "description", "requirements"] {
            assert!(p[f]["pattern"].is_string(), "{f}");
        }
        let v = strict_schema::<VerdictAnswer>();
        assert_eq!(v["properties"]["criteria"]["maxItems"], 8);
        assert!(v["properties"]["reasoning"]["pattern"].is_string());
        let c = &v["$defs"]["CriterionAnswer"]["properties"];
        assert!(c["criterion"]["pattern"].is_string() && c["note"]["pattern"].is_string());
        // Nothing strict mode does not document.
        let text = format!("{j}{v}");
        for k in ["maxLength", "minLength", "format", "$schema"] {
            assert!(!text.contains(&format!("\"{k}\"")), "{k}");
        }
    }

    #[test]
    fn criteria_are_cleaned_once() {
        let raw = vec![
            "1. 1. Mentions the sea".to_string(),
            "2) Has three lines".to_string(),
            "- mentions the  SEA.".to_string(),
            "   ".to_string(),
        ]
        .into_iter()
        .chain((0..20).map(|i| format!("criterion {i}")))
        .collect();
        let c = clean_criteria(raw);
        assert_eq!(c[..2], ["Mentions the sea", "Has three lines"]);
        assert_eq!(c.len(), MAX_CRITERIA);
        assert_eq!(normalized("3. Has Three   lines."), "has three lines");
        assert_eq!(strip_marker("2024 was a year"), "2024 was a year");
        assert_eq!(cut("  ééé  ", 2), "éé");
    }
}
