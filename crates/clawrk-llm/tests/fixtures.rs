//! Real exchanges with OpenAI-compatible servers (llama.cpp's `llama-server` and the
//! `llama-cpp-python` server running SmolLM2-135M; see `fixtures/README.md`) replayed over real
//! HTTP: each captured answer is served by wiremock to the adapter, and what clawrk makes of it is
//! asserted — bounded requests, truncation named, clamping, verdicts matched by text, and the
//! fallback to `json_object` for a server that refuses `json_schema`.

use async_trait::async_trait;
use clawrk_domain::LogLevel;
use clawrk_domain::ports::{LlmError, LogSink, Structurer, Verifier, VerifyTask};
use clawrk_llm::{LlmConfig, OpenAiLlm, ResponseFormatMode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A captured exchange.
struct Fixture {
    request: Value,
    response: Value,
    status: u16,
}

fn fixture(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    Fixture {
        request: v["request"].clone(),
        response: v["response"].clone(),
        status: v["status"].as_u64().unwrap() as u16,
    }
}

impl Fixture {
    /// The sender's prompt (structuring) or the verification's user message.
    fn user(&self) -> String {
        self.request["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn template(&self) -> ResponseTemplate {
        ResponseTemplate::new(self.status).set_body_json(self.response.clone())
    }
}

fn llm(server: &MockServer, mode: ResponseFormatMode) -> OpenAiLlm {
    OpenAiLlm::new(&LlmConfig {
        api_key: Some("sk-test".into()),
        base_url: Some(format!("{}/v1", server.uri())),
        model: "smollm2".into(),
        timeout: Duration::from_secs(5),
        retries: 0,
        response_format: mode,
        ..LlmConfig::default()
    })
}

async fn serving(t: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(t)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect()
}

struct Quiet;

#[async_trait]
impl LogSink for Quiet {
    async fn log(&self, _: LogLevel, _: String) {}
}

/// The verification task a captured verify request was made for: its criteria and the submission.
fn verify_task(f: &Fixture) -> VerifyTask {
    let user = f.user();
    let criteria: Vec<String> = user
        .split("Acceptance criteria:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.split_once(". ").unwrap().1.to_string())
        .collect();
    let open = user.find("<submission-").unwrap();
    let body = &user[user[open..].find('>').unwrap() + open + 2..];
    let output = body[..body.find("\n</submission-").unwrap()].to_string();
    VerifyTask {
        title: String::new(),
        description: String::new(),
        requirements: "see the criteria".into(),
        acceptance_criteria: criteria,
        output,
        files: Vec::new(),
    }
}

/// Every request sends an output cap and a schema whose arrays, numbers and strings are bounded.
#[tokio::test]
async fn requests_are_bounded() {
    let f = fixture("cpp-structure-valid-negative-price");
    let server = serving(f.template()).await;
    llm(&server, ResponseFormatMode::Auto)
        .structure(&f.user(), &[])
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    assert_eq!(sent["max_tokens"], clawrk_llm::DEFAULT_MAX_TOKENS);
    assert_eq!(sent["response_format"]["type"], "json_schema");
    let props = &sent["response_format"]["json_schema"]["schema"]["properties"];
    assert_eq!(props["acceptance_criteria"]["maxItems"], 8);
    assert_eq!(props["estimated_price_cents"]["minimum"], 100);
    assert!(props["title"]["pattern"].is_string());
}

/// A model that loops until its context is full: `finish_reason: length` is named "truncated",
/// not a JSON parse error.
#[tokio::test]
async fn a_runaway_answer_is_truncated() {
    for name in [
        "cpp-structure-runaway-length",
        "cpp-structure-array-runaway",
    ] {
        let f = fixture(name);
        let server = serving(f.template()).await;
        let e = llm(&server, ResponseFormatMode::Auto)
            .structure(&f.user(), &[])
            .await
            .unwrap_err();
        match e {
            LlmError::BadAnswer(why) => assert!(why.starts_with("truncated"), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Valid JSON with absurd numbers and a sentence for a title: clamped and cut, never trusted.
#[tokio::test]
async fn out_of_range_estimates_are_clamped() {
    let f = fixture("cpp-structure-valid-negative-price");
    let server = serving(f.template()).await;
    let s = llm(&server, ResponseFormatMode::Auto)
        .structure(&f.user(), &[])
        .await
        .unwrap();
    assert_eq!(s.estimated_price.cents().0, 100);
    assert_eq!(s.estimated_time_limit.seconds(), 60);
    assert!(s.title.chars().count() <= 120);
    assert!(!s.acceptance_criteria.is_empty() && s.acceptance_criteria.len() <= 8);
    assert!(
        s.acceptance_criteria
            .iter()
            .all(|c| c.chars().count() <= 200)
    );
}

/// Judgements whose text matches no criterion count for nothing: the irrelevant output is not met
/// "by position", and the good haiku judged with a garbled criterion fails safe.
#[tokio::test]
async fn verdicts_are_matched_by_text() {
    for name in [
        "cpp-verify-positional-fallback",
        "cpp-verify-garbage-fails-safe",
    ] {
        let f = fixture(name);
        let server = serving(f.template()).await;
        let task = verify_task(&f);
        let a = llm(&server, ResponseFormatMode::Auto)
            .verify(&task, Arc::new(Quiet))
            .await
            .unwrap();
        assert!(!a.passed, "{name}");
        assert_eq!(a.criteria.len(), task.acceptance_criteria.len());
        for c in &a.criteria {
            assert!(!c.passed, "{name}: {}", c.criterion);
            assert_eq!(c.note, "not judged by the verifier", "{name}");
        }
        // The criteria are numbered once in the prompt.
        let sent = requests(&server).await;
        let user = sent[0]["messages"][1]["content"].as_str().unwrap();
        assert!(!user.contains("1. 1."), "{user}");
    }
}

/// A criterion that carries its own number is listed once, and a judgement that copies it with or
/// without the number, in another case or spacing, is matched.
#[tokio::test]
async fn numbered_criteria_are_matched_once() {
    let server = serving(ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": json!({"passed": true, "reasoning": "ok", "criteria": [
                {"criterion": "is_prime  handles 1.", "passed": true, "note": "yes"},
                {"criterion": "2. Has three tests", "passed": true, "note": "yes"}
            ]}).to_string()}}]
    })))
    .await;
    let task = VerifyTask {
        title: String::new(),
        description: String::new(),
        requirements: "tests".into(),
        acceptance_criteria: vec!["1. is_prime handles 1".into(), "2. Has three tests".into()],
        output: "def is_prime(n): ...".into(),
        files: Vec::new(),
    };
    let a = llm(&server, ResponseFormatMode::Auto)
        .verify(&task, Arc::new(Quiet))
        .await
        .unwrap();
    assert!(a.passed, "{a:?}");
    let user = requests(&server).await[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        user.contains("1. is_prime handles 1\n2. Has three tests\n"),
        "{user}"
    );
}

/// Answers like llama-cpp-python's server: 500 to `json_schema`, the fixture's answer to
/// `json_object` (an empty criteria list, refused as unusable) or a good one.
struct PythonServer {
    good: bool,
}

impl Respond for PythonServer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        if body["response_format"]["type"] == "json_schema" {
            return fixture("py-500-json-schema-rejected").template();
        }
        let mut answer = fixture("py-shim-structure-empty-criteria").response;
        if self.good {
            let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
            let mut job: Value = serde_json::from_str(content).unwrap();
            job["acceptance_criteria"] = json!(["Names the vendor", "Names the total"]);
            answer["choices"][0]["message"]["content"] = Value::String(job.to_string());
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

#[tokio::test]
async fn a_server_without_json_schema_is_asked_with_json_object_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(PythonServer { good: true })
        .mount(&server)
        .await;
    let prompt = fixture("py-shim-structure-empty-criteria").user();
    let llm = llm(&server, ResponseFormatMode::Auto);
    let s = llm.structure(&prompt, &[]).await.unwrap();
    assert_eq!(
        s.acceptance_criteria,
        ["Names the vendor", "Names the total"]
    );
    assert_eq!(s.estimated_price.cents().0, 100, "8 cents, clamped");
    llm.structure(&prompt, &[]).await.unwrap();
    let kinds: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r["response_format"]["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["json_schema", "json_object", "json_object"],
        "falls back once"
    );
    let sent = &requests(&server).await[1];
    assert_eq!(
        sent["response_format"]["schema"]["properties"]["acceptance_criteria"]["maxItems"],
        8
    );
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("JSON Schema"),
        "the schema is in the instructions too"
    );

    // json_schema only: the refusal is the answer.
    let e = self::llm(&server, ResponseFormatMode::JsonSchema)
        .structure(&prompt, &[])
        .await
        .unwrap_err();
    assert!(matches!(e, LlmError::Unavailable(_)), "{e:?}");
}

/// The captured json_object answer with no criteria is refused as unusable (its own error, not a
/// "retry later").
#[tokio::test]
async fn an_answer_without_criteria_is_unusable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(PythonServer { good: false })
        .mount(&server)
        .await;
    let prompt = fixture("py-shim-structure-empty-criteria").user();
    let e = llm(&server, ResponseFormatMode::JsonObject)
        .structure(&prompt, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::BadAnswer(w) if w.contains("no acceptance criteria")),
        "{e:?}"
    );
    let kinds: Vec<Value> = requests(&server)
        .await
        .iter()
        .map(|r| r["response_format"]["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("json_object")]);
}
