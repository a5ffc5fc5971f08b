//! `Idempotency-Key` (SPEC §5 decision): the first request with a (user, key) owns it, runs, and
//! stores its answer for 24 hours; a repeat with the same request gets that answer, a repeat with
//! another request is refused, and a repeat while the first still runs is told so.
//!
//! Ownership is one arbitrated claim: the store's insert-if-absent lets exactly one of any number
//! of concurrent requests insert the record, so a money-moving request runs at most once per key,
//! on every store.

use super::Marketplace;
use crate::error::{DomainError, Result};
use crate::ids::UserId;

/// How a request with an idempotency key proceeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemState {
    /// This request owns the key: run it, then [`Marketplace::idem_finish`] (or
    /// [`Marketplace::idem_abandon`] when the answer is not worth keeping).
    Reserved,
    /// Another request with this key is running now.
    InProgress,
    /// The key's request finished before: answer with this stored reply.
    Replay(Vec<u8>),
    /// The key was used with another request.
    Mismatch,
}

/// How many times a claim is retried when the record it collided with vanished or expired
/// meanwhile.
const CLAIM_ATTEMPTS: usize = 4;

impl Marketplace {
    /// Claims `key` for a request whose content has `digest` (see [`IdemState`]). An expired record
    /// is forgotten and the key claimed anew.
    pub async fn idem_begin(&self, user: UserId, key: &str, digest: [u8; 32]) -> Result<IdemState> {
        let key = key.to_string();
        let now = self.now();
        let expires = now.plus_seconds(self.config.idempotency_ttl_seconds);
        self.store()
            .single(move |tx| {
                for _ in 0..CLAIM_ATTEMPTS {
                    if tx.idem_insert(user, &key, &digest, expires)? {
                        return Ok(IdemState::Reserved);
                    }
                    match tx.idem_get(user, &key)? {
                        // Released between the two statements: claim again.
                        None => continue,
                        Some(r) if r.expires_at <= now => {
                            tx.idem_delete(user, &key, Some(now))?;
                        }
                        Some(r) if r.digest != digest => return Ok(IdemState::Mismatch),
                        Some(r) => {
                            return Ok(r.response.map_or(IdemState::InProgress, IdemState::Replay));
                        }
                    }
                }
                Err(DomainError::Unavailable(
                    "the idempotency key is contended; retry".into(),
                ))
            })
            .await
    }

    /// Stores the answer of a request that owns `key`.
    pub async fn idem_finish(&self, user: UserId, key: &str, response: Vec<u8>) -> Result<()> {
        let key = key.to_string();
        self.store()
            .single(move |tx| tx.idem_complete(user, &key, &response))
            .await
    }

    /// Releases `key` without an answer (the request failed in a way worth retrying).
    pub async fn idem_abandon(&self, user: UserId, key: &str) -> Result<()> {
        let key = key.to_string();
        self.store()
            .single(move |tx| tx.idem_delete(user, &key, None))
            .await
    }
}
