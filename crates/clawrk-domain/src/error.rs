//! The one error type of the domain. Every port and service returns it; the HTTP adapter maps each
//! variant to a status code in one place.

use crate::job::JobStatus;
use crate::money::Cents;
use thiserror::Error;

/// What went wrong, in business terms. Messages are safe to show to the caller, except
/// [`DomainError::Internal`] and [`DomainError::Unavailable`], whose details are for logs only.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DomainError {
    /// The object does not exist, or the caller may not see it (the two are never told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller can see the object but their role does not allow this action.
    #[error("{0}")]
    Forbidden(String),
    /// The job is in a status from which this action is not possible.
    #[error("cannot {action} a job that is {status}")]
    InvalidState {
        /// The job's current status.
        status: JobStatus,
        /// The attempted action.
        action: &'static str,
    },
    /// The caller's hold on the job lapsed before this action.
    #[error("hold expired")]
    HoldExpired,
    /// The job's deadline passed before the submission.
    #[error("time limit exceeded")]
    DeadlinePassed,
    /// The wallet holds less than the amount needed.
    #[error("insufficient balance: {required} required, {available} available")]
    InsufficientBalance {
        /// What the action needs.
        required: Cents,
        /// What the wallet holds.
        available: Cents,
    },
    /// The input is malformed or out of range; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The action collides with existing state (a duplicate name, an agent still at work, a reused
    /// idempotency key with another body).
    #[error("{0}")]
    Conflict(String),
    /// An upload is larger than a limit allows (the file's, or what is left of the user's
    /// storage).
    #[error("{0}")]
    TooLarge(String),
    /// The operation is not offered by this installation (e.g. top-ups with manual payments).
    #[error("{0}")]
    NotSupported(String),
    /// The store cannot be reached right now (or is too busy); worth retrying.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The LLM failed: unreachable or too slow (worth retrying), or it answered with nothing
    /// usable.
    #[error("{0}")]
    Llm(crate::ports::LlmError),
    /// A bug or a broken invariant. The message is for logs, never for the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::Invalid(msg.into())
    }

    /// Shorthand for [`DomainError::Forbidden`].
    pub fn forbidden(msg: impl Into<String>) -> Self {
        DomainError::Forbidden(msg.into())
    }
}

/// The domain's result type.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;
