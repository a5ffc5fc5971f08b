//! `GET /api/jobs/:id/logs`: the verification log as server-sent events (SPEC §5).
//!
//! The stream replays the job's lines after `Last-Event-ID` (each `id: <seq>`, `event: log`), then
//! follows new ones. Once the latest submission has a verdict, one `event: verdict` is sent and the
//! stream ends; a job that ends without one (cancelled, or failed before any verdict) ends its
//! stream with `event: end` (`{"status"}`). Keep-alive comments go out every 15 s.
//!
//! **Fan-out.** All streams of one job on this instance share one [`Feed`]: one of them at a time
//! (the driver) waits for the job's wake-up ([`LogWatch`](clawrk_domain::ports::LogWatch), fed by
//! every instance) and reads the store; the others wait for the feed to move and copy what it read.
//! So the store is read once per change per job per instance, however many clients follow it, and
//! an idle subscriber costs a cursor and a watch receiver. When the driver's client leaves, another
//! subscriber takes over. A store error is reported to the clients (`event: error`, with a retry
//! hint) and the feed keeps trying: a stream ends only with the verdict, when its client goes, or
//! when the instance shuts down (`event: error` with code `shutting_down`: reconnect).

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Caller, path_id};
use crate::views;
use actix_web::HttpRequest;
use actix_web::web::{Data, Path};
use actix_web_lab::sse::{self, Sse};
use clawrk_api::{ErrorBody, ErrorCode, StreamEnd, StreamError};
use clawrk_domain::ids::JobId;
use clawrk_domain::job::{JobStatus, LogLine, Verdict};
use clawrk_domain::ports::{LogWatch, Waiter};
use clawrk_domain::service::LogUpdate;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// How long the driver waits for a wake-up before it re-reads the store anyway.
const POLL: Duration = Duration::from_secs(2);
/// Keep-alive comment period.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The retry hint of the event that closes a stream at shutdown.
const CLOSE_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between two reads after store errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a feed has read of its job so far, encoded once as the events every subscriber sends
/// (an event's text is shared, so a subscriber's copy is a reference count).
#[derive(Default)]
struct Seen {
    /// Every line read, in order: its seq and its `event: log`.
    lines: Vec<(i64, sse::Data)>,
    /// Set once the stream is over: its last event (`verdict`, or `end` for a job that ended
    /// without one).
    end: Option<sse::Data>,
    /// The last store error, while the store fails.
    error: Option<String>,
    /// Whether the store was read at least once.
    read: bool,
}

/// One job's shared log reader on this instance.
struct Feed {
    job: JobId,
    seen: Mutex<Seen>,
    /// Bumped after each read; subscribers wait on it.
    version: watch::Sender<u64>,
    /// The job's waiter, made with the feed (before its first read, so no change is missed),
    /// held by the subscriber that reads the store for everyone.
    driver: tokio::sync::Mutex<Box<dyn Waiter>>,
}

/// The feeds of this instance, by job; a feed lives as long as one of its subscribers.
pub struct LogHub {
    feeds: Mutex<HashMap<JobId, Weak<Feed>>>,
    /// Set at shutdown: every stream sends its last event and ends.
    closing: watch::Sender<bool>,
}

impl Default for LogHub {
    fn default() -> Self {
        LogHub {
            feeds: Mutex::default(),
            closing: watch::Sender::new(false),
        }
    }
}

impl LogHub {
    /// Ends every log stream of this instance, now and from now on, with an `event: error` whose
    /// code is `shutting_down`: clients reconnect (with `Last-Event-ID`) to another instance or
    /// after the restart, and lose no line.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// The instance's shutdown signal (true once [`LogHub::close_all`] was called): waiting
    /// requests end early with it.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

impl Feed {
    /// Records what a read found (new lines, the end, or an error) and wakes the subscribers.
    fn publish(&self, update: clawrk_domain::Result<LogUpdate>) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.read = true;
            match update {
                Ok(u) => {
                    let last = seen.lines.last().map_or(0, |l| l.0);
                    seen.lines.extend(
                        u.lines
                            .iter()
                            .filter(|l| l.seq > last)
                            .filter_map(|l| Some((l.seq, log_event(l)?))),
                    );
                    seen.error = None;
                    if u.finished {
                        seen.end = Some(last_event(u.verdict.as_ref(), u.status));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, job = %self.job, "log stream cannot read the store; retrying");
                    seen.error =
                        Some("the log is unavailable right now; the stream retries".into());
                }
            }
        }
        self.version.send_modify(|v| *v += 1);
    }
}

impl LogHub {
    fn feed(&self, job: JobId, watch: &dyn LogWatch) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = feeds.get(&job).and_then(Weak::upgrade) {
            return f;
        }
        // Forget feeds nobody follows any more.
        feeds.retain(|_, f| f.strong_count() > 0);
        let f = Arc::new(Feed {
            job,
            seen: Mutex::new(Seen::default()),
            version: watch::channel(0).0,
            driver: tokio::sync::Mutex::new(watch.watch(job)),
        });
        feeds.insert(job, Arc::downgrade(&f));
        f
    }

    /// How many jobs are followed on this instance.
    pub fn feeds(&self) -> usize {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.values().filter(|f| f.strong_count() > 0).count()
    }
}

/// Streams a job's verification log.
#[utoipa::path(get, path = "/api/jobs/{id}/logs", tag = "jobs",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this seq (an integer; any other value replays from the start)")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "`event: log` (`id:` = seq, data = a `LogLine`), then one `event: verdict` (data = a `Verdict`) and the end of the stream — or, for a job that ended without a verdict, `event: end` (data = a `StreamEnd`); `event: error` (data = a `StreamError`) while the log cannot be read (the stream stays open)"),
        (status = 403, description = "`forbidden`: only the sender and the agent's owner follow a job's log (not an agent that only holds it)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job, or not yours to see", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn logs(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
) -> ApiResult<impl actix_web::Responder> {
    let id: JobId = path_id(&id, "job id")?;
    // The feed (and its waiter) first, then the access check and a fresh read in one statement,
    // from which the feed starts or catches up.
    let feed = st.logs.feed(id, &*st.watch);
    let first = st.market.open_log(caller.0.id, id).await?;
    let after: i64 = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let version = feed.version.subscribe();
    let closing = st.logs.closing.subscribe();
    let counted = st.metrics.stream_opened();
    feed.publish(Ok(first));
    // The stream is driven by the response body itself (no task, no channel per subscriber): an
    // idle subscriber costs one suspended future. It is dropped when the client goes away.
    let state = Follow {
        st: st.into_inner(),
        feed,
        version,
        after,
        reported_error: None,
        queue: VecDeque::new(),
        done: false,
        closing,
        _counted: counted,
    };
    let events = futures::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((ev, f));
            }
            if f.done {
                return None;
            }
            let mut closing = f.closing.clone();
            tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => f.close(),
                _ = f.step() => {}
            }
        }
    });
    Ok(Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE))
}

/// A line's `event: log` (`id:` its seq); `None` only if it cannot be encoded.
fn log_event(line: &LogLine) -> Option<sse::Data> {
    let data = sse::Data::new_json(views::log_line(line)).ok()?;
    Some(data.id(line.seq.to_string()).event("log"))
}

/// The stream's last event: the verdict, or, for a job that ended without one (cancelled or
/// failed before one), `event: end` with its status, so that clients know not to reconnect. The
/// stream ends even if the verdict could not be encoded (it then says `end`).
fn last_event(verdict: Option<&Verdict>, status: JobStatus) -> sse::Data {
    let end = || {
        sse::Data::new_json(StreamEnd {
            status: views::status(status),
        })
        .unwrap_or_else(|_| sse::Data::new("{}"))
        .event("end")
    };
    match verdict {
        Some(v) => sse::Data::new_json(views::verdict(v))
            .map(|d| d.event("verdict"))
            .unwrap_or_else(|_| end()),
        None => end(),
    }
}

/// One subscriber.
struct Follow {
    st: Arc<AppState>,
    feed: Arc<Feed>,
    version: watch::Receiver<u64>,
    /// The last seq sent.
    after: i64,
    /// The error last reported to this client.
    reported_error: Option<String>,
    queue: VecDeque<sse::Event>,
    done: bool,
    /// The instance's shutdown signal.
    closing: watch::Receiver<bool>,
    /// Counts this stream in the metrics while it lives.
    _counted: crate::metrics::StreamGuard,
}

impl Follow {
    /// The instance is shutting down: the last event says to reconnect, and the stream ends.
    fn close(&mut self) {
        let body = StreamError {
            error: "the server is shutting down: reconnect with Last-Event-ID to continue".into(),
            code: ErrorCode::ShuttingDown,
            retry_ms: CLOSE_RETRY.as_millis() as u64,
        };
        if let Ok(data) = sse::Data::new_json(body) {
            self.queue.push_back(data.event("error").into());
        }
        self.done = true;
    }

    /// Queues what the feed has beyond this subscriber's cursor; `true` if anything was queued or
    /// the stream is over.
    fn take(&mut self) -> bool {
        let seen = self.feed.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.read {
            return false;
        }
        let from = self.after;
        for (seq, event) in seen.lines.iter().filter(|l| l.0 > from) {
            self.after = *seq;
            self.queue.push_back(event.clone().into());
        }
        if seen.error != self.reported_error {
            if let Some(e) = &seen.error {
                let body = StreamError {
                    error: e.clone(),
                    code: ErrorCode::StoreUnavailable,
                    retry_ms: MAX_BACKOFF.as_millis() as u64,
                };
                if let Ok(data) = sse::Data::new_json(body) {
                    self.queue.push_back(data.event("error").into());
                }
            }
            self.reported_error = seen.error.clone();
        }
        if let Some(end) = &seen.end {
            self.queue.push_back(end.clone().into());
            self.done = true;
        }
        !self.queue.is_empty() || self.done
    }

    /// Waits until the feed has something for this subscriber, reading the store when this
    /// subscriber is the driver.
    async fn step(&mut self) {
        loop {
            self.version.borrow_and_update();
            if self.take() {
                return;
            }
            let feed = self.feed.clone();
            let driving = match feed.driver.try_lock() {
                Ok(guard) => Some(guard),
                // Someone else reads: wait for their news, or take over when they leave. A
                // subscriber that obtains the lock drives: handing it on without reading would
                // let waiters pass it around for ever.
                Err(_) => tokio::select! {
                    _ = self.version.changed() => None,
                    guard = feed.driver.lock() => Some(guard),
                },
            };
            if let Some(mut waiter) = driving {
                self.version.borrow_and_update();
                if self.take() {
                    return;
                }
                self.drive(&mut **waiter).await;
            }
        }
    }

    /// Reads the store for every subscriber of the feed (after waiting for a change, unless the
    /// feed never read), then publishes what it found.
    async fn drive(&mut self, waiter: &mut dyn Waiter) {
        let (after, read, failing) = {
            let seen = self.feed.seen.lock().unwrap_or_else(|p| p.into_inner());
            (
                seen.lines.last().map_or(0, |l| l.0),
                seen.read,
                seen.error.is_some(),
            )
        };
        if failing {
            tokio::time::sleep(MAX_BACKOFF).await;
        } else if read {
            waiter.wait(POLL).await;
        }
        let update = self.st.market.log_update(self.feed.job, after).await;
        self.feed.publish(update);
    }
}
