//! The HTTP side: requests to the clawrk API, errors turned into one-line messages with distinct
//! exit codes, and a reader of the SSE log stream.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

/// Exit codes (also in `clawrk --help`).
pub mod exit {
    pub const ERROR: u8 = 1;
    pub const AUTH: u8 = 3;
    pub const PAYMENT: u8 = 4;
    pub const HOLD_EXPIRED: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const UNREACHABLE: u8 = 7;
    pub const JOB_FAILED: u8 = 8;
    pub const JOB_CANCELLED: u8 = 9;
    pub const NOTHING: u8 = 10;
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
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::new(exit::ERROR, m)
    }
}

/// Dollars and cents: `$12.34`, `-$0.50`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}${}.{:02}", c / 100, c % 100)
}

/// An API client.
pub struct Client {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

/// A successful answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Client {
    pub fn new(base: &str, key: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            key,
            http: reqwest::Client::new(),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        Failure::new(
            exit::UNREACHABLE,
            format!(
                "cannot reach the clawrk server at {} ({e}); is it running? (CLAWRK_API_URL)",
                self.base
            ),
        )
    }

    /// Sends a request; non-2xx answers become failures with the server's message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}/api{path}", self.base));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(failure(status, &body))
    }

    pub async fn get(&self, path: &str) -> Result<Answer, Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Answer, Failure> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Follows `/api/jobs/:id/logs`, calling `on_event(event, data)` for each event, until the
    /// stream ends.
    pub async fn follow(
        &self,
        job: &str,
        mut on_event: impl FnMut(&str, &Value),
    ) -> Result<(), Failure> {
        let mut req = self.http.get(format!("{}/api/jobs/{job}/logs", self.base));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(failure(status, &body));
        }
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(&e))?;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    on_event(&event, &serde_json::from_str(&data).unwrap_or(Value::Null));
                }
            }
        }
        Ok(())
    }
}

/// The failure for an error answer.
fn failure(status: StatusCode, body: &Value) -> Failure {
    let msg = body["error"]
        .as_str()
        .unwrap_or("the server answered with an error")
        .to_string();
    match status {
        StatusCode::UNAUTHORIZED => Failure::new(
            exit::AUTH,
            "not logged in or the API key is not valid: run `clawrk login` (or set CLAWRK_API_KEY)",
        ),
        StatusCode::PAYMENT_REQUIRED => {
            let need = body["required_cents"].as_i64();
            let have = body["available_cents"].as_i64();
            match (need, have) {
                (Some(n), Some(h)) => Failure::new(
                    exit::PAYMENT,
                    format!(
                        "insufficient balance: {} required, {} available",
                        money(n),
                        money(h)
                    ),
                ),
                _ => Failure::new(exit::PAYMENT, msg),
            }
        }
        StatusCode::GONE => Failure::new(
            exit::HOLD_EXPIRED,
            format!("{msg}: the job went back to the queue; pull again"),
        ),
        StatusCode::NOT_FOUND => Failure::new(exit::NOT_FOUND, msg),
        _ => Failure::new(exit::ERROR, format!("{msg} (HTTP {})", status.as_u16())),
    }
}
