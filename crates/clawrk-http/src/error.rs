//! The one error type of the API and the one table from domain errors to codes and statuses.
//!
//! Every error body is `{"error": "<message>", "code": "<code>"}` (SPEC §5, `clawrk_api::ErrorBody`),
//! with extra fields where they help (402: `required_cents`, `available_cents`, and the job for
//! `run`). The status follows from the code (`ErrorCode::status`), so the two never disagree.
//! Internal and unavailable errors are logged in full and answered with a generic message: nothing
//! leaks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use clawrk_api::{ErrorBody, ErrorCode};
use clawrk_domain::error::DomainError;
use clawrk_domain::ports::LlmError;
use std::fmt;

/// An error answer: a code (which fixes the status) and its body.
#[derive(Debug)]
pub struct ApiError {
    /// The body, with its code.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        ApiError {
            body: ErrorBody::new(code, msg),
        }
    }

    /// 400 `invalid_input` with a message that names the field.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, msg)
    }

    /// 401: no key, or an unknown one.
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "Authentication required")
    }

    /// 404 for a route or object that does not exist.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        status_of(self.body.code)
    }
}

/// The status that carries a code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status(),
            self.body.code,
            self.body.error
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).json(&self.body)
    }
}

/// The code of a domain error: the one table of SPEC §5's statuses.
pub fn code_of(e: &DomainError) -> ErrorCode {
    use DomainError as D;
    match e {
        D::NotFound(_) => ErrorCode::NotFound,
        D::Forbidden(_) => ErrorCode::Forbidden,
        D::InvalidState { .. } => ErrorCode::InvalidState,
        D::DeadlinePassed => ErrorCode::DeadlinePassed,
        D::Invalid(_) => ErrorCode::InvalidInput,
        D::HoldExpired => ErrorCode::HoldExpired,
        D::InsufficientBalance { .. } => ErrorCode::InsufficientBalance,
        D::Conflict(_) => ErrorCode::Conflict,
        D::NotSupported(_) => ErrorCode::NotSupported,
        D::TooLarge(_) => ErrorCode::PayloadTooLarge,
        D::Unavailable(_) => ErrorCode::StoreUnavailable,
        D::Llm(LlmError::BadAnswer(_)) => ErrorCode::LlmBadAnswer,
        D::Llm(LlmError::Unavailable(_) | LlmError::Timeout) => ErrorCode::LlmUnavailable,
        D::Internal(_) => ErrorCode::Internal,
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let code = code_of(&e);
        let message = match &e {
            DomainError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                "the store is temporarily unavailable; retry later".to_string()
            }
            DomainError::Llm(LlmError::BadAnswer(detail)) => {
                tracing::warn!(%detail, "unusable LLM answer");
                "the LLM's answer was unusable".to_string()
            }
            DomainError::Llm(detail) => {
                tracing::warn!(%detail, "LLM unavailable");
                "the LLM is temporarily unavailable; retry later".to_string()
            }
            DomainError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_string()
            }
            _ => e.to_string(),
        };
        let mut err = ApiError::new(code, message);
        if let DomainError::InsufficientBalance {
            required,
            available,
        } = e
        {
            err.body.required_cents = Some(required.get());
            err.body.available_cents = Some(available.get());
        }
        err
    }
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use clawrk_domain::job::JobStatus;
    use clawrk_domain::money::Cents;

    #[test]
    fn every_domain_error_has_the_status_spec_gives_it() {
        let cases = [
            (DomainError::NotFound("job"), 404, "not_found"),
            (DomainError::forbidden("senders only"), 403, "forbidden"),
            (
                DomainError::InvalidState {
                    status: JobStatus::Queued,
                    action: "submit",
                },
                400,
                "invalid_state",
            ),
            (DomainError::DeadlinePassed, 400, "deadline_passed"),
            (DomainError::invalid("bad"), 400, "invalid_input"),
            (DomainError::HoldExpired, 410, "hold_expired"),
            (
                DomainError::InsufficientBalance {
                    required: Cents(500),
                    available: Cents(20),
                },
                402,
                "insufficient_balance",
            ),
            (DomainError::Conflict("taken".into()), 409, "conflict"),
            (DomainError::NotSupported("no".into()), 501, "not_supported"),
            (
                DomainError::TooLarge("big".into()),
                413,
                "payload_too_large",
            ),
            (
                DomainError::Unavailable("pool".into()),
                503,
                "store_unavailable",
            ),
            (DomainError::Llm(LlmError::Timeout), 503, "llm_unavailable"),
            (
                DomainError::Llm(LlmError::BadAnswer("{".into())),
                502,
                "llm_bad_answer",
            ),
            (DomainError::Internal("secret".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e.clone());
            assert_eq!(api.status().as_u16(), status, "{e:?}");
            assert_eq!(api.body.code.as_str(), code, "{e:?}");
        }
    }

    #[test]
    fn internals_are_not_disclosed_and_402_says_what_is_missing() {
        let body = ApiError::from(DomainError::Internal("password=hunter2".into())).body;
        assert_eq!(body.error, "internal error");
        let body = ApiError::from(DomainError::Unavailable("host db:5432".into())).body;
        assert!(!body.error.contains("db:5432"), "{}", body.error);
        let body = ApiError::from(DomainError::InsufficientBalance {
            required: Cents(500),
            available: Cents(20),
        })
        .body;
        assert_eq!(
            (body.required_cents, body.available_cents),
            (Some(500), Some(20))
        );
    }
}
