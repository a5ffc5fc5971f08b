//! Authentication: who an API key belongs to, remembered in-process for a short while so that a
//! request does not pay a database round trip for its caller.
//!
//! Revocation is bounded by the cache's time to live ([`super::Config::key_cache_ttl`]): a key
//! removed from the store keeps working on an instance that saw it for at most that long. Only
//! successful lookups are remembered; unknown keys are looked up every time (the HTTP adapter's
//! rate limit counts them against the caller's address).

use super::Marketplace;
use crate::error::Result;
use crate::ids::{Timestamp, UserId};
use crate::user::{KeyHash, User, is_well_formed_key};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Most keys remembered at once; beyond it, expired entries are dropped (and if that is not
/// enough, all of them), so memory stays bounded whatever callers send.
const MAX_CACHED_KEYS: usize = 100_000;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub id: UserId,
    /// Their name.
    pub name: String,
}

impl From<&User> for Principal {
    fn from(u: &User) -> Self {
        Principal {
            id: u.id,
            name: u.name.clone(),
        }
    }
}

/// Recently authenticated keys.
pub(super) struct KeyCache {
    ttl_ms: i64,
    entries: Mutex<HashMap<[u8; 32], (Principal, Timestamp)>>,
}

impl KeyCache {
    pub(super) fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &KeyHash, now: Timestamp) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&hash.0)
            .filter(|(_, until)| *until > now)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: &KeyHash, who: Principal, now: Timestamp) {
        if self.ttl_ms <= 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_KEYS {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
        }
        entries.insert(hash.0, (who, now.plus_millis(self.ttl_ms)));
    }
}

impl Marketplace {
    /// The user an API key belongs to, or `None` for a malformed or unknown key (a malformed one
    /// is refused without asking the store).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        if !is_well_formed_key(token) {
            return Ok(None);
        }
        let hash = KeyHash::of(token);
        let now = self.now();
        if let Some(p) = self.keys.get(&hash, now) {
            return Ok(Some(p));
        }
        let user = self.store().read(move |tx| tx.user_by_key(&hash)).await?;
        Ok(user.map(|u| {
            let p = Principal::from(&u);
            self.keys.put(&hash, p.clone(), now);
            p
        }))
    }

    /// Whether this instance authenticated `token` recently (no store access): what rate limiting
    /// keys a caller by before the request is authenticated.
    pub fn is_known_key(&self, token: &str) -> Option<UserId> {
        if !is_well_formed_key(token) {
            return None;
        }
        self.keys.get(&KeyHash::of(token), self.now()).map(|p| p.id)
    }
}
