//! Route tests with `actix_web::test`: the real app over the domain's in-memory store, a mocked
//! structurer (mockall) and a scripted verifier. They check statuses, bodies and the error shape
//! as SPEC §5 documents them, and that a rejected request changes nothing.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use clawrk_domain::ids::{Timestamp, UserId};
use clawrk_domain::job::{CriterionResult, LogLevel, Structured};
use clawrk_domain::money::{Cents, Price, Reason, TimeLimit};
use clawrk_domain::ports::{
    Assessment, Clock, LlmError, LogSink, LogWatch, MockPaymentGateway, MockPayoutGateway,
    MockStructurer, Verifier, VerifyTask, Waiter,
};
use clawrk_domain::service::{Config, IdemState, Marketplace, Ports};
use clawrk_domain::user::{KeyHash, api_key_from};
use clawrk_http::{AppState, app};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time plus a shift a test moves forward (to pass holds and deadlines).
#[derive(Default)]
struct WallClock(std::sync::atomic::AtomicI64);
impl WallClock {
    fn shift(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}
impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                + self.0.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// Passes (or fails) every criterion, writing two progress lines.
struct Scripted(bool);
#[async_trait]
impl Verifier for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    async fn verify(
        &self,
        task: &VerifyTask,
        log: Arc<dyn LogSink>,
    ) -> Result<Assessment, LlmError> {
        log.log(LogLevel::Info, "started".into()).await;
        log.log(LogLevel::Info, "judged".into()).await;
        Ok(Assessment {
            passed: self.0,
            reasoning: "scripted".into(),
            criteria: task
                .acceptance_criteria
                .iter()
                .map(|c| CriterionResult {
                    criterion: c.clone(),
                    passed: self.0,
                    note: "ok".into(),
                })
                .collect(),
            verifier: "scripted".into(),
        })
    }
}

/// No wake-ups: log streams find changes by polling (shortened here).
struct NoWatch;
impl LogWatch for NoWatch {
    fn watch(&self, _job: clawrk_domain::ids::JobId) -> Box<dyn Waiter> {
        Box::new(Sleep)
    }
    fn watch_queue(&self) -> Box<dyn Waiter> {
        Box::new(Sleep)
    }
}
struct Sleep;
#[async_trait]
impl Waiter for Sleep {
    async fn wait(&mut self, timeout: Duration) {
        tokio::time::sleep(timeout.min(Duration::from_millis(50))).await;
    }
}

fn structured() -> Structured {
    Structured {
        title: "Haiku".into(),
        description: "A haiku about the sea".into(),
        requirements: "three lines".into(),
        acceptance_criteria: vec!["three lines".into(), "mentions the sea".into()],
        estimated_price: Price::new(500).unwrap(),
        estimated_time_limit: TimeLimit::new(600).unwrap(),
        structured_by: "heuristic".into(),
    }
}

struct World {
    state: AppState,
    market: Arc<Marketplace>,
    clock: Arc<WallClock>,
}

/// A user with an API key and `cents` in the wallet.
async fn user(w: &World, name: &str, cents: i64) -> (UserId, String) {
    let u = w.market.create_user(name).await.unwrap();
    // A well-formed key, different per user.
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate().take(32) {
        seed[i] = b;
    }
    let key = api_key_from(seed);
    w.market.add_api_key(u.id, KeyHash::of(&key)).await.unwrap();
    if cents > 0 {
        w.market
            .adjust_balance(u.id, Cents(cents), Reason::Adjustment)
            .await
            .unwrap();
    }
    (u.id, key)
}

fn world_with(structurer_calls: usize, passes: bool) -> World {
    let mut structurer = MockStructurer::new();
    structurer
        .expect_structure()
        .times(structurer_calls)
        .returning(|_, _| Ok(structured()));
    world_of(structurer, passes)
}

fn world_of(structurer: MockStructurer, passes: bool) -> World {
    let wall = Arc::new(WallClock::default());
    let clock: Arc<dyn Clock> = wall.clone();
    let store = Arc::new(clawrk_domain::memory::MemoryStore::new());
    let mut payments = MockPaymentGateway::new();
    payments.expect_collect().returning(|_, _| Ok(()));
    let mut payouts = MockPayoutGateway::new();
    payouts.expect_available().returning(|| Ok(()));
    payouts.expect_send().returning(|_, _| Ok(()));
    let market = Arc::new(Marketplace::new(
        Ports {
            store: store.clone(),
            structurer: Arc::new(structurer),
            verifier: Arc::new(Scripted(passes)),
            clock,
            payments: Arc::new(payments),
            payouts: Arc::new(payouts),
            webhooks: Arc::new(clawrk_domain::ports::MockWebhookSender::new()),
            files: std::sync::Arc::new(clawrk_domain::memory::MemoryFiles::new()),
        },
        Config::default(),
    ));
    World {
        state: AppState {
            market: market.clone(),
            watch: Arc::new(NoWatch),
            logs: Arc::default(),
            cron_secret: Some("cron-s3cret".into()),
            work: Arc::default(),
            rate_limit: None,
            metrics: Arc::default(),
        },
        market,
        clock: wall,
    }
}

fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json, headers, body)
    }};
}

#[actix_web::test]
async fn two_phase_run_then_402_then_pay() {
    // The structurer is called once: phase 2 reuses phase 1's quote.
    let w = world_with(1, true);
    let (_, key) = user(&w, "alice", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let prompt = json!({ "prompt": "write a haiku about the sea" });
    let (s, est, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_json(&prompt)
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(est["needs_confirmation"], true);
    assert_eq!(est["estimated_price_cents"], 500);
    assert_eq!(est["estimated_time_limit_seconds"], 600);
    assert_eq!(est["acceptance_criteria"].as_array().unwrap().len(), 2);

    let confirm = json!({ "prompt": "write a haiku about the sea", "confirmed": true, "envVars": { "TOKEN": "x" } });
    let (s, body, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_json(&confirm)
    );
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    assert!(body["error"].as_str().unwrap().contains("insufficient"));
    assert_eq!(
        (
            body["required_cents"].clone(),
            body["available_cents"].clone()
        ),
        (json!(500), json!(0))
    );
    assert_eq!(body["job"]["status"], "pending_payment");
    assert_eq!(body["job"]["env_vars"]["TOKEN"], "x");
    let id = body["job"]["id"].as_str().unwrap().to_string();

    let (s, body, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/pay"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["required_cents"], 500);
    w.market
        .adjust_balance(
            w.market.find_user("alice").await.unwrap().id,
            Cents(700),
            Reason::Adjustment,
        )
        .await
        .unwrap();
    let (s, body, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/pay"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "queued");
    let (s, body, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/pay"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (_, wallet, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/wallet/balance")
            .insert_header(bearer(&key))
    );
    assert_eq!(wallet["balance_cents"], 200);
    assert_eq!(wallet["ledger"][0]["reason"], "job_payment");
    assert_eq!(wallet["ledger"][0]["delta_cents"], -500);
}

#[actix_web::test]
async fn price_overrides_are_range_checked() {
    let w = world_with(1, true);
    let (_, key) = user(&w, "alice", 10_000).await;
    let app = test::init_service(app(w.state.clone())).await;
    for body in [
        json!({ "prompt": "x", "price_cents": 99, "confirmed": true }),
        json!({ "prompt": "x", "price_cents": 100_001, "confirmed": true }),
        json!({ "prompt": "x", "time_limit_seconds": 59, "confirmed": true }),
        json!({ "prompt": "   ", "confirmed": true }),
        json!({ "confirmed": true }),
        json!({ "prompt": "x", "attachments": "not a list" }),
    ] {
        let (s, b, ..) = call!(
            app,
            TestRequest::post()
                .uri("/api/jobs/run")
                .insert_header(bearer(&key))
                .set_json(&body)
        );
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {b}");
        assert!(b["error"].is_string());
    }
    let (s, b, ..) = call!(app, TestRequest::post().uri("/api/jobs/run").insert_header(bearer(&key))
        .set_json(json!({ "prompt": "x", "price_cents": 1234, "time_limit_seconds": 120, "confirmed": true })));
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (b["price_cents"].clone(), b["time_limit_seconds"].clone()),
        (json!(1234), json!(120))
    );
    // Nothing was created by the rejected requests: one job, one payment.
    let (_, jobs, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/jobs")
            .insert_header(bearer(&key))
    );
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let (_, wallet, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/wallet/balance")
            .insert_header(bearer(&key))
    );
    assert_eq!(wallet["balance_cents"], 10_000 - 1234);
}

#[actix_web::test]
async fn errors_use_the_error_shape_and_name_the_field() {
    let w = world_with(0, true);
    let (_, key) = user(&w, "alice", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let (s, b, ..) = call!(app, TestRequest::post().uri("/api/jobs/run"));
    assert_eq!(
        (s, b),
        (
            StatusCode::UNAUTHORIZED,
            json!({ "error": "Authentication required", "code": "unauthorized" })
        )
    );
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/whoami")
            .insert_header(bearer("ck_unknown"))
    );
    assert_eq!(
        (s, b),
        (
            StatusCode::UNAUTHORIZED,
            json!({ "error": "Authentication required", "code": "unauthorized" })
        )
    );
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"prompt\": ")
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"].as_str().unwrap().contains("malformed JSON"),
        "{b}"
    );
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_json(json!({ "prompt": "x", "price_cents": "five" }))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("price_cents"), "{b}");
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_json(json!({ "prompt": "x", "envVars": { "A": 1 } }))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("envVars.A"), "{b}");
    let big = format!("{{\"prompt\": \"{}\"}}", "x".repeat(1 << 20));
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_payload(big)
    );
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b["error"].is_string());
    assert_eq!(b["code"], "payload_too_large");
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/jobs?status=done")
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("status"));
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/jobs?limit=500")
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("limit"));
    assert_eq!(b["code"], "invalid_input");
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/jobs/not-a-uuid")
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("job id"));
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/jobs/{}", uuid::Uuid::now_v7()))
            .insert_header(bearer(&key))
    );
    assert_eq!(
        (s, b),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "job not found", "code": "not_found" })
        )
    );
    let (s, b, ..) = call!(app, TestRequest::get().uri("/api/nothing-here"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["error"].is_string());
    assert_eq!(b["code"], "not_found");
    let (s, b, ..) = call!(
        app,
        TestRequest::delete()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(b["error"].is_string());
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/agents")
            .insert_header(bearer(&key))
            .set_json(json!({}))
    );
    assert_eq!(
        (s, b),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "name is required", "code": "invalid_input" })
        )
    );
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/wallet/topup")
            .insert_header(bearer(&key))
            .set_json(json!({ "amount_cents": 499 }))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, headers, _) = call!(
        app,
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("x-request-id", "abc-123"))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers.get("x-request-id").unwrap(), "abc-123");
    let (_, _, headers, _) = call!(app, TestRequest::get().uri("/api/health"));
    assert!(!headers.get("x-request-id").unwrap().is_empty());
}

/// Who may do what on a held job: sender, holder, a stranger (SPEC §2 and §5).
#[actix_web::test]
async fn roles_and_visibility() {
    let w = world_with(1, true);
    let (_, sk) = user(&w, "sender", 10_000).await;
    let (_, hk) = user(&w, "holder", 0).await;
    let (_, tk) = user(&w, "stranger", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let (_, job, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&sk))
            .set_json(
                json!({ "prompt": "p", "confirmed": true, "envVars": { "TOKEN": "secret" } })
            )
    );
    let id = job["id"].as_str().unwrap().to_string();
    let (s, held, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/pull")
            .insert_header(bearer(&hk))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(held["job"]["id"], id.as_str());
    assert!(held["hold_expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        held["job"]["env_vars"],
        Value::Null,
        "never shown to a holder"
    );
    assert_eq!(held["job"]["price_cents"], 500);
    // The sender's own agent is never offered its own job; nothing else is queued.
    let (s, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/pull")
            .insert_header(bearer(&sk))
    );
    assert_eq!(s, StatusCode::NO_CONTENT);

    let get = |k: &str| {
        TestRequest::get()
            .uri(&format!("/api/jobs/{id}"))
            .insert_header(bearer(k))
    };
    assert_eq!(call!(app, get(&sk)).0, StatusCode::OK);
    assert_eq!(call!(app, get(&hk)).0, StatusCode::OK);
    assert_eq!(call!(app, get(&tk)).0, StatusCode::NOT_FOUND);
    let post = |k: &str, action: &str| {
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/{action}"))
            .insert_header(bearer(k))
    };
    assert_eq!(call!(app, post(&hk, "cancel")).0, StatusCode::FORBIDDEN);
    assert_eq!(call!(app, post(&tk, "cancel")).0, StatusCode::NOT_FOUND);
    assert_eq!(call!(app, post(&tk, "accept")).0, StatusCode::NOT_FOUND);
    assert_eq!(call!(app, post(&sk, "accept")).0, StatusCode::FORBIDDEN);
    assert_eq!(call!(app, post(&tk, "reject")).0, StatusCode::NOT_FOUND);
    assert_eq!(call!(app, post(&sk, "pay")).0, StatusCode::BAD_REQUEST);
    assert_eq!(call!(app, post(&hk, "pay")).0, StatusCode::FORBIDDEN);
    let submit = |k: &str| post(k, "submit").set_json(json!({ "output": "x" }));
    assert_eq!(call!(app, submit(&tk)).0, StatusCode::NOT_FOUND);
    assert_eq!(
        call!(app, get(&hk).uri(&format!("/api/jobs/{id}/logs"))).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call!(app, get(&tk).uri(&format!("/api/jobs/{id}/logs"))).0,
        StatusCode::NOT_FOUND
    );
    // Still held by the holder after all the refusals.
    let (_, j, ..) = call!(app, get(&sk));
    assert_eq!(j["status"], "held");
    assert_eq!(j["env_vars"]["TOKEN"], "secret");
    // Accepted: the receiver sees env_vars; the stranger still sees nothing.
    let (s, j, ..) = call!(app, post(&hk, "accept"));
    assert_eq!(s, StatusCode::OK);
    assert!(j["deadline_at"].is_string());
    assert_eq!(j["env_vars"]["TOKEN"], "secret");
    assert_eq!(call!(app, submit(&sk)).0, StatusCode::FORBIDDEN);
    // The board shows queued jobs only, with public fields only.
    let (_, board, ..) = call!(app, TestRequest::get().uri("/api/board"));
    assert_eq!(board, json!([]));
    let (s, stats, ..) = call!(app, TestRequest::get().uri("/api/board/stats"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stats["counts"]["accepted"], 1);
}

#[actix_web::test]
async fn lifecycle_with_sse_and_payout() {
    let w = world_with(1, true);
    let (_, sk) = user(&w, "sender", 1_000).await;
    let (_, hk) = user(&w, "worker", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let (_, job, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&sk))
            .set_json(json!({ "prompt": "p", "confirmed": true }))
    );
    let id = job["id"].as_str().unwrap().to_string();
    let (s, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/claim"))
            .insert_header(bearer(&hk))
    );
    assert_eq!(s, StatusCode::OK);
    let (s, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/accept"))
            .insert_header(bearer(&hk))
    );
    assert_eq!(s, StatusCode::OK);
    let (s, j, ..) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/submit"))
            .insert_header(bearer(&hk))
            .set_json(json!({ "output": "waves" }))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["status"], "submitted");
    let verified = w.state.market.verify_next().await.unwrap().unwrap();
    assert_eq!(verified.status.as_str(), "verified");
    let (s, _, headers, body) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/jobs/{id}/logs"))
            .insert_header(bearer(&sk))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("id: 1\nevent: log\ndata: {"), "{text}");
    assert!(text.contains("id: 2\nevent: log"), "{text}");
    assert!(
        text.contains("event: verdict\ndata: {\"passed\":true"),
        "{text}"
    );
    // Resume after seq 1: only the second line, then the verdict.
    let (_, _, _, body) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/jobs/{id}/logs"))
            .insert_header(bearer(&hk))
            .insert_header(("Last-Event-ID", "1"))
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !text.contains("id: 1\n") && text.contains("id: 2\n") && text.contains("event: verdict"),
        "{text}"
    );
    // $5.00: the worker gets $3.50.
    let (_, wallet, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/wallet/balance")
            .insert_header(bearer(&hk))
    );
    assert_eq!(wallet["balance_cents"], 350);
    assert_eq!(wallet["ledger"][0]["reason"], "earning");
    let (_, who, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/whoami")
            .insert_header(bearer(&sk))
    );
    assert_eq!(who["user"]["balance_cents"], 500);
    let (_, dir, ..) = call!(app, TestRequest::get().uri("/api/agents/directory"));
    let worker_default = dir
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["jobs_verified"] == 1)
        .unwrap();
    assert_eq!(worker_default["earned_cents"], 350);
}

#[actix_web::test]
async fn idempotency_keys_replay_and_refuse_other_bodies() {
    let w = world_with(1, true);
    let (_, key) = user(&w, "alice", 2_000).await;
    let app = test::init_service(app(w.state.clone())).await;
    let body = json!({ "prompt": "p", "confirmed": true });
    let req = || {
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .insert_header(("Idempotency-Key", "k1"))
    };
    let (s1, j1, ..) = call!(app, req().set_json(&body));
    let (s2, j2, h2, _) = call!(app, req().set_json(&body));
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(j1, j2, "the first answer, as it was");
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    let (s3, b3, ..) = call!(
        app,
        req().set_json(json!({ "prompt": "other", "confirmed": true }))
    );
    assert_eq!(s3, StatusCode::CONFLICT, "{b3}");
    // A top-up stores its answer with its credit, a withdrawal after its payout, a refusal after
    // it: each repeat gets the first answer and moves nothing.
    for (uri, k, cents, status, answer) in [
        (
            "/api/wallet/topup",
            "t1",
            500,
            StatusCode::OK,
            json!({ "balance_cents": 2_000 }),
        ),
        (
            "/api/wallet/withdraw",
            "w1",
            500,
            StatusCode::OK,
            json!({ "balance_cents": 1_500 }),
        ),
        (
            "/api/wallet/withdraw",
            "w2",
            9_000,
            StatusCode::PAYMENT_REQUIRED,
            Value::Null,
        ),
    ] {
        let req = || {
            TestRequest::post()
                .uri(uri)
                .insert_header(bearer(&key))
                .insert_header(("Idempotency-Key", k))
                .set_json(json!({ "amount_cents": cents }))
        };
        let (s1, b1, ..) = call!(app, req());
        let (s2, b2, h2, _) = call!(app, req());
        assert_eq!((s1, s2), (status, status), "{uri} {b1}");
        assert_eq!(b1, b2, "{uri}");
        assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
        if !answer.is_null() {
            assert_eq!(b1, answer, "{uri}");
        }
    }
    let (_, wallet, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/wallet/balance")
            .insert_header(bearer(&key))
    );
    assert_eq!(
        wallet["balance_cents"], 1_500,
        "charged once, credited once, paid out once"
    );
}

/// A keyed request dropped before its use case answered (its client left) releases its key: the
/// change rolled back with it, so the retry runs instead of being told "in progress" for a day.
#[actix_web::test]
async fn a_keyed_request_dropped_before_it_answered_releases_its_key() {
    let w = world_with(0, true);
    let (u, key) = user(&w, "alice", 0).await;
    let req = TestRequest::post()
        .uri("/api/wallet/topup")
        .insert_header(bearer(&key))
        .insert_header(("Idempotency-Key", "gone"))
        .to_http_request();
    let stalled = clawrk_http::idem::once(
        &w.state,
        u,
        &req,
        b"{}",
        |_: &()| clawrk_http::idem::Reply::new(StatusCode::OK, json!({})),
        |_| std::future::pending::<clawrk_domain::Result<clawrk_domain::service::Answered<()>>>(),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stalled)
            .await
            .is_err()
    );
    let released = async {
        loop {
            // Another digest: a key still claimed answers `Mismatch`, a released one is free.
            match w.market.idem_begin(u, "gone", [9u8; 32]).await.unwrap() {
                IdemState::Reserved => return,
                IdemState::Mismatch => tokio::time::sleep(Duration::from_millis(10)).await,
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), released)
        .await
        .expect("the key was released");
}

#[actix_web::test]
async fn agents_pagination_cron_and_openapi() {
    let w = world_with(3, true);
    let (_, key) = user(&w, "alice", 10_000).await;
    let app = test::init_service(app(w.state.clone())).await;
    let (s, a, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/agents")
            .insert_header(bearer(&key))
            .set_json(json!({ "name": "coder", "personality": "rust" }))
    );
    assert_eq!(s, StatusCode::CREATED);
    let aid = a["id"].as_str().unwrap().to_string();
    let (s, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/agents")
            .insert_header(bearer(&key))
            .set_json(json!({ "name": "coder" }))
    );
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, list, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/agents")
            .insert_header(bearer(&key))
    );
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[1]["name"], "coder");
    let (s, p, ..) = call!(
        app,
        TestRequest::patch()
            .uri(&format!("/api/agents/{aid}"))
            .insert_header(bearer(&key))
            .set_json(json!({ "personality": null }))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["personality"], Value::Null);
    let default_id = list[0]["id"].as_str().unwrap();
    let (s, ..) = call!(
        app,
        TestRequest::delete()
            .uri(&format!("/api/agents/{default_id}"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, ..) = call!(
        app,
        TestRequest::delete()
            .uri(&format!("/api/agents/{aid}"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, ..) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/agents/{aid}"))
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::NOT_FOUND);

    for p in ["a", "b", "c"] {
        call!(
            app,
            TestRequest::post()
                .uri("/api/jobs/run")
                .insert_header(bearer(&key))
                .set_json(json!({ "prompt": p, "confirmed": true }))
        );
    }
    let (_, page1, headers, _) = call!(
        app,
        TestRequest::get()
            .uri("/api/jobs?limit=2")
            .insert_header(bearer(&key))
    );
    assert_eq!(page1.as_array().unwrap().len(), 2);
    let link = headers.get("link").unwrap().to_str().unwrap().to_string();
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let (_, page2, headers, _) = call!(
        app,
        TestRequest::get().uri(&next).insert_header(bearer(&key))
    );
    assert_eq!(page2.as_array().unwrap().len(), 1);
    assert!(headers.get("link").is_none());
    assert_eq!(page2[0]["prompt"], "a");

    let cron = || TestRequest::get().uri("/api/cron/enforce-deadlines");
    assert_eq!(call!(app, cron()).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call!(app, cron().insert_header(bearer("wrong"))).0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b, ..) = call!(app, cron().insert_header(bearer("cron-s3cret")));
    assert_eq!(
        (s, b),
        (
            StatusCode::OK,
            json!({ "released_holds": 0, "failed_deadlines": 0, "approved_reviews": 0 })
        )
    );

    let (s, doc, ..) = call!(app, TestRequest::get().uri("/api/openapi.json"));
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/jobs/run",
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/pay",
        "/api/jobs/{id}/cancel",
        "/api/jobs/pull",
        "/api/jobs/{id}/claim",
        "/api/jobs/{id}/accept",
        "/api/jobs/{id}/reject",
        "/api/jobs/{id}/submit",
        "/api/jobs/{id}/fail",
        "/api/jobs/{id}/logs",
        "/api/board",
        "/api/board/stats",
        "/api/agents",
        "/api/agents/{id}",
        "/api/agents/directory",
        "/api/wallet/balance",
        "/api/wallet/topup",
        "/api/wallet/withdraw",
        "/api/whoami",
        "/api/verify",
        "/api/cron/enforce-deadlines",
        "/api/health",
        "/api/openapi.json",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let (s, _, headers, _) = call!(app, TestRequest::get().uri("/api/docs"));
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[actix_web::test]
async fn cron_is_hidden_without_a_secret() {
    let mut w = world_with(0, true);
    w.state.cron_secret = None;
    let app = test::init_service(app(w.state.clone())).await;
    let (s, b, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/cron/enforce-deadlines")
            .insert_header(bearer("x"))
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["error"].is_string());
}

#[actix_web::test]
async fn standalone_verify_and_wallet_moves() {
    let w = world_with(0, false);
    let (_, key) = user(&w, "alice", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let (s, v, ..) = call!(app, TestRequest::post().uri("/api/verify").insert_header(bearer(&key))
        .set_json(json!({ "requirements": "say hi", "acceptance_criteria": ["greets"], "output": "hello" })));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["passed"], false);
    assert_eq!(v["criteria"][0]["criterion"], "greets");
    assert!(v["verified_at"].as_str().unwrap().ends_with('Z'));
    let (s, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/verify")
            .insert_header(bearer(&key))
            .set_json(json!({ "output": "x" }))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/wallet/topup")
            .insert_header(bearer(&key))
            .set_json(json!({ "amount_cents": 800 }))
    );
    assert_eq!((s, b), (StatusCode::OK, json!({ "balance_cents": 800 })));
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/wallet/withdraw")
            .insert_header(bearer(&key))
            .set_json(json!({ "amount_cents": 900 }))
    );
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{b}");
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/wallet/withdraw")
            .insert_header(bearer(&key))
            .set_json(json!({ "amount_cents": 500 }))
    );
    assert_eq!((s, b), (StatusCode::OK, json!({ "balance_cents": 300 })));
}

/// After the deadline a submission is refused with 400 "time limit exceeded" and the attempt is
/// failed; after the hold a late accept is 410 and the job is back in the queue.
#[actix_web::test]
async fn late_submit_and_lapsed_hold() {
    let w = world_with(1, true);
    let (_, sk) = user(&w, "sender", 10_000).await;
    let (_, hk) = user(&w, "worker", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    let run = json!({ "prompt": "p", "confirmed": true, "time_limit_seconds": 60 });
    let (_, job, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&sk))
            .set_json(&run)
    );
    let id = job["id"].as_str().unwrap().to_string();
    let post = |action: &str| {
        TestRequest::post()
            .uri(&format!("/api/jobs/{id}/{action}"))
            .insert_header(bearer(&hk))
    };
    assert_eq!(call!(app, post("claim")).0, StatusCode::OK);
    w.clock.shift(31_000);
    let (s, b, ..) = call!(app, post("accept"));
    assert_eq!(
        (s, b),
        (
            StatusCode::GONE,
            json!({ "error": "hold expired", "code": "hold_expired" })
        )
    );
    let (_, j, ..) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/jobs/{id}"))
            .insert_header(bearer(&sk))
    );
    assert_eq!(j["status"], "queued");

    assert_eq!(call!(app, post("claim")).0, StatusCode::OK);
    assert_eq!(call!(app, post("accept")).0, StatusCode::OK);
    w.clock.shift(61_000);
    let (s, b, ..) = call!(app, post("submit").set_json(json!({ "output": "late" })));
    assert_eq!(
        (s, b),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "time limit exceeded", "code": "deadline_passed" })
        )
    );
    let (_, j, ..) = call!(
        app,
        TestRequest::get()
            .uri(&format!("/api/jobs/{id}"))
            .insert_header(bearer(&sk))
    );
    assert_eq!(
        (j["status"].as_str(), j["attempt_count"].as_i64()),
        (Some("queued"), Some(1))
    );
}

/// The role matrix: every job route × {no key, unknown key, stranger, sender, holder or receiver}
/// on a held job and on an accepted one, each cell on a fresh marketplace. Expected statuses are
/// SPEC §2/§5's: 401 without a valid key, 404 where the job is not visible, 403 for the wrong
/// role, 400 for a transition the status does not allow (claim of a job that is not queued).
#[actix_web::test]
async fn role_matrix_over_every_job_route() {
    // (route, method, [held job: none, unknown, stranger, sender, holder],
    //                 [accepted job: none, unknown, stranger, sender, receiver])
    let table: &[(&str, &str, [u16; 5], [u16; 5])] = &[
        (
            "",
            "GET",
            [401, 401, 404, 200, 200],
            [401, 401, 404, 200, 200],
        ),
        (
            "/pay",
            "POST",
            [401, 401, 404, 400, 403],
            [401, 401, 404, 400, 403],
        ),
        (
            "/cancel",
            "POST",
            [401, 401, 404, 200, 403],
            [401, 401, 404, 200, 403],
        ),
        (
            "/claim",
            "POST",
            // A job that is not queued does not exist for a stranger.
            [401, 401, 404, 400, 400],
            [401, 401, 404, 400, 400],
        ),
        (
            "/accept",
            "POST",
            [401, 401, 404, 403, 200],
            [401, 401, 404, 400, 400],
        ),
        (
            "/reject",
            "POST",
            [401, 401, 404, 403, 200],
            [401, 401, 404, 400, 400],
        ),
        (
            "/submit",
            "POST",
            [401, 401, 404, 403, 403],
            [401, 401, 404, 403, 200],
        ),
        (
            "/fail",
            "POST",
            [401, 401, 404, 403, 403],
            [401, 401, 404, 403, 200],
        ),
        (
            "/logs",
            "GET",
            [401, 401, 404, 200, 403],
            [401, 401, 404, 200, 200],
        ),
    ];
    for (suffix, method, held, accepted) in table {
        for (accept_first, expected) in [(false, held), (true, accepted)] {
            for (who, want) in expected.iter().enumerate() {
                let w = world_with(1, true);
                let (_, sk) = user(&w, "sender", 10_000).await;
                let (_, ak) = user(&w, "agent", 0).await;
                let (_, tk) = user(&w, "stranger", 0).await;
                let app = test::init_service(app(w.state.clone())).await;
                let (_, job, ..) = call!(
                    app,
                    TestRequest::post()
                        .uri("/api/jobs/run")
                        .insert_header(bearer(&sk))
                        .set_json(json!({ "prompt": "p", "confirmed": true }))
                );
                let id = job["id"].as_str().unwrap().to_string();
                assert_eq!(
                    call!(
                        app,
                        TestRequest::post()
                            .uri(&format!("/api/jobs/{id}/claim"))
                            .insert_header(bearer(&ak))
                    )
                    .0,
                    200
                );
                if accept_first {
                    assert_eq!(
                        call!(
                            app,
                            TestRequest::post()
                                .uri(&format!("/api/jobs/{id}/accept"))
                                .insert_header(bearer(&ak))
                        )
                        .0,
                        200
                    );
                }
                let uri = format!("/api/jobs/{id}{suffix}");
                let mut req = if *method == "GET" {
                    TestRequest::get()
                } else {
                    TestRequest::post()
                }
                .uri(&uri);
                req = match who {
                    0 => req,
                    1 => req.insert_header(bearer("ck_nobody")),
                    2 => req.insert_header(bearer(&tk)),
                    3 => req.insert_header(bearer(&sk)),
                    _ => req.insert_header(bearer(&ak)),
                };
                if *suffix == "/submit" {
                    req = req.set_json(json!({ "output": "done" }));
                }
                // Status only: a log stream of a job at work does not end.
                let resp = test::call_service(&app, req.to_request()).await;
                let role = [
                    "no key",
                    "unknown key",
                    "stranger",
                    "sender",
                    if accept_first { "receiver" } else { "holder" },
                ][who];
                let state = if accept_first { "accepted" } else { "held" };
                assert_eq!(
                    resp.status().as_u16(),
                    *want,
                    "{method} {suffix:?} on a {state} job as {role}"
                );
                if *want >= 400 {
                    let body: Value = test::read_body_json(resp).await;
                    assert!(body["error"].is_string(), "{body}");
                }
            }
        }
    }
}

/// Every other route: 401 without a valid key, or public.
#[actix_web::test]
async fn routes_need_a_key_unless_public() {
    let w = world_with(0, true);
    let app = test::init_service(app(w.state.clone())).await;
    let agent = uuid::Uuid::now_v7();
    let private: &[(&str, String)] = &[
        ("POST", "/api/jobs/run".into()),
        ("GET", "/api/jobs".into()),
        ("POST", "/api/jobs/pull".into()),
        ("GET", "/api/agents".into()),
        ("POST", "/api/agents".into()),
        ("GET", format!("/api/agents/{agent}")),
        ("PATCH", format!("/api/agents/{agent}")),
        ("DELETE", format!("/api/agents/{agent}")),
        ("GET", "/api/wallet/balance".into()),
        ("POST", "/api/wallet/topup".into()),
        ("POST", "/api/wallet/withdraw".into()),
        ("GET", "/api/whoami".into()),
        ("POST", "/api/whoami".into()),
        ("POST", "/api/verify".into()),
    ];
    for (method, path) in private {
        for key in [None, Some("ck_nobody")] {
            let mut req = TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path);
            if let Some(k) = key {
                req = req.insert_header(bearer(k));
            }
            let (s, b, ..) = call!(app, req);
            assert_eq!(
                (s, b),
                (
                    StatusCode::UNAUTHORIZED,
                    json!({ "error": "Authentication required", "code": "unauthorized" })
                ),
                "{method} {path}"
            );
        }
    }
    for path in [
        "/api/board",
        "/api/board/stats",
        "/api/agents/directory",
        "/api/health",
        "/api/openapi.json",
    ] {
        assert_eq!(
            call!(app, TestRequest::get().uri(path)).0,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// With a limit, a caller over its rate gets 429 with `Retry-After`; another caller is not
/// affected. A key counts as its user once this instance authenticated it; before that, and for
/// unknown or malformed tokens, requests count against the caller's address, so random tokens do
/// not buy fresh buckets (nor a store lookup each, beyond the address's rate).
#[actix_web::test]
async fn callers_over_their_rate_get_429() {
    let mut w = world_with(0, true);
    let (_, a) = user(&w, "alice", 0).await;
    let (_, b) = user(&w, "bob", 0).await;
    w.state.rate_limit = clawrk_http::limit::RateLimit::per_second(2).map(Arc::new);
    let app = test::init_service(app(w.state.clone())).await;
    let from = |ip: &str| std::net::SocketAddr::new(ip.parse().unwrap(), 4000);
    let who = |k: &str, ip: &str| {
        TestRequest::get()
            .uri("/api/whoami")
            .peer_addr(from(ip))
            .insert_header(bearer(k))
    };
    // Alice's first request is counted against her address; then against her.
    assert_eq!(call!(app, who(&a, "10.0.0.1")).0, StatusCode::OK);
    assert_eq!(call!(app, who(&a, "10.0.0.1")).0, StatusCode::OK);
    assert_eq!(call!(app, who(&a, "10.0.0.1")).0, StatusCode::OK);
    let (s, body, headers, _) = call!(app, who(&a, "10.0.0.1"));
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["error"].as_str().unwrap().starts_with("rate limited"));
    assert!(headers.get("retry-after").is_some());
    assert_eq!(call!(app, who(&b, "10.0.0.2")).0, StatusCode::OK);
    // Random tokens from one address: two get 401, the rest 429.
    let mut statuses = vec![];
    for i in 0..10u8 {
        let token = api_key_from([i.wrapping_add(100); 32]);
        statuses.push(call!(app, who(&token, "10.0.0.3")).0.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        8,
        "{statuses:?}"
    );
    let garbage = call!(app, who("not-a-key", "10.0.0.3")).0;
    assert_eq!(garbage, StatusCode::TOO_MANY_REQUESTS);
}

/// Bodies must be JSON objects; a PATCH needs one; a NUL in a stored text is refused naming the
/// field; other methods answer 405 with `Allow`; HEAD answers as GET without a body.
#[actix_web::test]
async fn malformed_requests_are_refused_and_change_nothing() {
    let w = world_with(0, true);
    let (_, key) = user(&w, "alice", 1_000).await;
    let app = test::init_service(app(w.state.clone())).await;
    for (uri, body) in [
        ("/api/jobs/run", "[\"Write a haiku\"]"),
        ("/api/jobs/pull", "[null,null]"),
        ("/api/jobs/run", "\u{c}"),
        ("/api/agents", "\"poet\""),
    ] {
        let (s, b, ..) = call!(
            app,
            TestRequest::post()
                .uri(uri)
                .insert_header(bearer(&key))
                .set_payload(body)
        );
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri} {body:?}");
        assert!(b["error"].is_string(), "{b}");
    }
    let agents = w
        .market
        .agents(w.market.find_user("alice").await.unwrap().id)
        .await
        .unwrap();
    let agent = agents[0].id;
    for body in ["", "\u{c}"] {
        let (s, b, ..) = call!(
            app,
            TestRequest::patch()
                .uri(&format!("/api/agents/{agent}"))
                .insert_header(bearer(&key))
                .set_payload(body)
        );
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(b["error"].as_str().unwrap().contains("body"), "{b}");
    }
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_payload(r#"{"prompt": "a\u0000b", "confirmed": true}"#)
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "prompt must not contain NUL characters");
    let (s, b, ..) = call!(
        app,
        TestRequest::post()
            .uri("/api/agents")
            .insert_header(bearer(&key))
            .set_payload(r#"{"name": "poet", "personality": "\u0000"}"#)
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "personality must not contain NUL characters");
    assert_eq!(w.market.agents(agents[0].owner_id).await.unwrap().len(), 1);
    // 405 with the route's methods; HEAD on a GET route.
    let (s, b, headers, _) = call!(app, TestRequest::delete().uri("/api/jobs/run"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get("allow").unwrap(), "POST");
    assert!(b["error"].as_str().unwrap().contains("POST"));
    let (_, _, headers, _) = call!(app, TestRequest::put().uri(&format!("/api/agents/{agent}")));
    assert_eq!(headers.get("allow").unwrap(), "GET, HEAD, PATCH, DELETE");
    let (s, _, headers, _) = call!(
        app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/api/health")
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
}

/// A bug that panics inside a request answers 500 in the error shape (nothing of the panic
/// disclosed), and the server keeps serving.
#[actix_web::test]
async fn a_panic_is_an_internal_error_not_a_dropped_connection() {
    let mut structurer = MockStructurer::new();
    structurer
        .expect_structure()
        .returning(|_, _| panic!("a bug with a secret inside"));
    let w = world_of(structurer, true);
    let (_, key) = user(&w, "alice", 0).await;
    let app = test::init_service(app(w.state.clone())).await;
    // The framework turns the error into the answer (as the server does on the wire).
    let err = test::try_call_service(
        &app,
        TestRequest::post()
            .uri("/api/jobs/run")
            .insert_header(bearer(&key))
            .set_json(json!({ "prompt": "a haiku" }))
            .to_request(),
    )
    .await
    .err()
    .expect("the panic became an error");
    let resp = err.error_response();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body,
        json!({ "error": "internal error", "code": "internal" })
    );
    let (s, ..) = call!(
        app,
        TestRequest::get()
            .uri("/api/whoami")
            .insert_header(bearer(&key))
    );
    assert_eq!(s, StatusCode::OK);
}
