//! Per-caller rate limiting (SPEC §5's 429), off unless configured (`CLAWRK_RATE_LIMIT`).
//!
//! A caller is its API key (by hash), or its IP address when it sends none. Each gets a bucket of
//! `n` requests per second with a burst of `n`; beyond it the answer is 429 with `Retry-After`.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often (in requests) buckets of callers gone quiet are dropped.
const SHRINK_EVERY: u64 = 10_000;

/// The limiter shared by all workers.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    clock: DefaultClock,
    calls: AtomicU64,
}

impl RateLimit {
    /// `n` requests per second per caller; `None` for 0 (no limit).
    pub fn per_second(n: u32) -> Option<RateLimit> {
        let n = NonZeroU32::new(n)?;
        Some(RateLimit {
            limiter: RateLimiter::keyed(Quota::per_second(n)),
            clock: DefaultClock::default(),
            calls: AtomicU64::new(0),
        })
    }

    /// Counts one request of `caller` (a bearer token, or the peer address); `Err(wait)` when
    /// over the limit.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % SHRINK_EVERY == SHRINK_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let key: [u8; 32] = Sha256::digest(caller.as_bytes()).into();
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}
