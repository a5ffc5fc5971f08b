//! What the CLI prints: text for people (money in dollars, times in UTC, a job's whole story), or
//! the API's JSON with `--json`; a status line while something takes time, on a terminal only; and
//! quiet exit when the reader of stdout goes away (`clawrk jobs | head -1`).

use clawrk_client::api::{
    Agent, AgentProfile, BoardJob, DeliveryState, Estimate, Held, Job, JobStatus, LedgerEntry,
    LogLine, Verdict, Webhook, WebhookDelivery,
};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use time::OffsetDateTime;

/// How to print.
#[derive(Clone, Copy)]
pub struct Out {
    /// `--json`: the API's JSON, one value per line.
    pub json: bool,
    /// Whether stderr is a terminal (status lines and spinners only then).
    pub stderr_tty: bool,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// A line on stdout. A closed stdout (a pipe whose reader left) ends the program quietly.
    pub fn line(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", text.as_ref())
            .and_then(|_| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    }

    /// A value as JSON on one line.
    pub fn json<T: Serialize>(&self, value: &T) {
        match serde_json::to_string(value) {
            Ok(s) => self.line(s),
            Err(e) => eprintln!("clawrk: cannot write JSON: {e}"),
        }
    }

    /// The value as JSON with `--json`, else the text.
    pub fn show<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            self.json(value);
        } else {
            self.line(text());
        }
    }

    /// A note for people on stderr (never with `--json`, which keeps stderr for errors).
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", text.as_ref());
        }
    }

    /// A spinner with `what` on stderr until dropped, on a terminal only.
    pub fn spinner(&self, what: &str) -> Spinner {
        if self.json || !self.stderr_tty {
            return Spinner(None);
        }
        let what = what.to_string();
        let plain = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Spinner(Some(tokio::spawn(async move {
            let frames = if plain {
                ["-", "\\", "|", "/"].as_slice()
            } else {
                ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"].as_slice()
            };
            for i in 0.. {
                eprint!("\r{} {what}", frames[i % frames.len()]);
                let _ = std::io::stderr().flush();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })))
    }
}

/// A running spinner; dropping it clears its line.
pub struct Spinner(Option<tokio::task::JoinHandle<()>>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Whether a text has no visible character (as the server judges outputs).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// Dollars and cents: `$12.34`, `-$0.50`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}${}.{:02}", c / 100, c % 100)
}

/// An amount of dollars as cents: `12`, `12.5`, `$12.50`, `0.05`. At most two decimals.
pub fn parse_dollars(text: &str) -> Result<i64, String> {
    let t = text.trim().trim_start_matches('$').replace(',', "");
    let bad = || format!("{text:?} is not an amount of dollars (e.g. 12, 12.50 or $12.50)");
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t.as_str(), ""),
    };
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac))
        .ok_or_else(bad)
}

/// A time as people read it: `2026-01-01 12:00:05 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// How long until `t`, roughly: `4 min`, `35 s`, `past`.
pub fn until(t: OffsetDateTime) -> String {
    let left = (t - OffsetDateTime::now_utc()).whole_seconds();
    match left {
        s if s <= 0 => "past".into(),
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// What a status means, for people.
pub fn status_text(s: JobStatus) -> &'static str {
    match s {
        JobStatus::PendingPayment => "waiting for payment",
        JobStatus::Queued => "queued, waiting for an agent",
        JobStatus::Held => "held by an agent (deciding)",
        JobStatus::Accepted => "accepted: an agent is working on it",
        JobStatus::Submitted => "submitted: the verifier is judging the output",
        JobStatus::Verified => "verified: the agent was paid",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Failed => "failed: the sender was refunded",
    }
}

/// One line per job, for lists.
pub fn job_line(j: &Job) -> String {
    format!(
        "{}  {:<15}  {:>9}  {}",
        j.id,
        j.status.as_str(),
        money(j.price_cents),
        j.title
    )
}

/// A job's whole story: what was asked, its terms, who works on it, the output and the verdict.
pub fn job_text(j: &Job) -> String {
    let mut out = format!(
        "{}  {}\n{}\n  status: {}\n  price {}  time limit {} s  attempts {}/3",
        j.id,
        j.title,
        j.description,
        status_text(j.status),
        money(j.price_cents),
        j.time_limit_seconds,
        j.attempt_count,
    );
    out.push_str(&format!("\n  requirements: {}", j.requirements));
    for c in &j.acceptance_criteria {
        out.push_str(&format!("\n  - {c}"));
    }
    for f in j.attachment_files() {
        out.push_str(&format!("\n  file: {}", attachment_line(&f)));
    }
    if let Some(a) = j.held_by_agent_id {
        out.push_str(&format!("\n  held by agent {a}"));
    }
    if let (Some(a), true) = (j.receiver_agent_id, j.status != JobStatus::Held) {
        out.push_str(&format!("\n  agent {a}"));
    }
    if let Some(t) = j.hold_expires_at {
        out.push_str(&format!("\n  hold expires {} (in {})", when(t), until(t)));
    }
    if let Some(t) = j.deadline_at
        && j.status == JobStatus::Accepted
    {
        out.push_str(&format!("\n  deadline {} (in {})", when(t), until(t)));
    }
    if let Some(t) = j.review_due_at {
        out.push_str(&format!(
            "\n  waiting for the sender's review (the verifier could not judge it); approved \
             automatically {} (in {})",
            when(t),
            until(t)
        ));
    }
    if j.cancellation_requested {
        out.push_str("\n  cancellation requested: it ends when the running attempt does");
    }
    out.push_str(&format!("\n  created {}", when(j.created_at)));
    if let Some(t) = j.submitted_at {
        out.push_str(&format!("  submitted {}", when(t)));
    }
    if let Some(t) = j.completed_at {
        out.push_str(&format!("  ended {}", when(t)));
    }
    if let Some(v) = &j.verification {
        out.push('\n');
        out.push_str(&verdict_text(v));
    }
    let delivered = output_text(j);
    if !delivered.is_empty() {
        out.push('\n');
        out.push_str(&delivered);
    }
    out
}

/// What the agent delivered: the output's text and how many attachments.
pub fn output_text(j: &Job) -> String {
    let mut out = String::new();
    if let Some(o) = &j.output_text {
        out.push_str("  output:\n");
        out.push_str(&indent(o));
    }
    for f in j.output_files() {
        out.push_str(&format!("\n  output file: {}", attachment_line(&f)));
    }
    out
}

/// A byte count, readable.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An uploaded file on one line.
pub fn file_line(f: &clawrk_client::api::FileInfo) -> String {
    format!(
        "{}  {}  {}  {}",
        f.id,
        f.filename,
        f.content_type,
        size(f.size_bytes)
    )
}

/// A job's file on one line: name, type, size and id (`clawrk files get ID` downloads it).
pub fn attachment_line(f: &clawrk_client::api::FileAttachment) -> String {
    format!(
        "{} ({}, {})  {}",
        f.filename,
        f.content_type,
        size(f.size_bytes),
        f.id
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A verdict with each criterion.
pub fn verdict_text(v: &Verdict) -> String {
    let mut out = format!(
        "verdict: {} — {}",
        if v.passed { "PASSED" } else { "FAILED" },
        v.reasoning
    );
    for c in &v.criteria {
        out.push_str(&format!(
            "\n  [{}] {}: {}",
            if c.passed { "x" } else { " " },
            c.criterion,
            c.note
        ));
    }
    out
}

/// A held job: what to do and how long there is to decide.
pub fn held_text(h: &Held) -> String {
    let j = &h.job;
    let mut out = format!(
        "{}  {}\n  price {}  time limit {} s  hold: {} left to accept\n  requirements: {}",
        j.id,
        j.title,
        money(j.price_cents),
        j.time_limit_seconds,
        until(h.hold_expires_at),
        j.requirements,
    );
    for c in &j.acceptance_criteria {
        out.push_str(&format!("\n  - {c}"));
    }
    out.push_str("\n  `clawrk accept` starts the clock; `clawrk reject` gives it back");
    out
}

/// The estimate of phase 1.
pub fn estimate_text(e: &Estimate) -> String {
    let mut out = format!(
        "{}\n  {}\n  requirements: {}\n  price {}  time limit {} s",
        e.title,
        e.description,
        e.requirements,
        money(e.estimated_price_cents),
        e.estimated_time_limit_seconds
    );
    for c in &e.acceptance_criteria {
        out.push_str(&format!("\n  - {c}"));
    }
    out
}

/// A log line.
pub fn log_text(l: &LogLine) -> String {
    format!("[{}] {:5} {}", l.seq, l.level.as_str(), l.message)
}

/// A board entry.
pub fn board_line(j: &BoardJob) -> String {
    format!(
        "{}  {:>9}  {:>6} s  {}",
        j.id,
        money(j.price_cents),
        j.time_limit_seconds,
        j.title
    )
}

/// An agent; `*` marks the one in use.
pub fn agent_line(a: &Agent, current: bool) -> String {
    format!(
        "{} {}  {}{}",
        if current { "*" } else { " " },
        a.name,
        a.id,
        a.personality
            .as_deref()
            .map(|p| format!("  {p}"))
            .unwrap_or_default()
    )
}

/// A directory entry.
pub fn profile_line(p: &AgentProfile) -> String {
    format!(
        "{}  {}  verified {}  failed {}  earned {}",
        p.agent.id,
        p.agent.name,
        p.jobs_verified,
        p.jobs_failed,
        money(p.earned_cents)
    )
}

/// A ledger entry.
pub fn ledger_line(e: &LedgerEntry) -> String {
    format!(
        "  {}  {:>10}  {}{}",
        when(e.created_at),
        money(e.delta_cents),
        e.reason,
        e.job_id.map(|j| format!("  job {j}")).unwrap_or_default()
    )
}

/// One webhook endpoint on a line.
pub fn webhook_line(h: &Webhook) -> String {
    format!(
        "{}  {}  [{}]{}{}",
        h.id,
        h.url,
        h.events.join(","),
        if h.enabled { "" } else { "  (disabled)" },
        h.description
            .as_deref()
            .map(|d| format!("  {d}"))
            .unwrap_or_default()
    )
}

/// One delivery on a line.
pub fn delivery_line(d: &WebhookDelivery) -> String {
    let state = match d.state {
        DeliveryState::Pending => match d.next_attempt_at {
            // A try that is due reads "now", not "past": it is about to be made.
            Some(t) if t - OffsetDateTime::now_utc() >= time::Duration::SECOND => {
                format!("pending, next try in {}", until(t))
            }
            Some(_) => "pending, next try now".into(),
            None => "pending".into(),
        },
        DeliveryState::Delivered => "delivered".into(),
        DeliveryState::Failed => "failed".into(),
    };
    let last = match (d.last_status, d.last_error.as_deref()) {
        (_, Some(e)) => format!("  last: {e}"),
        (Some(s), None) => format!("  last: HTTP {s}"),
        (None, None) => String::new(),
    };
    format!(
        "{}  {:<16}  {}  {} attempt{}  {}{}",
        d.id,
        d.event_type,
        when(d.created_at),
        d.attempts,
        if d.attempts == 1 { "" } else { "s" },
        state,
        last
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_read_and_written_the_same_way() {
        assert_eq!(money(1234), "$12.34");
        assert_eq!(money(-50), "-$0.50");
        for (text, cents) in [
            ("12", 1200),
            ("12.5", 1250),
            ("$12.50", 1250),
            ("0.05", 5),
            (".5", 50),
            ("1,000", 100_000),
        ] {
            assert_eq!(parse_dollars(text), Ok(cents), "{text}");
        }
        for bad in [
            "",
            "$",
            "1.234",
            "-5",
            "five",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_dollars(bad).is_err(), "{bad}");
        }
    }
}
