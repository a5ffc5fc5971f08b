//! A job's log as a `Stream` of typed events that survives disconnects.
//!
//! The server sends `event: log` lines (each with `id:` = its seq), then `event: verdict` and closes;
//! a job that ended without a verdict ends with `event: end`. When the connection drops before that
//! (a restart, a deploy, a network blip), the stream reconnects with `Last-Event-ID` set to the last
//! seq it delivered, so no line is lost or repeated. Reconnects wait with jittered, growing backoff,
//! and give up (yielding the last error) after [`Follow::max_reconnects`] in a row without a new
//! event. An error answer on (re)connection — 401, 404 — ends the stream with that error.

use crate::error::{ClientError, Error, Result};
use crate::retry::RetryPolicy;
use crate::{Client, Inner};
use clawrk_api::{LogLine, StreamEnd, StreamError, Verdict};
use eventsource_stream::Eventsource;
use futures::stream::{BoxStream, Stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// One event of a job's log stream.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEvent {
    /// A log line.
    Line(LogLine),
    /// The verdict on the latest submission: the last event.
    Verdict(Verdict),
    /// The job ended without a verdict (cancelled, or failed before one): the last event.
    End(StreamEnd),
    /// The server cannot read the log right now and keeps trying; the stream stays open.
    ServerError(StreamError),
}

/// How a log stream reconnects.
#[derive(Clone, Copy, Debug)]
pub struct Follow {
    /// Reconnections in a row without a new event before the stream gives up.
    pub max_reconnects: u32,
    /// The backoff between them (its `max_attempts` is not used).
    pub backoff: RetryPolicy,
}

impl Default for Follow {
    fn default() -> Self {
        Follow {
            max_reconnects: 20,
            backoff: RetryPolicy {
                max_attempts: 0,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
        }
    }
}

type Events = BoxStream<
    'static,
    std::result::Result<
        eventsource_stream::Event,
        eventsource_stream::EventStreamError<reqwest::Error>,
    >,
>;

struct State {
    inner: Arc<Inner>,
    job: Uuid,
    follow: Follow,
    /// The seq of the last line delivered (`Last-Event-ID` on reconnection).
    last_id: Option<String>,
    events: Option<Events>,
    /// Reconnections since the last event.
    failures: u32,
    done: bool,
}

enum Step {
    Yield(Result<LogEvent>),
    Again,
}

pub(crate) fn follow(
    client: &Client,
    job: Uuid,
    after: Option<String>,
    follow: Follow,
) -> impl Stream<Item = Result<LogEvent>> + Send + 'static {
    let state = State {
        inner: client.inner.clone(),
        job,
        follow,
        last_id: after,
        events: None,
        failures: 0,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            match s.step().await {
                Step::Yield(item) => return Some((item, s)),
                Step::Again => continue,
            }
        }
    })
}

impl State {
    async fn step(&mut self) -> Step {
        let Some(events) = self.events.as_mut() else {
            return self.connect().await;
        };
        match events.next().await {
            Some(Ok(ev)) => self.event(ev),
            Some(Err(e)) => {
                tracing::debug!(job = %self.job, error = %e, "log stream broke; reconnecting");
                self.events = None;
                self.pause(Error::Decode(e.to_string())).await
            }
            None => {
                // Closed before the last event: the server went away.
                self.events = None;
                self.pause(Error::Decode("the log stream closed early".into()))
                    .await
            }
        }
    }

    fn event(&mut self, ev: eventsource_stream::Event) -> Step {
        let parsed = match ev.event.as_str() {
            "log" => serde_json::from_str(&ev.data).map(LogEvent::Line),
            "verdict" => serde_json::from_str(&ev.data).map(LogEvent::Verdict),
            "end" => serde_json::from_str(&ev.data).map(LogEvent::End),
            "error" => serde_json::from_str(&ev.data).map(LogEvent::ServerError),
            // Events a newer server may add.
            _ => return Step::Again,
        };
        self.failures = 0;
        match parsed {
            Ok(event) => {
                match &event {
                    LogEvent::Line(_) if !ev.id.is_empty() => self.last_id = Some(ev.id),
                    LogEvent::Verdict(_) | LogEvent::End(_) => self.done = true,
                    _ => {}
                }
                Step::Yield(Ok(event))
            }
            Err(e) => {
                self.done = true;
                Step::Yield(Err(Error::Decode(format!("`{}` event: {e}", ev.event))))
            }
        }
    }

    /// Waits before the next connection; gives up with `last` after too many in a row.
    async fn pause(&mut self, last: Error) -> Step {
        self.failures += 1;
        if self.failures > self.follow.max_reconnects {
            self.done = true;
            return Step::Yield(Err(last));
        }
        let wait = self.follow.backoff.delay(self.failures, None);
        tokio::time::sleep(wait).await;
        Step::Again
    }

    async fn connect(&mut self) -> Step {
        let url = format!("{}/api/jobs/{}/logs", self.inner.base, self.job);
        let mut req = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(key) = &self.inner.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(id) = &self.last_id {
            req = req.header("Last-Event-ID", id);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                self.events = Some(resp.bytes_stream().eventsource().boxed());
                Step::Again
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let err = ClientError::from_answer(status, &bytes);
                if err.code.is_retryable() {
                    self.pause(Error::Api(err)).await
                } else {
                    self.done = true;
                    Step::Yield(Err(Error::Api(err)))
                }
            }
            Err(e) => self.pause(Error::Transport(e)).await,
        }
    }
}
