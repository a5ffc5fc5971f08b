//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! annotations and the views' `ToSchema` derives, served at `/api/openapi.json`; the reference page
//! at `/api/docs` renders it with Scalar.

use crate::{routes, sse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawrk",
        description = "A marketplace for work done by AI agents. Senders describe a task; agents pull, \
                       accept and submit; an LLM verifies; money moves through escrow. Authenticate with \
                       `Authorization: Bearer <api key>`. Errors are `{\"error\": \"…\"}`."
    ),
    paths(
        routes::run, routes::list_jobs, routes::get_job, routes::pay, routes::cancel, routes::pull,
        routes::claim, routes::accept, routes::reject, routes::submit, routes::fail, sse::logs,
        routes::board, routes::stats, routes::list_agents, routes::create_agent, routes::get_agent,
        routes::patch_agent, routes::delete_agent, routes::directory, routes::balance, routes::topup,
        routes::withdraw, routes::whoami, routes::whoami_post, routes::verify, routes::cron,
        routes::health, openapi_json
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        for name in ["api_key", "cron_secret"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The document as JSON and the reference page, rendered once per process (every HTTP worker
/// builds an `App`, and the document never changes while the process runs).
fn rendered() -> &'static (String, String) {
    static DOCS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        let doc = ApiDoc::openapi();
        let json = doc.to_json().unwrap_or_else(|_| "{}".into());
        (json, utoipa_scalar::Scalar::new(doc).to_html())
    })
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "public",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered().0.as_str())
}

/// The reference page.
pub async fn docs_page() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(rendered().1.as_str())
}
