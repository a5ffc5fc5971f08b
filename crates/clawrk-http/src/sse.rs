//! `GET /api/jobs/:id/logs`: the verification log as server-sent events (SPEC §5).
//!
//! The stream replays the job's lines after `Last-Event-ID` (each `id: <seq>`, `event: log`), then
//! follows new ones: it re-reads the store whenever the [`LogWatch`](clawrk_domain::ports::LogWatch)
//! wakes it (a line or a status change on any instance) or after a short poll interval. Once the
//! latest submission has a verdict, one `event: verdict` is sent and the stream ends. Keep-alive
//! comments go out every 15 s.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, path_id};
use crate::views::{ErrorView, LogLineView, VerdictView};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use actix_web_lab::sse::{self, Sse};
use clawrk_domain::ids::JobId;
use clawrk_domain::job::{Job, JobStatus};
use std::collections::VecDeque;
use std::time::Duration;

/// How long the stream waits for a wake-up before it re-reads the store anyway.
const POLL: Duration = Duration::from_secs(2);
/// Keep-alive comment period.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether the stream is over: the job's latest verdict is in (or it ended without one).
/// While `submitted`, verification is pending; before the first verdict, the stream waits.
fn finished(job: &Job) -> bool {
    match job.status {
        JobStatus::Submitted => false,
        s if s.is_final() => true,
        _ => job.verification.is_some(),
    }
}

/// Streams a job's verification log.
#[utoipa::path(get, path = "/api/jobs/{id}/logs", tag = "jobs",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this seq")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "`event: log` (`id:` = seq, data = a log line), then one `event: verdict` (data = the verdict) and the end"),
        (status = 403, body = ErrorView), (status = 404, body = ErrorView)),
    security(("api_key" = [])))]
pub async fn logs(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
) -> ApiResult<impl actix_web::Responder> {
    let user = caller.0.id;
    let id: JobId = path_id(&id, "job id")?;
    let job = st.market.job(user, id).await?;
    if job.sender != user && job.receiver != Some(user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only the sender and the receiver may follow a job's log",
        ));
    }
    let after: i64 = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // The stream is driven by the response body itself (no task, no channel): an idle subscriber
    // costs one suspended future. It is dropped when the client goes away.
    let state = Follow {
        st: st.into_inner(),
        id,
        after,
        queue: VecDeque::new(),
        done: false,
    };
    let events = futures::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((ev, f));
            }
            if f.done {
                return None;
            }
            f.step().await;
        }
    });
    Ok(Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE))
}

/// The state of one log stream.
struct Follow {
    st: std::sync::Arc<AppState>,
    id: JobId,
    after: i64,
    queue: VecDeque<sse::Event>,
    done: bool,
}

impl Follow {
    /// Queues the lines after `after`.
    async fn read_lines(&mut self) -> bool {
        match self.st.market.store().logs(self.id, self.after).await {
            Ok(lines) => {
                for line in lines {
                    self.after = line.seq;
                    if let Ok(data) = sse::Data::new_json(LogLineView::of(&line)) {
                        self.queue
                            .push_back(data.id(line.seq.to_string()).event("log").into());
                    }
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, job = %self.id, "log stream stopped");
                false
            }
        }
    }

    /// One round: new lines, then the end (with the verdict) or a wait for the next change.
    async fn step(&mut self) {
        if !self.read_lines().await {
            self.done = true;
            return;
        }
        let job = match self.st.market.store().job(self.id).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, job = %self.id, "log stream stopped");
                self.done = true;
                return;
            }
        };
        if finished(&job) {
            // Lines written just before the verdict go first.
            self.read_lines().await;
            if let Some(v) = &job.verification
                && let Ok(data) = sse::Data::new_json(VerdictView::of(v))
            {
                self.queue.push_back(data.event("verdict").into());
            }
            self.done = true;
        } else if self.queue.is_empty() {
            self.st.watch.wait(self.id, POLL).await;
        }
    }
}
