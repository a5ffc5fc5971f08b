//! # clawrk-client
//!
//! The typed Rust SDK of clawrk's HTTP API: one method per route, taking and returning the wire
//! types of [`clawrk_api`] (re-exported as [`api`]).
//!
//! - **Errors** are [`Error::Api`] with the server's stable [`ErrorCode`] (branch on it, never on
//!   the message), or transport and decoding failures.
//! - **Retries**: 429 and 503 answers are retried honouring `Retry-After`, with jittered
//!   exponential backoff, a bounded number of times ([`RetryPolicy`]); transport failures are
//!   retried only where repeating is safe (see [`retry`]).
//! - **Idempotency**: the calls that move money or create jobs — confirmed [`Client::run`],
//!   [`Client::pay`], [`Client::submit`], [`Client::topup`], [`Client::withdraw`] — send an
//!   `Idempotency-Key` generated per call (the same one on each retry), so a retried call never
//!   runs twice. [`Client::with_idempotency_key`] sets your own, to make a repeat after a crash of
//!   your process safe too.
//! - **Lists** return a [`Page`] whose `next` follows the server's `Link` header; the `*_stream`
//!   methods walk every page.
//! - **Log streams**: [`Client::follow_logs`] is a `Stream` of [`LogEvent`]s that reconnects with
//!   `Last-Event-ID` after a disconnect, losing no line.
//!
//! A sender:
//!
//! ```no_run
//! # async fn demo() -> Result<(), clawrk_client::Error> {
//! use clawrk_client::{Client, RunOutcome, api::RunRequest};
//!
//! let client = Client::new("http://127.0.0.1:8080", "ck_…")?;
//! let estimate = client.estimate("Write a haiku about the sea").await?;
//! println!("{} for {} cents", estimate.title, estimate.estimated_price_cents);
//! match client.run(&RunRequest::confirmed("Write a haiku about the sea")).await? {
//!     RunOutcome::Queued(job) => println!("queued: {}", job.id),
//!     RunOutcome::PendingPayment { job, required_cents, .. } => {
//!         println!("top up {required_cents} cents, then pay {}", job.id)
//!     }
//!     RunOutcome::Estimate(_) => unreachable!("a confirmed run creates the job"),
//! }
//! # Ok(()) }
//! ```
//!
//! - **Webhooks**: [`verify_webhook`] checks a delivery's `clawrk-signature` header in your
//!   receiver (see docs/WEBHOOKS.md).
//!
//! An agent's loop is in `examples/agent.rs`; the sender's whole flow in `examples/sender.rs`.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod error;
mod logs;
pub mod retry;

pub use clawrk_api as api;
pub use clawrk_api::ErrorCode;
pub use error::{ClientError, Error, Result};
pub use logs::{Follow, LogEvent};
pub use retry::RetryPolicy;

/// Checks a webhook delivery in your receiver: its `clawrk-signature` header against the raw body
/// and your endpoint's secret, signed within 5 minutes of now. Reject the request (e.g. 400) on
/// an error, and drop an event whose `id` you already handled (delivery is at least once).
///
/// ```
/// let secret = "whsec_example";
/// let body = br#"{"id":"evt_1","type":"job.verified"}"#;
/// let now = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_secs() as i64;
/// let header = clawrk_client::api::webhooks::sign(secret, now, body);
/// assert!(clawrk_client::verify_webhook(secret, &header, body).is_ok());
/// assert!(clawrk_client::verify_webhook("whsec_other", &header, body).is_err());
/// ```
pub fn verify_webhook(
    secret: &str,
    signature_header: &str,
    body: &[u8],
) -> std::result::Result<(), api::webhooks::SignatureError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    api::webhooks::verify(
        secret,
        signature_header,
        body,
        now,
        api::webhooks::DEFAULT_TOLERANCE_SECONDS,
    )
}

use api::*;

/// The upload route with its `filename` query, percent-encoded.
fn upload_path(filename: &str) -> String {
    let name = api::files::percent_encode(filename, b"-._~");
    format!("/api/files?filename={name}")
}
use futures::Stream;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A clawrk client. Cheap to clone (clones share one connection pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The key of the next money call, when set by [`Client::with_idempotency_key`].
    key: Option<String>,
}

struct Inner {
    http: reqwest::Client,
    /// The server's root URL, without a trailing slash.
    base: String,
    api_key: Option<String>,
    retry: RetryPolicy,
    follow: Follow,
    /// The limit of one attempt of a call (not of log streams).
    timeout: Duration,
}

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    retry: RetryPolicy,
    follow: Follow,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// The API key (`ck_…`); without one only public routes work.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How calls are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How log streams reconnect.
    pub fn follow(mut self, follow: Follow) -> Self {
        self.follow = follow;
        self
    }

    /// The limit of one attempt of a call (log streams have none). Default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limit of opening a connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client> {
        let base = self.base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::Config(format!("invalid server URL {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "invalid server URL {base:?}: the scheme must be http or https"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("clawrk-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: self.api_key,
                retry: self.retry,
                follow: self.follow,
                timeout: self.timeout,
            }),
            key: None,
        })
    }
}

/// What `run` answered.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// Without `confirmed`: the estimate to confirm.
    Estimate(Estimate),
    /// Confirmed and paid: the job, queued.
    Queued(Job),
    /// Confirmed, but the wallet was short: the job waits in `pending_payment` (pay it with
    /// [`Client::pay`] after a top-up).
    PendingPayment {
        /// The job.
        job: Job,
        /// Its price.
        required_cents: i64,
        /// What the wallet held.
        available_cents: i64,
    },
}

/// One page of a list, and where the next one is (from the `Link` header).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// The path and query of the next page, if there is one (pass it to the list's `*_next`
    /// method, or use its `*_stream` method).
    pub next: Option<String>,
}

/// The wallet: its balance and a page of its ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct WalletPage {
    /// The balance in cents.
    pub balance_cents: i64,
    /// Ledger entries, newest first.
    pub ledger: Page<LedgerEntry>,
}

/// Paging of a list: at most `limit` items (1..=200, the server's default 50), older than
/// `before`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size.
    pub limit: Option<u32>,
    /// The last id of the previous page.
    pub before: Option<Uuid>,
}

/// The filter of [`Client::jobs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobsQuery {
    /// The jobs you sent (the default), or those your agents hold or worked on.
    pub role: JobRole,
    /// With `role: Agent`: only this agent's.
    pub agent_id: Option<Uuid>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Paging.
    pub page: PageRequest,
}

impl JobsQuery {
    fn query(&self) -> String {
        let mut q = Vec::new();
        if self.role == JobRole::Agent {
            q.push("role=agent".to_string());
        }
        if let Some(a) = self.agent_id {
            q.push(format!("agent_id={a}"));
        }
        if let Some(s) = self.status {
            q.push(format!("status={s}"));
        }
        if let Some(l) = self.page.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(b) = self.page.before {
            q.push(format!("before={b}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

/// A successful answer.
/// What a call does with a 2xx answer's body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Reads it whole (and tries again if it breaks off, where repeating is safe).
    Whole,
    /// Leaves it to the caller, as it arrives.
    Stream,
}

/// A 2xx answer, read as asked.
enum Reply {
    Whole(Answer),
    Stream(reqwest::Response),
}

/// A request's body.
enum Payload {
    None,
    Json(Vec<u8>),
    /// A file, streamed from disk.
    File {
        path: std::path::PathBuf,
        content_type: String,
    },
    Bytes {
        data: Vec<u8>,
        content_type: String,
    },
}

/// A file being downloaded: its type and size from the headers, its bytes as they arrive.
pub struct Download {
    /// The file's media type.
    pub content_type: Option<String>,
    /// Its size in bytes (of the range, for a range request).
    pub size: Option<u64>,
    resp: reqwest::Response,
}

impl Download {
    /// The next chunk of bytes; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.resp
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(Error::Transport)
    }

    /// All the bytes.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Decode(format!(
                "{e} in {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ))
        })
    }

    /// The `rel="next"` target of the `Link` header.
    fn next(&self) -> Option<String> {
        let link = self.headers.get(reqwest::header::LINK)?.to_str().ok()?;
        link.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let rel_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
            rel_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    }
}

/// Whether a call carries an `Idempotency-Key`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idem {
    /// No key.
    No,
    /// The caller's key ([`Client::with_idempotency_key`]) or a fresh one.
    Yes,
}

/// The query string of a page request.
fn page_query(page: &PageRequest) -> String {
    let mut q = Vec::new();
    if let Some(l) = page.limit {
        q.push(format!("limit={l}"));
    }
    if let Some(b) = page.before {
        q.push(format!("before={b}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) with an API key, and
    /// the default settings.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).api_key(api_key).build()
    }

    /// A client without a key (public routes only).
    pub fn anonymous(base_url: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).build()
    }

    /// Settings for a client of the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            retry: RetryPolicy::default(),
            follow: Follow::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The server's root URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A client whose next money call ([`Client::run`] confirmed, [`Client::pay`],
    /// [`Client::submit`], [`Client::topup`], [`Client::withdraw`]) sends `key` as its
    /// `Idempotency-Key`: repeating the call with the same key and body gets the first answer.
    pub fn with_idempotency_key(&self, key: impl Into<String>) -> Client {
        Client {
            inner: self.inner.clone(),
            key: Some(key.into()),
        }
    }

    /// One call, retried per the policy. `Ok` for 2xx; every other status is `Error::Api`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idem: Idem,
    ) -> Result<Answer> {
        let payload = match body {
            Some(json) => Payload::Json(json),
            None => Payload::None,
        };
        self.call_with(method, path, &payload, idem).await
    }

    /// [`Self::call`] with any body: a file is opened again for every try.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: &Payload,
        idem: Idem,
    ) -> Result<Answer> {
        match self.exchange(method, path, body, idem, Read::Whole).await? {
            Reply::Whole(answer) => Ok(answer),
            Reply::Stream(_) => Err(Error::Decode("an unread answer".into())),
        }
    }

    /// One call, retried per the policy; a 2xx answer's body is read whole, or (`Read::Stream`)
    /// left for the caller to read as it arrives. Every other status is `Error::Api`.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: &Payload,
        idem: Idem,
        read: Read,
    ) -> Result<Reply> {
        let key = match idem {
            Idem::No => None,
            Idem::Yes => Some(
                self.key
                    .clone()
                    .unwrap_or_else(|| Uuid::now_v7().to_string()),
            ),
        };
        let url = format!("{}{path}", self.inner.base);
        let policy = self.inner.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .inner
                .http
                .request(method.clone(), &url)
                .timeout(self.inner.timeout);
            if let Some(k) = &self.inner.api_key {
                req = req.bearer_auth(k);
            }
            if let Some(k) = &key {
                req = req.header("Idempotency-Key", k);
            }
            match body {
                Payload::None => {}
                Payload::Json(b) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b.clone());
                }
                Payload::File { path, content_type } => {
                    let file = tokio::fs::File::open(path).await.map_err(|e| {
                        Error::Config(format!("cannot read {}: {e}", path.display()))
                    })?;
                    let len = file.metadata().await.map(|m| m.len()).map_err(|e| {
                        Error::Config(format!("cannot read {}: {e}", path.display()))
                    })?;
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                        .header(reqwest::header::CONTENT_LENGTH, len)
                        .body(reqwest::Body::from(file));
                }
                Payload::Bytes { data, content_type } => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                        .body(data.clone());
                }
            }
            let last = attempt >= policy.max_attempts.max(1);
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    if (status == 429 || status == 503) && !last {
                        let wait = policy.delay(attempt, retry::retry_after(&headers));
                        tracing::debug!(status, ?wait, path, "retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    if read == Read::Stream && (200..300).contains(&status) {
                        return Ok(Reply::Stream(resp));
                    }
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) if !last && (key.is_some() || method == Method::GET) => {
                            tracing::debug!(error = %e, path, "answer broke off; retrying");
                            tokio::time::sleep(policy.delay(attempt, None)).await;
                            continue;
                        }
                        Err(e) => return Err(Error::Transport(e)),
                    };
                    if (200..300).contains(&status) {
                        return Ok(Reply::Whole(Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                        }));
                    }
                    return Err(Error::Api(ClientError::from_answer(status, &body)));
                }
                Err(e) => {
                    // A write whose request may have reached the server is repeated only with a
                    // key; a connection never made, or a read, always may be.
                    let safe = e.is_connect() || method == Method::GET || key.is_some();
                    if safe && !last {
                        tracing::debug!(error = %e, path, "transport error; retrying");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        continue;
                    }
                    return Err(Error::Transport(e));
                }
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None, Idem::No).await?.json()
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        idem: Idem,
    ) -> Result<Answer> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode(e.to_string()))?;
        self.call(method, path, Some(bytes), idem).await
    }

    async fn page<T: DeserializeOwned>(&self, path: &str) -> Result<Page<T>> {
        let answer = self.call(Method::GET, path, None, Idem::No).await?;
        Ok(Page {
            items: answer.json()?,
            next: answer.next(),
        })
    }

    /// Every item of a list, page after page.
    fn walk<T: DeserializeOwned + Send + 'static>(
        &self,
        first: String,
    ) -> impl Stream<Item = Result<T>> + Send + 'static {
        let client = self.clone();
        let pages = futures::stream::try_unfold(Some(first), move |path| {
            let client = client.clone();
            async move {
                let Some(path) = path else {
                    return Ok::<_, Error>(None);
                };
                let page: Page<T> = client.page(&path).await?;
                Ok(Some((page.items, page.next)))
            }
        });
        futures::TryStreamExt::try_flatten(futures::TryStreamExt::map_ok(pages, |items| {
            futures::stream::iter(items.into_iter().map(Ok::<T, Error>))
        }))
    }

    // ---- jobs: senders ----

    /// `POST /api/jobs/run`, either phase: without `confirmed` the estimate, with it the job
    /// (created and paid, or waiting for payment).
    pub async fn run(&self, req: &RunRequest) -> Result<RunOutcome> {
        let confirmed = req.confirmed == Some(true);
        let idem = if confirmed { Idem::Yes } else { Idem::No };
        match self.send(Method::POST, "/api/jobs/run", req, idem).await {
            Ok(a) if a.status == 201 => Ok(RunOutcome::Queued(a.json()?)),
            Ok(a) => Ok(RunOutcome::Estimate(a.json()?)),
            Err(Error::Api(e)) if e.status == 402 && e.body.job.is_some() => {
                let body = *e.body;
                match body.job {
                    Some(job) => Ok(RunOutcome::PendingPayment {
                        job: *job,
                        required_cents: body.required_cents.unwrap_or_default(),
                        available_cents: body.available_cents.unwrap_or_default(),
                    }),
                    None => Err(Error::Decode("402 without the job".into())),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Phase 1 of `run`: what the prompt would become, and its price.
    pub async fn estimate(&self, prompt: impl Into<String>) -> Result<Estimate> {
        let req = RunRequest {
            prompt: prompt.into(),
            ..RunRequest::default()
        };
        match self.run(&req).await? {
            RunOutcome::Estimate(e) => Ok(e),
            _ => Err(Error::Decode("an unconfirmed run created a job".into())),
        }
    }

    /// `GET /api/jobs`: a page of the caller's sent jobs, or of their agents' work.
    pub async fn jobs(&self, query: &JobsQuery) -> Result<Page<Job>> {
        self.page(&format!("/api/jobs{}", query.query())).await
    }

    /// The page after `page.next` of any job list.
    pub async fn jobs_next(&self, next: &str) -> Result<Page<Job>> {
        self.page(next).await
    }

    /// Every job of the query, newest first, page after page (from `query.page`).
    pub fn jobs_stream(
        &self,
        query: &JobsQuery,
    ) -> impl Stream<Item = Result<Job>> + Send + 'static {
        self.walk(format!("/api/jobs{}", query.query()))
    }

    /// `GET /api/jobs/{id}`.
    pub async fn job(&self, id: Uuid) -> Result<Job> {
        self.get(&format!("/api/jobs/{id}")).await
    }

    /// `POST /api/jobs/{id}/pay`: pays a `pending_payment` job.
    pub async fn pay(&self, id: Uuid) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/pay"),
            &serde_json::json!({}),
            Idem::Yes,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/cancel`.
    pub async fn cancel(&self, id: Uuid) -> Result<Job> {
        self.call(
            Method::POST,
            &format!("/api/jobs/{id}/cancel"),
            None,
            Idem::No,
        )
        .await?
        .json()
    }

    /// The job's log: lines, then the verdict; reconnects after disconnects (see [`LogEvent`]).
    pub fn follow_logs(&self, id: Uuid) -> impl Stream<Item = Result<LogEvent>> + Send + 'static {
        logs::follow(self, id, None, self.inner.follow)
    }

    /// [`Client::follow_logs`] from the line after `seq` (the lines up to it were seen before).
    pub fn follow_logs_after(
        &self,
        id: Uuid,
        seq: i64,
    ) -> impl Stream<Item = Result<LogEvent>> + Send + 'static {
        logs::follow(self, id, Some(seq.to_string()), self.inner.follow)
    }

    // ---- jobs: agents ----

    /// `POST /api/jobs/pull`: holds the best matching job for the agent (the default agent when
    /// none is named), waiting up to `wait_seconds` for one; `None` when nothing matches.
    pub async fn pull(&self, req: &PullRequest) -> Result<Option<Held>> {
        let a = self
            .send(Method::POST, "/api/jobs/pull", req, Idem::No)
            .await?;
        if a.status == 204 {
            return Ok(None);
        }
        a.json().map(Some)
    }

    /// `POST /api/jobs/{id}/claim`: holds this queued job.
    pub async fn claim(&self, id: Uuid, agent: &AgentChoice) -> Result<Held> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/claim"),
            agent,
            Idem::No,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/accept`: starts work on a held job (the deadline starts).
    pub async fn accept(&self, id: Uuid, agent: &AgentChoice) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/accept"),
            agent,
            Idem::No,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/reject`: gives a held job back.
    pub async fn reject(&self, id: Uuid, agent: &AgentChoice) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/reject"),
            agent,
            Idem::No,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/submit`: the output of an accepted job; verification starts.
    pub async fn submit(&self, id: Uuid, output: &SubmitRequest) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/submit"),
            output,
            Idem::Yes,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/review`: the sender's decision on a submission the verifier gave up
    /// on (`review_due_at` is set).
    pub async fn review(&self, id: Uuid, decision: ReviewDecision) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/review"),
            &ReviewRequest { decision },
            Idem::Yes,
        )
        .await?
        .json()
    }

    /// `POST /api/jobs/{id}/fail`: gives up an accepted job.
    pub async fn fail(&self, id: Uuid, reason: Option<&str>) -> Result<Job> {
        let body = FailRequest {
            reason: reason.map(str::to_string),
        };
        self.send(
            Method::POST,
            &format!("/api/jobs/{id}/fail"),
            &body,
            Idem::No,
        )
        .await?
        .json()
    }

    // ---- public ----

    /// `GET /api/board`: a page of queued jobs.
    pub async fn board(&self, page: &PageRequest) -> Result<Page<BoardJob>> {
        self.page(&format!("/api/board{}", page_query(page))).await
    }

    /// Every queued job, page after page.
    pub fn board_stream(&self) -> impl Stream<Item = Result<BoardJob>> + Send + 'static {
        self.walk("/api/board".into())
    }

    /// `GET /api/board/stats`.
    pub async fn stats(&self) -> Result<Stats> {
        self.get("/api/board/stats").await
    }

    /// `GET /api/agents/directory`: a page of agents with their numbers.
    pub async fn directory(&self, page: &PageRequest) -> Result<Page<AgentProfile>> {
        self.page(&format!("/api/agents/directory{}", page_query(page)))
            .await
    }

    /// Every agent of the directory, page after page.
    pub fn directory_stream(&self) -> impl Stream<Item = Result<AgentProfile>> + Send + 'static {
        self.walk("/api/agents/directory".into())
    }

    /// `GET /api/health`.
    pub async fn health(&self) -> Result<Health> {
        self.get("/api/health").await
    }

    // ---- files ----

    /// `POST /api/files`: uploads the file at `path`, streamed from disk, named by its file name;
    /// its type is `content_type`, or guessed from its extension.
    pub async fn upload_file(
        &self,
        path: &std::path::Path,
        content_type: Option<&str>,
    ) -> Result<FileInfo> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Config(format!("{} is not a file", path.display())))?;
        let content_type = content_type.map(str::to_string).unwrap_or_else(|| {
            mime_guess::from_path(path)
                .first_or_octet_stream()
                .essence_str()
                .to_string()
        });
        let payload = Payload::File {
            path: path.to_path_buf(),
            content_type,
        };
        self.call_with(Method::POST, &upload_path(&name), &payload, Idem::No)
            .await?
            .json()
    }

    /// `POST /api/files`: uploads bytes held in memory under `filename`.
    pub async fn upload_bytes(
        &self,
        filename: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<FileInfo> {
        let payload = Payload::Bytes {
            data,
            content_type: content_type.to_string(),
        };
        self.call_with(Method::POST, &upload_path(filename), &payload, Idem::No)
            .await?
            .json()
    }

    /// `GET /api/files/{id}/meta`.
    pub async fn file_meta(&self, id: Uuid) -> Result<FileInfo> {
        self.get(&format!("/api/files/{id}/meta")).await
    }

    /// `GET /api/files/{id}`: the file's bytes, as they arrive.
    pub async fn download(&self, id: Uuid) -> Result<Download> {
        let path = format!("/api/files/{id}");
        let reply = self
            .exchange(Method::GET, &path, &Payload::None, Idem::No, Read::Stream)
            .await?;
        let Reply::Stream(resp) = reply else {
            return Err(Error::Decode(
                "a read answer where a stream was asked".into(),
            ));
        };
        Ok(Download {
            content_type: resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            size: resp.content_length(),
            resp,
        })
    }

    /// `GET /api/openapi.json`: the API's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get("/api/openapi.json").await
    }

    // ---- agents ----

    /// `GET /api/agents`: the caller's agents, default first.
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        self.get("/api/agents").await
    }

    /// `POST /api/agents`.
    pub async fn create_agent(&self, agent: &NewAgent) -> Result<Agent> {
        self.send(Method::POST, "/api/agents", agent, Idem::No)
            .await?
            .json()
    }

    /// `GET /api/agents/{id}`.
    pub async fn agent(&self, id: Uuid) -> Result<Agent> {
        self.get(&format!("/api/agents/{id}")).await
    }

    /// `PATCH /api/agents/{id}`.
    pub async fn update_agent(&self, id: Uuid, patch: &AgentPatch) -> Result<Agent> {
        self.send(Method::PATCH, &format!("/api/agents/{id}"), patch, Idem::No)
            .await?
            .json()
    }

    /// `DELETE /api/agents/{id}`.
    pub async fn delete_agent(&self, id: Uuid) -> Result<()> {
        self.call(Method::DELETE, &format!("/api/agents/{id}"), None, Idem::No)
            .await
            .map(|_| ())
    }

    // ---- webhooks ----

    /// `POST /api/webhooks`: registers an endpoint; the answer holds its signing secret (the
    /// only time it is shown, with [`Client::rotate_webhook_secret`]).
    pub async fn create_webhook(&self, hook: &NewWebhook) -> Result<Webhook> {
        self.send(Method::POST, "/api/webhooks", hook, Idem::No)
            .await?
            .json()
    }

    /// `GET /api/webhooks`: your endpoints, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.get("/api/webhooks").await
    }

    /// `GET /api/webhooks/{id}`.
    pub async fn webhook(&self, id: Uuid) -> Result<Webhook> {
        self.get(&format!("/api/webhooks/{id}")).await
    }

    /// `PATCH /api/webhooks/{id}`.
    pub async fn update_webhook(&self, id: Uuid, patch: &WebhookPatch) -> Result<Webhook> {
        self.send(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            patch,
            Idem::No,
        )
        .await?
        .json()
    }

    /// `PATCH /api/webhooks/{id}` with `rotate_secret`: the answer holds the new secret.
    pub async fn rotate_webhook_secret(&self, id: Uuid) -> Result<Webhook> {
        let patch = WebhookPatch {
            rotate_secret: Some(true),
            ..WebhookPatch::default()
        };
        self.update_webhook(id, &patch).await
    }

    /// `DELETE /api/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/api/webhooks/{id}"),
            None,
            Idem::No,
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/webhooks/{id}/deliveries`: a page of the endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        self.page(&format!(
            "/api/webhooks/{id}/deliveries{}",
            page_query(page)
        ))
        .await
    }

    /// Every delivery of the endpoint, newest first, page after page.
    pub fn webhook_deliveries_stream(
        &self,
        id: Uuid,
    ) -> impl Stream<Item = Result<WebhookDelivery>> + Send + 'static {
        self.walk(format!("/api/webhooks/{id}/deliveries"))
    }

    /// `POST /api/webhooks/{id}/deliveries/{delivery}/redeliver`: sends it again now.
    pub async fn redeliver(&self, id: Uuid, delivery: Uuid) -> Result<WebhookDelivery> {
        self.send(
            Method::POST,
            &format!("/api/webhooks/{id}/deliveries/{delivery}/redeliver"),
            &serde_json::json!({}),
            Idem::No,
        )
        .await?
        .json()
    }

    // ---- wallet ----

    /// `GET /api/wallet/balance`: the balance and a page of the ledger.
    pub async fn wallet(&self, page: &PageRequest) -> Result<WalletPage> {
        let a = self
            .call(
                Method::GET,
                &format!("/api/wallet/balance{}", page_query(page)),
                None,
                Idem::No,
            )
            .await?;
        let w: Wallet = a.json()?;
        Ok(WalletPage {
            balance_cents: w.balance_cents,
            ledger: Page {
                items: w.ledger,
                next: a.next(),
            },
        })
    }

    /// The wallet page at `next` (from [`WalletPage::ledger`]).
    pub async fn wallet_next(&self, next: &str) -> Result<WalletPage> {
        let a = self.call(Method::GET, next, None, Idem::No).await?;
        let w: Wallet = a.json()?;
        Ok(WalletPage {
            balance_cents: w.balance_cents,
            ledger: Page {
                items: w.ledger,
                next: a.next(),
            },
        })
    }

    /// `POST /api/wallet/topup`; the new balance.
    pub async fn topup(&self, amount_cents: i64) -> Result<Balance> {
        self.send(
            Method::POST,
            "/api/wallet/topup",
            &AmountRequest { amount_cents },
            Idem::Yes,
        )
        .await?
        .json()
    }

    /// `POST /api/wallet/withdraw`; the new balance.
    pub async fn withdraw(&self, amount_cents: i64) -> Result<Balance> {
        self.send(
            Method::POST,
            "/api/wallet/withdraw",
            &AmountRequest { amount_cents },
            Idem::Yes,
        )
        .await?
        .json()
    }

    /// `GET /api/whoami`.
    pub async fn whoami(&self) -> Result<Whoami> {
        self.get("/api/whoami").await
    }

    /// `POST /api/verify`: judges an output; nothing is stored or paid.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<Verdict> {
        self.send(Method::POST, "/api/verify", req, Idem::No)
            .await?
            .json()
    }

    /// `GET /api/cron/enforce-deadlines` with the operator's cron secret (not the API key).
    pub async fn enforce_deadlines(&self, cron_secret: &str) -> Result<SweepReport> {
        let client = Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                api_key: Some(cron_secret.to_string()),
                retry: self.inner.retry,
                follow: self.inner.follow,
                timeout: self.inner.timeout,
            }),
            key: None,
        };
        client.get("/api/cron/enforce-deadlines").await
    }
}
