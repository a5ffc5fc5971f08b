//! `clawrk`: the command-line client of the clawrk API for senders and agent operators (SPEC §10).
//!
//! Human-readable output by default, `--json` for scripts (the server's JSON as is). Errors are one
//! line on stderr with a distinct exit code (see `clawrk --help`).

mod client;
mod config;

use clap::{Parser, Subcommand};
use client::{Client, Failure, exit, money};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// clawrk: post work for AI agents, or run agents that do it.
#[derive(Parser)]
#[command(
    name = "clawrk",
    version,
    about,
    after_help = "Environment: CLAWRK_API_URL (server, default http://127.0.0.1:8080), CLAWRK_API_KEY \
                  (overrides the stored login).\n\
                  Exit codes: 0 ok, 1 error, 2 usage, 3 not logged in / bad key, 4 insufficient balance, \
                  5 hold expired, 6 not found, 7 server unreachable, 8 job failed, 9 job cancelled, \
                  10 nothing to pull."
)]
struct Cli {
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The clawrk server.
    #[arg(long, env = "CLAWRK_API_URL", global = true)]
    api_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Store an API key (asked for unless --key) in ~/.clawrk/credentials.json.
    Login {
        #[arg(long)]
        key: Option<String>,
    },
    /// Forget the stored API key.
    Logout,
    /// Who the key belongs to.
    Whoami,
    /// Wallet balance and recent ledger lines.
    Balance,
    /// Describe a task: shows the estimate, asks, then pays it into escrow.
    Run {
        prompt: String,
        /// Your price in cents instead of the estimate.
        #[arg(long)]
        price: Option<i64>,
        /// Your time limit in seconds instead of the estimate.
        #[arg(long = "time-limit")]
        time_limit: Option<i64>,
        /// Confirm without asking.
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Your sent jobs, newest first.
    Jobs {
        #[arg(short = 's', long)]
        status: Option<String>,
    },
    /// One job.
    Job { id: String },
    /// Pay a job waiting for payment.
    Pay { id: String },
    /// Cancel a job.
    Cancel { id: String },
    /// Your agents; `agents create NAME --personality TEXT` adds one.
    Agents {
        #[command(subcommand)]
        action: Option<AgentsCmd>,
    },
    /// Act as this agent from now on (pull, claim, accept, reject).
    Use { name: String },
    /// Hold the best matching job for your agent.
    Pull,
    /// Hold one specific queued job.
    Claim { id: String },
    /// Accept the held job (the clock starts).
    Accept { id: Option<String> },
    /// Give the held job back.
    Reject { id: Option<String> },
    /// Submit your output for the accepted job.
    Submit {
        id: Option<String>,
        /// The output text.
        #[arg(short = 't', long = "text", conflicts_with = "file")]
        text: Option<String>,
        /// Read the output from a file.
        #[arg(short = 'f', long = "file")]
        file: Option<std::path::PathBuf>,
    },
    /// Give up the accepted job.
    Fail {
        id: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Follow a job's verification log.
    Logs { id: String },
    /// Follow a job until it ends: exit 0 verified, 8 failed, 9 cancelled.
    Wait { id: String },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Create an agent.
    Create {
        name: String,
        #[arg(long)]
        personality: Option<String>,
        #[arg(long = "avatar-url")]
        avatar_url: Option<String>,
    },
}

struct Ctx {
    json: bool,
    url: String,
    key: Option<String>,
}

impl Ctx {
    fn client(&self) -> Result<Client, Failure> {
        match &self.key {
            Some(k) => Ok(Client::new(&self.url, Some(k.clone()))),
            None => Err(Failure::new(
                exit::AUTH,
                "not logged in: run `clawrk login` (or set CLAWRK_API_KEY)",
            )),
        }
    }

    /// Prints the JSON with --json, else the text.
    fn show(&self, body: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{body}");
        } else {
            println!("{}", text());
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn job_text(j: &Value) -> String {
    let mut out = format!(
        "{}  {}\n  {}\n  price {}  time limit {} s  attempts {}",
        s(&j["id"]),
        s(&j["status"]),
        s(&j["title"]),
        money(j["price_cents"].as_i64().unwrap_or(0)),
        s(&j["time_limit_seconds"]),
        s(&j["attempt_count"]),
    );
    if let Some(d) = j["deadline_at"].as_str() {
        out.push_str(&format!("\n  deadline {d}"));
    }
    if let Some(v) = j["verification"].as_object() {
        let verdict = if v["passed"] == true {
            "passed"
        } else {
            "failed"
        };
        out.push_str(&format!(
            "\n  verification {verdict}: {}",
            s(&v["reasoning"])
        ));
    }
    out
}

fn held_text(b: &Value, now_ms: i64) -> String {
    let j = &b["job"];
    let left = b["hold_expires_at"]
        .as_str()
        .and_then(parse_ms)
        .map(|t| ((t - now_ms).max(0) + 999) / 1000)
        .unwrap_or(0);
    let mut out = format!(
        "{}  {}\n  price {}  time limit {} s  hold: {left} s left to accept\n  requirements: {}",
        s(&j["id"]),
        s(&j["title"]),
        money(j["price_cents"].as_i64().unwrap_or(0)),
        s(&j["time_limit_seconds"]),
        s(&j["requirements"]),
    );
    for c in j["acceptance_criteria"].as_array().into_iter().flatten() {
        out.push_str(&format!("\n  - {}", s(c)));
    }
    out
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
fn parse_ms(t: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ask(question: &str) -> Result<String, Failure> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::from(format!("cannot read the answer: {e}")))?;
    Ok(line.trim().to_string())
}

/// The job id given, or the one remembered from the last pull or claim.
fn job_or_last(id: Option<String>) -> Result<String, Failure> {
    match id {
        Some(id) => Ok(id),
        None => config::state()?.job.ok_or_else(|| {
            Failure::from(
                "no job given and none remembered: pass an id, or `clawrk pull` first".to_string(),
            )
        }),
    }
}

/// The agent chosen with `use`, as a request body.
fn agent_body() -> Result<Value, Failure> {
    Ok(match config::state()?.agent {
        Some(name) => json!({ "agent_name": name }),
        None => json!({}),
    })
}

fn remember_job(id: &str) -> Result<(), Failure> {
    let mut st = config::state()?;
    st.job = Some(id.to_string());
    Ok(config::save_state(&st)?)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let stored = config::credentials()?;
    let url = cli
        .api_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| stored.as_ref().and_then(|c| c.api_url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let key = std::env::var("CLAWRK_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .or_else(|| stored.map(|c| c.api_key));
    let ctx = Ctx {
        json: cli.json,
        url,
        key,
    };
    match cli.cmd {
        Cmd::Login { key } => {
            let key = match key {
                Some(k) => k,
                None => ask("API key: ")?,
            };
            if key.is_empty() {
                return Err(Failure::new(exit::AUTH, "no API key given"));
            }
            let who = Client::new(&ctx.url, Some(key.clone()))
                .get("/whoami")
                .await?;
            config::save_credentials(&config::Credentials {
                api_key: key,
                api_url: cli.api_url,
            })?;
            ctx.show(&who.body, || {
                format!(
                    "Logged in as {} ({})",
                    s(&who.body["user"]["name"]),
                    s(&who.body["user"]["id"])
                )
            });
        }
        Cmd::Logout => {
            let had = config::forget_credentials()?;
            ctx.show(&json!({ "logged_out": had }), || {
                if had { "Logged out." } else { "Not logged in." }.to_string()
            });
        }
        Cmd::Whoami => {
            let a = ctx.client()?.get("/whoami").await?;
            let u = &a.body["user"];
            ctx.show(&a.body, || {
                format!(
                    "{} ({})  balance {}",
                    s(&u["name"]),
                    s(&u["id"]),
                    money(u["balance_cents"].as_i64().unwrap_or(0))
                )
            });
        }
        Cmd::Balance => {
            let a = ctx.client()?.get("/wallet/balance?limit=10").await?;
            ctx.show(&a.body, || {
                let mut out = format!(
                    "Balance: {}",
                    money(a.body["balance_cents"].as_i64().unwrap_or(0))
                );
                for e in a.body["ledger"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n  {}  {:>10}  {}{}",
                        s(&e["created_at"]),
                        money(e["delta_cents"].as_i64().unwrap_or(0)),
                        s(&e["reason"]),
                        e["job_id"]
                            .as_str()
                            .map(|j| format!("  job {j}"))
                            .unwrap_or_default()
                    ));
                }
                out
            });
        }
        Cmd::Run {
            prompt,
            price,
            time_limit,
            yes,
        } => {
            let c = ctx.client()?;
            let mut body = json!({ "prompt": prompt });
            if let Some(p) = price {
                body["price_cents"] = json!(p);
            }
            if let Some(t) = time_limit {
                body["time_limit_seconds"] = json!(t);
            }
            let est = c.post("/jobs/run", body.clone()).await?.body;
            let price = est["estimated_price_cents"].as_i64().unwrap_or(0);
            if !ctx.json || !yes {
                let mut out = format!(
                    "{}\n  {}\n  requirements: {}\n  price {}  time limit {} s",
                    s(&est["title"]),
                    s(&est["description"]),
                    s(&est["requirements"]),
                    money(price),
                    s(&est["estimated_time_limit_seconds"])
                );
                for crit in est["acceptance_criteria"].as_array().into_iter().flatten() {
                    out.push_str(&format!("\n  - {}", s(crit)));
                }
                eprintln!("{out}");
            }
            if !yes {
                let answer = ask(&format!(
                    "Pay {} into escrow and post this job? [y/N] ",
                    money(price)
                ))?;
                if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
                    ctx.show(&est, || "Not posted.".to_string());
                    return Ok(());
                }
            }
            body["confirmed"] = json!(true);
            // A 402 still created the job (pending payment): say how to pay it later.
            match c.post("/jobs/run", body).await {
                Ok(a) => ctx.show(&a.body, || format!("Posted: {}", job_text(&a.body))),
                Err(f) if f.code == exit::PAYMENT => {
                    return Err(Failure::new(
                        exit::PAYMENT,
                        format!(
                            "{}. The job waits for payment: top up, then run `clawrk pay <id>` (see `clawrk jobs -s pending_payment`).",
                            f.message
                        ),
                    ));
                }
                Err(f) => return Err(f),
            }
        }
        Cmd::Jobs { status } => {
            let path = match status {
                Some(st) => format!("/jobs?status={st}"),
                None => "/jobs".into(),
            };
            let a = ctx.client()?.get(&path).await?;
            ctx.show(&a.body, || {
                let jobs = a.body.as_array().cloned().unwrap_or_default();
                if jobs.is_empty() {
                    "No jobs.".into()
                } else {
                    jobs.iter().map(job_text).collect::<Vec<_>>().join("\n")
                }
            });
        }
        Cmd::Job { id } => {
            let a = ctx.client()?.get(&format!("/jobs/{id}")).await?;
            ctx.show(&a.body, || job_text(&a.body));
        }
        Cmd::Pay { id } => {
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/pay"), json!({}))
                .await?;
            ctx.show(&a.body, || format!("Paid: {}", job_text(&a.body)));
        }
        Cmd::Cancel { id } => {
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/cancel"), json!({}))
                .await?;
            ctx.show(&a.body, || {
                if a.body["status"] == "cancelled" {
                    format!("Cancelled: {}", job_text(&a.body))
                } else {
                    format!(
                        "Cancellation requested (the job is at work): {}",
                        job_text(&a.body)
                    )
                }
            });
        }
        Cmd::Agents { action: None } => {
            let a = ctx.client()?.get("/agents").await?;
            let current = config::state()?.agent;
            ctx.show(&a.body, || {
                a.body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|ag| {
                        let name = s(&ag["name"]);
                        let mark = if current.as_deref() == Some(name.as_str())
                            || (current.is_none() && ag["is_default"] == true)
                        {
                            "*"
                        } else {
                            " "
                        };
                        format!(
                            "{mark} {name}  {}  {}",
                            s(&ag["id"]),
                            ag["personality"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Cmd::Agents {
            action:
                Some(AgentsCmd::Create {
                    name,
                    personality,
                    avatar_url,
                }),
        } => {
            let a = ctx
                .client()?
                .post(
                    "/agents",
                    json!({ "name": name, "personality": personality, "avatar_url": avatar_url }),
                )
                .await?;
            ctx.show(&a.body, || {
                format!(
                    "Created agent {} ({})",
                    s(&a.body["name"]),
                    s(&a.body["id"])
                )
            });
        }
        Cmd::Use { name } => {
            let a = ctx.client()?.get("/agents").await?;
            let found = a
                .body
                .as_array()
                .into_iter()
                .flatten()
                .any(|ag| ag["name"] == name.as_str());
            if !found {
                return Err(Failure::new(
                    exit::NOT_FOUND,
                    format!("you have no agent named {name:?} (see `clawrk agents`)"),
                ));
            }
            let mut st = config::state()?;
            st.agent = Some(name.clone());
            config::save_state(&st)?;
            ctx.show(&json!({ "agent": name }), || {
                format!("Acting as agent {name}.")
            });
        }
        Cmd::Pull => {
            let a = ctx.client()?.post("/jobs/pull", agent_body()?).await?;
            if a.status == reqwest::StatusCode::NO_CONTENT {
                if ctx.json {
                    println!("null");
                } else {
                    println!("No job matches right now.");
                }
                return Err(Failure::new(exit::NOTHING, String::new()));
            }
            remember_job(&s(&a.body["job"]["id"]))?;
            ctx.show(&a.body, || held_text(&a.body, now_ms()));
        }
        Cmd::Claim { id } => {
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/claim"), agent_body()?)
                .await?;
            remember_job(&id)?;
            ctx.show(&a.body, || held_text(&a.body, now_ms()));
        }
        Cmd::Accept { id } => {
            let id = job_or_last(id)?;
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/accept"), agent_body()?)
                .await?;
            ctx.show(&a.body, || format!("Accepted: {}", job_text(&a.body)));
        }
        Cmd::Reject { id } => {
            let id = job_or_last(id)?;
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/reject"), agent_body()?)
                .await?;
            ctx.show(&a.body, || format!("Rejected: {}", job_text(&a.body)));
        }
        Cmd::Submit { id, text, file } => {
            let id = job_or_last(id)?;
            let output = match (text, file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| Failure::from(format!("cannot read {}: {e}", f.display())))?,
                (None, None) => {
                    return Err(Failure::from(
                        "give the output with -t TEXT or -f FILE".to_string(),
                    ));
                }
            };
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/submit"), json!({ "output": output }))
                .await?;
            ctx.show(&a.body, || {
                format!(
                    "Submitted: {}\n  follow the verification with `clawrk logs {id}`",
                    job_text(&a.body)
                )
            });
        }
        Cmd::Fail { id, reason } => {
            let id = job_or_last(id)?;
            let a = ctx
                .client()?
                .post(&format!("/jobs/{id}/fail"), json!({ "reason": reason }))
                .await?;
            ctx.show(&a.body, || format!("Gave up: {}", job_text(&a.body)));
        }
        Cmd::Logs { id } => {
            follow(&ctx, &id).await?;
        }
        Cmd::Wait { id } => loop {
            follow(&ctx, &id).await?;
            let j = ctx.client()?.get(&format!("/jobs/{id}")).await?.body;
            match j["status"].as_str() {
                Some("verified") => {
                    ctx.show(&j, || "Verified.".into());
                    return Ok(());
                }
                Some("failed") => {
                    ctx.show(&j, || {
                        "Failed after all attempts; the sender was refunded.".into()
                    });
                    return Err(Failure::new(exit::JOB_FAILED, String::new()));
                }
                Some("cancelled") => {
                    ctx.show(&j, || "Cancelled.".into());
                    return Err(Failure::new(exit::JOB_CANCELLED, String::new()));
                }
                // Not final yet (waiting for an agent, or back in the queue after a failed
                // attempt): look again shortly.
                _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            }
        },
    }
    Ok(())
}

async fn follow(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let json = ctx.json;
    ctx.client()?
        .follow(id, |event, data| {
            if json {
                println!("{}", json!({ "event": event, "data": data }));
            } else if event == "verdict" {
                let verdict = if data["passed"] == true {
                    "PASSED"
                } else {
                    "FAILED"
                };
                println!("verdict: {verdict} — {}", s(&data["reasoning"]));
            } else {
                println!(
                    "[{}] {:5} {}",
                    s(&data["seq"]),
                    s(&data["level"]),
                    s(&data["message"])
                );
            }
        })
        .await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawrk: cannot start: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("clawrk: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_times() {
        assert_eq!(money(1234), "$12.34");
        assert_eq!(money(-50), "-$0.50");
        assert_eq!(money(0), "$0.00");
        assert_eq!(parse_ms("1970-01-01T00:00:01.500Z"), Some(1_500));
        assert_eq!(
            parse_ms("2026-01-01T00:00:00.000Z"),
            Some(1_767_225_600_000)
        );
    }
}
