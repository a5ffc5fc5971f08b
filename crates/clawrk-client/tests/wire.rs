//! The client against a real HTTP server that misbehaves on purpose (wiremock): 503 and 429
//! answers are retried (the same `Idempotency-Key` on every attempt, `Retry-After` honoured,
//! bounded), errors decode into codes, `Link` headers are followed, and log streams are read by the
//! SSE parser whatever their line endings.

use clawrk_client::api::*;
use clawrk_client::{Client, ErrorCode, Follow, LogEvent, PageRequest, RetryPolicy};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "ck_test";

fn client(server: &MockServer, attempts: u32) -> Client {
    Client::builder(server.uri())
        .api_key(KEY)
        .retry(RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        })
        .build()
        .unwrap()
}

/// Answers with the given responses in turn (the last one forever), recording each request.
#[derive(Clone)]
struct Script {
    answers: Vec<ResponseTemplate>,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Respond for Script {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(req.clone());
        let i = (seen.len() - 1).min(self.answers.len() - 1);
        self.answers[i].clone()
    }
}

async fn script(
    server: &MockServer,
    verb: &str,
    route: &str,
    answers: Vec<ResponseTemplate>,
) -> Arc<Mutex<Vec<Request>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(Script {
            answers,
            seen: seen.clone(),
        })
        .mount(server)
        .await;
    seen
}

fn unavailable() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_json(json!({
        "error": "the store is temporarily unavailable; retry later",
        "code": "store_unavailable"
    }))
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_idempotency_key() {
    let server = MockServer::start().await;
    let seen = script(
        &server,
        "POST",
        "/api/wallet/topup",
        vec![
            unavailable(),
            unavailable(),
            ResponseTemplate::new(200).set_body_json(json!({ "balance_cents": 500 })),
        ],
    )
    .await;
    let balance = client(&server, 4).topup(500).await.unwrap();
    assert_eq!(balance.balance_cents, 500);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let keys: Vec<_> = seen
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().clone())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key for every attempt"
    );
    assert_eq!(
        seen[0].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap(),
        json!({ "amount_cents": 500 })
    );
}

#[tokio::test]
async fn retries_are_bounded_and_end_with_the_servers_error() {
    let server = MockServer::start().await;
    let seen = script(&server, "GET", "/api/whoami", vec![unavailable()]).await;
    let e = client(&server, 3).whoami().await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(503), Some(ErrorCode::StoreUnavailable))
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let server = MockServer::start().await;
    let seen = script(
        &server,
        "GET",
        "/api/board/stats",
        vec![
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({ "error": "rate limited", "code": "rate_limited" })),
            ResponseTemplate::new(200).set_body_json(json!({
                "counts": {}, "jobs_verified": 0, "total_paid_out_cents": 0,
                "median_queued_price_cents": null, "agents": 0
            })),
        ],
    )
    .await;
    let started = Instant::now();
    client(&server, 2).stats().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_their_fields() {
    let server = MockServer::start().await;
    let seen = script(
        &server,
        "POST",
        "/api/wallet/withdraw",
        vec![ResponseTemplate::new(402).set_body_json(json!({
            "error": "insufficient balance: 900 required, 100 available",
            "code": "insufficient_balance", "required_cents": 900, "available_cents": 100
        }))],
    )
    .await;
    let e = client(&server, 4).withdraw(900).await.unwrap_err();
    let clawrk_client::Error::Api(e) = e else {
        panic!("an API error")
    };
    assert_eq!(e.code, ErrorCode::InsufficientBalance);
    assert_eq!(
        (e.body.required_cents, e.body.available_cents),
        (Some(900), Some(100))
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_after_the_retries() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::builder(format!("http://127.0.0.1:{port}"))
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .build()
        .unwrap();
    let e = c.health().await.unwrap_err();
    assert!(matches!(e, clawrk_client::Error::Transport(_)), "{e}");
    assert!(Client::anonymous("not a url").is_err());
    assert!(Client::anonymous("ftp://example.com").is_err());
}

fn board_job(n: u128) -> serde_json::Value {
    json!({
        "id": uuid::Uuid::from_u128(n), "title": "t", "description": "d", "requirements": "r",
        "acceptance_criteria": [], "price_cents": 100, "time_limit_seconds": 60,
        "created_at": "2026-01-01T00:00:00.000Z"
    })
}

#[tokio::test]
async fn lists_follow_the_link_header() {
    let server = MockServer::start().await;
    let second = uuid::Uuid::from_u128(2);
    Mock::given(method("GET"))
        .and(path("/api/board"))
        .and(wiremock::matchers::query_param(
            "before",
            second.to_string(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([board_job(3)])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/board"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "Link",
                    format!("</api/board?limit=2&before={second}>; rel=\"next\""),
                )
                .set_body_json(json!([board_job(1), board_job(2)])),
        )
        .mount(&server)
        .await;
    let c = client(&server, 1);
    let page = c
        .board(&PageRequest {
            limit: Some(2),
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(
        page.next.as_deref(),
        Some(format!("/api/board?limit=2&before={second}").as_str())
    );
    let all: Vec<BoardJob> = c.board_stream().try_collect().await.unwrap();
    let ids: Vec<u128> = all.iter().map(|j| j.id.as_u128()).collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test]
async fn log_streams_parse_any_line_ending_and_reconnect_after_the_last_id() {
    let server = MockServer::start().await;
    let job = uuid::Uuid::from_u128(7);
    let line = |seq: i64, msg: &str| {
        json!({ "seq": seq, "at": "2026-01-01T00:00:00.000Z", "level": "info", "message": msg })
            .to_string()
    };
    // The first connection: CRLF line endings, a comment, then the server goes away.
    let first = format!(
        ": keep-alive\r\nid: 1\r\nevent: log\r\ndata: {}\r\n\r\nid: 2\r\nevent: log\r\ndata: {}\r\n\r\n",
        line(1, "started"),
        line(2, "judging")
    );
    // The second (after `Last-Event-ID: 2`): a line, then the verdict.
    let verdict = json!({
        "passed": true, "reasoning": "fine", "criteria": [], "verifier": "heuristic",
        "verified_at": "2026-01-01T00:00:01.000Z"
    });
    let second = format!(
        "id: 3\nevent: log\ndata: {}\n\nevent: verdict\ndata: {}\n\n",
        line(3, "passed"),
        verdict
    );
    let route = format!("/api/jobs/{job}/logs");
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .and(wiremock::matchers::header("last-event-id", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(second),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(first),
        )
        .mount(&server)
        .await;
    let c = Client::builder(server.uri())
        .api_key(KEY)
        .follow(Follow {
            max_reconnects: 3,
            ..Follow::default()
        })
        .build()
        .unwrap();
    let events: Vec<LogEvent> = c.follow_logs(job).try_collect().await.unwrap();
    let seqs: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Line(l) => Some(l.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(matches!(events.last(), Some(LogEvent::Verdict(v)) if v.passed));
}

#[tokio::test]
async fn a_log_stream_of_a_job_you_cannot_see_ends_with_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({ "error": "job not found", "code": "not_found" })),
        )
        .mount(&server)
        .await;
    let mut s = Box::pin(client(&server, 1).follow_logs(uuid::Uuid::from_u128(1)));
    let e = s.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    assert!(s.next().await.is_none());
}
