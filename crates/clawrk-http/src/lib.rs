//! clawrk's HTTP API on actix-web: every route of SPEC §5 under `/api`, bearer API keys, one error
//! shape (`{"error": …, "code": …}`) mapped from domain errors in one place, SSE verification logs, the cron
//! sweep, idempotency keys, a request id and a tracing span per request, and the OpenAPI document.
//!
//! The crate holds no business rule: handlers call the domain's
//! [`Marketplace`](clawrk_domain::service::Marketplace) and shape its answers.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod error;
pub mod extract;
pub mod files;
pub mod idem;
pub mod limit;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod sse;
pub mod views;
pub mod webhooks;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, Data};
use actix_web::{App, Error, HttpResponse};
use clawrk_domain::ports::LogWatch;
use clawrk_domain::service::Marketplace;
use error::ApiError;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub market: Arc<Marketplace>,
    /// Wake-ups for log streams.
    pub watch: Arc<dyn LogWatch>,
    /// The log streams' shared readers, one per followed job.
    pub logs: Arc<sse::LogHub>,
    /// The cron route's bearer secret; `None` disables the route (404).
    pub cron_secret: Option<String>,
    /// Rung after a submission, so that idle verification workers start at once instead of at
    /// their next poll.
    pub work: Arc<tokio::sync::Notify>,
    /// Per-caller request limit; `None`: unlimited.
    pub rate_limit: Option<Arc<limit::RateLimit>>,
    /// The instance's metrics (`GET /metrics`) and what `/api/health` reports of it.
    pub metrics: Arc<metrics::Metrics>,
}

const REQUEST_ID: &str = "x-request-id";

/// Keeps a caller's `x-request-id` if it is sane, else makes one; returns it on the response and
/// runs the request inside a span that carries it.
async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        user = tracing::field::Empty,
    );
    let started = Instant::now();
    let metrics = req
        .app_data::<Data<AppState>>()
        .map(|st| st.metrics.clone());
    let method = req.method().to_string();
    let record = |route: &str, status: u16| {
        if let Some(m) = &metrics {
            m.request(route, &method, status, started.elapsed());
        }
    };
    // A panic in a handler is a bug: it answers 500 like any internal error (and is logged),
    // instead of dropping the connection and the worker thread with it. (The request cannot be
    // kept aside for a response of our own — routing needs it unshared —, so the error goes to
    // the framework, which answers with its `ResponseError` body.)
    let answered = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        next.call(req).instrument(span.clone()),
    ))
    .await;
    let mut res = match answered {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => {
            record("unmatched", e.as_response_error().status_code().as_u16());
            return Err(e);
        }
        Err(panic) => {
            record("unmatched", 500);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| tracing::error!(panic = %what, "a handler panicked"));
            return Err(ApiError::new(clawrk_api::ErrorCode::Internal, "internal error").into());
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), v);
    }
    let status = res.status().as_u16();
    // The route's template ("/api/jobs/{id}"), never the path: ids would make a series each.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    record(&route, status);
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    Ok(res)
}

/// 429 for a caller over its request rate (when a limit is configured).
async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let limiter = req
        .app_data::<Data<AppState>>()
        .and_then(|st| st.rate_limit.clone());
    if let Some(limiter) = limiter {
        // A caller is the user of a key this instance authenticated recently; anyone else (no key,
        // a malformed, unknown or not yet seen key) counts against their address, so random
        // tokens cannot buy fresh buckets.
        let known = req.app_data::<Data<AppState>>().and_then(|st| {
            extract::bearer_token(req.request()).and_then(|t| st.market.is_known_key(&t))
        });
        let caller = match known {
            Some(user) => format!("user:{user}"),
            None => {
                let ip = req
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                format!("ip:{ip}")
            }
        };
        if let Err(wait) = limiter.check(&caller) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let resp = HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.max(1).to_string()))
                .json(clawrk_api::ErrorBody::new(
                    clawrk_api::ErrorCode::RateLimited,
                    format!("rate limited: retry in {} ms", wait.as_millis()),
                ));
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// A resource with its methods: `GET` routes answer `HEAD` too (without a body), and any other
/// method answers 405 in the error shape with an `Allow` header listing the methods it has.
macro_rules! resource {
    ($path:expr, $($method:ident => $handler:expr),+ $(,)?) => {{
        let mut allow: Vec<&'static str> = Vec::new();
        let mut r = web::resource($path);
        $(
            allow.push(stringify!($method));
            r = r.route(web::method(actix_web::http::Method::$method).to($handler));
            if stringify!($method) == "GET" {
                allow.push("HEAD");
                r = r.route(web::method(actix_web::http::Method::HEAD).to($handler));
            }
        )+
        let allow = allow.join(", ");
        r.default_service(web::to(move || routes::method_not_allowed(allow.clone())))
    }};
}

/// The routes under `/api`.
pub fn api_scope() -> actix_web::Scope {
    use routes::*;
    web::scope("/api")
        .service(resource!("/jobs/run", POST => run))
        .service(resource!("/jobs/pull", POST => pull))
        .service(resource!("/jobs", GET => list_jobs))
        .service(resource!("/jobs/{id}", GET => get_job))
        .service(resource!("/jobs/{id}/pay", POST => pay))
        .service(resource!("/jobs/{id}/cancel", POST => cancel))
        .service(resource!("/jobs/{id}/claim", POST => claim))
        .service(resource!("/jobs/{id}/accept", POST => accept))
        .service(resource!("/jobs/{id}/reject", POST => reject))
        .service(resource!("/jobs/{id}/submit", POST => submit))
        .service(resource!("/jobs/{id}/fail", POST => fail))
        .service(resource!("/jobs/{id}/review", POST => review))
        .service(resource!("/jobs/{id}/logs", GET => sse::logs))
        .service(resource!("/board", GET => board))
        .service(resource!("/board/stats", GET => stats))
        .service(resource!("/agents/directory", GET => directory))
        .service(resource!("/agents", GET => list_agents, POST => create_agent))
        .service(resource!("/agents/{id}", GET => get_agent, PATCH => patch_agent, DELETE => delete_agent))
        .service(resource!("/webhooks", GET => webhooks::list_webhooks, POST => webhooks::create_webhook))
        .service(resource!("/webhooks/{id}", GET => webhooks::get_webhook, PATCH => webhooks::patch_webhook, DELETE => webhooks::delete_webhook))
        .service(resource!("/webhooks/{id}/deliveries", GET => webhooks::list_deliveries))
        .service(resource!("/webhooks/{id}/deliveries/{delivery}/redeliver", POST => webhooks::redeliver))
        .service(resource!("/files", POST => files::upload))
        .service(resource!("/files/{id}", GET => files::download))
        .service(resource!("/files/{id}/meta", GET => files::file_meta))
        .service(resource!("/wallet/balance", GET => balance))
        .service(resource!("/wallet/topup", POST => topup))
        .service(resource!("/wallet/withdraw", POST => withdraw))
        .service(resource!("/whoami", GET => whoami, POST => whoami_post))
        .service(resource!("/verify", POST => verify))
        .service(resource!("/cron/enforce-deadlines", GET => cron))
        .service(resource!("/health", GET => health))
        .service(resource!("/openapi.json", GET => openapi::openapi_json))
        .service(resource!("/docs", GET => openapi::docs_page))
        .service(resource!(openapi::scalar_route(), GET => openapi::scalar_js))
}

/// The whole application.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(Data::new(state))
        .app_data(web::PayloadConfig::new(extract::MAX_BODY_BYTES))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request(format!("invalid query string: {e}")).into()
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::bad_request(format!("invalid path: {e}")).into()),
        )
        .wrap(from_fn(rate_limit))
        .wrap(from_fn(request_id))
        .service(web::resource("/metrics").route(web::get().to(routes::metrics)))
        .service(web::resource("/").route(web::get().to(routes::to_docs)))
        .service(api_scope())
        .default_service(web::to(routes::not_found))
}
