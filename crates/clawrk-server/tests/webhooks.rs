//! Webhooks end to end, on both stores: the real server binary posts to a real receiver on
//! loopback (a wiremock server) — a whole lifecycle in order with valid signatures and each
//! receiver's view of the job; a receiver that fails three times and then takes the event; a
//! kill -9 between the commit and the delivery; refused destinations; and endpoints only their
//! owner sees.

mod common;

use clawrk_client::api::webhooks::{SIGNATURE_HEADER, verify};
use clawrk_client::api::*;
use clawrk_client::{ErrorCode, PageRequest, RunOutcome};
use common::*;
use futures::TryStreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The scenario as two tests: on a fresh SQLite file, and on a fresh PostgreSQL database.
macro_rules! on_both_stores {
    ($scenario:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $scenario(Db::Sqlite(dir.path().join("clawrk.db"))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let (_pg, db) = postgres();
            $scenario(db).await;
        }
    };
}

on_both_stores!(
    lifecycle:
    a_lifecycle_is_delivered_signed_and_in_order_on_sqlite,
    a_lifecycle_is_delivered_signed_and_in_order_on_postgres
);
on_both_stores!(
    retried_then_delivered_once:
    a_failing_receiver_gets_the_event_once_more_after_it_recovers_on_sqlite,
    a_failing_receiver_gets_the_event_once_more_after_it_recovers_on_postgres
);
on_both_stores!(
    survives_a_crash:
    a_kill_between_commit_and_delivery_still_delivers_on_sqlite,
    a_kill_between_commit_and_delivery_still_delivers_on_postgres
);
on_both_stores!(
    private_destinations_are_refused:
    private_destinations_are_refused_by_default_on_sqlite,
    private_destinations_are_refused_by_default_on_postgres
);
on_both_stores!(
    owner_only:
    endpoints_are_seen_by_their_owner_only_on_sqlite,
    endpoints_are_seen_by_their_owner_only_on_postgres
);

const WAIT: Duration = Duration::from_secs(20);

/// Answers 500 to the first `fail` requests, then 200.
struct FailFirst {
    fail: usize,
    seen: Arc<AtomicUsize>,
}

impl Respond for FailFirst {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.fail {
            ResponseTemplate::new(500)
        } else {
            ResponseTemplate::new(200)
        }
    }
}

/// A receiver on loopback that fails its first `fail` requests.
async fn receiver(fail: usize) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(FailFirst {
            fail,
            seen: Arc::default(),
        })
        .mount(&server)
        .await;
    server
}

async fn received(r: &MockServer) -> Vec<Request> {
    r.received_requests().await.unwrap_or_default()
}

/// Waits until the receiver got `n` requests, and checks none more come for a moment.
async fn exactly(r: &MockServer, n: usize) -> Vec<Request> {
    eventually(&format!("{n} webhook requests"), WAIT, || async {
        received(r).await.len() >= n
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = received(r).await;
    assert_eq!(got.len(), n, "more requests than expected");
    got
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Each request's event, after checking its signature with `secret`.
fn events(requests: &[Request], secret: &str) -> Vec<WebhookEvent> {
    requests
        .iter()
        .map(|r| {
            let header = r
                .headers
                .get(SIGNATURE_HEADER)
                .expect("signed")
                .to_str()
                .unwrap();
            verify(secret, header, &r.body, now(), 300).expect("a valid signature");
            assert!(verify("whsec_wrong", header, &r.body, now(), 300).is_err());
            serde_json::from_slice(&r.body).expect("a webhook event")
        })
        .collect()
}

fn fast() -> Vec<(String, String)> {
    env(&[
        ("CLAWRK_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("CLAWRK_WEBHOOK_RETRY_SECONDS", "0.2"),
    ])
}

fn hook(url: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: Some("test".into()),
    }
}

async fn lifecycle(db: Db) {
    let (_llm, _fake, mut extra) = fake_llm(true).await;
    extra.extend(fast());
    let server = Server::start(&db, &extra).await;
    let alice = create_user(&db, "alice", 1_000);
    let bob = create_user(&db, "bob", 0);
    let (a, b) = (server.client(&alice.key), server.client(&bob.key));
    let (ra, rb) = (receiver(0).await, receiver(0).await);
    let ha = a.create_webhook(&hook(&ra.uri(), &["*"])).await.unwrap();
    let secret_a = ha.secret.clone().expect("the secret is shown on creation");
    let hb = b
        .create_webhook(&hook(
            &rb.uri(),
            &["job.held", "job.accepted", "payout.completed"],
        ))
        .await
        .unwrap();
    let secret_b = hb.secret.clone().unwrap();

    let RunOutcome::Queued(job) = a
        .run(&RunRequest {
            env_vars: Some([("TOKEN".to_string(), "s3cret".to_string())].into()),
            ..RunRequest::confirmed("a haiku about the sea")
        })
        .await
        .unwrap()
    else {
        panic!("paid")
    };
    b.pull(&PullRequest::default()).await.unwrap().unwrap();
    b.accept(job.id, &AgentChoice::default()).await.unwrap();
    b.submit(job.id, &SubmitRequest::text("the sea / three lines / done"))
        .await
        .unwrap();

    let got = events(&exactly(&ra, 6).await, &secret_a);
    let kinds: Vec<&str> = got.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "job.queued",
            "job.held",
            "job.accepted",
            "job.submitted",
            "job.verified",
            "payout.completed"
        ]
    );
    let statuses: Vec<JobStatus> = got.iter().map(|e| e.data.status).collect();
    use JobStatus as S;
    assert_eq!(
        statuses,
        [
            S::Queued,
            S::Held,
            S::Accepted,
            S::Submitted,
            S::Verified,
            S::Verified
        ]
    );
    assert!(got.iter().all(|e| e.data.id == job.id));
    assert!(
        got.iter().all(|e| e.data.env_vars.is_some()),
        "the sender sees its env vars"
    );
    let mut ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "one id per event");

    let got_b = events(&exactly(&rb, 3).await, &secret_b);
    let kinds: Vec<&str> = got_b.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["job.held", "job.accepted", "payout.completed"]);
    // The operator sees the job as the API shows it to them: no env vars while it only holds it.
    assert_eq!(got_b[0].data.env_vars, None);
    assert_eq!(got_b[2].id, got[5].id, "one payout event, one id, for both");

    // The sender's deliveries: six, delivered at the first try.
    let ds = a
        .webhook_deliveries(ha.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(ds.items.len(), 6);
    assert!(ds.items.iter().all(|d| d.state == DeliveryState::Delivered
        && d.attempts == 1
        && d.last_status == Some(200)
        && d.next_attempt_at.is_none()));
    // Paged by `Link`: four, then the rest.
    let first = a
        .webhook_deliveries(
            ha.id,
            &PageRequest {
                limit: Some(4),
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 4);
    let all: Vec<WebhookDelivery> = a
        .webhook_deliveries_stream(ha.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, ds.items);
    assert!(first.next.is_some());
    // The instance counted them.
    let metrics = metrics(&server).await;
    assert!(
        metrics.contains("clawrk_webhook_sends_total{outcome=\"delivered\"} 9"),
        "{metrics}"
    );
}

async fn metrics(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn retried_then_delivered_once(db: Db) {
    let server = Server::start(&db, &fast()).await;
    let alice = create_user(&db, "alice", 1_000);
    let a = server.client(&alice.key);
    let r = receiver(3).await;
    let h = a
        .create_webhook(&hook(&r.uri(), &["job.queued"]))
        .await
        .unwrap();
    let RunOutcome::Queued(_) = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("paid")
    };
    // Three failures, then one success: the event arrives four times, the same each time.
    let got = exactly(&r, 4).await;
    let evs = events(&got, h.secret.as_deref().unwrap());
    assert!(
        evs.iter()
            .all(|e| e.id == evs[0].id && e.event_type == "job.queued")
    );
    let ds = a
        .webhook_deliveries(h.id, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(ds.len(), 1);
    assert_eq!(
        (
            ds[0].attempts,
            ds[0].state,
            ds[0].last_status,
            ds[0].last_error.as_deref()
        ),
        (4, DeliveryState::Delivered, Some(200), None)
    );
    // A redelivery sends it once more, with the same id.
    let again = a.redeliver(h.id, ds[0].id).await.unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    let got = exactly(&r, 5).await;
    let last: WebhookEvent = serde_json::from_slice(&got[4].body).unwrap();
    assert_eq!(last.id, evs[0].id);
    let metrics = metrics(&server).await;
    for line in [
        "clawrk_webhook_sends_total{outcome=\"retrying\"} 3",
        "clawrk_webhook_sends_total{outcome=\"delivered\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

async fn survives_a_crash(db: Db) {
    // No delivery worker: the event is committed with the job and waits in the outbox.
    let mut extra = fast();
    extra.extend(env(&[("CLAWRK_WEBHOOK_WORKERS", "0")]));
    let mut server = Server::start(&db, &extra).await;
    let alice = create_user(&db, "alice", 1_000);
    let a = server.client(&alice.key);
    let r = receiver(0).await;
    let h = a.create_webhook(&hook(&r.uri(), &["*"])).await.unwrap();
    let RunOutcome::Queued(job) = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("paid")
    };
    a.cancel(job.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(received(&r).await.is_empty());
    // kill -9, and back with a delivery worker.
    server.kill();
    for (k, v) in server.env.iter_mut() {
        if k == "CLAWRK_WEBHOOK_WORKERS" {
            *v = "1".into();
        }
    }
    server.restart().await;
    let evs = events(&exactly(&r, 2).await, h.secret.as_deref().unwrap());
    let kinds: Vec<&str> = evs.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["job.queued", "job.cancelled"]);
}

async fn private_destinations_are_refused(db: Db) {
    let server = Server::start(&db, &env(&[("CLAWRK_WEBHOOK_RETRY_SECONDS", "0.2")])).await;
    let alice = create_user(&db, "alice", 1_000);
    let a = server.client(&alice.key);
    let r = receiver(0).await;
    let port = r.address().port();
    let urls = [
        r.uri(),
        format!("http://localhost:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]:9/".to_string(),
    ];
    let mut hooks = Vec::new();
    for u in &urls {
        hooks.push(a.create_webhook(&hook(u, &["job.queued"])).await.unwrap());
    }
    // Not http(s): refused when registered.
    for bad in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "not a url",
        "https://u:p@example.com/",
    ] {
        let e = a.create_webhook(&hook(bad, &["*"])).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidInput), "{bad}");
    }
    let e = a
        .create_webhook(&hook("https://example.com/", &["job.done"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    let RunOutcome::Queued(_) = a
        .run(&RunRequest::confirmed("a haiku about the sea"))
        .await
        .unwrap()
    else {
        panic!("paid")
    };
    for (h, u) in hooks.iter().zip(&urls) {
        let a = &a;
        eventually(&format!("a refused delivery to {u}"), WAIT, || async move {
            let ds = a
                .webhook_deliveries(h.id, &PageRequest::default())
                .await
                .unwrap()
                .items;
            ds.first().is_some_and(|d| {
                d.attempts >= 1
                    && d.last_status.is_none()
                    && d.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("refused"))
            })
        })
        .await;
    }
    assert!(received(&r).await.is_empty(), "nothing reached loopback");
}

async fn owner_only(db: Db) {
    let server = Server::start(&db, &fast()).await;
    let alice = create_user(&db, "alice", 1_000);
    let mallory = create_user(&db, "mallory", 0);
    let (a, m) = (server.client(&alice.key), server.client(&mallory.key));
    let h = a
        .create_webhook(&hook("https://example.com/hook", &["job.verified"]))
        .await
        .unwrap();
    let first = h.secret.clone().unwrap();
    assert!(first.starts_with("whsec_"));
    // Listed and read without the secret.
    let listed = a.webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secret, None);
    assert_eq!(a.webhook(h.id).await.unwrap().secret, None);
    // Anyone else: 404 on every route, and an empty list.
    let nf = Some(ErrorCode::NotFound);
    assert!(m.webhooks().await.unwrap().is_empty());
    assert_eq!(m.webhook(h.id).await.unwrap_err().code(), nf);
    assert_eq!(
        m.update_webhook(
            h.id,
            &WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            }
        )
        .await
        .unwrap_err()
        .code(),
        nf
    );
    assert_eq!(
        m.webhook_deliveries(h.id, &PageRequest::default())
            .await
            .unwrap_err()
            .code(),
        nf
    );
    assert_eq!(m.redeliver(h.id, h.id).await.unwrap_err().code(), nf);
    assert_eq!(m.delete_webhook(h.id).await.unwrap_err().code(), nf);
    // The owner changes it; a rotation shows the new secret once.
    let changed = a
        .update_webhook(
            h.id,
            &WebhookPatch {
                events: Some(vec!["*".into()]),
                enabled: Some(false),
                description: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            changed.events.clone(),
            changed.enabled,
            changed.description.clone(),
            changed.secret.clone()
        ),
        (vec!["*".to_string()], false, None, None)
    );
    let rotated = a.rotate_webhook_secret(h.id).await.unwrap();
    assert!(rotated.secret.as_deref().is_some_and(|s| s != first));
    assert_eq!(a.redeliver(h.id, h.id).await.unwrap_err().code(), nf);
    a.delete_webhook(h.id).await.unwrap();
    assert_eq!(a.webhook(h.id).await.unwrap_err().code(), nf);
    assert!(a.webhooks().await.unwrap().is_empty());
}
