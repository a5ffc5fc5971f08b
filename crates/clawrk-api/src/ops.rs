//! The marketplace's public numbers and what operators call: stats, the sweep's report, health.

use crate::jobs::JobStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /api/board/stats`: the marketplace's public numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Jobs per status (all 8 statuses).
    pub counts: BTreeMap<JobStatus, i64>,
    /// Jobs verified.
    pub jobs_verified: i64,
    /// Everything paid to agents' owners, in cents.
    pub total_paid_out_cents: i64,
    /// The median price of queued jobs in cents (the lower middle for an even count).
    pub median_queued_price_cents: Option<i64>,
    /// Agents.
    pub agents: i64,
}

/// `GET /api/cron/enforce-deadlines`: what one sweep did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepReport {
    /// Lapsed holds released.
    pub released_holds: u64,
    /// Accepted attempts failed at their deadline.
    pub failed_deadlines: u64,
    /// Submissions approved because their sender did not review them in time.
    #[serde(default)]
    pub approved_reviews: u64,
}

/// `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` (the store answers) or `unavailable` (with status 503).
    pub status: String,
    /// The server's version.
    #[serde(default)]
    pub version: String,
    /// `postgres` or `sqlite`.
    #[serde(default)]
    pub store: String,
    /// Whether the store answered this check.
    #[serde(default)]
    pub store_reachable: bool,
    /// `heuristic` or `llm:<model>`.
    #[serde(default)]
    pub llm: String,
    /// The instance's background workers.
    #[serde(default)]
    pub workers: WorkersHealth,
}

/// Background workers of one instance, in `GET /api/health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkersHealth {
    /// Verification workers configured (`CLAWRK_VERIFY_WORKERS`).
    pub verification_configured: u32,
    /// Verification workers running now.
    pub verification_alive: u32,
    /// Whether the deadline sweeper runs (it is off with `CLAWRK_SWEEP_SECONDS=0`).
    pub sweeper_alive: bool,
}
