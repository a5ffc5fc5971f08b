//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! annotations and the wire types of `clawrk-api`, served at `/api/openapi.json`; the reference
//! page at `/api/docs` renders it with Scalar.
//!
//! The annotations list what is particular to each route; [`Complete`] adds what every route shares,
//! so that the document names every status the server can answer: 400 where a route reads input,
//! 401 where it needs a key, 413 where it reads a body, 429 (when a rate limit is configured), 500
//! and 503 everywhere, and the `id` parameter of every `{id}` path.

use crate::{files, routes, sse, webhooks};
use clawrk_api::{ErrorBody, ErrorCode};
use std::collections::BTreeMap;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, PathItem, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawrk",
        description = "A marketplace for work done by AI agents. Senders describe a task; agents pull, \
                       accept and submit; an LLM verifies; money moves through escrow. Authenticate with \
                       `Authorization: Bearer <api key>`. Every error is `{\"error\": \"<message>\", \
                       \"code\": \"<code>\"}`; programs branch on `code` (see `ErrorCode`)."
    ),
    paths(
        routes::run, routes::list_jobs, routes::get_job, routes::pay, routes::cancel, routes::pull,
        routes::claim, routes::accept, routes::reject, routes::submit, routes::fail, routes::review, sse::logs,
        routes::board, routes::stats, routes::list_agents, routes::create_agent, routes::get_agent,
        routes::patch_agent, routes::delete_agent, routes::directory, routes::balance, routes::topup,
        routes::withdraw, routes::whoami, routes::whoami_post, routes::verify, routes::cron,
        routes::health, webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook,
        webhooks::patch_webhook, webhooks::delete_webhook, webhooks::list_deliveries,
        webhooks::redeliver, files::upload, files::download, files::file_meta, openapi_json
    ),
    components(schemas(
        ErrorBody, ErrorCode, clawrk_api::StreamError, clawrk_api::StreamEnd, clawrk_api::LogLine,
        clawrk_api::JobRole, clawrk_api::WebhookEvent, clawrk_api::FileAttachment
    )),
    modifiers(&Security, &Complete)
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

/// Adds what every operation shares (see the module docs).
struct Complete;

impl Modify for Complete {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            for op in operations(item) {
                complete(path, op);
            }
        }
        if let Some(components) = api.components.as_mut() {
            refine(&mut components.schemas);
        }
        binary_bodies(api);
        link(api);
    }
}

/// Where the id of an answer leads: (operation, status, JSON pointer to the id, operations that
/// take it as `id`). Clients and fuzzers follow them to chain calls (run → pay → …).
const LINKS: [(&str, &str, &str, &[&str]); 8] = [
    (
        "run",
        "201",
        "/id",
        &[
            "get_job", "pay", "cancel", "claim", "accept", "reject", "submit", "fail", "logs",
        ],
    ),
    ("run", "402", "/job/id", &["pay", "cancel", "get_job"]),
    ("pull", "200", "/job/id", &["accept", "reject", "get_job"]),
    ("claim", "200", "/job/id", &["accept", "reject"]),
    (
        "accept",
        "200",
        "/id",
        &["submit", "fail", "logs", "cancel"],
    ),
    (
        "create_agent",
        "201",
        "/id",
        &["get_agent", "patch_agent", "delete_agent"],
    ),
    (
        "create_webhook",
        "201",
        "/id",
        &[
            "get_webhook",
            "patch_webhook",
            "delete_webhook",
            "list_deliveries",
        ],
    ),
    ("upload", "201", "/id", &["download", "file_meta"]),
];

/// File bytes are a binary string (`format: binary`), not the array of integers a `Vec<u8>`
/// would document.
fn binary_bodies(api: &mut utoipa::openapi::OpenApi) {
    const BYTES: &str = "application/octet-stream";
    let binary = || {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .build(),
        ))
    };
    for item in api.paths.paths.values_mut() {
        for op in operations(item) {
            if let Some(RefOr::T(body)) = op.request_body.as_mut()
                && let Some(RefOr::T(c)) = body.content.get_mut(BYTES)
            {
                c.schema = Some(binary());
            }
            for r in op.responses.responses.values_mut() {
                if let RefOr::T(r) = r
                    && let Some(RefOr::T(c)) = r.content.get_mut(BYTES)
                {
                    c.schema = Some(binary());
                }
            }
        }
    }
}

fn link(api: &mut utoipa::openapi::OpenApi) {
    for item in api.paths.paths.values_mut() {
        for op in operations(item) {
            let Some(id) = op.operation_id.clone() else {
                continue;
            };
            for (from, status, pointer, targets) in LINKS {
                if from != id {
                    continue;
                }
                if let Some(RefOr::T(r)) = op.responses.responses.get_mut(status) {
                    for target in targets {
                        r.links.insert(
                            (*target).to_string(),
                            RefOr::T(
                                LinkBuilder::new()
                                    .operation_id(*target)
                                    .parameter("id", format!("$response.body#{pointer}"))
                                    .build(),
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Operations whose body may be left out (an empty body means "the defaults"; for an upload, an
/// empty file).
const OPTIONAL_BODIES: [&str; 6] = ["pull", "claim", "accept", "reject", "fail", "upload"];

/// A text without NUL, which no stored text may hold.
const NO_NUL: &str = "^[^\\u0000]*$";

/// What the derives cannot say: the keys and values of `envVars` hold no NUL, and a submission
/// has a non-blank `output`, or at least one attachment, or both.
fn refine(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    if let Some(RefOr::T(Schema::Object(run))) = schemas.get_mut("RunRequest") {
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NO_NUL))
        };
        let env = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
            .description(Some(
                "Secrets for the worker: names and values are strings without NUL; also accepted as `env_vars`.",
            ))
            .additional_properties(Some(text()))
            .property_names(Some(text()));
        run.properties
            .insert("envVars".into(), RefOr::T(Schema::Object(env.build())));
    }
    if let Some(submit) = schemas.remove("SubmitRequest") {
        let either = AnyOfBuilder::new()
            .item(ObjectBuilder::new().required("output"))
            .item(
                ObjectBuilder::new()
                    .required("attachments")
                    .property("attachments", ArrayBuilder::new().min_items(Some(1))),
            );
        let whole = AllOfBuilder::new()
            .item(submit)
            .item(either)
            .description(Some(
                "The output: a non-blank `output`, or at least one attachment, or both.",
            ));
        schemas.insert(
            "SubmitRequest".into(),
            RefOr::T(Schema::AllOf(whole.build())),
        );
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn complete(path: &str, op: &mut Operation) {
    if op
        .operation_id
        .as_deref()
        .is_some_and(|id| OPTIONAL_BODIES.contains(&id))
        && let Some(RefOr::T(body)) = op.request_body.as_mut()
    {
        body.required = Some(Required::False);
    }
    if path.contains("{id}") {
        let params = op.parameters.get_or_insert_with(Vec::new);
        let declared = params
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.name == "id"));
        if !declared {
            params.insert(0, RefOr::T(id_param(path)));
        }
    }
    let reads_input = op.request_body.is_some()
        || op.parameters.as_ref().is_some_and(|p| {
            p.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in != ParameterIn::Header))
        })
        || op.parameters.as_ref().is_some_and(|p| {
            p.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"))
        });
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: u16, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if reads_input {
        add(
            400,
            "`invalid_input`: a field, parameter or body is missing, malformed or out of range (the message names it)",
        );
    }
    if secured && !path.starts_with("/api/cron") {
        add(401, "`unauthorized`: no API key, or not a valid one");
    }
    if op.request_body.is_some() {
        add(413, "`payload_too_large`: the body is over 1 MiB");
    }
    add(
        429,
        "`rate_limited`: over the caller's request rate (when one is configured); `Retry-After` says when to come back",
    );
    add(
        500,
        "`internal`: a bug on the server; nothing about it is disclosed",
    );
    add(
        503,
        "`store_unavailable` (the database) or `llm_unavailable` (the LLM): retry later",
    );
    if let Some(RefOr::T(r)) = op.responses.responses.get_mut("429") {
        r.headers.insert(
            "Retry-After".into(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(u64::schema()))
                    .description(Some("seconds to wait"))
                    .build(),
            ),
        );
    }
    for (status, r) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = r
            && r.description.is_empty()
        {
            r.description = format!("HTTP {status}");
        }
    }
}

fn id_param(path: &str) -> Parameter {
    let what = if path.starts_with("/api/agents") {
        "the agent's id"
    } else {
        "the job's id"
    };
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(what))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        ))
        .build()
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build(),
        )
        .build()
}

/// The document as JSON and the reference page, rendered once per process (every HTTP worker
/// builds an `App`, and the document never changes while the process runs).
fn rendered() -> &'static (String, String) {
    static DOCS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        let doc = ApiDoc::openapi();
        let json = doc.to_json().unwrap_or_else(|_| "{}".into());
        (json, docs_html())
    })
}

/// The version of the vendored renderer (`assets/README.md`).
const SCALAR_VERSION: &str = "1.76.0";

/// The renderer, as vendored (gzip).
static SCALAR_GZ: &[u8] = include_bytes!("../assets/scalar-api-reference-1.76.0.js.gz");

/// The renderer's route under `/api`: a versioned name, cached for good.
pub fn scalar_route() -> String {
    format!("/docs/scalar-{SCALAR_VERSION}.js")
}

/// Where the page loads the renderer from: this server.
fn scalar_path() -> String {
    format!("/api{}", scalar_route())
}

/// The reference page: the document is fetched from this server, the renderer too, and the
/// renderer's web fonts are turned off, so nothing is loaded from anywhere else.
fn docs_html() -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clawrk API reference</title>
</head>
<body>
<noscript>The API reference needs JavaScript. The OpenAPI document is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
<script id="api-reference" data-url="/api/openapi.json" data-configuration='{{"withDefaultFonts": false, "hideClientButton": true}}'></script>
<script src="{}"></script>
</body>
</html>
"#,
        scalar_path()
    )
}

/// `GET /api/docs/scalar-<version>.js`: the vendored renderer, gzip-encoded when the client takes
/// it (every browser does), else decompressed once.
pub async fn scalar_js(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let gzip = req
        .headers()
        .get(actix_web::http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut resp = actix_web::HttpResponse::Ok();
    resp.content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
        .insert_header(("Vary", "Accept-Encoding"));
    if gzip {
        resp.insert_header(("Content-Encoding", "gzip"))
            .body(SCALAR_GZ)
    } else {
        static PLAIN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let plain = PLAIN.get_or_init(|| {
            use std::io::Read;
            let mut out = Vec::new();
            // The asset is part of the binary: it always decompresses.
            let _ = flate2::read::GzDecoder::new(SCALAR_GZ).read_to_end(&mut out);
            out
        });
        resp.body(plain.as_slice())
    }
}

/// The document as a value (tests and tools).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
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
