//! The one place where database errors become domain errors; details stay in the logs.

use clawrk_domain::error::DomainError;
use diesel::result::{DatabaseErrorKind, Error};

/// Maps a diesel error: a unique violation is a conflict (callers word it), a lost connection, a
/// busy database, a serialization failure, a deadlock or a cancelled statement is "unavailable"
/// (worth retrying), anything else a broken invariant.
pub fn db_err(e: Error) -> DomainError {
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            DomainError::Conflict(format!("already exists ({})", info.message()))
        }
        Error::DatabaseError(
            DatabaseErrorKind::SerializationFailure
            | DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => DomainError::Unavailable(format!("database: {}", info.message())),
        Error::DatabaseError(_, info)
            if [
                "deadlock",
                "locked",
                "busy",
                "canceling statement",
                "timeout",
            ]
            .iter()
            .any(|w| info.message().contains(w)) =>
        {
            DomainError::Unavailable(format!("database: {}", info.message()))
        }
        Error::BrokenTransactionManager => {
            DomainError::Unavailable("database connection lost".into())
        }
        other => DomainError::Internal(format!("database: {other}")),
    }
}
