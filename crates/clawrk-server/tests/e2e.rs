//! End to end on PostgreSQL: the real server binary, a wiremock OpenAI, and the typed client as a
//! user drives it. The whole lifecycle (estimate, 402 then pay, pull/reject/pull, accept, submit,
//! the log stream to its verdict, the payout), three failed attempts, cancel in each status, an
//! expired hold, a crash during verification, the admin commands, SIGTERM, health, and streams
//! across instances and in numbers.

mod common;

use clawrk_client::api::*;
use clawrk_client::{Client, ErrorCode, LogEvent, PageRequest, RunOutcome};
use common::*;
use futures::StreamExt;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

const STREAM: Duration = Duration::from_secs(20);

/// Follows a job's log to its last event: the lines and the verdict.
async fn follow(c: &Client, id: Uuid) -> (Vec<LogLine>, Option<Verdict>) {
    let mut s = Box::pin(c.follow_logs(id));
    let mut lines = Vec::new();
    loop {
        let ev = tokio::time::timeout(STREAM, s.next())
            .await
            .expect("the stream moved")
            .expect("the stream ended with its last event")
            .unwrap();
        match ev {
            LogEvent::Line(l) => lines.push(l),
            LogEvent::Verdict(v) => return (lines, Some(v)),
            LogEvent::End(_) => return (lines, None),
            LogEvent::ServerError(_) => {}
        }
    }
}

/// Reads a job's log stream from `base` as raw text, in a task, until the stream ends; fails if it
/// does not answer 200 or is still open after `limit`.
fn raw_stream(
    base: &str,
    id: Uuid,
    key: &str,
    limit: Duration,
    until: &'static str,
) -> tokio::task::JoinHandle<String> {
    let url = format!("{base}/api/jobs/{id}/logs");
    let key = key.to_string();
    tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::timeout(limit, resp.text())
            .await
            .expect(until)
            .unwrap()
    })
}

async fn balance(c: &Client) -> i64 {
    c.wallet(&PageRequest::default())
        .await
        .unwrap()
        .balance_cents
}

async fn queued(c: &Client, req: RunRequest) -> Job {
    match c.run(&req).await.unwrap() {
        RunOutcome::Queued(j) => j,
        other => panic!("{other:?}"),
    }
}

fn none() -> AgentChoice {
    AgentChoice::default()
}

fn pull_now() -> PullRequest {
    PullRequest::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_on_postgres() {
    let (_pg, db) = postgres();
    let (_llm, _fake, llm_env) = fake_llm(true).await;
    let server = Server::start(&db, &llm_env).await;
    let alice = create_user(&db, "alice", 0);
    let bob = create_user(&db, "bob", 0);
    let carol = create_user(&db, "carol", 0);
    let (a, b, c) = (
        server.client(&alice.key),
        server.client(&bob.key),
        server.client(&carol.key),
    );

    // Estimate, then confirm with an empty wallet: 402 with the job.
    let est = a.estimate("a haiku about the sea").await.unwrap();
    assert!(est.needs_confirmation);
    assert_eq!(est.estimated_price_cents, 500);
    let RunOutcome::PendingPayment {
        job: pending,
        required_cents,
        available_cents,
    } = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("an empty wallet leaves the job pending")
    };
    assert_eq!((required_cents, available_cents), (500, 0));
    assert_eq!(pending.status, JobStatus::PendingPayment);
    assert_eq!(pending.structured_by, "llm:test-model");
    let id = pending.id;
    admin(&db, &["credit", "alice", "1000"]);
    assert_eq!(a.pay(id).await.unwrap().status, JobStatus::Queued);
    assert_eq!(balance(&a).await, 500);

    // Bob pulls and rejects; pulling again does not offer the same job.
    let held = b.pull(&pull_now()).await.unwrap().unwrap();
    assert_eq!(held.job.id, id);
    b.reject(id, &none()).await.unwrap();
    assert!(b.pull(&pull_now()).await.unwrap().is_none());

    // Carol pulls, accepts and submits; the verifier passes; the stream ends with the verdict.
    assert!(c.pull(&pull_now()).await.unwrap().is_some());
    assert_eq!(
        c.accept(id, &none()).await.unwrap().status,
        JobStatus::Accepted
    );
    let sub = c
        .submit(id, &SubmitRequest::text("the sea / three lines / done"))
        .await
        .unwrap();
    assert_eq!(sub.status, JobStatus::Submitted);
    let (lines, verdict) = follow(&a, id).await;
    assert!(!lines.is_empty());
    assert!(verdict.unwrap().passed);
    let job = a.job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Verified);
    assert_eq!(job.verification.unwrap().verifier, "llm:test-model");
    // $5.00 → fee $1.50, Carol $3.50; Alice paid $5.00 of her $10.00.
    assert_eq!(balance(&c).await, 350);
    assert_eq!(balance(&a).await, 500);
    assert_eq!(balance(&b).await, 0);
    // A stream opened after the verdict replays everything and ends at once.
    let (again, verdict) = follow(&c, id).await;
    assert_eq!(again[0].seq, 1);
    assert_eq!(again.len(), lines.len());
    assert!(verdict.is_some());
    assert_eq!(a.stats().await.unwrap().total_paid_out_cents, 350);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failed_attempts_fail_and_refund() {
    let (_pg, db) = postgres();
    let (_llm, fake, llm_env) = fake_llm(false).await;
    let server = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 500);
    let s = server.client(&sender.key);
    let id = queued(&s, RunRequest::confirmed("p")).await.id;
    for n in 1..=3 {
        let w = create_user(&db, &format!("w{n}"), 0);
        let api = server.client(&w.key);
        assert!(api.pull(&pull_now()).await.unwrap().is_some());
        api.accept(id, &none()).await.unwrap();
        api.submit(id, &SubmitRequest::text("x")).await.unwrap();
        let (_, verdict) = follow(&s, id).await;
        assert!(!verdict.unwrap().passed);
        let j = s.job(id).await.unwrap();
        assert_eq!(j.attempt_count, n);
        let want = if n < 3 {
            JobStatus::Queued
        } else {
            JobStatus::Failed
        };
        assert_eq!(j.status, want);
    }
    assert_eq!(fake.verdicts.load(Ordering::SeqCst), 3);
    assert_eq!(balance(&s).await, 500, "refunded in full");
    let w = s.wallet(&PageRequest::default()).await.unwrap();
    assert_eq!(w.ledger.items[0].reason, LedgerReason::Refund);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_each_status_and_an_expired_hold() {
    let (_pg, db) = postgres();
    let server = Server::start(&db, &env(&[("CLAWRK_HOLD_SECONDS", "1")])).await;
    let sender = create_user(&db, "sender", 5_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let new_job = || async {
        queued(
            &s,
            RunRequest {
                price_cents: Some(500),
                ..RunRequest::confirmed("write a haiku about the sea")
            },
        )
        .await
        .id
    };
    // queued → cancelled, refunded.
    let q = new_job().await;
    assert_eq!(s.cancel(q).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(balance(&s).await, 5_000);
    // held → cancelled, refunded.
    let h = new_job().await;
    w.claim(h, &none()).await.unwrap();
    assert_eq!(
        w.cancel(h).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(s.cancel(h).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(balance(&s).await, 5_000);
    // accepted → cancellation requested; the receiver's failure then cancels and refunds.
    let a = new_job().await;
    w.claim(a, &none()).await.unwrap();
    w.accept(a, &none()).await.unwrap();
    let j = s.cancel(a).await.unwrap();
    assert_eq!(
        (j.status, j.cancellation_requested),
        (JobStatus::Accepted, true)
    );
    assert_eq!(balance(&s).await, 4_500);
    let j = w.fail(a, Some("cannot")).await.unwrap();
    assert_eq!(j.status, JobStatus::Cancelled);
    assert_eq!(balance(&s).await, 5_000);
    // A final job: no-op, 200.
    assert_eq!(s.cancel(a).await.unwrap().status, JobStatus::Cancelled);
    // pending_payment → cancelled, nothing to refund.
    let RunOutcome::PendingPayment { job: p, .. } = s
        .run(&RunRequest {
            price_cents: Some(100_000),
            ..RunRequest::confirmed("big")
        })
        .await
        .unwrap()
    else {
        panic!("pending")
    };
    assert_eq!(s.cancel(p.id).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(balance(&s).await, 5_000);
    // An expired hold: 410, and the job is back in the queue.
    let e = new_job().await;
    assert!(w.pull(&pull_now()).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let err = w.accept(e, &none()).await.unwrap_err();
    let clawrk_client::Error::Api(err) = err else {
        panic!("an API error")
    };
    assert_eq!((err.status, err.code), (410, ErrorCode::HoldExpired));
    assert_eq!(err.message, "hold expired");
    assert_eq!(s.job(e).await.unwrap().status, JobStatus::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_verification_is_resumed_and_paid_once() {
    let (_pg, db) = postgres();
    let (_llm, fake, mut llm_env) = fake_llm(true).await;
    // A lease just above what a verification may take (4 s, no retries, twice in `auto`): the
    // restarted server takes the job over soon after.
    llm_env.push(("CLAWRK_VERIFY_LEASE_SECONDS".into(), "10".into()));
    llm_env.push(("CLAWRK_LLM_TIMEOUT_SECONDS".into(), "4".into()));
    let mut server = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("p")).await.id;
    assert!(w.pull(&pull_now()).await.unwrap().is_some());
    w.accept(id, &none()).await.unwrap();
    // The verifier hangs; the server dies while it waits.
    fake.delay_ms.store(20_000, Ordering::SeqCst);
    w.submit(id, &SubmitRequest::text("x")).await.unwrap();
    eventually("verification to start", Duration::from_secs(10), || async {
        fake.verdicts.load(Ordering::SeqCst) >= 1
    })
    .await;
    server.kill();
    // Restart with a prompt verifier: the job is verified once its lease lapses, and paid once.
    fake.delay_ms.store(0, Ordering::SeqCst);
    let server = Server::start(&db, &llm_env).await;
    let s = server.client(&sender.key);
    eventually(
        "the job to be verified after the restart",
        Duration::from_secs(20),
        || async { s.job(id).await.unwrap().status == JobStatus::Verified },
    )
    .await;
    let wallet = server
        .client(&worker.key)
        .wallet(&PageRequest::default())
        .await
        .unwrap();
    assert_eq!(wallet.balance_cents, 350);
    let earnings = wallet
        .ledger
        .items
        .iter()
        .filter(|e| e.reason == LedgerReason::Earning)
        .count();
    assert_eq!(earnings, 1);
}

/// A verifier that keeps failing hands the submission to the sender: the job says so, the log
/// stream stays open, and the sender's approval ends it with a verdict and pays the agent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_verifier_hands_the_submission_to_the_sender() {
    let (_pg, db) = postgres();
    let (_llm, fake, mut llm_env) = fake_llm(true).await;
    llm_env.extend(env(&[
        ("CLAWRK_VERIFY_MAX_ERRORS", "2"),
        ("CLAWRK_VERIFY_RETRY_SECONDS", "1"),
        ("CLAWRK_REVIEW_HOURS", "24"),
    ]));
    let server = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("p")).await.id;
    assert!(w.pull(&pull_now()).await.unwrap().is_some());
    w.accept(id, &none()).await.unwrap();
    fake.broken.store(true, Ordering::SeqCst);
    let following = tokio::spawn({
        let s = s.clone();
        async move { follow(&s, id).await }
    });
    w.submit(id, &SubmitRequest::text("x")).await.unwrap();
    eventually(
        "the submission to wait for review",
        Duration::from_secs(20),
        || async { s.job(id).await.unwrap().review_due_at.is_some() },
    )
    .await;
    let job = s.job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Submitted);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let due = job.review_due_at.unwrap().unix_timestamp() - now;
    assert!((23 * 3600..=24 * 3600).contains(&due), "{due}");
    assert_eq!(
        fake.verdicts.load(Ordering::SeqCst),
        2,
        "two tries, then the sender"
    );
    // Only the sender decides.
    let err = w.review(id, ReviewDecision::Approve).await.unwrap_err();
    assert_eq!(err.status(), Some(403));

    let paid = s.review(id, ReviewDecision::Approve).await.unwrap();
    assert_eq!(paid.status, JobStatus::Verified);
    let (log, verdict) = following.await.unwrap();
    let verdict = verdict.expect("the stream ends with the sender's verdict");
    assert!(verdict.passed);
    assert_eq!(verdict.verifier, "sender");
    let text: Vec<&str> = log.iter().map(|l| l.message.as_str()).collect();
    assert!(
        text.iter().any(|m| m.starts_with("verifier error (1/2)")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("the sender reviews the submission")),
        "{text:?}"
    );
    let err = s.review(id, ReviewDecision::Approve).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidState), "decided once");
    let wallet = w.wallet(&PageRequest::default()).await.unwrap();
    assert_eq!(wallet.balance_cents, 350);
}

/// A verification lease shorter than one verification may take is refused at start, with the
/// reason, instead of letting two instances judge one submission.
#[test]
fn a_lease_shorter_than_a_verification_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawrk-server"))
        .env(
            "CLAWRK_DB_PATH",
            std::env::temp_dir().join(format!("clawrk-lease-{}.db", std::process::id())),
        )
        .env_remove("DATABASE_URL")
        .env("OPENAI_API_KEY", "sk-test")
        .env("CLAWRK_LLM_TIMEOUT_SECONDS", "30")
        .env("CLAWRK_VERIFY_LEASE_SECONDS", "10")
        .env("CLAWRK_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CLAWRK_VERIFY_LEASE_SECONDS"), "{err}");
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
    let api = server.client(k["api_key"].as_str().unwrap());
    let who = api.whoami().await.unwrap();
    assert_eq!(
        (who.user.name.as_str(), who.user.balance_cents),
        ("dora", 4000)
    );
    // Manual payments: top-up and withdraw are 501.
    assert_eq!(api.topup(500).await.unwrap_err().status(), Some(501));
    assert_eq!(
        api.withdraw(500).await.unwrap_err().code(),
        Some(ErrorCode::NotSupported)
    );
}

/// SIGTERM: the server finishes what it is doing and exits cleanly (status 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let (_pg, db) = postgres();
    let mut server = Server::start(&db, &env(&[("CLAWRK_SHUTDOWN_SECONDS", "5")])).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("write a haiku about the sea"))
        .await
        .id;
    w.claim(id, &none()).await.unwrap();
    w.accept(id, &none()).await.unwrap();
    // A stream with no verdict coming: it would hold the drain for ever.
    let stream = raw_stream(
        &server.url,
        id,
        &sender.key,
        STREAM,
        "the stream ended at shutdown",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
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
            started.elapsed() < Duration::from_secs(7),
            "no exit within CLAWRK_SHUTDOWN_SECONDS after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an open stream does not hold the shutdown: {:?}",
        started.elapsed()
    );
    let text = stream.await.unwrap();
    assert!(
        text.contains("event: error\ndata: {") && text.contains("\"code\":\"shutting_down\""),
        "the stream's last event says to reconnect: {text}"
    );
}

/// A partition between the server and PostgreSQL answers 503 within the configured bound instead
/// of hanging for as long as it lasts; a log stream reports it and carries on; after the partition
/// everything works again and the stream still ends with its verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_from_postgres_answers_503_in_bounded_time() {
    let (_pg, db) = postgres();
    let Db::Postgres(direct) = &db else {
        unreachable!()
    };
    let proxy = Partition::start(&host_port(direct)).await;
    let routed = Db::Postgres(proxy.route(direct));
    let server = Server::start(&routed, &env(&[("CLAWRK_DB_TIMEOUT_SECONDS", "2")])).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("write a haiku about the sea"))
        .await
        .id;
    w.claim(id, &none()).await.unwrap();
    w.accept(id, &none()).await.unwrap();
    let stream = raw_stream(
        &server.url,
        id,
        &sender.key,
        Duration::from_secs(60),
        "the stream ended with its verdict",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut.store(true, Ordering::SeqCst);
    let raw = reqwest::Client::new();
    let started = std::time::Instant::now();
    let resp = raw
        .get(format!("{}/api/wallet/balance", server.url))
        .bearer_auth(&sender.key)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "store_unavailable", "{body}");
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
    // Long enough for the stream's reader to fail and say so.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.cut.store(false, Ordering::SeqCst);

    eventually(
        "the store to answer again",
        Duration::from_secs(20),
        || async { s.wallet(&PageRequest::default()).await.is_ok() },
    )
    .await;
    w.submit(id, &SubmitRequest::text("Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home"))
        .await
        .unwrap();
    let text = stream.await.unwrap();
    assert!(
        text.contains("event: error") && text.contains("store_unavailable"),
        "the stream reported the partition: {text}"
    );
    assert!(text.contains("event: verdict"), "{text}");
    assert_eq!(s.job(id).await.unwrap().status, JobStatus::Verified);
}

/// A slow LLM with eight workers on two instances: the lease (computed from the LLM settings)
/// outlasts the verification, so the LLM is asked once and the log shows one verdict line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_verification_is_run_once() {
    let (_pg, db) = postgres();
    let (_llm, fake, mut llm_env) = fake_llm(true).await;
    llm_env.extend(env(&[
        ("CLAWRK_LLM_TIMEOUT_SECONDS", "10"),
        ("CLAWRK_VERIFY_WORKERS", "4"),
    ]));
    let a = Server::start(&db, &llm_env).await;
    let _b = Server::start(&db, &llm_env).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (a.client(&sender.key), a.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("p")).await.id;
    w.claim(id, &none()).await.unwrap();
    w.accept(id, &none()).await.unwrap();
    fake.delay_ms.store(4_000, Ordering::SeqCst);
    w.submit(id, &SubmitRequest::text("x")).await.unwrap();
    let (log, verdict) = follow(&s, id).await;
    assert!(verdict.is_some());
    // Past the verification, idle workers of both instances have looked again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.verdicts.load(Ordering::SeqCst),
        1,
        "the LLM was asked once"
    );
    let verdict_lines = log
        .iter()
        .filter(|l| l.message.starts_with("verdict:"))
        .count();
    assert_eq!(verdict_lines, 1, "{log:?}");
    assert_eq!(s.job(id).await.unwrap().status, JobStatus::Verified);
}

/// `/api/health` reflects the store: 200 while PostgreSQL answers, 503 once the database is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflects_the_store() {
    let (pg, db) = postgres();
    let server = Server::start(&db, &[]).await;
    let api = Client::builder(&server.url)
        .retry(clawrk_client::RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(api.health().await.unwrap().status, "ok");
    drop(pg); // DROP DATABASE … WITH (FORCE): every connection of the server is cut.
    eventually("health to answer 503", Duration::from_secs(30), || async {
        api.health().await.is_err()
    })
    .await;
    let e = api.health().await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(503), Some(ErrorCode::StoreUnavailable))
    );
}

/// Two instances on one database: the job is submitted to and followed on an API-only instance,
/// verified by the other; the stream still delivers every line and the verdict (LISTEN/NOTIFY).
/// The stream's wire format is checked as bytes here once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sees_lines_written_by_another_instance() {
    let (_pg, db) = postgres();
    let api_only = Server::start(&db, &env(&[("CLAWRK_VERIFY_WORKERS", "0")])).await;
    let verifier = Server::start(&db, &env(&[("CLAWRK_VERIFY_WORKERS", "1")])).await;
    let sender = create_user(&db, "sender", 1_000);
    let worker = create_user(&db, "worker", 0);
    let (s, w) = (api_only.client(&sender.key), api_only.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("write a haiku about the sea"))
        .await
        .id;
    w.claim(id, &none()).await.unwrap();
    w.accept(id, &none()).await.unwrap();
    let raw = raw_stream(&api_only.url, id, &sender.key, STREAM, "the stream ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out =
        "Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home";
    w.submit(id, &SubmitRequest::text(out)).await.unwrap();
    let text = raw.await.unwrap();
    assert!(text.contains("id: 1\nevent: log\ndata: {"), "{text}");
    assert!(text.contains("event: verdict\ndata: {"), "{text}");
    let j = verifier.client(&sender.key).job(id).await.unwrap();
    assert_eq!(j.status, JobStatus::Verified);
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
    let (s, w) = (server.client(&sender.key), server.client(&worker.key));
    let id = queued(&s, RunRequest::confirmed("write a haiku about the sea"))
        .await
        .id;
    w.claim(id, &none()).await.unwrap();
    w.accept(id, &none()).await.unwrap();
    let followers: Vec<_> = (0..STREAMS)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { follow(&s, id).await })
        })
        .collect();
    // Past one poll period of the shared reader, so that it is waiting when the verdict comes.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let out =
        "Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home";
    w.submit(id, &SubmitRequest::text(out)).await.unwrap();
    for f in followers {
        let (lines, verdict) = f.await.unwrap();
        assert_eq!(lines[0].seq, 1);
        assert!(verdict.is_some());
    }
}
