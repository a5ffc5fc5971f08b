//! What can go wrong, as one line on stderr and an exit code per kind (listed in `clawrk --help`):
//! the server's error codes become messages that say what to do next.

use clawrk_client::{Error, ErrorCode};

/// Exit codes.
pub mod exit {
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const PAYMENT: u8 = 4;
    pub const HOLD_EXPIRED: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const UNREACHABLE: u8 = 7;
    pub const JOB_FAILED: u8 = 8;
    pub const JOB_CANCELLED: u8 = 9;
    pub const NOTHING: u8 = 10;
    pub const DEADLINE: u8 = 11;
    pub const NEEDS_CONFIRMATION: u8 = 12;
    pub const INVALID_STATE: u8 = 13;
}

/// A failure: the message for the user and the process's exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A mistake in how the command was called.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(exit::USAGE, message)
    }

    /// An exit code with nothing to add (the output said it all).
    pub fn quiet(code: u8) -> Failure {
        Failure::new(code, String::new())
    }
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::new(exit::ERROR, m)
    }
}

/// A client error, said the way a person needs it. `url` is the server's, for connection errors.
pub fn explain(e: Error, url: &str) -> Failure {
    match e {
        Error::Transport(t) => Failure::new(
            exit::UNREACHABLE,
            format!(
                "cannot reach the clawrk server at {url} ({}); is it running? (set CLAWRK_API_URL)",
                root_cause(&t)
            ),
        ),
        Error::Config(m) => {
            Failure::usage(format!("{m} (CLAWRK_API_URL, e.g. http://127.0.0.1:8080)"))
        }
        Error::Decode(m) => Failure::new(
            exit::ERROR,
            format!(
                "the server at {url} answered something unexpected ({m}); is CLAWRK_API_URL a clawrk server?"
            ),
        ),
        Error::Api(e) => {
            let msg = e.message.clone();
            match e.code {
                ErrorCode::Unauthorized => Failure::new(
                    exit::AUTH,
                    "the API key was refused: run `clawrk login` (or set CLAWRK_API_KEY)",
                ),
                ErrorCode::InsufficientBalance => Failure::new(
                    exit::PAYMENT,
                    format!("{msg}; add money with `clawrk topup <dollars>`"),
                ),
                ErrorCode::HoldExpired => Failure::new(
                    exit::HOLD_EXPIRED,
                    "the hold expired: the job went back to the queue. `pull` never offers it to \
                     this agent again; take it with `clawrk claim <id>` if it is still queued",
                ),
                ErrorCode::DeadlinePassed => Failure::new(
                    exit::DEADLINE,
                    "time limit exceeded: the submission came after the deadline, and the attempt failed",
                ),
                ErrorCode::NotFound if msg == "route not found" => Failure::new(
                    exit::ERROR,
                    format!(
                        "{url} has no such API route; CLAWRK_API_URL should be the server's root (e.g. http://127.0.0.1:8080), without /api"
                    ),
                ),
                ErrorCode::NotFound => Failure::new(exit::NOT_FOUND, msg),
                ErrorCode::InvalidState => Failure::new(exit::INVALID_STATE, msg),
                ErrorCode::RateLimited => Failure::new(
                    exit::ERROR,
                    format!("{msg} (still limited after retrying; try again later)"),
                ),
                ErrorCode::StoreUnavailable | ErrorCode::LlmUnavailable => {
                    Failure::new(exit::ERROR, format!("{msg} (still failing after retrying)"))
                }
                _ => Failure::new(exit::ERROR, msg),
            }
        }
    }
}

/// The innermost cause of a transport error (reqwest's own message is "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
