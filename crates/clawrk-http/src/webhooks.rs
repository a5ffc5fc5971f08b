//! Webhooks over HTTP: the endpoint routes (`/api/webhooks…`), and [`HttpSender`], the adapter
//! that posts signed events to receivers — refusing destinations that are not public, following
//! no redirect, within a timeout.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, page, path_id};
use crate::views::{self, PageQuery};
use actix_web::web::{Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use async_trait::async_trait;
use clawrk_api::{self as api, ErrorBody};
use clawrk_domain::ports::WebhookSender;
use clawrk_domain::webhook::{
    self, DeliveryId, EndpointPatch, NewEndpoint, Outgoing, SendResult, WebhookId,
};
use rand::RngCore;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A new signing secret: 32 bytes from the operating system's random source.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

fn webhook_id(raw: &str) -> ApiResult<WebhookId> {
    path_id(raw, "webhook id")
}

/// Registers a webhook endpoint.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = api::NewWebhook,
    responses((status = 201, description = "the endpoint, with its signing secret (shown only here and when rotated)", body = api::Webhook),
        (status = 400, description = "`invalid_input`: a URL that is not http(s), an unknown event type", body = ErrorBody),
        (status = 409, description = "`conflict`: you have 20 endpoints already", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_webhook(
    st: Data<AppState>,
    caller: Caller,
    body: JsonBody<api::NewWebhook>,
) -> ApiResult<HttpResponse> {
    let b = body.value;
    let e = st
        .market
        .create_webhook(
            caller.0.id,
            NewEndpoint {
                url: b.url,
                events: b.events,
                description: b.description,
            },
            new_secret(),
        )
        .await?;
    Ok(HttpResponse::Created().json(views::webhook(&e, true)))
}

/// The caller's webhook endpoints, oldest first (without their secrets).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, description = "the caller's endpoints", body = Vec<api::Webhook>)),
    security(("api_key" = [])))]
pub async fn list_webhooks(st: Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let es = st.market.webhooks(caller.0.id).await?;
    Ok(HttpResponse::Ok().json(
        es.iter()
            .map(|e| views::webhook(e, false))
            .collect::<Vec<_>>(),
    ))
}

/// One of the caller's webhook endpoints.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    responses((status = 200, description = "the endpoint", body = api::Webhook),
        (status = 404, description = "`not_found`: no such endpoint of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_webhook(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let e = st.market.webhook(caller.0.id, webhook_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(views::webhook(&e, false)))
}

/// Changes an endpoint: URL, events, description, enabled; `rotate_secret` makes a new secret
/// (in the answer).
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", request_body = api::WebhookPatch,
    responses((status = 200, description = "the endpoint, changed (with the new secret when rotated)", body = api::Webhook),
        (status = 400, description = "`invalid_input`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn patch_webhook(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::WebhookPatch>,
) -> ApiResult<HttpResponse> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body is required: a JSON object with url, events, description, enabled or rotate_secret",
        ));
    }
    let id = webhook_id(&id)?;
    let b = body.value;
    let rotate = b.rotate_secret == Some(true);
    let e = st
        .market
        .update_webhook(
            caller.0.id,
            id,
            EndpointPatch {
                url: b.url,
                events: b.events,
                description: b.description,
                enabled: b.enabled,
                secret: rotate.then(new_secret),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(views::webhook(&e, rotate)))
}

/// Deletes an endpoint; its pending deliveries are not sent.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "deleted"),
        (status = 404, description = "`not_found`: no such endpoint of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    st.market
        .delete_webhook(caller.0.id, webhook_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size, 1 to 200 (default 50)"), ("before" = Option<uuid::Uuid>, Query, description = "the last delivery id of the previous page")),
    responses((status = 200, description = "a page of deliveries; `Link: <…>; rel=\"next\"` announces the next", body = Vec<api::WebhookDelivery>),
        (status = 404, description = "`not_found`: no such endpoint of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_deliveries(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
    q: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let id = webhook_id(&id)?;
    let p = page::<DeliveryId>(q.limit.as_deref(), q.before.as_deref())?;
    let ds = st.market.deliveries(caller.0.id, id, p).await?;
    let last = ds.last().map(|d| d.id.to_string());
    let views: Vec<api::WebhookDelivery> = ds.iter().map(views::delivery).collect();
    Ok(
        crate::routes::with_next(HttpResponse::Ok(), &req, views.len(), p.limit, last, &[])
            .json(views),
    )
}

/// Sends a delivery again now, whatever its state, with a fresh 24-hour retry window. The event
/// keeps its id.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "the endpoint"), ("delivery" = uuid::Uuid, Path, description = "the delivery")),
    responses((status = 202, description = "queued: the delivery, pending", body = api::WebhookDelivery),
        (status = 404, description = "`not_found`: no such endpoint or delivery of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn redeliver(
    st: Data<AppState>,
    caller: Caller,
    ids: Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery) = ids.into_inner();
    let id = webhook_id(&id)?;
    let delivery = path_id::<DeliveryId>(&delivery, "delivery id")?;
    let d = st.market.redeliver(caller.0.id, id, delivery).await?;
    Ok(HttpResponse::Accepted().json(views::delivery(&d)))
}

/// Refuses names that resolve only to addresses that are not public (and keeps only the public
/// ones of the others), so a delivery never reaches loopback, private networks or metadata
/// services — checked at send time, after DNS, on the address actually connected to.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| webhook::is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("refused: {host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The webhook sender: signs each event with its endpoint's secret and posts it.
pub struct HttpSender {
    client: reqwest::Client,
    allow_private: bool,
}

/// An event body larger than this is not sent (events carry one job, whose fields the API bounds
/// far below it).
const MAX_EVENT_BYTES: usize = 4 << 20;

impl HttpSender {
    /// A sender with `timeout` per delivery; `allow_private` lets deliveries reach loopback and
    /// private addresses (`CLAWRK_WEBHOOK_ALLOW_PRIVATE=1`: local use and tests).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<HttpSender, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A proxy from the environment would resolve names where they are not checked.
            .no_proxy()
            .user_agent(concat!("clawrk-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(HttpSender {
            client,
            allow_private,
        })
    }

    fn refused_literal(&self, url: &str) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let host = reqwest::Url::parse(url).ok()?.host_str()?.to_string();
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        (!webhook::is_public(ip)).then(|| {
            format!(
                "refused: {ip} is not a public address (CLAWRK_WEBHOOK_ALLOW_PRIVATE=1 allows it)"
            )
        })
    }
}

fn failed(error: String) -> SendResult {
    SendResult {
        status: None,
        error: Some(error),
    }
}

/// An error and its causes on one line (reqwest's own message omits the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, out: &Outgoing) -> SendResult {
        if let Some(why) = self.refused_literal(&out.endpoint.url) {
            return failed(why);
        }
        let body = match serde_json::to_vec(&views::webhook_event(out)) {
            Ok(b) if b.len() <= MAX_EVENT_BYTES => b,
            Ok(b) => return failed(format!("the event is {} bytes, over the cap", b.len())),
            Err(e) => return failed(format!("cannot encode the event: {e}")),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = api::webhooks::sign(&out.endpoint.secret, now, &body);
        let sent = self
            .client
            .post(&out.endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(api::webhooks::SIGNATURE_HEADER, signature)
            .header(api::webhooks::EVENT_ID_HEADER, &out.delivery.event_id)
            .body(body)
            .send()
            .await;
        match sent {
            // The receiver's body is never read: only its status counts.
            Ok(r) => {
                let status = r.status().as_u16();
                SendResult {
                    status: Some(status),
                    error: (!r.status().is_success()).then(|| {
                        if r.status().is_redirection() {
                            format!("HTTP {status} (redirects are not followed)")
                        } else {
                            format!("HTTP {status}")
                        }
                    }),
                }
            }
            Err(e) if e.is_timeout() => failed("timed out".into()),
            Err(e) => failed(chain(&e)),
        }
    }
}
