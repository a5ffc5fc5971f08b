//! The error shape of every answer that is not a success: `{"error": "<message>", "code":
//! "<code>"}`, with extra fields where they help (what a payment needs and what the wallet holds;
//! the job a confirmed run created while the wallet was short).
//!
//! The `error` message is for people and may be reworded; `code` is stable and is what programs
//! branch on. `docs/ERRORS.md` lists every code with its status.

use crate::jobs::Job;
use serde::{Deserialize, Serialize};

/// What went wrong, as a stable snake_case code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field, parameter or body is missing, malformed or out of range (the message names it).
    InvalidInput,
    /// 400: the job is in a status where this action is not possible.
    InvalidState,
    /// 400: the submission came at or after the deadline; the attempt was failed.
    DeadlinePassed,
    /// 401: no API key, or not a valid one.
    Unauthorized,
    /// 402: the wallet does not cover the amount (`required_cents`, `available_cents`).
    InsufficientBalance,
    /// 403: the caller can see the object, but their role does not allow this action.
    Forbidden,
    /// 404: no such object (or route), or the caller may not see it.
    NotFound,
    /// 405: the route exists, not with this method (`Allow` lists the methods).
    MethodNotAllowed,
    /// 409: the action collides with what exists (a name taken, an agent at work).
    Conflict,
    /// 409: the `Idempotency-Key` was used with another request.
    IdempotencyConflict,
    /// 409: a request with this `Idempotency-Key` is still running.
    IdempotencyInProgress,
    /// 410: the caller's hold on the job lapsed; the job went back to the queue.
    HoldExpired,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 429: too many requests; `Retry-After` says when to come back.
    RateLimited,
    /// 500: a bug on the server; nothing about it is disclosed.
    Internal,
    /// 501: this installation does not offer the action (top-ups with manual payments).
    NotSupported,
    /// 502: the LLM answered, but not with anything usable.
    LlmBadAnswer,
    /// 503: the LLM cannot be reached or timed out; retry later.
    LlmUnavailable,
    /// 503: the database cannot be reached, or is too busy; retry later.
    StoreUnavailable,
    /// 503: this instance is shutting down; retry (another instance, or this one after its
    /// restart). Also the last event of a log stream it closes.
    ShuttingDown,
    /// A code this client does not know yet (a newer server). Never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a server sends.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidInput,
        ErrorCode::InvalidState,
        ErrorCode::DeadlinePassed,
        ErrorCode::Unauthorized,
        ErrorCode::InsufficientBalance,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::IdempotencyConflict,
        ErrorCode::IdempotencyInProgress,
        ErrorCode::HoldExpired,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::NotSupported,
        ErrorCode::LlmBadAnswer,
        ErrorCode::LlmUnavailable,
        ErrorCode::StoreUnavailable,
        ErrorCode::ShuttingDown,
    ];

    /// The HTTP status that carries this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput | ErrorCode::InvalidState | ErrorCode::DeadlinePassed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::InsufficientBalance => 402,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::IdempotencyConflict
            | ErrorCode::IdempotencyInProgress => 409,
            ErrorCode::HoldExpired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
            ErrorCode::NotSupported => 501,
            ErrorCode::LlmBadAnswer => 502,
            ErrorCode::LlmUnavailable | ErrorCode::StoreUnavailable | ErrorCode::ShuttingDown => {
                503
            }
        }
    }

    /// The code as the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::DeadlinePassed => "deadline_passed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InsufficientBalance => "insufficient_balance",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::IdempotencyInProgress => "idempotency_in_progress",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::NotSupported => "not_supported",
            ErrorCode::LlmBadAnswer => "llm_bad_answer",
            ErrorCode::LlmUnavailable => "llm_unavailable",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Whether repeating the same request later may succeed (503, 429).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::StoreUnavailable
                | ErrorCode::ShuttingDown
                | ErrorCode::LlmUnavailable
                | ErrorCode::IdempotencyInProgress
        )
    }
}

/// The schema lists the codes a server sends ([`ErrorCode::ALL`]), each with its status.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let table: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| format!("`{c}` ({})", c.status()))
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(format!(
                "What went wrong, stable for programs to branch on; the status that carries each: {}.",
                table.join(", ")
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ErrorCode")
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// 402: what the action needs, in cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_cents: Option<i64>,
    /// 402: what the wallet holds, in cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_cents: Option<i64>,
    /// 402 from a confirmed `run`: the job, created and waiting for payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
}

impl ErrorBody {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            code,
            required_cents: None,
            available_cents: None,
            job: None,
        }
    }
}

/// `event: error` of a log stream: the server cannot read the log right now and keeps trying; the
/// stream stays open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamError {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs (`store_unavailable`).
    pub code: ErrorCode,
    /// The longest the server waits before its next read, in milliseconds.
    pub retry_ms: u64,
}

/// `event: end` of a log stream: the job ended without a verdict (cancelled, or failed before one);
/// nothing more will come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamEnd {
    /// The job's final status.
    pub status: crate::jobs::JobStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_unknown_ones_are_tolerated() {
        for c in ErrorCode::ALL {
            let wire = serde_json::to_value(c).unwrap();
            assert_eq!(wire, c.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(wire).unwrap(), c);
        }
        let future: ErrorCode = serde_json::from_value("a_new_code".into()).unwrap();
        assert_eq!(future, ErrorCode::Unknown);
    }
}
