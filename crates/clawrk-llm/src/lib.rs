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
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            api_key: None,
            base_url: None,
            model: DEFAULT_MODEL.into(),
            timeout: Duration::from_secs(60),
            retries: 3,
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
            .finish()
    }
}

impl LlmConfig {
    /// Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CLAWRK_LLM_MODEL`, `CLAWRK_LLM_TIMEOUT_SECONDS` and
    /// `CLAWRK_LLM_RETRIES` from the environment; unset or empty values keep the defaults.
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
    }

    #[tokio::test]
    async fn without_a_key_the_heuristic_is_used() {
        let (s, _) = from_config(&LlmConfig::default());
        let out = s.structure("Write a haiku").await.unwrap();
        assert_eq!(out.structured_by, "heuristic");
    }
}
