//! The served OpenAPI document against the wire types of `clawrk-api`: every sample value of every
//! type validates against the schema the document gives it, and the document's properties are the
//! fields the type writes (so a field added, renamed or dropped on either side fails here). The
//! document also names every error code, every `{id}` parameter, and the statuses every route
//! shares. (Schemathesis checks the live answers against the same document: `.ci/fuzz`.)

use actix_web::test::{self, TestRequest};
use clawrk_api::*;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use uuid::Uuid;

fn at() -> OffsetDateTime {
    clawrk_api::times::from_millis(1_767_225_600_123)
}

fn verdict() -> Verdict {
    Verdict {
        passed: false,
        reasoning: "one criterion failed".into(),
        criteria: vec![CriterionResult {
            criterion: "three lines".into(),
            passed: false,
            note: "two lines".into(),
        }],
        verifier: "heuristic".into(),
        verified_at: at(),
    }
}

/// A job with every optional field set, and one with none.
fn jobs() -> [Job; 2] {
    let full = Job {
        id: Uuid::now_v7(),
        status: JobStatus::Accepted,
        prompt: "Write a haiku about the sea".into(),
        title: "Haiku".into(),
        description: "A haiku".into(),
        requirements: "three lines".into(),
        acceptance_criteria: vec!["three lines".into()],
        sender: Uuid::now_v7(),
        receiver: Some(Uuid::now_v7()),
        receiver_agent_id: Some(Uuid::now_v7()),
        held_by_agent_id: Some(Uuid::now_v7()),
        hold_expires_at: Some(at()),
        price_cents: 500,
        time_limit_seconds: 600,
        accepted_at: Some(at()),
        deadline_at: Some(at()),
        submitted_at: Some(at()),
        completed_at: Some(at()),
        attempt_count: 3,
        cancellation_requested: true,
        output_text: Some("waves".into()),
        output_attachments: Some(vec![json!({ "url": "https://example.com/a.txt" })]),
        env_vars: Some(BTreeMap::from([("TOKEN".into(), "secret".into())])),
        attachments: vec![json!({ "name": "brief.md" })],
        presented_to_agents: vec![Uuid::now_v7()],
        verification: Some(verdict()),
        review_due_at: Some(at()),
        structured_by: "heuristic".into(),
        created_at: at(),
        updated_at: at(),
    };
    let bare = Job {
        status: JobStatus::PendingPayment,
        receiver: None,
        receiver_agent_id: None,
        held_by_agent_id: None,
        hold_expires_at: None,
        accepted_at: None,
        deadline_at: None,
        submitted_at: None,
        completed_at: None,
        attempt_count: 0,
        cancellation_requested: false,
        output_text: None,
        output_attachments: None,
        env_vars: None,
        attachments: vec![],
        presented_to_agents: vec![],
        verification: None,
        review_due_at: None,
        ..full.clone()
    };
    [full, bare]
}

fn agent() -> Agent {
    Agent {
        id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        name: "scribe".into(),
        personality: Some("terse".into()),
        avatar_url: None,
        is_default: false,
        created_at: at(),
    }
}

fn value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Samples per schema name: answers and request bodies.
fn samples() -> Vec<(&'static str, Value)> {
    let [full, bare] = jobs();
    let mut v = vec![
        ("Job", value(&full)),
        ("Job", value(&bare)),
        ("Verdict", value(verdict())),
        (
            "Estimate",
            value(Estimate {
                needs_confirmation: true,
                title: "Haiku".into(),
                description: "A haiku".into(),
                requirements: "three lines".into(),
                acceptance_criteria: vec!["three lines".into()],
                estimated_price_cents: 500,
                estimated_time_limit_seconds: 600,
                structured_by: "heuristic".into(),
            }),
        ),
        (
            "Held",
            value(Held {
                job: full.clone(),
                hold_expires_at: at(),
            }),
        ),
        (
            "BoardJob",
            value(BoardJob {
                id: Uuid::now_v7(),
                title: "Haiku".into(),
                description: "A haiku".into(),
                requirements: "three lines".into(),
                acceptance_criteria: vec![],
                price_cents: 500,
                time_limit_seconds: 600,
                created_at: at(),
            }),
        ),
        ("Agent", value(agent())),
        (
            "AgentProfile",
            value(AgentProfile {
                agent: agent(),
                jobs_verified: 2,
                jobs_failed: 1,
                earned_cents: 900,
            }),
        ),
        (
            "Wallet",
            value(Wallet {
                balance_cents: 4_500,
                ledger: vec![LedgerEntry {
                    id: Uuid::now_v7(),
                    delta_cents: -500,
                    reason: LedgerReason::JobPayment,
                    job_id: Some(Uuid::now_v7()),
                    created_at: at(),
                }],
            }),
        ),
        ("Balance", value(Balance { balance_cents: 0 })),
        (
            "Whoami",
            value(Whoami {
                user: UserSummary {
                    id: Uuid::now_v7(),
                    name: "alice".into(),
                    balance_cents: 10,
                },
            }),
        ),
        (
            "Stats",
            value(Stats {
                counts: JobStatus::ALL.iter().map(|s| (*s, 1)).collect(),
                jobs_verified: 1,
                total_paid_out_cents: 450,
                median_queued_price_cents: None,
                agents: 3,
            }),
        ),
        (
            "SweepReport",
            value(SweepReport {
                released_holds: 1,
                failed_deadlines: 0,
                approved_reviews: 2,
            }),
        ),
        (
            "Health",
            value(Health {
                status: "ok".into(),
                version: "0.1.0".into(),
                store: "postgres".into(),
                store_reachable: true,
                llm: "heuristic".into(),
                workers: WorkersHealth {
                    verification_configured: 4,
                    verification_alive: 4,
                    sweeper_alive: true,
                },
            }),
        ),
        (
            "LogLine",
            value(LogLine {
                seq: 1,
                at: at(),
                level: LogLevel::Warn,
                message: "criterion failed".into(),
            }),
        ),
        (
            "StreamError",
            value(StreamError {
                error: "the log is unavailable right now".into(),
                code: ErrorCode::StoreUnavailable,
                retry_ms: 5000,
            }),
        ),
        (
            "ErrorBody",
            value(ErrorBody {
                required_cents: Some(500),
                available_cents: Some(20),
                job: Some(Box::new(bare)),
                ..ErrorBody::new(ErrorCode::InsufficientBalance, "insufficient balance")
            }),
        ),
        (
            "ErrorBody",
            value(ErrorBody::new(ErrorCode::NotFound, "job not found")),
        ),
        (
            "RunRequest",
            value(RunRequest {
                prompt: "Write a haiku".into(),
                env_vars: Some(BTreeMap::from([("A".into(), "b".into())])),
                attachments: Some(vec![
                    AttachmentRef::Id(Uuid::now_v7()),
                    AttachmentRef::Object { id: Uuid::now_v7() },
                ]),
                price_cents: Some(500),
                time_limit_seconds: Some(600),
                confirmed: Some(true),
            }),
        ),
        (
            "AgentChoice",
            value(AgentChoice {
                agent_id: Some(Uuid::now_v7()),
                agent_name: Some("scribe".into()),
            }),
        ),
        (
            "SubmitRequest",
            value(SubmitRequest {
                output: Some("waves".into()),
                attachments: None,
            }),
        ),
        (
            "SubmitRequest",
            value(SubmitRequest {
                output: None,
                attachments: Some(vec![AttachmentRef::Id(Uuid::now_v7())]),
            }),
        ),
        (
            "FileInfo",
            value(FileInfo {
                id: Uuid::now_v7(),
                filename: "data.csv".into(),
                content_type: "text/csv".into(),
                size_bytes: 12,
                sha256: "ab".repeat(32),
                created_at: OffsetDateTime::now_utc(),
            }),
        ),
        (
            "FailRequest",
            value(FailRequest {
                reason: Some("cannot".into()),
            }),
        ),
        (
            "VerifyRequest",
            value(VerifyRequest {
                requirements: "three lines".into(),
                acceptance_criteria: Some(vec!["three lines".into()]),
                output: "a\nb\nc".into(),
            }),
        ),
        (
            "NewAgent",
            value(NewAgent {
                name: "scribe".into(),
                personality: None,
                avatar_url: Some("https://example.com/a.png".into()),
            }),
        ),
        (
            "AgentPatch",
            value(AgentPatch {
                name: Some("poet".into()),
                personality: Some(None),
                avatar_url: Some(Some("https://example.com/b.png".into())),
            }),
        ),
        ("AmountRequest", value(AmountRequest { amount_cents: 500 })),
        (
            "ReviewRequest",
            value(ReviewRequest {
                decision: ReviewDecision::Reject,
            }),
        ),
    ];
    for code in ErrorCode::ALL {
        v.push(("ErrorCode", value(code)));
    }
    for reason in [
        LedgerReason::Topup,
        LedgerReason::JobPayment,
        LedgerReason::Refund,
        LedgerReason::Earning,
        LedgerReason::Fee,
        LedgerReason::Withdrawal,
        LedgerReason::Adjustment,
    ] {
        v.push(("LedgerReason", value(reason)));
    }
    for status in JobStatus::ALL {
        v.push(("JobStatus", value(status)));
    }
    v
}

async fn served() -> Value {
    let app = test::init_service(actix_web::App::new().service(clawrk_http::api_scope())).await;
    let resp = test::call_service(
        &app,
        TestRequest::get().uri("/api/openapi.json").to_request(),
    )
    .await;
    assert!(resp.status().is_success());
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(
        body,
        serde_json::to_value(clawrk_http::openapi::document()).unwrap(),
        "the served document is the generated one"
    );
    body
}

/// A validator for one component, resolving `$ref`s against the whole document.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The properties a component declares, all its `allOf` parts (and what they refer to) included.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            out.extend(properties(doc, part));
        }
    }
    out
}

#[actix_web::test]
async fn every_wire_type_validates_against_its_schema_and_has_its_fields() {
    let doc = served().await;
    for (name, sample) in samples() {
        let v = validator(&doc, name);
        let errors: Vec<String> = v.iter_errors(&sample).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name} {sample}: {errors:?}");
        if let Value::Object(fields) = &sample {
            let declared = properties(&doc, &doc["components"]["schemas"][name]);
            let written: BTreeSet<String> = fields.keys().cloned().collect();
            assert!(
                written.is_subset(&declared),
                "{name} writes {:?}, which the document does not declare",
                written.difference(&declared).collect::<Vec<_>>()
            );
        }
    }
    // The fullest sample of each answer writes every declared field.
    for (name, sample) in [
        ("Job", value(&jobs()[0])),
        ("Wallet", samples()[8].1.clone()),
    ] {
        let declared = properties(&doc, &doc["components"]["schemas"][name]);
        let written: BTreeSet<String> = sample.as_object().unwrap().keys().cloned().collect();
        assert_eq!(written, declared, "{name}");
    }
}

#[actix_web::test]
async fn what_the_document_refuses_the_types_refuse_too() {
    let doc = served().await;
    let refused = [
        ("RunRequest", json!({ "prompt": "" })),
        ("RunRequest", json!({ "prompt": " \t " })),
        ("RunRequest", json!({ "prompt": "a\u{0}b" })),
        ("RunRequest", json!({ "prompt": "x", "price_cents": 99 })),
        ("RunRequest", json!({ "prompt": "x", "attachments": [1] })),
        (
            "RunRequest",
            json!({ "prompt": "x", "envVars": { "A": 1 } }),
        ),
        (
            "RunRequest",
            json!({ "prompt": "x", "envVars": { "A": "\u{0}" } }),
        ),
        ("SubmitRequest", json!({})),
        ("SubmitRequest", json!({ "attachments": [] })),
        ("SubmitRequest", json!({ "output": "  " })),
        ("NewAgent", json!({ "name": "a\nb" })),
        ("NewAgent", json!({ "name": "x".repeat(65) })),
        ("AmountRequest", json!({ "amount_cents": 499 })),
        ("AmountRequest", json!({ "amount_cents": 100_000_001 })),
        (
            "VerifyRequest",
            json!({ "requirements": "\u{1}", "output": "x" }),
        ),
    ];
    for (name, body) in refused {
        assert!(
            !validator(&doc, name).is_valid(&body),
            "the document accepts {name} {body}"
        );
    }
    // And the server refuses the same bodies (the domain rules behind the patterns).
    assert!(clawrk_domain::text::is_blank(" \t "));
    assert!(clawrk_domain::user::valid_name("a\nb", "name").is_err());
    assert!(clawrk_domain::job::Output::new(Some("  ".into()), None).is_err());
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn every_reference_resolves() {
    let doc = served().await;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not exist"
        );
    }
}

#[actix_web::test]
async fn every_route_documents_its_parameters_and_shared_statuses() {
    let doc = served().await;
    let codes: Vec<Value> = ErrorCode::ALL.iter().map(value).collect();
    assert_eq!(
        doc["components"]["schemas"]["ErrorCode"]["enum"],
        json!(codes)
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let statuses = op["responses"].as_object().unwrap();
            for (status, resp) in statuses {
                assert!(
                    resp["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{what} {status} has no description"
                );
            }
            for status in ["429", "500", "503"] {
                assert!(statuses.contains_key(status), "{what} lacks {status}");
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                statuses.contains_key("401"),
                secured,
                "{what}: 401 iff a key is needed"
            );
            if path.contains("{id}") {
                let id = op["parameters"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == "id" && p["in"] == "path"))
                    .unwrap_or_else(|| panic!("{what} does not declare `id`"));
                assert_eq!(id["schema"]["format"], "uuid", "{what}");
                assert!(
                    statuses.contains_key("400"),
                    "{what}: a malformed id is 400"
                );
            }
            if !op["requestBody"].is_null() {
                assert!(statuses.contains_key("413"), "{what} lacks 413");
                assert!(statuses.contains_key("400"), "{what} lacks 400");
            }
        }
    }
}
