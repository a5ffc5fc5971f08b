//! `Idempotency-Key` (SPEC §5 decision): the first request with a (user, key) owns it, runs, and
//! stores its answer for 24 hours; a repeat with the same request gets that answer, a repeat with
//! another request is refused, and a repeat while the first still runs is told so.
//!
//! Ownership is one arbitrated claim: the store's insert-if-absent lets exactly one of any number
//! of concurrent requests insert the record, so a money-moving request runs at most once per key,
//! on every store.
//!
//! The use cases that move money in one transaction (a confirmed run that queues its job, pay,
//! submit, top-up) take the key's [`Answer`] and store it in that transaction: the effect and the
//! answer a retry replays commit together, so a crash between the two cannot leave the key "in
//! progress" with the effect done, and the answer costs no statement of its own.

use super::Marketplace;
use crate::error::{DomainError, Result};
use crate::ids::UserId;
use crate::ports::Tx;
use std::sync::Arc;

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

/// How a route encodes a use case's value as the answer a repeat replays; `None`: not stored with
/// the effect.
type Encode<T> = Arc<dyn Fn(&T) -> Option<Vec<u8>> + Send + Sync>;

/// How the answer of a request that owns an idempotency key is stored with its effect: the key,
/// and how the caller encodes a use case's value as the answer it replays (`None`: not stored
/// there, the caller stores what it answers itself).
pub struct Answer<T> {
    user: UserId,
    key: String,
    encode: Encode<T>,
}

impl<T> Answer<T> {
    /// The answer of `user`'s request with `key`, encoded by `encode`.
    pub fn new(
        user: UserId,
        key: impl Into<String>,
        encode: impl Fn(&T) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        Answer {
            user,
            key: key.into(),
            encode: Arc::new(encode),
        }
    }

    /// Stores the answer for `value` in the caller's unit of work; whether it did. The key's
    /// claim must still be there: one released meanwhile (its request was answered 503 and may
    /// be retried as new) fails the unit of work, so its effect cannot happen twice.
    pub(super) fn write(&self, tx: &mut dyn Tx, value: &T) -> Result<bool> {
        let Some(bytes) = (self.encode)(value) else {
            return Ok(false);
        };
        if tx.idem_complete(self.user, &self.key, &bytes)? {
            Ok(true)
        } else {
            Err(DomainError::Unavailable(
                "the request's Idempotency-Key was released before its change committed".into(),
            ))
        }
    }
}

impl<T> Clone for Answer<T> {
    fn clone(&self) -> Self {
        Answer {
            user: self.user,
            key: self.key.clone(),
            encode: self.encode.clone(),
        }
    }
}

/// A use case's value, and whether its [`Answer`] was stored with its effect. When it was not (the
/// use case changed nothing, refused, or has no single transaction to store it in), the caller
/// stores the answer itself ([`Marketplace::idem_finish`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered<T> {
    /// What the use case returned.
    pub value: T,
    /// Whether the answer is stored already.
    pub stored: bool,
}

impl<T> Answered<T> {
    /// A value whose answer is not stored.
    pub fn unstored(value: T) -> Self {
        Answered {
            value,
            stored: false,
        }
    }
}

/// Stores `answer` for `value` in the caller's unit of work, if there is one to store.
pub(super) fn write_answer<T>(
    tx: &mut dyn Tx,
    answer: Option<&Answer<T>>,
    value: &T,
) -> Result<bool> {
    answer.map_or(Ok(false), |a| a.write(tx, value))
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
            .single(move |tx| tx.idem_complete(user, &key, &response).map(|_| ()))
            .await
    }

    /// Releases `key` without an answer (the request failed in a way worth retrying). A key whose
    /// answer was stored meanwhile (its change committed after all) keeps it.
    pub async fn idem_abandon(&self, user: UserId, key: &str) -> Result<()> {
        let key = key.to_string();
        self.store()
            .single(move |tx| tx.idem_delete(user, &key, None))
            .await
    }
}
