//! Webhook use cases on the in-memory store, with the sender port mocked (mockall): which events a
//! lifecycle raises and for whom, retries and their schedule, redelivery, ownership.

mod common;

use clawrk_domain::memory::MemoryStore;
use clawrk_domain::ports::*;
use clawrk_domain::service::{AgentSelector, Config, Marketplace, Ports, RunOutcome, RunRequest};
use clawrk_domain::webhook::{
    DeliveryState, EndpointPatch, NewEndpoint, Outgoing, SendResult, WebhookId,
};
use clawrk_domain::{Cents, DomainError, JobStatus, Output, Reason};
use common::*;
use futures::executor::block_on;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NOBODY: AgentSelector = AgentSelector {
    id: None,
    name: None,
};
const BASE: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(60);

/// What the mocked sender was asked to send: (url, event type, event id, job status).
type Sent = Arc<Mutex<Vec<(String, String, String, JobStatus)>>>;

/// A marketplace whose webhook sender records every send and answers `answer(n)` to the n-th.
fn world(
    answer: impl Fn(usize) -> SendResult + Send + Sync + 'static,
) -> (Marketplace, MemoryStore, Arc<TestClock>, Sent) {
    let clock = TestClock::at(T0);
    let store = MemoryStore::new();
    let mut structurer = MockStructurer::new();
    structurer
        .expect_structure()
        .returning(|_, _| Ok(structured(500)));
    let sent: Sent = Arc::default();
    let log = sent.clone();
    let mut sender = MockWebhookSender::new();
    sender.expect_send().returning(move |o: &Outgoing| {
        let mut l = log.lock().unwrap();
        l.push((
            o.endpoint.url.clone(),
            o.delivery.event_type.to_string(),
            o.delivery.event_id.clone(),
            o.job.status,
        ));
        answer(l.len())
    });
    let m = Marketplace::new(
        Ports {
            store: Arc::new(store.clone()),
            structurer: Arc::new(structurer),
            verifier: SetVerifier::passing(true),
            clock: clock.clone(),
            payments: Arc::new(MockPaymentGateway::new()),
            payouts: Arc::new(MockPayoutGateway::new()),
            webhooks: Arc::new(sender),
            files: std::sync::Arc::new(clawrk_domain::memory::MemoryFiles::new()),
        },
        Config::default(),
    );
    (m, store, clock, sent)
}

fn ok() -> SendResult {
    SendResult {
        status: Some(200),
        error: None,
    }
}

fn endpoint(url: &str, events: &[&str]) -> NewEndpoint {
    NewEndpoint {
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: None,
    }
}

async fn drain(m: &Marketplace) {
    while m.dispatch_webhook_events().await.unwrap() > 0 {}
    while m.deliver_webhooks(BASE, LEASE).await.unwrap().sent() > 0 {}
}

#[test]
fn a_lifecycle_tells_the_sender_and_the_operator_what_they_asked_for() {
    block_on(async {
        let (m, _s, _clock, sent) = world(|_| ok());
        let sender = m.create_user("sender").await.unwrap();
        m.adjust_balance(sender.id, Cents(500), Reason::Adjustment)
            .await
            .unwrap();
        let worker = m.create_user("worker").await.unwrap();
        let stranger = m.create_user("stranger").await.unwrap();
        m.create_webhook(
            sender.id,
            endpoint("https://s.example/h", &["*"]),
            "s1".into(),
        )
        .await
        .unwrap();
        m.create_webhook(
            worker.id,
            endpoint("https://w.example/h", &["job.held", "payout.completed"]),
            "s2".into(),
        )
        .await
        .unwrap();
        m.create_webhook(
            stranger.id,
            endpoint("https://x.example/h", &["*"]),
            "s3".into(),
        )
        .await
        .unwrap();
        let RunOutcome::Queued(job) = m
            .run(
                sender.id,
                RunRequest {
                    prompt: "Write a haiku".into(),
                    confirmed: true,
                    ..RunRequest::default()
                },
            )
            .await
            .unwrap()
        else {
            panic!("paid")
        };
        m.pull(worker.id, &NOBODY).await.unwrap().unwrap();
        m.accept(worker.id, job.id, &NOBODY).await.unwrap();
        let out = Output::new(Some("one\ntwo\nthree".into()), None).unwrap();
        m.submit(worker.id, job.id, out).await.unwrap();
        m.verify_next().await.unwrap().unwrap();
        drain(&m).await;
        let sent = sent.lock().unwrap().clone();
        let to = |url: &str| -> Vec<(String, JobStatus)> {
            sent.iter()
                .filter(|s| s.0 == url)
                .map(|s| (s.1.clone(), s.3))
                .collect()
        };
        use JobStatus as S;
        assert_eq!(
            to("https://s.example/h"),
            [
                ("job.queued".into(), S::Queued),
                ("job.held".into(), S::Held),
                ("job.accepted".into(), S::Accepted),
                ("job.submitted".into(), S::Submitted),
                ("job.verified".into(), S::Verified),
                ("payout.completed".into(), S::Verified),
            ]
        );
        assert_eq!(
            to("https://w.example/h"),
            [
                ("job.held".into(), S::Held),
                ("payout.completed".into(), S::Verified)
            ]
        );
        assert!(
            to("https://x.example/h").is_empty(),
            "not the stranger's job"
        );
        // One id per event, the same for each of its receivers.
        let ids: Vec<&String> = sent.iter().map(|s| &s.2).collect();
        let payout: Vec<&String> = sent
            .iter()
            .filter(|s| s.1 == "payout.completed")
            .map(|s| &s.2)
            .collect();
        assert_eq!(payout[0], payout[1]);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 6);
        // Nothing more to send.
        assert_eq!(m.dispatch_webhook_events().await.unwrap(), 0);
        assert_eq!(m.deliver_webhooks(BASE, LEASE).await.unwrap().sent(), 0);
    });
}

#[test]
fn a_failing_receiver_is_retried_with_backoff_and_later_events_wait_in_order() {
    block_on(async {
        // Fails three times, then takes everything.
        let (m, s, clock, sent) = world(|n| {
            if n <= 3 {
                SendResult {
                    status: Some(503),
                    error: Some("HTTP 503".into()),
                }
            } else {
                ok()
            }
        });
        let u = m.create_user("sender").await.unwrap();
        m.adjust_balance(u.id, Cents(1_000), Reason::Adjustment)
            .await
            .unwrap();
        let ep = m
            .create_webhook(u.id, endpoint("https://s.example/h", &["*"]), "k".into())
            .await
            .unwrap();
        let run = || RunRequest {
            prompt: "Write a haiku".into(),
            confirmed: true,
            ..RunRequest::default()
        };
        let RunOutcome::Queued(first) = m.run(u.id, run()).await.unwrap() else {
            panic!()
        };
        m.cancel(u.id, first.id).await.unwrap();
        drain(&m).await;
        // Two events; the first failed once and the second waited behind it.
        assert_eq!(sent.lock().unwrap().len(), 1);
        let mut waited = 0;
        while sent.lock().unwrap().len() < 5 {
            clock.advance_secs(3600);
            drain(&m).await;
            waited += 1;
            assert!(waited < 10);
        }
        let sent = sent.lock().unwrap().clone();
        let types: Vec<&str> = sent.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(
            types,
            [
                "job.queued",
                "job.queued",
                "job.queued",
                "job.queued",
                "job.cancelled"
            ]
        );
        let ds = m.deliveries(u.id, ep.id, Page::first()).await.unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.iter().all(|d| d.state == DeliveryState::Delivered));
        let queued = ds.iter().find(|d| d.event_id == sent[0].2).unwrap();
        assert_eq!(queued.attempts, 4);
        assert_eq!(queued.last_error, None);
        // A redelivery sends the same event, with the same id, once more.
        let again = m.redeliver(u.id, ep.id, queued.id).await.unwrap();
        assert_eq!(again.state, DeliveryState::Pending);
        drain(&m).await;
        let snapshot = s.snapshot();
        let d = &snapshot.deliveries[&queued.id];
        assert_eq!((d.attempts, d.state), (5, DeliveryState::Delivered));
    });
}

#[test]
fn endpoints_are_their_owners_alone_and_checked() {
    block_on(async {
        let (m, _s, _clock, _sent) = world(|_| ok());
        let a = m.create_user("a").await.unwrap();
        let b = m.create_user("b").await.unwrap();
        let ep = m
            .create_webhook(
                a.id,
                endpoint("https://a.example/h", &["job.failed"]),
                "k".into(),
            )
            .await
            .unwrap();
        assert_eq!(
            m.webhook(b.id, ep.id).await,
            Err(DomainError::NotFound("webhook"))
        );
        assert!(m.deliveries(b.id, ep.id, Page::first()).await.is_err());
        assert!(m.delete_webhook(b.id, ep.id).await.is_err());
        assert!(
            m.update_webhook(b.id, ep.id, EndpointPatch::default())
                .await
                .is_err()
        );
        assert!(m.webhooks(b.id).await.unwrap().is_empty());
        for bad in [
            endpoint("ftp://a.example/", &["*"]),
            endpoint("https://a.example/", &[]),
            endpoint("https://a.example/", &["job.nope"]),
        ] {
            assert!(matches!(
                m.create_webhook(a.id, bad, "k".into()).await,
                Err(DomainError::Invalid(_))
            ));
        }
        let off = m
            .update_webhook(
                a.id,
                ep.id,
                EndpointPatch {
                    enabled: Some(false),
                    secret: Some("k2".into()),
                    events: Some(vec!["*".into()]),
                    ..EndpointPatch::default()
                },
            )
            .await
            .unwrap();
        assert!(!off.enabled);
        assert_eq!(
            (off.secret.as_str(), off.events.names()),
            ("k2", vec!["*".to_string()])
        );
        m.delete_webhook(a.id, ep.id).await.unwrap();
        assert_eq!(
            m.webhook(a.id, ep.id).await,
            Err(DomainError::NotFound("webhook"))
        );
        assert_eq!(
            m.webhook(a.id, WebhookId(uuid::Uuid::nil())).await,
            Err(DomainError::NotFound("webhook"))
        );
    });
}
