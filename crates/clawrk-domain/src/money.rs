//! Money: integer cents, the bounded price and time limit of a job, the platform fee, and the
//! double-entry transfers between accounts that every money movement is made of.
//!
//! There is no floating point anywhere in this module: all arithmetic is checked `i64`.

use crate::error::DomainError;
use crate::ids::{JobId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in cents. May be negative only as a signed delta; balances and transfer
/// amounts are kept non-negative by the code that builds them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    /// Zero cents.
    pub const ZERO: Cents = Cents(0);

    /// The raw number of cents.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `self + other`, or an overflow error.
    pub fn checked_add(self, other: Cents) -> Result<Cents, DomainError> {
        self.0
            .checked_add(other.0)
            .map(Cents)
            .ok_or_else(|| DomainError::Internal("money overflow".into()))
    }

    /// `self - other`, or an overflow error.
    pub fn checked_sub(self, other: Cents) -> Result<Cents, DomainError> {
        self.0
            .checked_sub(other.0)
            .map(Cents)
            .ok_or_else(|| DomainError::Internal("money overflow".into()))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:02}", abs / 100, abs % 100)
    }
}

/// A job's price: 100..=100000 cents ($1 to $1000). Cannot be built out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Price(i64);

impl Price {
    /// Smallest price in cents.
    pub const MIN: i64 = 100;
    /// Largest price in cents.
    pub const MAX: i64 = 100_000;

    /// A price, or [`DomainError::Invalid`] naming `price_cents` when out of range.
    pub fn new(cents: i64) -> Result<Price, DomainError> {
        if (Self::MIN..=Self::MAX).contains(&cents) {
            Ok(Price(cents))
        } else {
            Err(DomainError::Invalid(format!(
                "price_cents must be between {} and {}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// The nearest valid price (used for LLM estimates, which may be anything).
    pub fn clamped(cents: i64) -> Price {
        Price(cents.clamp(Self::MIN, Self::MAX))
    }

    /// The price as cents.
    pub const fn cents(self) -> Cents {
        Cents(self.0)
    }

    /// The platform fee on this price: `floor(price × 20 / 100) + 50`.
    pub const fn fee(self) -> Cents {
        // price ≤ 100000, so price × 20 cannot overflow; the fee is always below the price
        // (at the minimum 100: fee 70).
        Cents(self.0 * 20 / 100 + 50)
    }

    /// What the agent's owner earns on a verified job: `price − fee`.
    pub const fn worker_share(self) -> Cents {
        Cents(self.0 - self.fee().0)
    }
}

impl TryFrom<i64> for Price {
    type Error = DomainError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Price::new(v)
    }
}

impl From<Price> for i64 {
    fn from(p: Price) -> i64 {
        p.0
    }
}

/// A job's time limit: 60..=86400 seconds (one minute to one day). Cannot be built out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TimeLimit(u32);

impl TimeLimit {
    /// Shortest time limit in seconds.
    pub const MIN: i64 = 60;
    /// Longest time limit in seconds.
    pub const MAX: i64 = 86_400;

    /// A time limit, or [`DomainError::Invalid`] naming `time_limit_seconds` when out of range.
    pub fn new(seconds: i64) -> Result<TimeLimit, DomainError> {
        if (Self::MIN..=Self::MAX).contains(&seconds) {
            // In range, so it fits in u32.
            Ok(TimeLimit(seconds as u32))
        } else {
            Err(DomainError::Invalid(format!(
                "time_limit_seconds must be between {} and {}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// The nearest valid time limit.
    pub fn clamped(seconds: i64) -> TimeLimit {
        TimeLimit(seconds.clamp(Self::MIN, Self::MAX) as u32)
    }

    /// The limit in seconds.
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for TimeLimit {
    type Error = DomainError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        TimeLimit::new(v)
    }
}

impl From<TimeLimit> for i64 {
    fn from(t: TimeLimit) -> i64 {
        i64::from(t.0)
    }
}

/// The smallest top-up, in cents.
pub const MIN_TOPUP: Cents = Cents(500);
/// The largest amount one top-up, withdrawal or operator credit may move: 100,000,000 cents
/// ($1,000,000). Far above any real payment, and far below where sums of cents could overflow.
pub const MAX_AMOUNT: Cents = Cents(100_000_000);
/// The smallest withdrawal, in cents.
pub const MIN_WITHDRAWAL: Cents = Cents(500);

/// An account of the double-entry ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Account {
    /// The outside world: top-ups come from it, withdrawals go to it. Its balance is the negative
    /// of all money inside clawrk, so that every account sums to zero.
    World,
    /// The platform's fee account.
    Platform,
    /// A user's wallet.
    Wallet(UserId),
    /// A job's escrow.
    Escrow(JobId),
}

impl Account {
    /// Whether this account's balance may go below zero (only the outside world's).
    pub fn may_be_negative(self) -> bool {
        matches!(self, Account::World)
    }

    /// A stable text key for storage: `world`, `platform`, `wallet:<uuid>`, `escrow:<uuid>`.
    pub fn key(self) -> String {
        match self {
            Account::World => "world".into(),
            Account::Platform => "platform".into(),
            Account::Wallet(u) => format!("wallet:{u}"),
            Account::Escrow(j) => format!("escrow:{j}"),
        }
    }

    /// Parses [`Account::key`].
    pub fn from_key(key: &str) -> Option<Account> {
        match key {
            "world" => Some(Account::World),
            "platform" => Some(Account::Platform),
            _ => {
                let (kind, id) = key.split_once(':')?;
                let id = id.parse().ok()?;
                match kind {
                    "wallet" => Some(Account::Wallet(UserId(id))),
                    "escrow" => Some(Account::Escrow(JobId(id))),
                    _ => None,
                }
            }
        }
    }
}

/// Why money moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// World → wallet: a top-up through the payment port.
    Topup,
    /// Wallet → escrow: a sender pays for a job.
    JobPayment,
    /// Escrow → wallet: the full price back to the sender.
    Refund,
    /// Escrow → wallet: the agent owner's share of a verified job.
    Earning,
    /// Escrow → platform: the platform fee of a verified job.
    Fee,
    /// Wallet → world: a withdrawal through the payout port.
    Withdrawal,
    /// World ↔ wallet: an operator's manual credit or debit.
    Adjustment,
}

impl Reason {
    /// The reason's name as the API and the stores spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Topup => "topup",
            Reason::JobPayment => "job_payment",
            Reason::Refund => "refund",
            Reason::Earning => "earning",
            Reason::Fee => "fee",
            Reason::Withdrawal => "withdrawal",
            Reason::Adjustment => "adjustment",
        }
    }

    /// Parses [`Reason::as_str`].
    pub fn parse(s: &str) -> Option<Reason> {
        Some(match s {
            "topup" => Reason::Topup,
            "job_payment" => Reason::JobPayment,
            "refund" => Reason::Refund,
            "earning" => Reason::Earning,
            "fee" => Reason::Fee,
            "withdrawal" => Reason::Withdrawal,
            "adjustment" => Reason::Adjustment,
            _ => return None,
        })
    }
}

/// One movement of money: `amount` (> 0) from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The debited account.
    pub from: Account,
    /// The credited account.
    pub to: Account,
    /// Always strictly positive.
    pub amount: Cents,
    /// Why.
    pub reason: Reason,
    /// The job it concerns, if any.
    pub job_id: Option<JobId>,
}

impl Transfer {
    /// A transfer; zero or negative amounts and self-transfers are refused.
    pub fn new(
        from: Account,
        to: Account,
        amount: Cents,
        reason: Reason,
        job_id: Option<JobId>,
    ) -> Result<Transfer, DomainError> {
        if amount.0 <= 0 {
            return Err(DomainError::Internal(
                "transfer amount must be positive".into(),
            ));
        }
        if from == to {
            return Err(DomainError::Internal("transfer to the same account".into()));
        }
        Ok(Transfer {
            from,
            to,
            amount,
            reason,
            job_id,
        })
    }

    /// The signed effect of this transfer on `account`.
    pub fn delta_for(&self, account: Account) -> Cents {
        if self.to == account {
            self.amount
        } else if self.from == account {
            Cents(-self.amount.0)
        } else {
            Cents::ZERO
        }
    }
}

/// The transfers that settle a verified job: the worker's share to the receiver and the fee to the
/// platform, both out of the job's escrow.
pub fn settlement(job: JobId, price: Price, receiver: UserId) -> Vec<Transfer> {
    let escrow = Account::Escrow(job);
    let mut out = Vec::with_capacity(2);
    let share = price.worker_share();
    if share.0 > 0 {
        out.push(Transfer {
            from: escrow,
            to: Account::Wallet(receiver),
            amount: share,
            reason: Reason::Earning,
            job_id: Some(job),
        });
    }
    out.push(Transfer {
        from: escrow,
        to: Account::Platform,
        amount: price.fee(),
        reason: Reason::Fee,
        job_id: Some(job),
    });
    out
}

/// The transfer that pays a job's price from the sender's wallet into its escrow.
pub fn payment(job: JobId, price: Price, sender: UserId) -> Transfer {
    Transfer {
        from: Account::Wallet(sender),
        to: Account::Escrow(job),
        amount: price.cents(),
        reason: Reason::JobPayment,
        job_id: Some(job),
    }
}

/// The transfer that returns a job's full price from its escrow to the sender.
pub fn refund(job: JobId, price: Price, sender: UserId) -> Transfer {
    Transfer {
        from: Account::Escrow(job),
        to: Account::Wallet(sender),
        amount: price.cents(),
        reason: Reason::Refund,
        job_id: Some(job),
    }
}

/// A ledger entry as a user sees it: the signed effect of one transfer on their wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The transfer's id.
    pub id: crate::ids::TransferId,
    /// Signed change of the wallet.
    pub delta_cents: Cents,
    /// Why.
    pub reason: Reason,
    /// The job, if any.
    pub job_id: Option<JobId>,
    /// When.
    pub created_at: crate::ids::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_table() {
        // (price, fee, worker) — SPEC §4 examples plus the edges of the range.
        let table = [
            (100, 70, 30),
            (101, 70, 31),
            (499, 149, 350),
            (500, 150, 350),
            (1000, 250, 750),
            (5000, 1050, 3950),
            (100_000, 20_050, 79_950),
        ];
        for (price, fee, worker) in table {
            let p = Price::new(price).unwrap();
            assert_eq!(p.fee(), Cents(fee), "fee of {price}");
            assert_eq!(p.worker_share(), Cents(worker), "worker share of {price}");
            assert_eq!(p.fee().0 + p.worker_share().0, price, "fee + share = price");
            let parts = settlement(JobId(uuid::Uuid::nil()), p, UserId(uuid::Uuid::nil()));
            let total: i64 = parts.iter().map(|t| t.amount.0).sum();
            assert_eq!(total, price, "settlement empties the escrow");
        }
    }

    #[test]
    fn refund_is_the_full_price() {
        for price in [100, 101, 499, 500, 1000, 5000, 100_000] {
            let p = Price::new(price).unwrap();
            let t = refund(JobId(uuid::Uuid::nil()), p, UserId(uuid::Uuid::nil()));
            assert_eq!(t.amount, Cents(price));
            assert_eq!(t.reason, Reason::Refund);
        }
    }

    #[test]
    fn price_and_time_limit_bounds() {
        assert!(Price::new(99).is_err());
        assert!(Price::new(100).is_ok());
        assert!(Price::new(100_000).is_ok());
        assert!(Price::new(100_001).is_err());
        assert_eq!(Price::clamped(5).cents(), Cents(100));
        assert_eq!(Price::clamped(i64::MAX).cents(), Cents(100_000));
        assert!(TimeLimit::new(59).is_err());
        assert!(TimeLimit::new(60).is_ok());
        assert!(TimeLimit::new(86_400).is_ok());
        assert!(TimeLimit::new(86_401).is_err());
        assert_eq!(TimeLimit::clamped(-3).seconds(), 60);
        let msg = Price::new(0).unwrap_err().to_string();
        assert!(msg.contains("price_cents"), "{msg}");
    }

    #[test]
    fn account_keys_round_trip() {
        let u = UserId(uuid::Uuid::now_v7());
        let j = JobId(uuid::Uuid::now_v7());
        for a in [
            Account::World,
            Account::Platform,
            Account::Wallet(u),
            Account::Escrow(j),
        ] {
            assert_eq!(Account::from_key(&a.key()), Some(a));
        }
        assert_eq!(Account::from_key("wallet:nope"), None);
    }

    #[test]
    fn cents_display() {
        assert_eq!(Cents(350).to_string(), "$3.50");
        assert_eq!(Cents(-5).to_string(), "-$0.05");
    }

    #[test]
    fn transfers_must_be_positive() {
        let u = Account::Wallet(UserId(uuid::Uuid::nil()));
        assert!(Transfer::new(Account::World, u, Cents(0), Reason::Topup, None).is_err());
        assert!(Transfer::new(u, u, Cents(5), Reason::Topup, None).is_err());
        assert!(Transfer::new(Account::World, u, Cents(5), Reason::Topup, None).is_ok());
    }
}
