//! `clawrk-client` against the real server binary: every route through the typed client on both
//! stores (answers decode into the wire types; errors carry their codes), paging by `Link`,
//! idempotency keys, a log stream that reconnects across a server restart without losing or
//! repeating a line, and calls retried through real 429 answers.

mod common;

use clawrk_client::api::*;
use clawrk_client::{
    Client, Error, ErrorCode, JobsQuery, LogEvent, PageRequest, RetryPolicy, RunOutcome,
};
use common::*;
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

fn code(e: Error) -> ErrorCode {
    e.code().unwrap_or_else(|| panic!("not an API error: {e}"))
}

/// Collects a job's log stream to its last event.
async fn follow_to_end(client: &Client, job: uuid::Uuid) -> (Vec<LogLine>, LogEvent) {
    let mut stream = Box::pin(client.follow_logs(job));
    let mut lines = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream moved")
            .expect("the stream did not end before its last event")
            .unwrap();
        match ev {
            LogEvent::Line(l) => lines.push(l),
            LogEvent::ServerError(_) => {}
            last => return (lines, last),
        }
    }
}

async fn every_route(db: Db) {
    let (_llm, _fake, mut extra) = fake_llm(true).await;
    extra.extend(env(&[
        ("CLAWRK_PAYMENTS", "dev"),
        ("CRON_SECRET", "s3cret"),
    ]));
    let server = Server::start(&db, &extra).await;
    let alice = create_user(&db, "alice", 0);
    let bob = create_user(&db, "bob", 0);
    let (a, b) = (server.client(&alice.key), server.client(&bob.key));
    let anon = Client::anonymous(&server.url).unwrap();

    // Public routes.
    assert_eq!(anon.health().await.unwrap().status, "ok");
    assert_eq!(anon.openapi().await.unwrap()["openapi"], "3.1.0");
    assert_eq!(
        code(anon.whoami().await.unwrap_err()),
        ErrorCode::Unauthorized
    );
    let stranger =
        server.client("ck_0000000000000000000000000000000000000000000000000000000000000000");
    assert_eq!(
        code(stranger.whoami().await.unwrap_err()),
        ErrorCode::Unauthorized
    );

    // Wallet (payments in dev mode credit at once).
    assert_eq!(a.whoami().await.unwrap().user.name, "alice");
    assert_eq!(a.topup(2_000).await.unwrap().balance_cents, 2_000);
    let e = a.topup(100).await.unwrap_err();
    assert_eq!((e.status(), code(e)), (Some(400), ErrorCode::InvalidInput));
    let e = a.withdraw(5_000).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InsufficientBalance);

    // A sender's job: estimate, confirm.
    let est = a.estimate("a haiku about the sea").await.unwrap();
    assert_eq!(
        (est.needs_confirmation, est.estimated_price_cents),
        (true, 500)
    );
    let RunOutcome::Queued(job) = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("a funded confirmed run queues the job")
    };
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.structured_by, "llm:test-model");
    assert_eq!(a.job(job.id).await.unwrap().id, job.id);
    assert_eq!(code(b.job(job.id).await.unwrap_err()), ErrorCode::NotFound);
    let queued = a
        .jobs(&JobsQuery {
            status: Some(JobStatus::Queued),
            ..JobsQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        queued.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        [job.id]
    );
    let board: Vec<BoardJob> = anon.board_stream().try_collect().await.unwrap();
    assert!(board.iter().any(|j| j.id == job.id));
    let stats = anon.stats().await.unwrap();
    assert_eq!(stats.counts[&JobStatus::Queued], 1);

    // Agents.
    let mine = b.agents().await.unwrap();
    assert!(mine[0].is_default);
    let scribe = b
        .create_agent(&NewAgent {
            name: "scribe".into(),
            personality: Some("haiku, the sea".into()),
            avatar_url: None,
        })
        .await
        .unwrap();
    assert_eq!(
        code(
            b.create_agent(&NewAgent {
                name: "scribe".into(),
                ..NewAgent::default()
            })
            .await
            .unwrap_err()
        ),
        ErrorCode::Conflict
    );
    assert_eq!(b.agent(scribe.id).await.unwrap().name, "scribe");
    let patched = b
        .update_agent(
            scribe.id,
            &AgentPatch {
                personality: Some(None),
                ..AgentPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.personality, None);
    let directory: Vec<AgentProfile> = anon.directory_stream().try_collect().await.unwrap();
    assert!(directory.iter().any(|p| p.agent.id == scribe.id));

    // An agent's work: pull, reject, claim, accept, submit; the sender follows to the verdict.
    let held = b
        .pull(&PullRequest::new(AgentChoice::id(scribe.id), 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.job.id, job.id);
    assert_eq!(
        b.reject(job.id, &AgentChoice::default())
            .await
            .unwrap()
            .status,
        JobStatus::Queued
    );
    assert!(
        b.pull(&PullRequest::new(AgentChoice::id(scribe.id), 0))
            .await
            .unwrap()
            .is_none()
    );
    let held = b.claim(job.id, &AgentChoice::default()).await.unwrap();
    assert_eq!(held.job.status, JobStatus::Held);
    let accepted = b.accept(job.id, &AgentChoice::default()).await.unwrap();
    assert!(accepted.deadline_at.is_some());
    assert_eq!(
        code(b.cancel(job.id).await.unwrap_err()),
        ErrorCode::Forbidden,
        "only the sender cancels"
    );
    let submitted = b
        .submit(job.id, &SubmitRequest::text("the sea / three lines / done"))
        .await
        .unwrap();
    assert_eq!(submitted.status, JobStatus::Submitted);
    let (lines, last) = follow_to_end(&a, job.id).await;
    assert!(!lines.is_empty());
    assert!(lines.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let LogEvent::Verdict(v) = last else {
        panic!("the stream of a verified job ends with its verdict: {last:?}")
    };
    assert!(v.passed);
    assert_eq!(a.job(job.id).await.unwrap().status, JobStatus::Verified);
    let wallet = b.wallet(&PageRequest::default()).await.unwrap();
    assert_eq!(wallet.balance_cents, 350, "500 less the fee of 150");
    assert_eq!(wallet.ledger.items[0].reason, LedgerReason::Earning);
    assert_eq!(
        code(b.withdraw(100).await.unwrap_err()),
        ErrorCode::InvalidInput,
        "below the minimum"
    );

    // Deleting the agent now works; the default one stays.
    b.delete_agent(scribe.id).await.unwrap();
    assert_eq!(
        code(b.agent(scribe.id).await.unwrap_err()),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(b.delete_agent(mine[0].id).await.unwrap_err()),
        ErrorCode::Conflict
    );

    // A short wallet: the job waits; pay it after a top-up; cancel it; its stream says so.
    let RunOutcome::PendingPayment {
        job: pending,
        required_cents,
        available_cents,
    } = b
        .run(&RunRequest::confirmed("another haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("a short wallet leaves the job pending")
    };
    assert_eq!((required_cents, available_cents), (500, 350));
    assert_eq!(
        code(b.pay(pending.id).await.unwrap_err()),
        ErrorCode::InsufficientBalance
    );
    b.topup(500).await.unwrap();
    assert_eq!(b.pay(pending.id).await.unwrap().status, JobStatus::Queued);
    assert_eq!(
        b.cancel(pending.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    let (_, last) = follow_to_end(&b, pending.id).await;
    assert_eq!(
        last,
        LogEvent::End(StreamEnd {
            status: JobStatus::Cancelled
        })
    );
    assert_eq!(
        code(b.pay(pending.id).await.unwrap_err()),
        ErrorCode::InvalidState
    );

    // Giving up: the job goes back to the queue.
    let RunOutcome::Queued(third) = a
        .run(&RunRequest::confirmed("a third haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    b.claim(third.id, &AgentChoice::default()).await.unwrap();
    b.accept(third.id, &AgentChoice::default()).await.unwrap();
    let back = b.fail(third.id, Some("cannot rhyme")).await.unwrap();
    assert_eq!((back.status, back.attempt_count), (JobStatus::Queued, 1));
    assert_eq!(
        code(b.fail(third.id, None).await.unwrap_err()),
        ErrorCode::InvalidState
    );

    // Idempotency: a repeat replays; another body with the same key is a conflict.
    let once = a.with_idempotency_key("topup-1");
    let first = once.topup(500).await.unwrap();
    assert_eq!(once.topup(500).await.unwrap(), first);
    assert_eq!(
        code(once.topup(600).await.unwrap_err()),
        ErrorCode::IdempotencyConflict
    );

    // Standalone verification and the operator's sweep.
    let v = a
        .verify(&VerifyRequest {
            requirements: "Three lines about the sea.".into(),
            acceptance_criteria: Some(CRITERIA.iter().map(|c| c.to_string()).collect()),
            output: "the sea / three lines / done".into(),
        })
        .await
        .unwrap();
    assert!(v.passed);
    assert_eq!(
        a.enforce_deadlines("s3cret").await.unwrap(),
        SweepReport {
            released_holds: 0,
            failed_deadlines: 0,
            approved_reviews: 0
        }
    );
    assert_eq!(
        code(a.enforce_deadlines("wrong").await.unwrap_err()),
        ErrorCode::Unauthorized
    );

    // Paging follows `Link`.
    let all: Vec<Job> = a
        .jobs_stream(&JobsQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let first = a
        .jobs(&JobsQuery {
            page: PageRequest {
                limit: Some(1),
                before: None,
            },
            ..JobsQuery::default()
        })
        .await
        .unwrap();
    let next = first.next.clone().expect("a full page announces the next");
    let second = a.jobs_next(&next).await.unwrap();
    assert_eq!(
        [first.items[0].id, second.items[0].id],
        [all[0].id, all[1].id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_through_the_client_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_route(Db::Sqlite(dir.path().join("clawrk.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_through_the_client_on_postgres() {
    let (_pg, db) = postgres();
    every_route(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_stream_reconnects_across_a_restart_and_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("clawrk.db"));
    let (_llm, _fake, extra) = fake_llm(true).await;
    let mut server = Server::start(&db, &extra).await;
    let alice = create_user(&db, "alice", 1_000);
    let bob = create_user(&db, "bob", 0);
    let (a, b) = (server.client(&alice.key), server.client(&bob.key));
    let RunOutcome::Queued(job) = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    // A first attempt given up writes to the log without ending the stream.
    b.claim(job.id, &AgentChoice::default()).await.unwrap();
    b.accept(job.id, &AgentChoice::default()).await.unwrap();
    b.fail(job.id, Some("first try")).await.unwrap();

    let mut stream = Box::pin(a.follow_logs(job.id));
    let mut seqs = Vec::new();
    // The lines so far (until the stream goes quiet), then the server goes away mid-stream.
    while let Ok(ev) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        match ev.unwrap().unwrap() {
            LogEvent::Line(l) => seqs.push(l.seq),
            other => panic!("{other:?}"),
        }
    }
    assert!(!seqs.is_empty(), "the given-up attempt is in the log");
    server.restart().await;
    // The second attempt after the restart: the stream must pick up its lines and the verdict.
    b.claim(job.id, &AgentChoice::default()).await.unwrap();
    b.accept(job.id, &AgentChoice::default()).await.unwrap();
    b.submit(job.id, &SubmitRequest::text("the sea / three lines / done"))
        .await
        .unwrap();
    let verdict = loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream came back")
            .unwrap()
            .unwrap();
        match ev {
            LogEvent::Line(l) => seqs.push(l.seq),
            LogEvent::Verdict(v) => break v,
            other => panic!("{other:?}"),
        }
    };
    assert!(verdict.passed);
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "every line once, in order");
    let stored = a.job(job.id).await.unwrap();
    assert_eq!(stored.status, JobStatus::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_calls_are_retried_after_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("clawrk.db"));
    let server = Server::start(&db, &env(&[("CLAWRK_RATE_LIMIT", "2")])).await;
    let alice = create_user(&db, "alice", 0);
    let patient = Client::builder(&server.url)
        .api_key(&alice.key)
        .retry(RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        })
        .build()
        .unwrap();
    for _ in 0..8 {
        assert_eq!(patient.whoami().await.unwrap().user.name, "alice");
    }
    let impatient = Client::builder(&server.url)
        .api_key(&alice.key)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let mut limited = 0;
    for _ in 0..8 {
        if let Err(e) = impatient.whoami().await {
            assert_eq!((e.status(), code(e)), (Some(429), ErrorCode::RateLimited));
            limited += 1;
        }
    }
    assert!(limited > 0, "a burst over the limit meets 429");
}

/// What an operator sees: `/api/health` names the version, store, LLM and live workers, and
/// `/metrics` counts requests by route template, jobs by status, open streams and workers.
async fn observability(db: Db, store: &str) {
    let server = Server::start(&db, &env(&[("CLAWRK_VERIFY_WORKERS", "2")])).await;
    let api = Client::builder(&server.url).build().unwrap();
    let health = api.health().await.unwrap();
    assert_eq!(
        (
            health.status.as_str(),
            health.store.as_str(),
            health.llm.as_str()
        ),
        ("ok", store, "heuristic")
    );
    assert!(health.store_reachable && !health.version.is_empty());
    assert_eq!(health.workers.verification_configured, 2);
    assert_eq!(health.workers.verification_alive, 2);
    assert!(health.workers.sweeper_alive);

    let u = create_user(&db, "sender", 5_000);
    let c = server.client(&u.key);
    let job = match c
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    {
        RunOutcome::Queued(j) => j,
        other => panic!("{other:?}"),
    };
    c.job(job.id).await.unwrap();
    let stream = c.follow_logs(job.id);
    let mut stream = Box::pin(stream);
    // The stream is open once its first line arrives or it waits; give it a moment.
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;

    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &str| assert!(text.contains(needle), "no {needle} in:\n{text}");
    has(r#"clawrk_http_requests_total{route="/api/jobs/{id}",method="GET",status="200"} 1"#);
    has(r#"clawrk_http_request_duration_seconds_count{route="/api/jobs/run",method="POST"} 1"#);
    has(r#"clawrk_jobs{status="queued"} 1"#);
    has("clawrk_queue_depth 1");
    has("clawrk_queue_oldest_age_seconds ");
    has("clawrk_sse_subscribers 1");
    has("clawrk_verification_workers_alive 2");
    has(&format!(
        r#"clawrk_build{{version="{}",store="{store}",llm="heuristic"}} 1"#,
        health.version
    ));
    assert!(!text.contains(&job.id.to_string()), "no ids in labels");
    if store == "postgres" {
        has("clawrk_db_pool_max_connections 16");
    }
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observability_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    observability(Db::Sqlite(dir.path().join("clawrk.db")), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observability_on_postgres() {
    let (_pg, db) = postgres();
    observability(db, "postgres").await;
}
