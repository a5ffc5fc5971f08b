//! End to end on PostgreSQL: the real server binary, a wiremock OpenAI, and HTTP as a user drives
//! it. The whole lifecycle (estimate, 402 then pay, pull/reject/pull, accept, submit, the SSE
//! stream to its verdict, the payout), three failed attempts, cancel in each status, an expired
//! hold, and a crash during verification.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

const STREAM: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_on_postgres() {
    let (_pg, db) = postgres();
    let (_llm, _fake, llm_env) = fake_llm(true).await;
    let server = Server::start(&db, &llm_env).await;
    let alice = create_user(&db, "alice", 0);
    let bob = create_user(&db, "bob", 0);
    let carol = create_user(&db, "carol", 0);
    let (a, b, c) = (
        server.api(&alice.key),
        server.api(&bob.key),
        server.api(&carol.key),
    );

    // Estimate, then confirm with an empty wallet: 402 with the job.
    let (s, est) = a
        .post("/jobs/run", json!({"prompt": "a haiku about the sea"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(est["needs_confirmation"], true);
    assert_eq!(est["estimated_price_cents"], 500);
    let (s, pending) = a
        .post(
            "/jobs/run",
            json!({"prompt": "a haiku about the sea", "confirmed": true}),
        )
        .await;
    assert_eq!(s, 402, "{pending}");
    assert_eq!(pending["required_cents"], 500);
    assert_eq!(pending["available_cents"], 0);
    assert_eq!(pending["job"]["status"], "pending_payment");
    assert_eq!(pending["job"]["structured_by"], "llm:test-model");
    let id = pending["job"]["id"].as_str().unwrap().to_string();
    admin(&db, &["credit", "alice", "1000"]);
    let (s, paid) = a.post(&format!("/jobs/{id}/pay"), json!({})).await;
    assert_eq!((s, paid["status"].as_str()), (200, Some("queued")));
    assert_eq!(a.balance().await, 500);

    // Bob pulls and rejects; pulling again does not offer the same job.
    let (s, held) = b.post("/jobs/pull", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(held["job"]["id"], id.as_str());
    assert!(held["hold_expires_at"].is_string());
    let (s, _) = b.post(&format!("/jobs/{id}/reject"), json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = b.post("/jobs/pull", json!({})).await;
    assert_eq!(s, 204);

    // Carol pulls, accepts and submits; the verifier passes; the stream ends with the verdict.
    let (s, _) = c.post("/jobs/pull", json!({})).await;
    assert_eq!(s, 200);
    let (s, acc) = c.post(&format!("/jobs/{id}/accept"), json!({})).await;
    assert_eq!((s, acc["status"].as_str()), (200, Some("accepted")));
    let (s, sub) = c
        .post(
            &format!("/jobs/{id}/submit"),
            json!({"output": "the sea / three lines / done"}),
        )
        .await;
    assert_eq!((s, sub["status"].as_str()), (200, Some("submitted")));
    let text = a.follow_logs(&id, STREAM).await;
    assert!(text.contains("event: log"), "{text}");
    assert!(text.contains("event: verdict"), "{text}");
    assert!(text.contains("\"passed\":true"), "{text}");
    let (_, job) = a.get(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "verified");
    assert_eq!(job["verification"]["verifier"], "llm:test-model");
    // $5.00 → fee $1.50, Carol $3.50; Alice paid $5.00 of her $10.00.
    assert_eq!(c.balance().await, 350);
    assert_eq!(a.balance().await, 500);
    assert_eq!(b.balance().await, 0);
    // A stream opened after the verdict replays everything and ends at once.
    let again = c.follow_logs(&id, STREAM).await;
    assert!(
        again.contains("id: 1\n") && again.contains("event: verdict"),
        "{again}"
    );
    let (_, stats) = a.get("/board/stats").await;
    assert_eq!(stats["total_paid_out_cents"], 350);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failed_attempts_fail_and_refund() {
    let (_pg, db) = postgres();
    let (_llm, fake, llm_env) = fake_llm(false).await;
    let server = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 500);
    let s = server.api(&sender.key);
    let (st, job) = s
        .post("/jobs/run", json!({"prompt": "p", "confirmed": true}))
        .await;
    assert_eq!(st, 201);
    let id = job["id"].as_str().unwrap().to_string();
    for n in 1..=3 {
        let w = create_user(&db, &format!("w{n}"), 0);
        let api = server.api(&w.key);
        assert_eq!(api.post("/jobs/pull", json!({})).await.0, 200);
        assert_eq!(
            api.post(&format!("/jobs/{id}/accept"), json!({})).await.0,
            200
        );
        assert_eq!(
            api.post(&format!("/jobs/{id}/submit"), json!({"output": "x"}))
                .await
                .0,
            200
        );
        let text = s.follow_logs(&id, STREAM).await;
        assert!(text.contains("\"passed\":false"), "{text}");
        let (_, j) = s.get(&format!("/jobs/{id}")).await;
        assert_eq!(j["attempt_count"], n);
        let want = if n < 3 { "queued" } else { "failed" };
        assert_eq!(j["status"], want);
    }
    assert_eq!(fake.verdicts.load(Ordering::SeqCst), 3);
    assert_eq!(s.balance().await, 500, "refunded in full");
    let (_, w) = s.get("/wallet/balance").await;
    assert_eq!(w["ledger"][0]["reason"], "refund");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_each_status_and_an_expired_hold() {
    let (_pg, db) = postgres();
    let server = Server::start(&db, &env(&[("CLAWRK_HOLD_SECONDS", "1")])).await;
    let sender = create_user(&db, "sender", 5_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.api(&sender.key), server.api(&worker.key));
    let new_job = || async {
        let (st, j) = s
            .post("/jobs/run", json!({"prompt": "write a haiku about the sea", "price_cents": 500, "confirmed": true}))
            .await;
        assert_eq!(st, 201, "{j}");
        j["id"].as_str().unwrap().to_string()
    };
    // queued → cancelled, refunded.
    let q = new_job().await;
    let (st, j) = s.post(&format!("/jobs/{q}/cancel"), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(s.balance().await, 5_000);
    // held → cancelled, refunded.
    let h = new_job().await;
    assert_eq!(w.post(&format!("/jobs/{h}/claim"), json!({})).await.0, 200);
    assert_eq!(w.post(&format!("/jobs/{h}/cancel"), json!({})).await.0, 403);
    let (st, j) = s.post(&format!("/jobs/{h}/cancel"), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(s.balance().await, 5_000);
    // accepted → cancellation requested; the receiver's failure then cancels and refunds.
    let a = new_job().await;
    assert_eq!(w.post(&format!("/jobs/{a}/claim"), json!({})).await.0, 200);
    assert_eq!(w.post(&format!("/jobs/{a}/accept"), json!({})).await.0, 200);
    let (st, j) = s.post(&format!("/jobs/{a}/cancel"), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("accepted")));
    assert_eq!(j["cancellation_requested"], true);
    assert_eq!(s.balance().await, 4_500);
    let (st, j) = w
        .post(&format!("/jobs/{a}/fail"), json!({"reason": "cannot"}))
        .await;
    assert_eq!((st, j["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(s.balance().await, 5_000);
    // A final job: no-op, 200.
    let (st, j) = s.post(&format!("/jobs/{a}/cancel"), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("cancelled")));
    // pending_payment → cancelled, nothing to refund.
    let (st, p) = s
        .post(
            "/jobs/run",
            json!({"prompt": "big", "price_cents": 100_000, "confirmed": true}),
        )
        .await;
    assert_eq!(st, 402);
    let pid = p["job"]["id"].as_str().unwrap();
    let (st, j) = s.post(&format!("/jobs/{pid}/cancel"), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(s.balance().await, 5_000);
    // An expired hold: 410, and the job is back in the queue.
    let e = new_job().await;
    assert_eq!(w.post("/jobs/pull", json!({})).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (st, err) = w.post(&format!("/jobs/{e}/accept"), json!({})).await;
    assert_eq!(st, 410, "{err}");
    assert_eq!(err["error"], "hold expired");
    let (_, j) = s.get(&format!("/jobs/{e}")).await;
    assert_eq!(j["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_verification_is_resumed_and_paid_once() {
    let (_pg, db) = postgres();
    let (_llm, fake, mut llm_env) = fake_llm(true).await;
    llm_env.push(("CLAWRK_VERIFY_LEASE_SECONDS".into(), "2".into()));
    llm_env.push(("CLAWRK_LLM_TIMEOUT_SECONDS".into(), "30".into()));
    let mut server = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.api(&sender.key), server.api(&worker.key));
    let (_, job) = s
        .post("/jobs/run", json!({"prompt": "p", "confirmed": true}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(w.post("/jobs/pull", json!({})).await.0, 200);
    assert_eq!(
        w.post(&format!("/jobs/{id}/accept"), json!({})).await.0,
        200
    );
    // The verifier hangs; the server dies while it waits.
    fake.delay_ms.store(20_000, Ordering::SeqCst);
    assert_eq!(
        w.post(&format!("/jobs/{id}/submit"), json!({"output": "x"}))
            .await
            .0,
        200
    );
    eventually("verification to start", Duration::from_secs(10), || async {
        fake.verdicts.load(Ordering::SeqCst) >= 1
    })
    .await;
    server.kill();
    // Restart with a prompt verifier: the job is verified once its lease lapses, and paid once.
    fake.delay_ms.store(0, Ordering::SeqCst);
    let server = Server::start(&db, &llm_env).await;
    let s = server.api(&sender.key);
    eventually(
        "the job to be verified after the restart",
        Duration::from_secs(20),
        || async { s.get(&format!("/jobs/{id}")).await.1["status"] == "verified" },
    )
    .await;
    let w = server.api(&worker.key);
    let (_, wallet) = w.get("/wallet/balance").await;
    assert_eq!(wallet["balance_cents"], 350);
    let earnings = wallet["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "earning")
        .count();
    assert_eq!(earnings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_print_one_json_object() {
    let (_pg, db) = postgres();
    let u = admin(&db, &["create-user", "dora"]);
    assert!(u["user_id"].is_string() && u["api_key"].as_str().unwrap().len() >= 32);
    let k = admin(&db, &["create-key", "dora"]);
    assert_eq!(k["user_id"], u["user_id"]);
    assert_ne!(k["api_key"], u["api_key"]);
    let c = admin(&db, &["credit", u["user_id"].as_str().unwrap(), "5000"]);
    assert_eq!(c, json!({"user_id": u["user_id"], "balance_cents": 5000}));
    let c = admin(&db, &["credit", "dora", "-1000"]);
    assert_eq!(c["balance_cents"], 4000);
    // Errors: exit non-zero with a JSON error.
    let out = std::process::Command::new(BIN)
        .env(
            "DATABASE_URL",
            match &db {
                Db::Postgres(u) => u.clone(),
                Db::Sqlite(_) => unreachable!(),
            },
        )
        .args(["admin", "credit", "nobody", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(err["error"].as_str().unwrap().contains("not found"));
    let server = Server::start(&db, &[]).await;
    let api = server.api(k["api_key"].as_str().unwrap());
    let (s, who) = api.get("/whoami").await;
    assert_eq!(s, 200);
    assert_eq!(who["user"]["name"], "dora");
    assert_eq!(who["user"]["balance_cents"], 4000);
    // Manual payments: top-up and withdraw are 501.
    assert_eq!(
        api.post("/wallet/topup", json!({"amount_cents": 500}))
            .await
            .0,
        501
    );
    assert_eq!(
        api.post("/wallet/withdraw", json!({"amount_cents": 500}))
            .await
            .0,
        501
    );
}

/// SIGTERM: the server finishes what it is doing and exits cleanly (status 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let (_pg, db) = postgres();
    let mut server = Server::start(&db, &[]).await;
    let u = create_user(&db, "erin", 0);
    let (s, _) = server.api(&u.key).get("/whoami").await;
    assert_eq!(s, 200);
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

/// `/api/health` reflects the store: 200 while PostgreSQL answers, 503 once the database is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflects_the_store() {
    let (pg, db) = postgres();
    let server = Server::start(&db, &[]).await;
    let api = server.api("");
    assert_eq!(api.get("/health").await.0, 200);
    drop(pg); // DROP DATABASE … WITH (FORCE): every connection of the server is cut.
    eventually("health to answer 503", Duration::from_secs(30), || async {
        api.get("/health").await.0 == 503
    })
    .await;
    let (s, body) = api.get("/health").await;
    assert_eq!(s, 503);
    assert!(body["error"].is_string());
}

/// Two instances on one database: the job is submitted to and followed on an API-only instance,
/// verified by the other; the stream still delivers every line and the verdict (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sees_lines_written_by_another_instance() {
    let (_pg, db) = postgres();
    let api_only = Server::start(&db, &env(&[("CLAWRK_VERIFY_WORKERS", "0")])).await;
    let verifier = Server::start(&db, &env(&[("CLAWRK_VERIFY_WORKERS", "1")])).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (api_only.api(&sender.key), api_only.api(&worker.key));
    let (_, job) = s
        .post(
            "/jobs/run",
            json!({"prompt": "write a haiku about the sea", "confirmed": true}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(w.post(&format!("/jobs/{id}/claim"), json!({})).await.0, 200);
    assert_eq!(
        w.post(&format!("/jobs/{id}/accept"), json!({})).await.0,
        200
    );
    let follower = tokio::spawn({
        let s = api_only.api(&sender.key);
        let id = id.clone();
        async move { s.follow_logs(&id, STREAM).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = "write the sea a haiku: grey waves fold into white foam";
    assert_eq!(
        w.post(&format!("/jobs/{id}/submit"), json!({"output": out}))
            .await
            .0,
        200
    );
    let text = follower.await.unwrap();
    assert!(text.contains("id: 1\nevent: log"), "{text}");
    assert!(text.contains("event: verdict"), "{text}");
    let (_, j) = verifier.api(&sender.key).get(&format!("/jobs/{id}")).await;
    assert_eq!(j["status"], "verified");
}

/// Many streams of one job share one reader on the instance, and every one of them gets the lines
/// and the verdict (they used to pass the reader's role around without ever reading).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_of_one_job_all_get_the_verdict() {
    const STREAMS: usize = 40;
    let (_pg, db) = postgres();
    let server = Server::start(&db, &[]).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.api(&sender.key), server.api(&worker.key));
    let (_, job) = s
        .post(
            "/jobs/run",
            json!({"prompt": "write a haiku about the sea", "confirmed": true}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(w.post(&format!("/jobs/{id}/claim"), json!({})).await.0, 200);
    assert_eq!(
        w.post(&format!("/jobs/{id}/accept"), json!({})).await.0,
        200
    );
    let followers: Vec<_> = (0..STREAMS)
        .map(|_| {
            let s = server.api(&sender.key);
            let id = id.clone();
            tokio::spawn(async move { s.follow_logs(&id, STREAM).await })
        })
        .collect();
    // Past one poll period of the shared reader, so that it is waiting when the verdict comes.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let out = "write the sea a haiku: grey waves fold into white foam";
    assert_eq!(
        w.post(&format!("/jobs/{id}/submit"), json!({"output": out}))
            .await
            .0,
        200
    );
    for f in followers {
        let text = f.await.unwrap();
        assert!(text.contains("id: 1\nevent: log"), "{text}");
        assert!(text.contains("event: verdict"), "{text}");
    }
}
