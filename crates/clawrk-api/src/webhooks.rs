//! Webhooks on the wire: endpoints, deliveries, the event a receiver gets, and its signature —
//! [`sign`] as the server makes it and [`verify`] for receivers (see docs/WEBHOOKS.md).
//!
//! The `clawrk-signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the
//! endpoint's secret as the key, the shape Stripe uses.

use crate::jobs::Job;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "clawrk-signature";
/// The header that carries the event's id (also in the body), for receivers' logs.
pub const EVENT_ID_HEADER: &str = "clawrk-event-id";
/// How old a signature [`verify`] accepts by default: 5 minutes, either way.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// The event type names an endpoint may ask for (the OpenAPI document's enum for `events`).
#[cfg(feature = "openapi")]
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
enum WebhookEventName {
    #[serde(rename = "*")]
    All,
    #[serde(rename = "job.queued")]
    JobQueued,
    #[serde(rename = "job.held")]
    JobHeld,
    #[serde(rename = "job.accepted")]
    JobAccepted,
    #[serde(rename = "job.submitted")]
    JobSubmitted,
    #[serde(rename = "job.verified")]
    JobVerified,
    #[serde(rename = "job.requeued")]
    JobRequeued,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    #[serde(rename = "payout.completed")]
    PayoutCompleted,
}

/// `POST /api/webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    /// Where events are posted: `http://` or `https://`.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            max_length = 2048,
            pattern = "^https?://[^\\u0000]+$"
        )
    )]
    pub url: String,
    /// Event types (`job.queued`, `job.held`, `job.accepted`, `job.submitted`, `job.verified`,
    /// `job.requeued`, `job.failed`, `job.cancelled`, `payout.completed`), or `["*"]` for all.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_items = 1, value_type = Vec<WebhookEventName>))]
    pub events: Vec<String>,
    /// A note for yourself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 500, pattern = "^[^\\u0000]*$")
    )]
    pub description: Option<String>,
}

/// `PATCH /api/webhooks/{id}`: absent fields stay as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPatch {
    /// A new URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 2048, pattern = "^https?://[^\\u0000]+$")
    )]
    pub url: Option<String>,
    /// New event types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, value_type = Option<Vec<WebhookEventName>>))]
    pub events: Option<Vec<String>>,
    /// A new description (`""` removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 500, pattern = "^[^\\u0000]*$")
    )]
    pub description: Option<String>,
    /// Enable or disable (a disabled endpoint gets nothing, not even later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `true`: a new signing secret, in the answer; the old one stops signing at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_secret: Option<bool>,
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// Event types it receives, or `["*"]`.
    pub events: Vec<String>,
    /// Your note.
    pub description: Option<String>,
    /// Whether it receives events.
    pub enabled: bool,
    /// The signing secret: only in the answer that creates it or rotates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Created.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: OffsetDateTime,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retried for 24 hours without success (`redeliver` tries again).
    Failed,
}

/// One event on its way to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Id.
    pub id: Uuid,
    /// The event's id (the same in every retry and redelivery).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The job it is about.
    pub job_id: Uuid,
    /// Sends tried so far.
    pub attempts: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// When it is tried next (pending only).
    #[serde(with = "crate::times::ms_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Created (when the event happened).
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: OffsetDateTime,
}

/// What a receiver gets: the body of each webhook request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEvent {
    /// Unique per event; drop an event whose id you already handled.
    pub id: String,
    /// What happened, e.g. `job.verified`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// The job as it was right after the change, as the receiver may see it.
    pub data: Job,
}

/// Why [`verify`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is missing a `t=` or a `v1=`, or is malformed.
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    Expired,
    /// No `v1=` signature matches the body and the secret.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Malformed => "malformed clawrk-signature header",
            SignatureError::Expired => "signature timestamp outside the tolerance",
            SignatureError::Mismatch => "signature does not match",
        })
    }
}

impl std::error::Error for SignatureError {}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut m = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `clawrk-signature` header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Checks a request's `clawrk-signature` header against its raw body and the endpoint's secret,
/// and that it was signed within `tolerance_seconds` of `now` (Unix seconds): use
/// [`DEFAULT_TOLERANCE_SECONDS`] unless you know better. The comparison is constant-time. Several
/// `v1=` values (sent while a secret is rotated) pass if any matches.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance_seconds {
        return Err(SignatureError::Expired);
    }
    if signatures
        .iter()
        .any(|s| mac(secret, t, body).verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign("whsec_test", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify("whsec_test", &h, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify("whsec_other", &h, body, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_test", &h, br#"{"id":"evt_2"}"#, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_test", &h, body, 1_700_000_301, 300),
            Err(SignatureError::Expired)
        );
        let forged = h.replace("t=1700000000", "t=1700000200");
        assert_eq!(
            verify("whsec_test", &forged, body, 1_700_000_200, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_test", "v1=00", body, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("whsec_test", "t=1700000000", body, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            sign("k", 1, b"{}"),
            "t=1,v1=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }
}
