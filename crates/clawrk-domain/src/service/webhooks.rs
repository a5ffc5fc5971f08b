//! Webhook use cases: an owner's endpoints and their deliveries, and the two background steps —
//! dispatching outbox rows into deliveries, and sending the deliveries that are due.

use super::Marketplace;
use crate::error::{DomainError, Result};
use crate::ids::{Timestamp, UserId};
use crate::ports::Page;
use crate::webhook::{
    self, Delivery, DeliveryId, DeliveryState, Endpoint, EndpointPatch, EventFilter, NewEndpoint,
    WebhookId,
};
use std::collections::BTreeSet;
use std::time::Duration;

/// Outbox rows one dispatch step turns into deliveries.
pub const DISPATCH_BATCH: u32 = 200;
/// Deliveries one send step leases.
pub const DELIVERY_BATCH: u32 = 32;

/// What one send step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Sends the receiver took (2xx).
    pub delivered: usize,
    /// Sends that failed; the delivery is tried again later.
    pub retrying: usize,
    /// Sends that failed at the end of the delivery's retry window: it is marked failed.
    pub failed: usize,
}

impl DeliveryReport {
    /// Sends made.
    pub fn sent(&self) -> usize {
        self.delivered + self.retrying + self.failed
    }
}

fn owned(e: Option<Endpoint>, owner: UserId) -> Result<Endpoint> {
    e.filter(|e| e.owner == owner)
        .ok_or(DomainError::NotFound("webhook"))
}

impl Marketplace {
    /// Registers an endpoint for `owner`, signed with `secret` (made by the caller from a
    /// cryptographic random source; shown to the owner once).
    pub async fn create_webhook(
        &self,
        owner: UserId,
        new: NewEndpoint,
        secret: String,
    ) -> Result<Endpoint> {
        let now = self.now();
        let endpoint = Endpoint {
            id: WebhookId(self.ports.clock.new_id()),
            owner,
            url: webhook::check_url(&new.url)?,
            events: EventFilter::parse(&new.events)?,
            description: webhook::check_description(new.description)?,
            enabled: true,
            secret,
            created_at: now,
            updated_at: now,
        };
        let row = endpoint.clone();
        self.store()
            .transaction(move |tx| {
                if tx.webhooks_of(owner)?.len() >= webhook::MAX_ENDPOINTS_PER_USER {
                    return Err(DomainError::Conflict(format!(
                        "at most {} webhook endpoints per user",
                        webhook::MAX_ENDPOINTS_PER_USER
                    )));
                }
                tx.insert_webhook(&row)
            })
            .await?;
        Ok(endpoint)
    }

    /// The owner's endpoints, oldest first.
    pub async fn webhooks(&self, owner: UserId) -> Result<Vec<Endpoint>> {
        self.store().read(move |tx| tx.webhooks_of(owner)).await
    }

    /// One of the owner's endpoints (NotFound for anyone else's).
    pub async fn webhook(&self, owner: UserId, id: WebhookId) -> Result<Endpoint> {
        let e = self.store().read(move |tx| tx.webhook(id)).await?;
        owned(e, owner)
    }

    /// Changes one of the owner's endpoints.
    pub async fn update_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
        patch: EndpointPatch,
    ) -> Result<Endpoint> {
        let url = patch.url.as_deref().map(webhook::check_url).transpose()?;
        let events = patch
            .events
            .as_deref()
            .map(EventFilter::parse)
            .transpose()?;
        let description = patch
            .description
            .map(|d| webhook::check_description(Some(d)))
            .transpose()?;
        let now = self.now();
        self.store()
            .transaction(move |tx| {
                let mut e = owned(tx.webhook(id)?, owner)?;
                if let Some(u) = url {
                    e.url = u;
                }
                if let Some(ev) = events {
                    e.events = ev;
                }
                if let Some(d) = description {
                    e.description = d;
                }
                if let Some(on) = patch.enabled {
                    e.enabled = on;
                }
                if let Some(s) = patch.secret {
                    e.secret = s;
                }
                e.updated_at = now;
                tx.update_webhook(&e)?;
                Ok(e)
            })
            .await
    }

    /// Deletes one of the owner's endpoints, with its deliveries (pending ones are not sent).
    pub async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<()> {
        self.store()
            .transaction(move |tx| {
                owned(tx.webhook(id)?, owner)?;
                tx.delete_webhook(id)
            })
            .await
    }

    /// The deliveries of one of the owner's endpoints, newest first.
    pub async fn deliveries(
        &self,
        owner: UserId,
        id: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>> {
        self.store()
            .read(move |tx| {
                owned(tx.webhook(id)?, owner)?;
                tx.deliveries_of(id, page)
            })
            .await
    }

    /// Queues a delivery of one of the owner's endpoints to be sent again now (whatever its state),
    /// with a fresh retry window. The event keeps its id, so receivers can drop it if they had it.
    pub async fn redeliver(
        &self,
        owner: UserId,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Delivery> {
        let now = self.now();
        self.store()
            .transaction(move |tx| {
                owned(tx.webhook(id)?, owner)?;
                let d = tx
                    .delivery(delivery)?
                    .filter(|d| d.endpoint == id)
                    .ok_or(DomainError::NotFound("delivery"))?;
                let d = webhook::redeliver(d, now);
                tx.update_delivery(&d)?;
                Ok(d)
            })
            .await
    }

    /// Turns up to [`DISPATCH_BATCH`] outbox rows into deliveries, one per event and enabled
    /// endpoint of each of its receivers that wants it and existed when it happened; rows nobody
    /// receives are dropped. Returns how many rows it handled (0: the outbox is drained).
    pub async fn dispatch_webhook_events(&self) -> Result<usize> {
        let clock = self.ports.clock.clone();
        self.store()
            .transaction(move |tx| {
                let events = tx.undispatched_events(DISPATCH_BATCH)?;
                if events.is_empty() {
                    return Ok(0);
                }
                let owners: Vec<UserId> = events
                    .iter()
                    .flat_map(|e| e.recipients())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let endpoints = tx.webhooks_for(&owners)?;
                let (mut deliveries, mut keep, mut drop) = (Vec::new(), Vec::new(), Vec::new());
                for e in &events {
                    let before = deliveries.len();
                    let at = e.at();
                    for owner in e.recipients() {
                        for ep in endpoints
                            .iter()
                            .filter(|ep| ep.owner == owner && ep.created_at <= at)
                        {
                            for t in e.types().into_iter().filter(|t| ep.events.wants(*t)) {
                                deliveries.push(Delivery {
                                    id: DeliveryId(clock.new_id()),
                                    endpoint: ep.id,
                                    event_seq: e.seq,
                                    event_type: t,
                                    event_id: webhook::event_id(e.job.id, e.job.version, t),
                                    job_id: e.job.id,
                                    recipient: owner,
                                    attempts: 0,
                                    state: DeliveryState::Pending,
                                    next_at: Some(at),
                                    last_status: None,
                                    last_error: None,
                                    give_up_at: at.plus_millis(webhook::RETRY_WINDOW_MILLIS),
                                    created_at: at,
                                    updated_at: at,
                                });
                            }
                        }
                    }
                    if deliveries.len() > before {
                        keep.push(e.seq);
                    } else {
                        drop.push(e.seq);
                    }
                }
                tx.insert_deliveries(&deliveries)?;
                tx.settle_events(&keep, &drop)?;
                Ok(events.len())
            })
            .await
    }

    /// Sends up to [`DELIVERY_BATCH`] due deliveries and records each outcome: delivered, or
    /// pending again after a backoff (from `retry_base`, doubling), or failed once the retry window
    /// is over. Deliveries to one endpoint are sent one after the other, in event order; endpoints
    /// are served concurrently. A crash after the lease retries them once `lease` has passed
    /// (delivery is at least once).
    pub async fn deliver_webhooks(
        &self,
        retry_base: Duration,
        lease: Duration,
    ) -> Result<DeliveryReport> {
        let now = self.now();
        let until = now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let leased = self
            .store()
            .transaction(move |tx| tx.lease_deliveries(now, until, DELIVERY_BATCH))
            .await?;
        let mut by_endpoint: Vec<Vec<webhook::Outgoing>> = Vec::new();
        for out in leased {
            match by_endpoint
                .iter_mut()
                .find(|g| g[0].endpoint.id == out.endpoint.id)
            {
                Some(g) => g.push(out),
                None => by_endpoint.push(vec![out]),
            }
        }
        let sends = by_endpoint.into_iter().map(|group| async move {
            let mut report = DeliveryReport::default();
            let mut rest = group.into_iter();
            while let Some(out) = rest.next() {
                let result = self.ports.webhooks.send(&out).await;
                let jitter = self.jitter();
                let at = self.now();
                let d = webhook::after_send(out.delivery, &result, at, retry_base, jitter);
                // After a failure the endpoint's later events wait with it, so that a receiver
                // that comes back gets them in order (and a dead one costs one timeout per step).
                match d.state {
                    DeliveryState::Delivered => report.delivered += 1,
                    DeliveryState::Pending => report.retrying += 1,
                    DeliveryState::Failed => report.failed += 1,
                }
                let wait = (d.state != DeliveryState::Delivered).then(|| d.next_at.unwrap_or(at));
                self.store()
                    .single(move |tx| tx.update_delivery(&d))
                    .await?;
                if let Some(next) = wait {
                    let held: Vec<Delivery> = rest
                        .map(|o| Delivery {
                            next_at: Some(next),
                            ..o.delivery
                        })
                        .collect();
                    self.store()
                        .single(move |tx| held.iter().try_for_each(|d| tx.update_delivery(d)))
                        .await?;
                    break;
                }
            }
            Ok::<DeliveryReport, DomainError>(report)
        });
        let mut total = DeliveryReport::default();
        for r in futures::future::join_all(sends).await {
            let r = r?;
            total.delivered += r.delivered;
            total.retrying += r.retrying;
            total.failed += r.failed;
        }
        Ok(total)
    }

    /// Deletes deliveries finished more than [`webhook::DELIVERY_RETENTION_MILLIS`] ago.
    pub(super) async fn purge_deliveries(&self, now: Timestamp) -> Result<u64> {
        let before = now.plus_millis(-webhook::DELIVERY_RETENTION_MILLIS);
        self.store()
            .single(move |tx| tx.purge_deliveries(before))
            .await
    }

    /// A number in 0..1 from the clock's id source (v7 ids end in random bits).
    fn jitter(&self) -> f64 {
        let bits = self.ports.clock.new_id().as_u128() & 0xffff;
        bits as f64 / f64::from(u16::MAX)
    }
}
