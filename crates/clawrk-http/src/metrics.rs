//! Prometheus metrics of one instance, served as text at `GET /metrics` (OpenMetrics format, by
//! the `prometheus-client` crate), and what `GET /api/health` reports about the instance.
//!
//! Counted as things happen: requests by route template, method and status, with a latency
//! histogram; verifications by outcome with their duration; LLM errors by kind; open log streams;
//! background workers alive. Read at scrape time: jobs by status, queue depth and the oldest
//! queued job's age (one store read), and the connection pool's state (from a probe the server
//! installs). Labels never carry ids, so the number of series stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the instance runs on, fixed at start.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
    /// `postgres` or `sqlite`.
    pub store: String,
    /// `heuristic` or `llm:<model>`.
    pub llm: String,
    /// Verification workers configured.
    pub verification_workers: u32,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            store: "unknown".into(),
            llm: "unknown".into(),
            verification_workers: 0,
        }
    }
}

/// A connection pool's state at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolState {
    /// Connections open.
    pub connections: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most it may open.
    pub max: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    store: String,
    llm: String,
}

type Probe = Box<dyn Fn() -> Option<PoolState> + Send + Sync>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The instance's metrics.
pub struct Metrics {
    info: ServerInfo,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    verifications: Family<OutcomeLabels, Counter>,
    verification_seconds: Histogram,
    llm_errors: Family<KindLabels, Counter>,
    webhook_sends: Family<OutcomeLabels, Counter>,
    streams: Gauge,
    jobs: Family<StatusLabels, Gauge>,
    queue_depth: Gauge,
    oldest_queued: Gauge<f64, AtomicU64>,
    pool: Family<StateLabels, Gauge>,
    pool_max: Gauge,
    workers: Gauge,
    sweeper_alive: AtomicBool,
    probe: Mutex<Option<Probe>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(ServerInfo::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("info", &self.info).finish()
    }
}

impl Metrics {
    /// Metrics of an instance described by `info`.
    pub fn new(info: ServerInfo) -> Metrics {
        let mut registry = Registry::with_prefix("clawrk");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to the response head for log streams)",
            latency.clone(),
        );
        let verifications = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "verifications",
            "Verifications run by this instance, by outcome (verified, requeued, failed, error)",
            verifications.clone(),
        );
        let verification_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "verification_duration_seconds",
            "Time one verification took, LLM call included",
            verification_seconds.clone(),
        );
        let llm_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "llm_errors",
            "Verifier errors, by kind (unavailable, timeout, bad_answer)",
            llm_errors.clone(),
        );
        let webhook_sends = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_sends",
            "Webhook deliveries sent by this instance, by outcome (delivered; retrying: failed, tried again later; failed: failed at the end of its 24 hours)",
            webhook_sends.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "sse_subscribers",
            "Log streams open on this instance",
            streams.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs by status (all instances: read from the store)",
            jobs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs queued, waiting for an agent",
            queue_depth.clone(),
        );
        let oldest_queued = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_age_seconds",
            "How long the longest-waiting queued job has waited (0 when none)",
            oldest_queued.clone(),
        );
        let pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections of this instance, by state (in_use, idle)",
            pool.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most database connections this instance opens",
            pool_max.clone(),
        );
        let workers = Gauge::default();
        registry.register(
            "verification_workers_alive",
            "Verification workers running on this instance",
            workers.clone(),
        );
        let build = Family::<InfoLabels, Gauge>::default();
        build
            .get_or_create(&InfoLabels {
                version: info.version.clone(),
                store: info.store.clone(),
                llm: info.llm.clone(),
            })
            .set(1);
        registry.register("build", "The instance's version, store and LLM", build);
        Metrics {
            info,
            registry,
            requests,
            latency,
            verifications,
            verification_seconds,
            llm_errors,
            webhook_sends,
            streams,
            jobs,
            queue_depth,
            oldest_queued,
            pool,
            pool_max,
            workers,
            sweeper_alive: AtomicBool::new(false),
            probe: Mutex::new(None),
        }
    }

    /// What the instance runs on.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// Installs the connection pool's probe (the embedded store has none).
    pub fn set_pool_probe(&self, probe: impl Fn() -> Option<PoolState> + Send + Sync + 'static) {
        if let Ok(mut p) = self.probe.lock() {
            *p = Some(Box::new(probe));
        }
    }

    /// One answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.into(),
                method: method.into(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.into(),
                method: method.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// One verification that ended with `outcome` (`verified`, `requeued`, `failed`).
    pub fn verification(&self, outcome: &str, took: Duration) {
        self.verifications
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.verification_seconds.observe(took.as_secs_f64());
    }

    /// One verifier error of `kind` (`unavailable`, `timeout`, `bad_answer`, or `store`).
    pub fn verification_error(&self, kind: &str, took: Duration) {
        self.verifications
            .get_or_create(&OutcomeLabels {
                outcome: "error".into(),
            })
            .inc();
        self.verification_seconds.observe(took.as_secs_f64());
        if kind != "store" {
            self.llm_errors
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc();
        }
    }

    /// Webhook sends of one step, by outcome.
    pub fn webhook_sends(&self, delivered: usize, retrying: usize, failed: usize) {
        for (outcome, n) in [
            ("delivered", delivered),
            ("retrying", retrying),
            ("failed", failed),
        ] {
            if n > 0 {
                self.webhook_sends
                    .get_or_create(&OutcomeLabels {
                        outcome: outcome.into(),
                    })
                    .inc_by(n as u64);
            }
        }
    }

    /// A log stream opened; it counts until the returned guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }

    /// A verification worker started; it counts as alive until the guard is dropped (also when it
    /// panics).
    pub fn worker_started(&self) -> WorkerGuard<'_> {
        self.workers.inc();
        WorkerGuard(self)
    }

    /// Whether the deadline sweeper runs.
    pub fn set_sweeper_alive(&self, alive: bool) {
        self.sweeper_alive.store(alive, Ordering::SeqCst);
    }

    /// Verification workers running now, and whether the sweeper runs.
    pub fn workers_alive(&self) -> (u32, bool) {
        (
            u32::try_from(self.workers.get()).unwrap_or(0),
            self.sweeper_alive.load(Ordering::SeqCst),
        )
    }

    /// The text exposition, after the store's counts (`None` when the store did not answer: the
    /// last values stay) and the pool's state are read.
    pub fn render(&self, stats: Option<&clawrk_domain::ports::JobStats>, now_ms: i64) -> String {
        if let Some(stats) = stats {
            for s in clawrk_domain::job::JobStatus::ALL {
                let n = stats
                    .by_status
                    .iter()
                    .find(|(st, _)| *st == s)
                    .map_or(0, |(_, n)| *n);
                self.jobs
                    .get_or_create(&StatusLabels {
                        status: s.as_str().into(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
                if s == clawrk_domain::job::JobStatus::Queued {
                    self.queue_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            let age = stats
                .oldest_queued
                .map_or(0.0, |t| ((now_ms - t.millis()).max(0) as f64) / 1000.0);
            self.oldest_queued.set(age);
        }
        let state = self
            .probe
            .lock()
            .ok()
            .and_then(|p| p.as_ref().and_then(|f| f()));
        if let Some(p) = state {
            let idle = p.idle.min(p.connections);
            for (label, n) in [("in_use", p.connections - idle), ("idle", idle)] {
                self.pool
                    .get_or_create(&StateLabels {
                        state: label.into(),
                    })
                    .set(i64::from(n));
            }
            self.pool_max.set(i64::from(p.max));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts an open log stream until dropped.
#[derive(Debug)]
pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a running verification worker until dropped.
#[derive(Debug)]
pub struct WorkerGuard<'a>(&'a Metrics);

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        self.0.workers.dec();
    }
}
