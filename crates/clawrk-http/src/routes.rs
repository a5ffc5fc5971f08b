//! The handlers of SPEC §5. Each one parses its input, calls one use case of the domain's
//! `Marketplace`, and shapes the answer; roles, visibility and transitions are the domain's.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, bearer_token, page, path_id};
use crate::idem::{Reply, once};
use crate::views::{self, PageQuery};
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use clawrk_api::{self as api, ErrorBody, ErrorCode};
use clawrk_domain::ids::{AgentId, JobId, TransferId, UserId};
use clawrk_domain::job::{Job, JobStatus, Output};
use clawrk_domain::money::Cents;
use clawrk_domain::service::{AgentSelector, Answered, JobsOf, RunOutcome, RunRequest};
use clawrk_domain::user::{AgentPatch, NewAgent};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn job_id(raw: &str) -> ApiResult<JobId> {
    path_id(raw, "job id")
}

fn ok_job(job: &Job, viewer: UserId) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(views::job(job, viewer)))
}

/// The answer of an idempotent route that answers with the job as `viewer` sees it.
fn job_reply(viewer: UserId) -> impl Fn(&Job) -> ApiResult<Reply> + Send + Sync + 'static {
    move |job| Reply::new(StatusCode::OK, views::job(job, viewer))
}

fn selector(b: api::AgentChoice) -> AgentSelector {
    AgentSelector {
        id: b.agent_id.map(AgentId),
        name: b.agent_name.filter(|n| !n.trim().is_empty()),
    }
}

/// `Link: <…>; rel="next"` when the page is full; `keep` are the filters the next page keeps
/// (values from fixed sets or ids: nothing to escape).
pub(crate) fn with_next(
    mut resp: actix_web::HttpResponseBuilder,
    req: &HttpRequest,
    count: usize,
    limit: u32,
    last: Option<String>,
    keep: &[(&str, String)],
) -> actix_web::HttpResponseBuilder {
    if let (true, Some(last)) = (count == limit as usize && count > 0, last) {
        let mut url = format!("{}?limit={limit}&before={last}", req.path());
        for (k, v) in keep {
            url.push_str(&format!("&{k}={v}"));
        }
        resp.insert_header(("Link", format!("<{url}>; rel=\"next\"")));
    }
    resp
}

/// Creates a job from a prompt, in two phases.
#[utoipa::path(post, path = "/api/jobs/run", tag = "jobs", request_body = api::RunRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "with `confirmed`: a repeat with the same key and body replays the first answer (24 hours)")),
    responses(
        (status = 200, description = "phase 1: the estimate", body = api::Estimate),
        (status = 201, description = "confirmed and paid: the job, queued", body = api::Job),
        (status = 402, description = "confirmed, wallet short: the job waits in `pending_payment` (`job`, `required_cents`, `available_cents`)", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict` or `idempotency_in_progress`", body = ErrorBody),
        (status = 502, description = "`llm_bad_answer`: the LLM's structuring was unusable", body = ErrorBody),
    ), security(("api_key" = [])))]
pub async fn run(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<api::RunRequest>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let b = body.value;
    let confirmed = b.confirmed == Some(true);
    let run = RunRequest {
        prompt: b.prompt,
        env_vars: b.env_vars.unwrap_or_default(),
        attachments: views::file_ids(b.attachments.as_deref()).unwrap_or_default(),
        price_cents: b.price_cents,
        time_limit_seconds: b.time_limit_seconds,
        confirmed,
    };
    let view = move |outcome: &RunOutcome| match outcome {
        RunOutcome::Estimate(s) => Reply::new(StatusCode::OK, views::estimate(s)),
        RunOutcome::Queued(job) => Reply::new(StatusCode::CREATED, views::job(job, user)),
        RunOutcome::PendingPayment {
            job,
            required,
            available,
        } => Reply::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorBody {
                error: format!(
                    "insufficient balance: {} required, {} available; pay the job with POST /api/jobs/{}/pay",
                    required.get(),
                    available.get(),
                    job.id
                ),
                code: ErrorCode::InsufficientBalance,
                required_cents: Some(required.get()),
                available_cents: Some(available.get()),
                job: Some(Box::new(views::job(job, user))),
            },
        ),
    };
    if confirmed {
        once(&st, user, &req, &body.raw, view, |answer| {
            st.market.run_keyed(user, run, answer)
        })
        .await
    } else {
        crate::idem::key_of(&req)?;
        Ok(view(&st.market.run(user, run).await?)?.into_response())
    }
}

/// The caller's jobs, newest first: those they sent (`role=sender`, the default), or those their
/// agents hold, work on, submitted or finished (`role=agent`).
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    params(("role" = Option<api::JobRole>, Query, description = "`sender` (default): jobs you sent; `agent`: jobs your agents hold or worked on"),
        ("agent_id" = Option<uuid::Uuid>, Query, description = "only the jobs this agent of yours holds or worked on (with `role=sender` that is none: your agents cannot take your jobs)"),
        ("status" = Option<api::JobStatus>, Query, description = "only jobs in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size, 1 to 200 (default 50)"), ("before" = Option<uuid::Uuid>, Query, description = "the last job id of the previous page")),
    responses((status = 200, body = Vec<api::Job>, description = "a page of jobs; `Link: <…>; rel=\"next\"` announces the next"),
        (status = 404, description = "`not_found`: `agent_id` is not one of your agents", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_jobs(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    q: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!("status must be one of {}", statuses()))
            })
        })
        .transpose()?;
    let p = page::<JobId>(q.limit.as_deref(), q.before.as_deref())?;
    let of = match q.role.as_deref() {
        None | Some("sender") => JobsOf::Sender,
        Some("agent") => JobsOf::Agent,
        Some(_) => return Err(ApiError::bad_request("role must be sender or agent")),
    };
    let agent = q
        .agent_id
        .as_deref()
        .map(|a| path_id::<AgentId>(a, "agent_id"))
        .transpose()?;
    let jobs = st.market.jobs(user, of, status, agent, p).await?;
    let views: Vec<api::Job> = jobs.iter().map(|j| views::job(j, user)).collect();
    let last = jobs.last().map(|j| j.id.to_string());
    let mut keep = Vec::new();
    if of == JobsOf::Agent {
        keep.push(("role", "agent".to_string()));
    }
    if let Some(a) = agent {
        keep.push(("agent_id", a.to_string()));
    }
    if let Some(s) = status {
        keep.push(("status", s.as_str().to_string()));
    }
    Ok(with_next(HttpResponse::Ok(), &req, jobs.len(), p.limit, last, &keep).json(views))
}

fn statuses() -> String {
    JobStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One job, if the caller may see it.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    responses((status = 200, description = "the job", body = api::Job), (status = 404, description = "`not_found`: no such job, or not yours to see", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_job(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    ok_job(&st.market.job(user, job_id(&id)?).await?, user)
}

/// Pays a `pending_payment` job.
#[utoipa::path(post, path = "/api/jobs/{id}/pay", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "a repeat with the same key and body replays the first answer (24 hours)")),
    responses((status = 200, description = "paid: the job, queued", body = api::Job),
        (status = 402, description = "`insufficient_balance`", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the sender pays", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict` or `idempotency_in_progress`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn pay(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
    body: JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let id = job_id(&id)?;
    once(&st, user, &req, &body.raw, job_reply(user), |answer| {
        st.market.pay_keyed(user, id, answer)
    })
    .await
}

/// Cancels a job (SPEC §3).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, description = "the job, cancelled (or with `cancellation_requested` while an attempt runs)", body = api::Job),
        (status = 403, description = "`forbidden`: only the sender cancels", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn cancel(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    ok_job(&st.market.cancel(user, job_id(&id)?).await?, user)
}

fn held(job: &Job, user: UserId) -> HttpResponse {
    HttpResponse::Ok().json(views::held(job, user))
}

/// Holds the best matching queued job for one of the caller's agents, waiting up to
/// `wait_seconds` for one (long poll).
#[utoipa::path(post, path = "/api/jobs/pull", tag = "agents at work", request_body(content = api::PullRequest, description = "optional: which agent pulls (the default agent otherwise), and how long to wait"),
    responses((status = 200, description = "a job, held for the agent until `hold_expires_at`", body = api::Held),
        (status = 204, description = "no queued job matches (after `wait_seconds`)"),
        (status = 404, description = "`not_found`: no such agent of yours", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn pull(
    st: Data<AppState>,
    caller: Caller,
    body: JsonBody<api::PullRequest>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let b = body.value;
    let wait = b.wait_seconds.unwrap_or(0);
    let sel = selector(api::AgentChoice {
        agent_id: b.agent_id,
        agent_name: b.agent_name,
    });
    // A pull waiting when the instance shuts down answers "nothing for now" at once, so that the
    // drain does not wait for it; the agent pulls again (elsewhere). A hold the store was granting
    // then rolls back with the abandoned call (if its commit was already on its way, the hold
    // lapses after the hold window and the job is queued again).
    let mut closing = st.logs.closing();
    let wait = if *closing.borrow() { 0 } else { wait };
    let pulled = tokio::select! {
        r = st.market.pull_waiting(user, &sel, wait, &*st.watch) => r?,
        _ = closing.wait_for(|c| *c) => None,
    };
    Ok(match pulled {
        Some(job) => held(&job, user),
        None => HttpResponse::NoContent().finish(),
    })
}

/// Holds one specific queued job.
#[utoipa::path(post, path = "/api/jobs/{id}/claim", tag = "agents at work", request_body(content = api::AgentChoice, description = "optional: which agent claims (the default agent otherwise)"),
    responses((status = 200, description = "the job, held for the agent until `hold_expires_at`", body = api::Held),
        (status = 400, description = "`invalid_state`: the job is not queued", body = ErrorBody),
        (status = 403, description = "`forbidden`: a sender cannot work on their own job", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job or agent (a job you cannot see that is not queued is not found either)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn claim(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::AgentChoice>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let job = st
        .market
        .claim(user, job_id(&id)?, &selector(body.value))
        .await?;
    Ok(held(&job, user))
}

/// Accepts a held job: the clock starts.
#[utoipa::path(post, path = "/api/jobs/{id}/accept", tag = "agents at work", request_body(content = api::AgentChoice, description = "optional: which agent accepts (the holder otherwise)"),
    responses((status = 200, description = "the job, accepted: `deadline_at` is set", body = api::Job),
        (status = 400, description = "`invalid_state`: the job is not held", body = ErrorBody),
        (status = 403, description = "`forbidden`: another agent holds it", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 410, description = "`hold_expired`: the hold lapsed and the job went back to the queue", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn accept(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::AgentChoice>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    ok_job(
        &st.market
            .accept(user, job_id(&id)?, &selector(body.value))
            .await?,
        user,
    )
}

/// Gives a held job back to the queue.
#[utoipa::path(post, path = "/api/jobs/{id}/reject", tag = "agents at work", request_body(content = api::AgentChoice, description = "optional: which agent rejects (the holder otherwise)"),
    responses((status = 200, description = "the job, back in the queue", body = api::Job),
        (status = 400, description = "`invalid_state`: the job is not held", body = ErrorBody),
        (status = 403, description = "`forbidden`: another agent holds it", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reject(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::AgentChoice>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    ok_job(
        &st.market
            .reject(user, job_id(&id)?, &selector(body.value))
            .await?,
        user,
    )
}

/// Submits the output of an accepted job; verification starts.
#[utoipa::path(post, path = "/api/jobs/{id}/submit", tag = "agents at work", request_body = api::SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "a repeat with the same key and body replays the first answer (24 hours)")),
    responses((status = 200, description = "the job, submitted: verification starts", body = api::Job),
        (status = 400, description = "`invalid_input`, `invalid_state`, or `deadline_passed` (\"time limit exceeded\": the attempt is failed)", body = ErrorBody),
        (status = 403, description = "`forbidden`: not your attempt", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict` or `idempotency_in_progress`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn submit(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
    body: JsonBody<api::SubmitRequest>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let id = job_id(&id)?;
    let b = body.value;
    let output = Output::new(b.output, views::file_ids(b.attachments.as_deref()))?;
    once(
        &st,
        user,
        &req,
        &body.raw,
        job_reply(user),
        |answer| async {
            let job = st.market.submit_keyed(user, id, output, answer).await?;
            // An idle verification worker of this instance starts at once (others poll).
            st.work.notify_one();
            Ok(job)
        },
    )
    .await
}

/// The sender's review of a submission the verifier gave up on.
#[utoipa::path(post, path = "/api/jobs/{id}/review", tag = "jobs", request_body = api::ReviewRequest,
    responses((status = 200, description = "the job: verified (approved), or its attempt failed (rejected)", body = api::Job),
        (status = 400, description = "`invalid_state`: the job does not wait for review (`review_due_at` is null)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the sender reviews", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn review(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ReviewBody>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let Some(decision) = body.value.decision else {
        return Err(ApiError::bad_request(
            "decision is required: \"approve\" or \"reject\"",
        ));
    };
    let approve = decision == api::ReviewDecision::Approve;
    ok_job(&st.market.review(user, job_id(&id)?, approve).await?, user)
}

/// The review body as read: `decision` is checked by the handler, which names it.
#[derive(serde::Deserialize, Default)]
pub struct ReviewBody {
    decision: Option<api::ReviewDecision>,
}

/// Gives up an accepted job (the attempt fails).
#[utoipa::path(post, path = "/api/jobs/{id}/fail", tag = "agents at work", request_body(content = api::FailRequest, description = "optional: why"),
    responses((status = 200, description = "the job: queued again, or failed and refunded after the third attempt", body = api::Job),
        (status = 400, description = "`invalid_state`: no attempt runs", body = ErrorBody),
        (status = 403, description = "`forbidden`: not your attempt", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn fail(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::FailRequest>,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let reason = body.value.reason.filter(|r| !r.trim().is_empty());
    ok_job(&st.market.give_up(user, job_id(&id)?, reason).await?, user)
}

/// The public board: queued jobs, newest first.
#[utoipa::path(get, path = "/api/board", tag = "public",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size, 1 to 200 (default 50)"), ("before" = Option<uuid::Uuid>, Query, description = "the last job id of the previous page")),
    responses((status = 200, description = "a page of queued jobs; `Link: <…>; rel=\"next\"` announces the next", body = Vec<api::BoardJob>)))]
pub async fn board(
    st: Data<AppState>,
    req: HttpRequest,
    q: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let p = page::<JobId>(q.limit.as_deref(), q.before.as_deref())?;
    let jobs = st.market.board(p).await?;
    let last = jobs.last().map(|j| j.id.to_string());
    let views: Vec<api::BoardJob> = jobs.iter().map(views::board_job).collect();
    Ok(with_next(HttpResponse::Ok(), &req, views.len(), p.limit, last, &[]).json(views))
}

/// Public numbers.
#[utoipa::path(get, path = "/api/board/stats", tag = "public", responses((status = 200, description = "the numbers", body = api::Stats)))]
pub async fn stats(st: Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(views::stats(&st.market.stats().await?)))
}

/// The caller's agents, default first.
#[utoipa::path(get, path = "/api/agents", tag = "agents",
    responses((status = 200, description = "the caller's agents", body = Vec<api::Agent>)), security(("api_key" = [])))]
pub async fn list_agents(st: Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let agents = st.market.agents(caller.0.id).await?;
    Ok(HttpResponse::Ok().json(agents.iter().map(views::agent).collect::<Vec<_>>()))
}

/// Creates an agent.
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = api::NewAgent,
    responses((status = 201, description = "the agent", body = api::Agent),
        (status = 409, description = "`conflict`: you have an agent of that name", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_agent(
    st: Data<AppState>,
    caller: Caller,
    body: JsonBody<api::NewAgent>,
) -> ApiResult<HttpResponse> {
    let b = body.value;
    if b.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is required"));
    }
    let name = b.name;
    let agent = st
        .market
        .create_agent(
            caller.0.id,
            NewAgent {
                name,
                personality: b.personality,
                avatar_url: b.avatar_url,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(views::agent(&agent)))
}

fn agent_id(raw: &str) -> ApiResult<AgentId> {
    path_id(raw, "agent id")
}

/// One of the caller's agents.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents",
    responses((status = 200, description = "the agent", body = api::Agent),
        (status = 404, description = "`not_found`: no such agent of yours", body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_agent(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let agent = st.market.agent(caller.0.id, agent_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(views::agent(&agent)))
}

/// Changes an agent; `null` clears a field.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", request_body = api::AgentPatch,
    responses((status = 200, description = "the agent, changed", body = api::Agent),
        (status = 404, description = "`not_found`: no such agent of yours", body = ErrorBody),
        (status = 409, description = "`conflict`: you have an agent of that name", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn patch_agent(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<api::AgentPatch>,
) -> ApiResult<HttpResponse> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body is required: a JSON object with name, personality or avatar_url",
        ));
    }
    let b = body.value;
    let agent = st
        .market
        .update_agent(
            caller.0.id,
            agent_id(&id)?,
            AgentPatch {
                name: b.name,
                personality: b.personality,
                avatar_url: b.avatar_url,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(views::agent(&agent)))
}

/// Deletes an agent (not the default one, not one at work).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents",
    responses((status = 204, description = "deleted"),
        (status = 404, description = "`not_found`: no such agent of yours", body = ErrorBody),
        (status = 409, description = "`conflict`: the default agent, or an agent at work", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_agent(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    st.market.delete_agent(caller.0.id, agent_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The public agent directory with each agent's numbers.
#[utoipa::path(get, path = "/api/agents/directory", tag = "public",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size, 1 to 200 (default 50)"), ("before" = Option<uuid::Uuid>, Query, description = "the last agent id of the previous page")),
    responses((status = 200, description = "a page of agents; `Link: <…>; rel=\"next\"` announces the next", body = Vec<api::AgentProfile>)))]
pub async fn directory(
    st: Data<AppState>,
    req: HttpRequest,
    q: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let p = page::<AgentId>(q.limit.as_deref(), q.before.as_deref())?;
    let entries = st.market.directory(p).await?;
    let last = entries.last().map(|e| e.agent.id.to_string());
    let views: Vec<api::AgentProfile> = entries.iter().map(views::profile).collect();
    Ok(with_next(HttpResponse::Ok(), &req, views.len(), p.limit, last, &[]).json(views))
}

/// The wallet's balance and ledger, newest first.
#[utoipa::path(get, path = "/api/wallet/balance", tag = "wallet",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size, 1 to 200 (default 50)"), ("before" = Option<uuid::Uuid>, Query, description = "the last ledger entry id of the previous page")),
    responses((status = 200, description = "the balance and a page of the ledger; `Link: <…>; rel=\"next\"` announces the next", body = api::Wallet)),
    security(("api_key" = [])))]
pub async fn balance(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    q: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let p = page::<TransferId>(q.limit.as_deref(), q.before.as_deref())?;
    let (balance, ledger) = st.market.wallet(caller.0.id, p).await?;
    let last = ledger.last().map(|e| e.id.to_string());
    let view = api::Wallet {
        balance_cents: balance.get(),
        ledger: ledger.iter().map(views::ledger_entry).collect(),
    };
    Ok(with_next(
        HttpResponse::Ok(),
        &req,
        view.ledger.len(),
        p.limit,
        last,
        &[],
    )
    .json(view))
}

/// Which way money moves between the wallet and the outside world.
#[derive(Clone, Copy)]
enum Move {
    In,
    Out,
}

/// A top-up or a withdrawal, once per idempotency key; answers the new balance.
async fn move_money(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<api::AmountRequest>,
    way: Move,
) -> ApiResult<HttpResponse> {
    let user = caller.0.id;
    let amount = Cents(body.value.amount_cents);
    let view = |balance: &Cents| {
        Reply::new(
            StatusCode::OK,
            api::Balance {
                balance_cents: balance.get(),
            },
        )
    };
    once(&st, user, &req, &body.raw, view, |answer| async {
        match way {
            Move::In => st.market.topup_keyed(user, amount, answer).await,
            // The payout follows the debit's transaction: its answer is stored after it.
            Move::Out => st
                .market
                .withdraw(user, amount)
                .await
                .map(Answered::unstored),
        }
    })
    .await
}

/// Tops up the wallet through the payment port.
#[utoipa::path(post, path = "/api/wallet/topup", tag = "wallet", request_body = api::AmountRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "a repeat with the same key and body replays the first answer (24 hours)")),
    responses((status = 200, description = "the new balance", body = api::Balance),
        (status = 409, description = "`idempotency_conflict` or `idempotency_in_progress`", body = ErrorBody),
        (status = 501, description = "`not_supported`: manual payments, an operator credits wallets", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn topup(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<api::AmountRequest>,
) -> ApiResult<HttpResponse> {
    move_money(st, caller, req, body, Move::In).await
}

/// Withdraws from the wallet through the payout port.
#[utoipa::path(post, path = "/api/wallet/withdraw", tag = "wallet", request_body = api::AmountRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "a repeat with the same key and body replays the first answer (24 hours)")),
    responses((status = 200, description = "the new balance", body = api::Balance),
        (status = 402, description = "`insufficient_balance`: more than the balance", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict` or `idempotency_in_progress`", body = ErrorBody),
        (status = 501, description = "`not_supported`: manual payouts, an operator debits wallets", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn withdraw(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<api::AmountRequest>,
) -> ApiResult<HttpResponse> {
    move_money(st, caller, req, body, Move::Out).await
}

/// Who the key belongs to.
#[utoipa::path(get, path = "/api/whoami", tag = "wallet",
    responses((status = 200, description = "the caller", body = api::Whoami)), security(("api_key" = [])))]
pub async fn whoami(st: Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(views::whoami(&st.market.whoami(&caller.0).await?)))
}

/// Same as `GET /api/whoami`.
#[utoipa::path(post, path = "/api/whoami", tag = "wallet",
    responses((status = 200, description = "the caller", body = api::Whoami)), security(("api_key" = [])))]
pub async fn whoami_post(st: Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    whoami(st, caller).await
}

/// Standalone verification: nothing is stored or paid.
#[utoipa::path(post, path = "/api/verify", tag = "jobs", request_body = api::VerifyRequest,
    responses((status = 200, description = "the verdict", body = api::Verdict),
        (status = 502, description = "`llm_bad_answer`: the verifier's answer was unusable", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    st: Data<AppState>,
    _caller: Caller,
    body: JsonBody<api::VerifyRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.value;
    let verdict = st
        .market
        .verify_standalone(
            b.requirements,
            b.acceptance_criteria.unwrap_or_default(),
            b.output,
        )
        .await?;
    Ok(HttpResponse::Ok().json(views::verdict(&verdict)))
}

/// One deadline sweep, for an external scheduler.
#[utoipa::path(get, path = "/api/cron/enforce-deadlines", tag = "operator",
    responses((status = 200, description = "what the sweep did", body = api::SweepReport),
        (status = 401, description = "`unauthorized`: not the cron secret", body = ErrorBody),
        (status = 404, description = "`not_found`: no `CRON_SECRET` configured", body = ErrorBody)),
    security(("cron_secret" = [])))]
pub async fn cron(st: Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let Some(secret) = st.cron_secret.as_deref() else {
        return Err(ApiError::not_found("route"));
    };
    // Equal-length digests, compared in constant time.
    let given = Sha256::digest(bearer_token(&req).unwrap_or_default().as_bytes());
    let want = Sha256::digest(secret.as_bytes());
    if !bool::from(given.as_slice().ct_eq(want.as_slice())) {
        return Err(ApiError::unauthorized());
    }
    let r = st.market.sweep().await?;
    Ok(HttpResponse::Ok().json(views::sweep(&r)))
}

/// 200 when the store answers, 503 otherwise; either way with what the instance runs on and
/// whether its background workers are alive.
#[utoipa::path(get, path = "/api/health", tag = "public",
    responses((status = 200, description = "the store answers", body = api::Health),
              (status = 503, description = "the store does not answer: the error shape (`store_unavailable`) with the fields of `Health` beside it", body = api::ErrorBody)))]
pub async fn health(st: Data<AppState>) -> HttpResponse {
    let reachable = match st.market.health().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            false
        }
    };
    let info = st.metrics.info();
    let (alive, sweeper) = st.metrics.workers_alive();
    let body = api::Health {
        status: if reachable { "ok" } else { "unavailable" }.into(),
        version: info.version.clone(),
        store: info.store.clone(),
        store_reachable: reachable,
        llm: info.llm.clone(),
        workers: api::WorkersHealth {
            verification_configured: info.verification_workers,
            verification_alive: alive,
            sweeper_alive: sweeper,
        },
    };
    if reachable {
        return HttpResponse::Ok().json(body);
    }
    // The error shape every 503 has, with the instance's details beside it.
    let mut v = serde_json::to_value(&body).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("error".into(), "store unavailable".into());
        o.insert("code".into(), ErrorCode::StoreUnavailable.as_str().into());
    }
    HttpResponse::ServiceUnavailable().json(v)
}

/// `GET /metrics`: Prometheus text (OpenMetrics). Jobs by status are read from the store; when it
/// does not answer, the last values are served.
pub async fn metrics(st: Data<AppState>) -> HttpResponse {
    let stats = st.market.job_stats().await;
    if let Err(e) = &stats {
        tracing::warn!(error = %e, "metrics: cannot read job counts");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let text = st
        .metrics
        .render(stats.ok().as_ref(), i64::try_from(now).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text)
}

/// `GET /`: the API reference.
pub async fn to_docs() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/api/docs"))
        .finish()
}

/// Unknown routes.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found("route"))
}

/// A known route with another method: 405 with the methods it has in `Allow`.
pub async fn method_not_allowed(allow: String) -> HttpResponse {
    let mut resp = actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed; this route accepts {allow}"),
    ));
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    resp
}
