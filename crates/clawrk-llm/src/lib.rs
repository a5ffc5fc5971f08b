//! # clawrk-llm
//!
//! The two things only an LLM does in clawrk, behind the domain's [`Structurer`] and [`Verifier`]
//! ports: turning a prompt into a typed, priced job, and judging a submission.
//!
//! - [`OpenAiLlm`]: async-openai chat completions with JSON-schema structured output; any
//!   OpenAI-compatible server (llama.cpp, vLLM, Ollama) works through the base URL.
//! - [`Heuristic`]: deterministic and offline, used when no API key is configured.
//!
//! [`from_config`] picks one from an [`LlmConfig`].

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod heuristic;
mod openai;
mod schema;

pub use heuristic::Heuristic;
pub use openai::OpenAiLlm;

use clawrk_domain::ports::{Structurer, Verifier};
use std::sync::Arc;
use std::time::Duration;

/// The default model.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// How the LLM is reached (SPEC §9: `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CLAWRK_LLM_MODEL`).
#[derive(Clone)]
pub struct LlmConfig {
    /// Without a key the heuristic is used.
    pub api_key: Option<String>,
    /// OpenAI's by default; any OpenAI-compatible `/v1` base URL.
    pub base_url: Option<String>,
    /// Model name.
    pub model: String,
    /// Limit for one HTTP call, retries excluded.
    pub timeout: Duration,
    /// Retries on 429 and 5xx (with exponential backoff), after the first call.
    pub retries: usize,
    /// The output cap sent with every call (`max_tokens`).
    pub max_tokens: u32,
    /// How structured output is asked for.
    pub response_format: ResponseFormatMode,
}

/// The smallest output cap accepted: below it even a short verdict would be cut.
pub const MIN_MAX_TOKENS: u32 = 256;

/// The default output cap: the largest answer the schemas allow fits with room to spare.
pub const DEFAULT_MAX_TOKENS: u32 = 2048;

/// How structured output is asked for (`CLAWRK_LLM_RESPONSE_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormatMode {
    /// `json_schema` (strict), falling back once per process to `json_object` with the schema when
    /// the server refuses it.
    Auto,
    /// Always `response_format.type = "json_schema"` (OpenAI, llama.cpp's server, vLLM, Ollama).
    JsonSchema,
    /// Always `json_object`, the schema sent beside it and in the instructions (servers that do not
    /// take `json_schema`, such as llama-cpp-python's).
    JsonObject,
}

impl std::str::FromStr for ResponseFormatMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ResponseFormatMode::Auto),
            "json_schema" => Ok(ResponseFormatMode::JsonSchema),
            "json_object" => Ok(ResponseFormatMode::JsonObject),
            _ => Err("CLAWRK_LLM_RESPONSE_FORMAT must be auto, json_schema or json_object".into()),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            api_key: None,
            base_url: None,
            model: DEFAULT_MODEL.into(),
            timeout: Duration::from_secs(60),
            retries: 3,
            max_tokens: DEFAULT_MAX_TOKENS,
            response_format: ResponseFormatMode::Auto,
        }
    }
}

impl std::fmt::Debug for LlmConfig {
    // The key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("max_tokens", &self.max_tokens)
            .field("response_format", &self.response_format)
            .finish()
    }
}

impl LlmConfig {
    /// Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CLAWRK_LLM_MODEL`, `CLAWRK_LLM_TIMEOUT_SECONDS`,
    /// `CLAWRK_LLM_RETRIES`, `CLAWRK_LLM_MAX_TOKENS` and `CLAWRK_LLM_RESPONSE_FORMAT` from the
    /// environment; unset or empty values keep the defaults.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`LlmConfig::from_env`] over any lookup (for tests). Errors name the bad variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut c = LlmConfig {
            api_key: get("OPENAI_API_KEY"),
            base_url: get("OPENAI_BASE_URL"),
            ..LlmConfig::default()
        };
        if let Some(m) = get("CLAWRK_LLM_MODEL") {
            c.model = m;
        }
        if let Some(t) = get("CLAWRK_LLM_TIMEOUT_SECONDS") {
            let secs: u64 = t
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or("CLAWRK_LLM_TIMEOUT_SECONDS must be a positive number of seconds")?;
            c.timeout = Duration::from_secs(secs);
        }
        if let Some(r) = get("CLAWRK_LLM_RETRIES") {
            c.retries = r
                .parse()
                .ok()
                .filter(|n| *n <= 10)
                .ok_or("CLAWRK_LLM_RETRIES must be a number from 0 to 10")?;
        }
        if let Some(m) = get("CLAWRK_LLM_MAX_TOKENS") {
            c.max_tokens = m
                .parse()
                .ok()
                .filter(|n| (MIN_MAX_TOKENS..=1_000_000).contains(n))
                .ok_or("CLAWRK_LLM_MAX_TOKENS must be a number from 256 to 1000000")?;
        }
        if let Some(f) = get("CLAWRK_LLM_RESPONSE_FORMAT") {
            c.response_format = f.parse()?;
        }
        Ok(c)
    }
}

/// The structurer and verifier for a configuration: async-openai with a key, else the heuristic.
pub fn from_config(config: &LlmConfig) -> (Arc<dyn Structurer>, Arc<dyn Verifier>) {
    match config.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(_) => {
            let llm = Arc::new(OpenAiLlm::new(config));
            (llm.clone(), llm)
        }
        None => (Arc::new(Heuristic), Arc::new(Heuristic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<LlmConfig, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LlmConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn environment_names_and_defaults() {
        let d = cfg(&[]).unwrap();
        assert_eq!(
            (d.api_key, d.base_url, d.model.as_str()),
            (None, None, "gpt-4o-mini")
        );
        let c = cfg(&[
            ("OPENAI_API_KEY", "sk-1"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:8081/v1"),
            ("CLAWRK_LLM_MODEL", "llama3"),
            ("CLAWRK_LLM_TIMEOUT_SECONDS", "5"),
            ("CLAWRK_LLM_RETRIES", "0"),
        ])
        .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("sk-1"));
        assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:8081/v1"));
        assert_eq!(
            (c.model.as_str(), c.timeout.as_secs(), c.retries),
            ("llama3", 5, 0)
        );
        assert!(
            !format!("{c:?}").contains("sk-1"),
            "the key is never printed"
        );
        assert!(
            cfg(&[("CLAWRK_LLM_RETRIES", "many")])
                .unwrap_err()
                .contains("CLAWRK_LLM_RETRIES")
        );
        assert!(cfg(&[("OPENAI_API_KEY", "  ")]).unwrap().api_key.is_none());
        assert_eq!(
            (d.max_tokens, d.response_format),
            (DEFAULT_MAX_TOKENS, ResponseFormatMode::Auto)
        );
        let f = cfg(&[
            ("CLAWRK_LLM_MAX_TOKENS", "512"),
            ("CLAWRK_LLM_RESPONSE_FORMAT", "json_object"),
        ])
        .unwrap();
        assert_eq!(
            (f.max_tokens, f.response_format),
            (512, ResponseFormatMode::JsonObject)
        );
        assert!(
            cfg(&[("CLAWRK_LLM_MAX_TOKENS", "10")])
                .unwrap_err()
                .contains("CLAWRK_LLM_MAX_TOKENS")
        );
        assert!(
            cfg(&[("CLAWRK_LLM_RESPONSE_FORMAT", "xml")])
                .unwrap_err()
                .contains("CLAWRK_LLM_RESPONSE_FORMAT")
        );
    }

    #[tokio::test]
    async fn without_a_key_the_heuristic_is_used() {
        let (s, _) = from_config(&LlmConfig::default());
        let out = s.structure("Write a haiku", &[]).await.unwrap();
        assert_eq!(out.structured_by, "heuristic");
    }
}
