//! Users, agents and wallets: the caller, their agents and the public directory, the wallet and
//! its ledger, and the bodies of the agent and wallet routes.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An agent: a worker persona owned by a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// Id.
    pub id: Uuid,
    /// Its owner's user id.
    pub owner_id: Uuid,
    /// Unique per owner.
    pub name: String,
    /// Free text that matching reads.
    pub personality: Option<String>,
    /// Picture.
    pub avatar_url: Option<String>,
    /// The agent every user gets (`default`); it cannot be deleted.
    pub is_default: bool,
    /// Created.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A public directory entry: an agent and its track record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentProfile {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// Jobs it got verified.
    pub jobs_verified: i64,
    /// Attempts it failed (given up, late, or rejected by the verifier).
    pub jobs_failed: i64,
    /// What its owner earned through it, in cents.
    pub earned_cents: i64,
}

/// `POST /api/agents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAgent {
    /// Unique among the caller's agents (1 to 64 characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            max_length = 64,
            pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
        )
    )]
    pub name: String,
    /// Free text that matching reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\u0000]*$"))]
    pub personality: Option<String>,
    /// Picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\u0000]*$"))]
    pub avatar_url: Option<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /api/agents/{id}`: absent fields stay as they are; `null` clears `personality` or
/// `avatar_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentPatch {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
        )
    )]
    pub name: Option<String>,
    /// A new personality, or `null` to clear it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^[^\\u0000]*$"))]
    pub personality: Option<Option<String>>,
    /// A new picture, or `null` to clear it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^[^\\u0000]*$"))]
    pub avatar_url: Option<Option<String>>,
}

/// Why money moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerReason {
    /// A top-up through the payment port.
    Topup,
    /// The price of a job, into its escrow.
    JobPayment,
    /// The price of a job, back from its escrow.
    Refund,
    /// The agent owner's share of a verified job.
    Earning,
    /// The platform's fee (not on a user's ledger).
    Fee,
    /// A withdrawal through the payout port.
    Withdrawal,
    /// An operator's credit or debit, or a failed payout put back.
    Adjustment,
}

impl LedgerReason {
    /// The reason as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerReason::Topup => "topup",
            LedgerReason::JobPayment => "job_payment",
            LedgerReason::Refund => "refund",
            LedgerReason::Earning => "earning",
            LedgerReason::Fee => "fee",
            LedgerReason::Withdrawal => "withdrawal",
            LedgerReason::Adjustment => "adjustment",
        }
    }
}

impl std::fmt::Display for LedgerReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One movement of the caller's wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    /// Id (a cursor for the next page).
    pub id: Uuid,
    /// Signed, in cents: positive in, negative out.
    pub delta_cents: i64,
    /// Why.
    pub reason: LedgerReason,
    /// The job it concerns, if any.
    pub job_id: Option<Uuid>,
    /// When.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `GET /api/wallet/balance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wallet {
    /// The balance in cents.
    pub balance_cents: i64,
    /// Ledger entries, newest first (a page; `Link` announces the next).
    pub ledger: Vec<LedgerEntry>,
}

/// A balance after a top-up or a withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Balance {
    /// The new balance in cents.
    pub balance_cents: i64,
}

/// `POST /api/wallet/topup` and `/api/wallet/withdraw`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AmountRequest {
    /// Cents, at least 500 and at most 100,000,000 (withdrawals: at most the balance too).
    #[serde(default, deserialize_with = "crate::num::integer")]
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, minimum = 500, maximum = 100000000)
    )]
    pub amount_cents: i64,
}

/// The caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSummary {
    /// User id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// The wallet's balance in cents.
    pub balance_cents: i64,
}

/// `GET /api/whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Whoami {
    /// Who the API key belongs to.
    pub user: UserSummary,
}
