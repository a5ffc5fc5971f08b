//! The JSON shapes the LLM must answer with, their JSON Schemas (derived with schemars, then made
//! "strict" as OpenAI's structured output requires), and their checks.

use schemars::{JsonSchema, schema_for};
use serde::Deserialize;
use serde_json::Value;

/// The structured form of a prompt, as the model answers it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobAnswer {
    /// A short title (at most 80 characters).
    pub title: String,
    /// What is to be done, in a few sentences.
    pub description: String,
    /// What the output must contain or satisfy.
    pub requirements: String,
    /// Checkable statements about the output.
    pub acceptance_criteria: Vec<String>,
    /// A fair price in US cents.
    pub estimated_price_cents: i64,
    /// A fair time limit in seconds.
    pub estimated_time_limit_seconds: i64,
}

/// The judgement of one criterion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionAnswer {
    /// The criterion, copied verbatim.
    pub criterion: String,
    /// Whether the submission meets it.
    pub passed: bool,
    /// A short justification.
    pub note: String,
}

/// A verdict, as the model answers it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictAnswer {
    /// Whether the submission meets every criterion.
    pub passed: bool,
    /// Why.
    pub reasoning: String,
    /// One entry per criterion, in order.
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
}
