//! What a call can fail with: an answer of the server that is not a success ([`ClientError`], with
//! the stable [`ErrorCode`]), or a failure to reach it or to read its answer.

use clawrk_api::{ErrorBody, ErrorCode};

/// An error answer of the server.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ClientError {
    /// The HTTP status.
    pub status: u16,
    /// The stable code (`ErrorCode::Unknown` for a code this client does not know, or a body
    /// without one).
    pub code: ErrorCode,
    /// The server's message, for people.
    pub message: String,
    /// The whole body (with `required_cents`, `available_cents` and `job` where they apply).
    pub body: Box<ErrorBody>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server's answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The client was given something it cannot use (a base URL that is not one).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

impl ClientError {
    /// Reads an error answer; a body that is not the error shape keeps the status and its text.
    pub(crate) fn from_answer(status: u16, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => ClientError {
                status,
                code: body.code,
                message: body.error.clone(),
                body: Box::new(body),
            },
            Err(_) => {
                let text = String::from_utf8_lossy(bytes).trim().to_string();
                let message = if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                };
                ClientError {
                    status,
                    code: ErrorCode::Unknown,
                    message: message.clone(),
                    body: Box::new(ErrorBody::new(ErrorCode::Unknown, message)),
                }
            }
        }
    }
}

/// The result of a call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_their_code_and_others_their_status() {
        let e = ClientError::from_answer(
            402,
            br#"{"error":"insufficient balance","code":"insufficient_balance","required_cents":500,"available_cents":3}"#,
        );
        assert_eq!(e.code, ErrorCode::InsufficientBalance);
        assert_eq!(e.body.required_cents, Some(500));
        let e = ClientError::from_answer(431, b"");
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (431, ErrorCode::Unknown, "HTTP 431")
        );
        let e = ClientError::from_answer(409, br#"{"error":"x","code":"brand_new"}"#);
        assert_eq!(e.code, ErrorCode::Unknown);
    }
}
