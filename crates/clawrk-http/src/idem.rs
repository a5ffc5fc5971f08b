//! `Idempotency-Key` (SPEC §5 decision): the first answer for a (user, key) is stored for 24 hours
//! and replayed for a repeat with the same method, path and body; another body is 409. Answers
//! with a 5xx status are not stored, so a retry after an outage runs again.
//!
//! A route hands its use case an [`Answer`] that encodes the use case's value as the route would
//! answer it: the use cases that move money in one transaction store it there, with the effect;
//! the others' answers (and every error's) are stored here after the use case returned.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use clawrk_api::ErrorCode;
use clawrk_domain::ids::UserId;
use clawrk_domain::service::{Answer, Answered, IdemState, Marketplace};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;

const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;

/// An answer before it becomes a response: what is stored for replay.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

impl Reply {
    /// A reply.
    pub fn new(status: StatusCode, body: impl serde::Serialize) -> ApiResult<Reply> {
        Ok(Reply {
            status,
            body: serde_json::to_value(body).map_err(|e| {
                ApiError::from(clawrk_domain::error::DomainError::Internal(e.to_string()))
            })?,
        })
    }

    /// The response.
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body)
    }

    /// What is stored for replay: the status and the body.
    fn stored(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({ "status": self.status.as_u16(), "body": &self.body }))
            .unwrap_or_default()
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply {
            status: e.status(),
            body: serde_json::to_value(&e.body).unwrap_or(Value::Null),
        }
    }
}

/// The request's `Idempotency-Key`, if it has one; 400 if it is not 1 to 255 printable ASCII
/// characters. Routes that ignore the key in some cases (`run` without `confirmed`) still check it.
pub fn key_of(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    key.to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_KEY_CHARS
                && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 printable ASCII characters")
        })
}

/// Releases a key its request claimed when the request is dropped before its use case answered
/// (the client left): the change rolled back with it (the store does not commit work whose caller
/// is gone), so the key must not stay "in progress" for a day; one whose change committed anyway
/// keeps its stored answer (a release never drops one), and the retry replays it.
struct Unanswered {
    market: Arc<Marketplace>,
    user: UserId,
    key: Option<String>,
}

impl Unanswered {
    /// The use case answered: the caller stores or releases the key itself.
    fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let (market, user) = (self.market.clone(), self.user);
        // Drop cannot wait: the release runs on its own (a runtime shutting down may skip it;
        // the key then lapses with its 24 hours).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = market.idem_abandon(user, &key).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
            });
        }
    }
}

/// Runs the use case `f` once per idempotency key (if the request has one) and answers with
/// `view` of its value, or with its error. `f` gets the key's [`Answer`] to store with its effect.
pub async fn once<T, V, F, Fut>(
    st: &AppState,
    user: UserId,
    req: &HttpRequest,
    body: &[u8],
    view: V,
    f: F,
) -> ApiResult<HttpResponse>
where
    V: Fn(&T) -> ApiResult<Reply> + Send + Sync + 'static,
    F: FnOnce(Option<Answer<T>>) -> Fut,
    Fut: Future<Output = clawrk_domain::error::Result<Answered<T>>>,
{
    let reply = |out: clawrk_domain::error::Result<Answered<T>>, view: &V| match out {
        Ok(a) => (view(&a.value).unwrap_or_else(Reply::from), a.stored),
        Err(e) => (Reply::from(ApiError::from(e)), false),
    };
    let Some(key) = key_of(req)? else {
        return Ok(reply(f(None).await, &view).0.into_response());
    };
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update([0]);
    h.update(req.path());
    h.update([0]);
    h.update(body);
    let digest: [u8; 32] = h.finalize().into();
    match st.market.idem_begin(user, &key, digest).await? {
        IdemState::Reserved => {}
        IdemState::InProgress => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still in progress",
            ));
        }
        IdemState::Mismatch => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyConflict,
                "this Idempotency-Key was used with a different request",
            ));
        }
        IdemState::Replay(bytes) => {
            let stored: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let status = stored["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            return Ok(HttpResponse::build(status)
                .insert_header(("idempotent-replayed", "true"))
                .json(&stored["body"]));
        }
    }
    let view = Arc::new(view);
    let encode = {
        let view = view.clone();
        move |value: &T| view(value).ok().map(|r| r.stored())
    };
    let unanswered = Unanswered {
        market: st.market.clone(),
        user,
        key: Some(key.clone()),
    };
    let out = f(Some(Answer::new(user, key.clone(), encode))).await;
    unanswered.disarm();
    let (reply, stored) = reply(out, &view);
    if reply.status.is_server_error() {
        if let Err(e) = st.market.idem_abandon(user, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    } else if !stored && let Err(e) = st.market.idem_finish(user, &key, reply.stored()).await {
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Ok(reply.into_response())
}
