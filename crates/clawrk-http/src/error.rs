//! The one error type of the API and the one place where errors become status codes.
//!
//! Every error body has the shape `{"error": "<message>"}` (SPEC §5), with extra fields where SPEC
//! asks for them (402: `required_cents`, `available_cents`, and the job for `run`). Internal and
//! unavailable errors are logged in full and answered with a generic message: nothing leaks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use clawrk_domain::error::DomainError;
use serde_json::{Value, json};
use std::fmt;

/// An error answer: a status and a JSON body that has at least `error`.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": msg.into() }),
        }
    }

    /// 400 with a message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    /// 401: no key, or an unknown one.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Authentication required")
    }

    /// 404 for a route or object that does not exist.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        if let Value::Object(m) = &mut self.body {
            m.insert(key.into(), value);
        }
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(&self.body)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use DomainError as D;
        match &e {
            D::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            D::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            D::InvalidState { .. } | D::DeadlinePassed | D::Invalid(_) => {
                Self::bad_request(e.to_string())
            }
            D::HoldExpired => Self::new(StatusCode::GONE, e.to_string()),
            D::InsufficientBalance {
                required,
                available,
            } => Self::new(StatusCode::PAYMENT_REQUIRED, e.to_string())
                .with("required_cents", json!(required.get()))
                .with("available_cents", json!(available.get())),
            D::Conflict(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            D::NotSupported(_) => Self::new(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            D::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service temporarily unavailable, retry later",
                )
            }
            D::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;
