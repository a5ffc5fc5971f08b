//! Webhooks: the events a job's changes raise, who receives them, the endpoints that receive them,
//! their deliveries and the retry schedule; and which destinations a delivery may reach.
//!
//! Every status change of a job is recorded by the store in the same transaction as the change (an
//! outbox row holding the job as it became, [`JobEvent`]), so an event can be neither lost nor
//! invented. The dispatcher turns each outbox row into one [`Delivery`] per matching endpoint of
//! each receiver; the delivery worker sends them and retries with [`backoff`] until
//! [`RETRY_WINDOW_MILLIS`] have passed.

use crate::error::{DomainError, Result};
use crate::ids::{JobId, Timestamp, UserId};
use crate::job::{Job, JobStatus};
use crate::text::no_nul;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// A webhook endpoint's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(pub Uuid);

/// A delivery's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub Uuid);

impl FromStr for WebhookId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> std::result::Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(WebhookId)
    }
}

impl FromStr for DeliveryId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> std::result::Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(DeliveryId)
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The most endpoints one user may register.
pub const MAX_ENDPOINTS_PER_USER: usize = 20;
/// The longest endpoint URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// The longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long a delivery is retried before it is marked failed (24 hours).
pub const RETRY_WINDOW_MILLIS: i64 = 24 * 3600 * 1000;
/// The longest pause between two tries of a delivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long finished deliveries (and their events) are kept for `deliveries` and `redeliver`.
pub const DELIVERY_RETENTION_MILLIS: i64 = 30 * 24 * 3600 * 1000;

/// What happened to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// Paid and waiting for an agent (created paid, paid later, or a hold released).
    JobQueued,
    /// Held by an agent, which may accept or reject it.
    JobHeld,
    /// Accepted by an agent, now at work against its deadline.
    JobAccepted,
    /// Output submitted; the verifier is judging it.
    JobSubmitted,
    /// Output passed; the job is done.
    JobVerified,
    /// An attempt failed and the job is queued again.
    JobRequeued,
    /// The last attempt failed; the sender is refunded.
    JobFailed,
    /// Cancelled by its sender.
    JobCancelled,
    /// The agent's owner was paid for a verified job.
    PayoutCompleted,
}

impl EventType {
    /// Every event type, in lifecycle order.
    pub const ALL: [EventType; 9] = [
        EventType::JobQueued,
        EventType::JobHeld,
        EventType::JobAccepted,
        EventType::JobSubmitted,
        EventType::JobVerified,
        EventType::JobRequeued,
        EventType::JobFailed,
        EventType::JobCancelled,
        EventType::PayoutCompleted,
    ];

    /// The type as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobQueued => "job.queued",
            EventType::JobHeld => "job.held",
            EventType::JobAccepted => "job.accepted",
            EventType::JobSubmitted => "job.submitted",
            EventType::JobVerified => "job.verified",
            EventType::JobRequeued => "job.requeued",
            EventType::JobFailed => "job.failed",
            EventType::JobCancelled => "job.cancelled",
            EventType::PayoutCompleted => "payout.completed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "events: unknown event type {s:?} (one of {}, or \"*\")",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ))
            })
    }
}

/// Which events an endpoint receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event (`"*"`).
    All,
    /// These (never empty).
    Only(BTreeSet<EventType>),
}

impl EventFilter {
    /// Parses the API's list: event types, or `"*"` for all (which then stands for everything,
    /// whatever else is listed). Empty lists and unknown names are refused; a name listed twice
    /// counts once.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<EventFilter> {
        if names.is_empty() {
            return Err(DomainError::invalid(
                "events must name at least one event type, or \"*\"",
            ));
        }
        let mut set = BTreeSet::new();
        let mut all = false;
        for n in names {
            match n.as_ref() {
                "*" => all = true,
                n => {
                    set.insert(n.parse::<EventType>()?);
                }
            }
        }
        Ok(if all {
            EventFilter::All
        } else {
            EventFilter::Only(set)
        })
    }

    /// The list as the API shows it (and the stores keep it).
    pub fn names(&self) -> Vec<String> {
        match self {
            EventFilter::All => vec!["*".into()],
            EventFilter::Only(s) => s.iter().map(|t| t.as_str().to_string()).collect(),
        }
    }

    /// Whether `t` is wanted.
    pub fn wants(&self, t: EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(s) => s.contains(&t),
        }
    }
}

/// A registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: WebhookId,
    /// The user who registered it (the only one who sees it).
    pub owner: UserId,
    /// Where events are posted.
    pub url: String,
    /// Which events it receives.
    pub events: EventFilter,
    /// The owner's note.
    pub description: Option<String>,
    /// Disabled endpoints receive nothing (events while disabled are not queued for them).
    pub enabled: bool,
    /// The HMAC key events are signed with.
    pub secret: String,
    /// Registered at.
    pub created_at: Timestamp,
    /// Last changed at.
    pub updated_at: Timestamp,
}

/// A new endpoint as the owner describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEndpoint {
    /// Where events are posted.
    pub url: String,
    /// Event types, or `"*"`.
    pub events: Vec<String>,
    /// The owner's note.
    pub description: Option<String>,
}

/// A change to an endpoint; `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// A new description (an empty one removes it).
    pub description: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// A new signing secret (the caller made it): the old one stops signing at once.
    pub secret: Option<String>,
}

/// Checks an endpoint URL: absolute http(s) with a host, no credentials, at most
/// [`MAX_URL_CHARS`]. Where it points is checked at send time ([`is_public`]), after DNS.
pub fn check_url(raw: &str) -> Result<String> {
    no_nul("url", raw)?;
    if raw.trim().is_empty() {
        return Err(DomainError::invalid("url is required"));
    }
    // Exactly as written: no surrounding space, the scheme in lower case (what the API documents).
    if !(raw.starts_with("http://") || raw.starts_with("https://")) {
        return Err(DomainError::invalid(
            "url must start with http:// or https://",
        ));
    }
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(DomainError::invalid(format!(
            "url must be at most {MAX_URL_CHARS} characters"
        )));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| DomainError::invalid(format!("url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DomainError::invalid("url must be http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DomainError::invalid("url must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DomainError::invalid(
            "url must not carry credentials (verify the signature instead)",
        ));
    }
    Ok(url.to_string())
}

/// Checks a description: at most [`MAX_DESCRIPTION_CHARS`]; blank means none.
pub fn check_description(d: Option<String>) -> Result<Option<String>> {
    let Some(d) = d else { return Ok(None) };
    no_nul("description", &d)?;
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let d = d.trim();
    Ok((!d.is_empty()).then(|| d.to_string()))
}

/// Whether a delivery may be sent to `ip` by default: not loopback, private, link-local (cloud
/// metadata services live there), shared, documentation, multicast, broadcast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link-local
                || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated)
                || seg0 == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible
                || seg0 == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 to anything
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

/// An outbox row: one status change of a job, with the job as it became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// Its place in the outbox (dispatch order).
    pub seq: i64,
    /// The status before (`None` for a job created queued).
    pub from: Option<JobStatus>,
    /// Whose agent held or worked on the job before the change (told when it loses the job).
    pub prev_operator: Option<UserId>,
    /// The job after the change.
    pub job: Job,
}

impl JobEvent {
    /// The events this change raises (none for a job created unpaid).
    pub fn types(&self) -> Vec<EventType> {
        events_of(self.from, self.job.status)
    }

    /// Who is told: the sender, and the owner of the agent that holds or works on the job (or
    /// did until this change).
    pub fn recipients(&self) -> Vec<UserId> {
        let operator = self
            .job
            .holder
            .map(|h| h.owner_id)
            .or(self.job.receiver)
            .or(self.prev_operator);
        let mut r = vec![self.job.sender];
        if let Some(o) = operator.filter(|o| *o != self.job.sender) {
            r.push(o);
        }
        r
    }

    /// When it happened.
    pub fn at(&self) -> Timestamp {
        self.job.updated_at
    }
}

/// The events a status change raises.
pub fn events_of(from: Option<JobStatus>, to: JobStatus) -> Vec<EventType> {
    use JobStatus as S;
    match to {
        S::PendingPayment => vec![],
        S::Queued => match from {
            Some(S::Accepted | S::Submitted) => vec![EventType::JobRequeued],
            _ => vec![EventType::JobQueued],
        },
        S::Held => vec![EventType::JobHeld],
        S::Accepted => vec![EventType::JobAccepted],
        S::Submitted => vec![EventType::JobSubmitted],
        S::Verified => vec![EventType::JobVerified, EventType::PayoutCompleted],
        S::Failed => vec![EventType::JobFailed],
        S::Cancelled => vec![EventType::JobCancelled],
    }
}

/// The id receivers drop duplicates by: the same for every delivery and redelivery of one event.
pub fn event_id(job: JobId, version: i64, t: EventType) -> String {
    let suffix = if t == EventType::PayoutCompleted {
        "p"
    } else {
        "j"
    };
    format!("evt_{}_{version}{suffix}", job.0.simple())
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet delivered; tried again at `next_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retried for [`RETRY_WINDOW_MILLIS`] without success.
    Failed,
}

impl DeliveryState {
    /// As the API and the stores spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// From the stores' spelling.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One event on its way to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint: WebhookId,
    /// The outbox row it carries.
    pub event_seq: i64,
    /// Which of the row's events.
    pub event_type: EventType,
    /// The event's id (see [`event_id`]).
    pub event_id: String,
    /// The job the event is about.
    pub job_id: JobId,
    /// The endpoint's owner: the job is shown as this user may see it.
    pub recipient: UserId,
    /// Sends tried so far.
    pub attempts: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// When it is tried next (pending only).
    pub next_at: Option<Timestamp>,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// Why the last try failed, when it did.
    pub last_error: Option<String>,
    /// Retried until then; marked failed after.
    pub give_up_at: Timestamp,
    /// Created at (when the event was dispatched).
    pub created_at: Timestamp,
    /// Last changed at.
    pub updated_at: Timestamp,
}

/// A leased delivery with what sending it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The delivery (as leased).
    pub delivery: Delivery,
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// The event's job as it became.
    pub job: Job,
}

/// What one send achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why it did not succeed (refused destination, timeout, non-2xx), if it did not.
    pub error: Option<String>,
}

impl SendResult {
    /// Whether the receiver took it (a 2xx answer).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The pause before try `attempts + 1` after `attempts` failed ones: `base` doubled per failure,
/// capped at [`MAX_BACKOFF`], then spread by `jitter` (0..1, from the caller's random source) over
/// its upper half so that many deliveries failing together do not retry together.
pub fn backoff(attempts: u32, base: Duration, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    let full = base.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The delivery after one send at `now`: delivered, failed for good once its window is over, or
/// pending again after [`backoff`].
pub fn after_send(
    mut d: Delivery,
    result: &SendResult,
    now: Timestamp,
    base: Duration,
    jitter: f64,
) -> Delivery {
    d.attempts = d.attempts.saturating_add(1);
    d.last_status = result.status;
    d.updated_at = now;
    if result.ok() {
        d.state = DeliveryState::Delivered;
        d.next_at = None;
        d.last_error = None;
        return d;
    }
    d.last_error = Some(
        result
            .error
            .clone()
            .unwrap_or_else(|| "the receiver did not answer 2xx".into()),
    );
    let pause = i64::try_from(backoff(d.attempts, base, jitter).as_millis()).unwrap_or(i64::MAX);
    let next = now.plus_millis(pause);
    // Tried for the whole window: only a try at or after its end gives up.
    if now >= d.give_up_at {
        d.state = DeliveryState::Failed;
        d.next_at = None;
    } else {
        d.state = DeliveryState::Pending;
        d.next_at = Some(next);
    }
    d
}

/// The delivery queued again for now, with a fresh retry window (the owner asked).
pub fn redeliver(mut d: Delivery, now: Timestamp) -> Delivery {
    d.state = DeliveryState::Pending;
    d.next_at = Some(now);
    d.give_up_at = now.plus_millis(RETRY_WINDOW_MILLIS);
    d.updated_at = now;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_raise_the_documented_events() {
        use JobStatus as S;
        assert_eq!(events_of(None, S::Queued), [EventType::JobQueued]);
        assert_eq!(events_of(None, S::PendingPayment), []);
        assert_eq!(
            events_of(Some(S::PendingPayment), S::Queued),
            [EventType::JobQueued]
        );
        assert_eq!(events_of(Some(S::Held), S::Queued), [EventType::JobQueued]);
        assert_eq!(
            events_of(Some(S::Accepted), S::Queued),
            [EventType::JobRequeued]
        );
        assert_eq!(
            events_of(Some(S::Submitted), S::Queued),
            [EventType::JobRequeued]
        );
        assert_eq!(
            events_of(Some(S::Submitted), S::Verified),
            [EventType::JobVerified, EventType::PayoutCompleted]
        );
        assert_eq!(
            events_of(Some(S::Accepted), S::Failed),
            [EventType::JobFailed]
        );
    }

    #[test]
    fn filters_parse_and_refuse() {
        assert_eq!(EventFilter::parse(&["*"]).ok(), Some(EventFilter::All));
        let f = EventFilter::parse(&["job.verified", "payout.completed"]).unwrap();
        assert!(f.wants(EventType::PayoutCompleted) && !f.wants(EventType::JobHeld));
        assert_eq!(f.names(), ["job.verified", "payout.completed"]);
        assert!(EventFilter::parse::<&str>(&[]).is_err());
        assert!(EventFilter::parse(&["job.done"]).is_err());
        assert!(EventFilter::parse(&["job.held", ""]).is_err());
        assert_eq!(
            EventFilter::parse(&["job.held", "*"]).ok(),
            Some(EventFilter::All)
        );
        assert_eq!(
            EventFilter::parse(&["job.held", "job.held"])
                .map(|f| f.names())
                .ok(),
            Some(vec!["job.held".to_string()])
        );
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("http://127.0.0.1:9000/x").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com/hook",
            "https://user:pw@example.com/",
            "http://",
            " https://example.com/",
            "HTTPS://example.com/",
        ] {
            assert!(check_url(bad).is_err(), "{bad} accepted");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_CHARS))).is_err());
    }

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is public");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is not public");
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_its_upper_half() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(1, base, 1.0), base);
        assert_eq!(backoff(2, base, 1.0), base * 2);
        assert_eq!(backoff(3, base, 0.0), base * 2);
        assert_eq!(backoff(30, base, 1.0), MAX_BACKOFF);
    }

    #[test]
    fn a_failing_delivery_is_retried_for_the_window_then_failed() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut d = Delivery {
            id: DeliveryId(Uuid::nil()),
            endpoint: WebhookId(Uuid::nil()),
            event_seq: 1,
            event_type: EventType::JobQueued,
            event_id: "evt".into(),
            job_id: JobId(Uuid::nil()),
            recipient: UserId(Uuid::nil()),
            attempts: 0,
            state: DeliveryState::Pending,
            next_at: Some(t0),
            last_status: None,
            last_error: None,
            give_up_at: t0.plus_millis(RETRY_WINDOW_MILLIS),
            created_at: t0,
            updated_at: t0,
        };
        let fail = SendResult {
            status: Some(500),
            error: Some("HTTP 500".into()),
        };
        let mut now = t0;
        let mut tries = 0;
        while d.state == DeliveryState::Pending {
            d = after_send(d, &fail, now, Duration::from_secs(10), 1.0);
            tries += 1;
            if let Some(n) = d.next_at {
                now = n;
            }
            assert!(tries < 100);
        }
        assert_eq!(d.state, DeliveryState::Failed);
        // Tried for the whole window, and not long after it.
        assert!(now >= t0.plus_millis(RETRY_WINDOW_MILLIS), "{tries}");
        assert!(
            now <= t0.plus_millis(RETRY_WINDOW_MILLIS + 3_600_000),
            "{tries}"
        );
        assert_eq!(d.attempts, tries);
        let ok = SendResult {
            status: Some(204),
            error: None,
        };
        let d = after_send(redeliver(d, now), &ok, now, Duration::from_secs(10), 0.5);
        assert_eq!(d.state, DeliveryState::Delivered);
        assert_eq!(d.last_error, None);
    }
}
