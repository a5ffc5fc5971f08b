//! `clawrk agent run --exec CMD`: an agent without glue code.
//!
//! Each worker pulls (a long poll: the server answers when a job matches), accepts, and runs CMD
//! with `sh -c`: the job as JSON on its stdin; `CLAWRK_JOB_ID`, `CLAWRK_DEADLINE` (RFC 3339),
//! `CLAWRK_INPUT_DIR` (the job's files, downloaded under their names), `CLAWRK_OUTPUT_DIR` (an
//! empty directory of its own) and the job's `env_vars` in its environment. Its stdout is
//! submitted as the output's text, and the files it wrote at the top of `CLAWRK_OUTPUT_DIR` are
//! uploaded and submitted as its attachments. A non-zero exit, neither output nor files, or
//! running into the margin before the deadline (CMD is killed) gives the job up with the reason
//! (the tail of its stderr).
//! The verdict is reported when it comes.
//!
//! On start, the jobs this agent had accepted before a crash are run again if their deadline
//! leaves time, else given up. Ctrl-C stops pulling and lets running jobs finish; a second Ctrl-C
//! kills them and gives them up. 429, 503 and network errors are retried by the client, and the
//! loop backs off on the rest. One line per event, or one JSON object per event with `--json`.

use crate::Ctx;
use crate::fail::{Failure, exit};
use crate::out::{self, money};
use clawrk_client::api::{AgentChoice, Job, JobRole, JobStatus, PullRequest, SubmitRequest};
use clawrk_client::{Client, ErrorCode, JobsQuery, LogEvent};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use uuid::Uuid;

/// The flags of `clawrk agent run`.
#[derive(clap::Args, Clone)]
pub struct Args {
    /// The command that does a job (run with `sh -c`).
    #[arg(long)]
    exec: String,
    /// Which agent works (default: the one in `use`, else your default agent).
    #[arg(long)]
    agent: Option<String>,
    /// Jobs worked on at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Stop after starting this many jobs.
    #[arg(long = "max-jobs")]
    max_jobs: Option<usize>,
    /// Give back jobs that pay less (cents).
    #[arg(long = "min-price-cents")]
    min_price_cents: Option<i64>,
    /// Give back jobs with a longer time limit (seconds).
    #[arg(long = "max-time-limit")]
    max_time_limit: Option<u32>,
    /// Stop the command this many seconds before the deadline (default: a tenth of the time
    /// limit, 5 s to 60 s).
    #[arg(long = "deadline-margin")]
    deadline_margin: Option<u64>,
    /// Show the queued jobs that pass the filters and the command that would run; hold nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
}

/// How long a pull waits on the server.
const PULL_WAIT: u32 = 20;
/// The longest pause after an error the client did not retry away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much stderr is kept for a reason.
const STDERR_TAIL: usize = 1000;

/// What the workers share.
struct Shared {
    ctx_out: out::Out,
    client: Client,
    agent: AgentChoice,
    args: Args,
    /// Jobs started so far (for `--max-jobs`).
    started: AtomicUsize,
    /// First Ctrl-C: no more pulls.
    stopping: AtomicBool,
    /// Second Ctrl-C: running jobs are given up.
    abandoning: AtomicBool,
    changed: Notify,
}

impl Shared {
    /// One event: a line for people, or a JSON object.
    fn event(&self, event: &str, job: Option<Uuid>, text: String, extra: serde_json::Value) {
        if self.ctx_out.json {
            let mut v = json!({ "event": event, "at": out::when(OffsetDateTime::now_utc()) });
            if let Some(j) = job {
                v["job"] = json!(j);
            }
            if let serde_json::Value::Object(m) = extra {
                for (k, val) in m {
                    v[k] = val;
                }
            }
            self.ctx_out.json(&v);
        } else {
            let at = out::when(OffsetDateTime::now_utc());
            match job {
                Some(j) => self.ctx_out.line(format!("{at}  {j}  {text}")),
                None => self.ctx_out.line(format!("{at}  {text}")),
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Takes one of the `--max-jobs` slots; `false` when they are all taken.
    fn take_slot(&self) -> bool {
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        match self.args.max_jobs {
            Some(max) if n >= max => {
                self.started.fetch_sub(1, Ordering::SeqCst);
                false
            }
            _ => true,
        }
    }
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<(), Failure> {
    let client = ctx.client()?;
    let agent = ctx.agent(args.agent.clone())?;
    // The agent must exist before anything runs.
    let me = client
        .agents()
        .await
        .map_err(|e| ctx.explain(e))?
        .into_iter()
        .find(|a| match (&agent.agent_name, &agent.agent_id) {
            (Some(name), _) => a.name == *name,
            (None, Some(id)) => a.id == *id,
            (None, None) => a.is_default,
        })
        .ok_or_else(|| {
            Failure::new(
                exit::NOT_FOUND,
                "no such agent of yours (see `clawrk agents`)",
            )
        })?;
    let shared = Arc::new(Shared {
        ctx_out: ctx.out,
        client: client.clone(),
        agent: AgentChoice::id(me.id),
        args: args.clone(),
        started: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        abandoning: AtomicBool::new(false),
        changed: Notify::new(),
    });
    if args.dry_run {
        return dry_run(ctx, &shared).await;
    }
    shared.event(
        "start",
        None,
        format!(
            "agent {} runs `{}` on up to {} job(s) at once; Ctrl-C stops pulling",
            me.name, args.exec, args.concurrency
        ),
        json!({ "agent": me.id, "exec": args.exec, "concurrency": args.concurrency }),
    );
    // Ctrl-C once: stop pulling; twice: give up what runs.
    tokio::spawn({
        let shared = shared.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shared.stopping.store(true, Ordering::SeqCst);
                shared.changed.notify_waiters();
                shared.event(
                    "stopping",
                    None,
                    "stopping: no more pulls; running jobs finish (Ctrl-C again gives them up)"
                        .into(),
                    json!({}),
                );
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                shared.abandoning.store(true, Ordering::SeqCst);
                shared.changed.notify_waiters();
            }
        }
    });
    let verdicts = tokio::task::JoinSet::new();
    let verdicts = Arc::new(tokio::sync::Mutex::new(verdicts));
    resume(&shared, me.id, &verdicts).await;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let shared = shared.clone();
        let verdicts = verdicts.clone();
        workers.spawn(async move { work_loop(&shared, &verdicts).await });
    }
    while workers.join_next().await.is_some() {}
    // Verdicts still to come are reported unless the operator asked to stop.
    let mut pending = verdicts.lock().await;
    while !shared.stopping() && pending.join_next().await.is_some() {}
    pending.abort_all();
    shared.event(
        "done",
        None,
        format!(
            "done: {} job(s) started",
            shared.started.load(Ordering::SeqCst)
        ),
        json!({ "started": shared.started.load(Ordering::SeqCst) }),
    );
    Ok(())
}

/// `--dry-run`: the queued jobs the filters let through, and what would run.
async fn dry_run(ctx: &Ctx, shared: &Shared) -> Result<(), Failure> {
    let board = shared
        .client
        .board(&clawrk_client::PageRequest::default())
        .await
        .map_err(|e| ctx.explain(e))?;
    let taken: Vec<_> = board
        .items
        .iter()
        .filter(|j| passes(&shared.args, j.price_cents, j.time_limit_seconds))
        .collect();
    for j in &taken {
        shared.event(
            "would_take",
            Some(j.id),
            format!(
                "would run `{}` on: {} ({})",
                shared.args.exec,
                j.title,
                money(j.price_cents)
            ),
            json!({ "title": j.title, "price_cents": j.price_cents }),
        );
    }
    shared.event(
        "dry_run",
        None,
        format!(
            "{} of {} queued job(s) pass the filters; the server matches them to the agent when it pulls",
            taken.len(),
            board.items.len()
        ),
        json!({ "passing": taken.len(), "queued": board.items.len() }),
    );
    Ok(())
}

fn passes(args: &Args, price_cents: i64, time_limit: u32) -> bool {
    args.min_price_cents.is_none_or(|m| price_cents >= m)
        && args.max_time_limit.is_none_or(|m| time_limit <= m)
}

type Verdicts = Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>;

/// Jobs this agent accepted before a crash: run again while their deadline leaves time, else
/// given up.
async fn resume(shared: &Arc<Shared>, agent: Uuid, verdicts: &Verdicts) {
    let query = JobsQuery {
        role: JobRole::Agent,
        agent_id: Some(agent),
        status: Some(JobStatus::Accepted),
        ..JobsQuery::default()
    };
    let jobs: Vec<Job> = match shared.client.jobs(&query).await {
        Ok(page) => page.items,
        Err(e) => {
            shared.event(
                "error",
                None,
                format!("cannot list the jobs accepted before: {e}"),
                json!({ "error": e.to_string() }),
            );
            return;
        }
    };
    for job in jobs {
        shared.started.fetch_add(1, Ordering::SeqCst);
        shared.event(
            "resume",
            Some(job.id),
            format!("was accepted before a restart: {}", job.title),
            json!({}),
        );
        do_job(shared, job, verdicts).await;
    }
}

async fn work_loop(shared: &Arc<Shared>, verdicts: &Verdicts) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if shared.stopping() || !shared.take_slot() {
            return;
        }
        let pull = PullRequest::new(shared.agent.clone(), PULL_WAIT);
        let held = tokio::select! {
            r = shared.client.pull(&pull) => r,
            _ = shared.changed.notified() => {
                shared.started.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
        };
        let held = match held {
            Ok(Some(h)) => h,
            Ok(None) => {
                // Nothing matched during the wait: the slot is free again.
                shared.started.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            Err(e) => {
                shared.started.fetch_sub(1, Ordering::SeqCst);
                shared.event(
                    "error",
                    None,
                    format!("pull failed: {e}; retrying in {} s", backoff.as_secs_f32()),
                    json!({ "error": e.to_string() }),
                );
                if e.code() == Some(ErrorCode::Unauthorized)
                    || e.code() == Some(ErrorCode::NotFound)
                {
                    shared.stopping.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let job = held.job;
        shared.event(
            "held",
            Some(job.id),
            format!(
                "held: {} ({}, {} s)",
                job.title,
                money(job.price_cents),
                job.time_limit_seconds
            ),
            json!({ "title": job.title, "price_cents": job.price_cents, "time_limit_seconds": job.time_limit_seconds }),
        );
        if !passes(&shared.args, job.price_cents, job.time_limit_seconds) {
            shared.started.fetch_sub(1, Ordering::SeqCst);
            let _ = shared.client.reject(job.id, &shared.agent).await;
            shared.event(
                "rejected",
                Some(job.id),
                "rejected: outside --min-price-cents / --max-time-limit".into(),
                json!({}),
            );
            continue;
        }
        let job = match shared.client.accept(job.id, &shared.agent).await {
            Ok(j) => j,
            Err(e) => {
                shared.event(
                    "error",
                    Some(job.id),
                    format!("accept failed: {e}"),
                    json!({ "error": e.to_string() }),
                );
                continue;
            }
        };
        shared.event(
            "accepted",
            Some(job.id),
            format!(
                "accepted; deadline {}",
                job.deadline_at.map(out::when).unwrap_or_default()
            ),
            json!({ "deadline_at": job.deadline_at.map(clawrk_client::api::times::format) }),
        );
        do_job(shared, job, verdicts).await;
    }
}

/// How long before the deadline CMD is stopped: `--deadline-margin`, else a tenth of the time
/// limit, 5 s to 60 s.
fn margin(args: &Args, time_limit_seconds: u32) -> Duration {
    Duration::from_secs(
        args.deadline_margin
            .unwrap_or_else(|| u64::from(time_limit_seconds / 10).clamp(5, 60)),
    )
}

/// Runs CMD on an accepted job, then submits its output or gives the job up.
async fn do_job(shared: &Arc<Shared>, job: Job, verdicts: &Verdicts) {
    let deadline = job.deadline_at.unwrap_or_else(OffsetDateTime::now_utc);
    let left = deadline - OffsetDateTime::now_utc() - margin(&shared.args, job.time_limit_seconds);
    let budget = Duration::try_from(left).unwrap_or_default();
    if budget.is_zero() {
        give_up(shared, &job, "too close to the deadline to start").await;
        return;
    }
    shared.event(
        "running",
        Some(job.id),
        format!("running `{}`", shared.args.exec),
        json!({}),
    );
    match execute(shared, &job, budget).await {
        Ok((text, files)) => {
            let submission = SubmitRequest {
                output: text,
                attachments: None,
            }
            .attach(files);
            match shared.client.submit(job.id, &submission).await {
                Ok(_) => {
                    shared.event("submitted", Some(job.id), "submitted".into(), json!({}));
                    let shared = shared.clone();
                    let id = job.id;
                    verdicts
                        .lock()
                        .await
                        .spawn(async move { report_verdict(&shared, id).await });
                }
                Err(e) => shared.event(
                    "error",
                    Some(job.id),
                    format!("submit failed: {e}"),
                    json!({ "error": e.to_string() }),
                ),
            }
        }
        Err(reason) => give_up(shared, &job, &reason).await,
    }
}

async fn give_up(shared: &Shared, job: &Job, reason: &str) {
    match shared.client.fail(job.id, Some(reason)).await {
        Ok(j) => shared.event(
            "gave_up",
            Some(job.id),
            format!("gave up ({reason}); the job is {}", j.status),
            json!({ "reason": reason, "status": j.status }),
        ),
        Err(e) => shared.event(
            "error",
            Some(job.id),
            format!("could not give up ({reason}): {e}"),
            json!({ "reason": reason, "error": e.to_string() }),
        ),
    }
}

/// Downloads the job's files into `dir` under their names.
async fn fetch_inputs(client: &Client, job: &Job, dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for f in job.attachment_files() {
        let path = dir.join(&f.filename);
        let fail = |e: String| format!("cannot download the job's file {:?}: {e}", f.filename);
        let mut dl = client
            .download(f.id)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        while let Some(chunk) = dl.chunk().await.map_err(|e| fail(e.to_string()))? {
            out.write_all(&chunk)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        out.flush().await.map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Uploads the regular files at the top of `dir`, in name order; their ids.
async fn upload_outputs(client: &Client, dir: &std::path::Path) -> Result<Vec<Uuid>, String> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut ids = Vec::with_capacity(paths.len());
    for p in paths {
        let info = client
            .upload_file(&p, None)
            .await
            .map_err(|e| format!("cannot upload the output file {}: {e}", p.display()))?;
        ids.push(info.id);
    }
    Ok(ids)
}

/// Runs CMD with the job; its stdout (if any) and the files it wrote to `CLAWRK_OUTPUT_DIR`,
/// uploaded — or why it gave neither.
async fn execute(
    shared: &Shared,
    job: &Job,
    budget: Duration,
) -> Result<(Option<String>, Vec<Uuid>), String> {
    let root = std::env::temp_dir().join(format!("clawrk-job-{}", job.id));
    let _ = std::fs::remove_dir_all(&root);
    let (dir, inputs) = (root.join("output"), root.join("input"));
    let _ = std::fs::create_dir_all(&dir);
    let done = execute_in(shared, job, budget, &dir, &inputs).await;
    let _ = std::fs::remove_dir_all(&root);
    done
}

async fn execute_in(
    shared: &Shared,
    job: &Job,
    budget: Duration,
    dir: &std::path::Path,
    inputs: &std::path::Path,
) -> Result<(Option<String>, Vec<Uuid>), String> {
    fetch_inputs(&shared.client, job, inputs).await?;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&shared.args.exec)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .env("CLAWRK_JOB_ID", job.id.to_string())
        .env("CLAWRK_OUTPUT_DIR", dir)
        .env("CLAWRK_INPUT_DIR", inputs);
    if let Some(d) = job.deadline_at {
        cmd.env("CLAWRK_DEADLINE", clawrk_client::api::times::format(d));
    }
    for (k, v) in job.env_vars.iter().flatten() {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the command: {e}"))?;
    let input = serde_json::to_vec(job).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let feed = async move {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read its stdin is fine.
            let _ = s.write_all(&input).await;
        }
        drop(stdin);
    };
    let read_out = async move {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let read_err = async move {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let run = async {
        let ((), out, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
        (out, err, status)
    };
    let abandon = async {
        loop {
            shared.changed.notified().await;
            if shared.abandoning.load(Ordering::SeqCst) {
                return;
            }
        }
    };
    let (out, err, status) = tokio::select! {
        r = run => r,
        _ = tokio::time::sleep(budget) => {
            return Err(format!(
                "the command ran into the deadline's margin ({} s) and was stopped",
                margin(&shared.args, job.time_limit_seconds).as_secs()
            ));
        }
        _ = abandon => return Err("the operator stopped the agent".into()),
    };
    let status = status.map_err(|e| format!("the command failed to run: {e}"))?;
    let tail = tail(&err);
    if !status.success() {
        let code = status
            .code()
            .map_or("a signal".to_string(), |c| format!("status {c}"));
        return Err(if tail.is_empty() {
            format!("the command exited with {code}")
        } else {
            format!("the command exited with {code}: {tail}")
        });
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let text = (!crate::out::is_blank(&text)).then_some(text);
    let files = upload_outputs(&shared.client, dir).await?;
    if text.is_none() && files.is_empty() {
        return Err("the command printed nothing and wrote no file to CLAWRK_OUTPUT_DIR".into());
    }
    Ok((text, files))
}

/// The last part of a command's stderr, on one line.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(STDERR_TAIL - 1)
        .map_or(0, |(i, _)| i);
    text[start..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Follows a submitted job to its verdict and says it.
async fn report_verdict(shared: &Shared, id: Uuid) {
    let mut log = Box::pin(shared.client.follow_logs(id));
    while let Some(ev) = log.next().await {
        match ev {
            Ok(LogEvent::Verdict(v)) => {
                shared.event(
                    "verdict",
                    Some(id),
                    format!(
                        "verdict: {} — {}",
                        if v.passed { "PASSED" } else { "FAILED" },
                        v.reasoning
                    ),
                    json!({ "passed": v.passed, "reasoning": v.reasoning }),
                );
                return;
            }
            Ok(LogEvent::End(e)) => {
                shared.event(
                    "ended",
                    Some(id),
                    format!("the job ended: {}", e.status),
                    json!({ "status": e.status }),
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.event(
                    "error",
                    Some(id),
                    format!("cannot follow the verdict: {e}"),
                    json!({ "error": e.to_string() }),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_and_tails() {
        let mut args = Args {
            exec: "true".into(),
            agent: None,
            concurrency: 1,
            max_jobs: None,
            min_price_cents: None,
            max_time_limit: None,
            deadline_margin: None,
            dry_run: false,
        };
        assert_eq!(margin(&args, 60), Duration::from_secs(6));
        assert_eq!(margin(&args, 30), Duration::from_secs(5));
        assert_eq!(margin(&args, 86_400), Duration::from_secs(60));
        args.deadline_margin = Some(58);
        assert_eq!(margin(&args, 60), Duration::from_secs(58));
        assert_eq!(tail(b"  line one\nline two  "), "line one line two");
        let long = "x".repeat(5000);
        assert_eq!(tail(long.as_bytes()).len(), STDERR_TAIL);
    }
}
