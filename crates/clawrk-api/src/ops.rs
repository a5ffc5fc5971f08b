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
    /// `ok`.
    pub status: String,
}
