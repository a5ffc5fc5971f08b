//! `clawrk`: the command-line client of the clawrk API for senders and agent operators (SPEC §10),
//! built on `clawrk-client` (typed answers, retries of 429/503, idempotency keys, paging,
//! reconnecting log streams).
//!
//! Text for people by default, `--json` for scripts (the API's JSON, one value per line). Money is
//! in dollars both ways. Errors are one line on stderr with a distinct exit code (`clawrk --help`).

mod agent_run;
mod config;
mod fail;
mod out;

use clap::{CommandFactory, Parser, Subcommand};
use clawrk_client::api::*;
use clawrk_client::{Client, JobsQuery, LogEvent, Page, PageRequest, RunOutcome};
use fail::{Failure, exit};
use futures::{StreamExt, TryStreamExt};
use out::{Out, money};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// clawrk: post work for AI agents, or run agents that do it.
#[derive(Parser)]
#[command(
    name = "clawrk",
    version,
    about,
    after_help = concat!(
        "Environment: CLAWRK_API_URL (server root, default http://127.0.0.1:8080), CLAWRK_API_KEY \
         (overrides the stored login), NO_COLOR.\nMoney is in dollars: 5, 5.50 or $5.50.\n",
        "Exit codes: 0 ok, 1 error, 2 usage, 3 not logged in / bad key, 4 insufficient balance, \
         5 hold expired, 6 not found, 7 server unreachable, 8 job failed, 9 job cancelled, \
         10 nothing to pull, 11 deadline passed, 12 confirmation needed (no terminal: pass --yes), \
         13 not possible in the job's status."
    )
)]
struct Cli {
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The clawrk server's root URL.
    #[arg(long, env = "CLAWRK_API_URL", global = true)]
    api_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Paging of a list.
#[derive(clap::Args, Clone, Copy)]
struct Paging {
    /// At most this many (1 to 200; default 50).
    #[arg(long)]
    limit: Option<u32>,
    /// Every page.
    #[arg(long, conflicts_with = "limit")]
    all: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Store an API key (asked for, without echo, unless --key) in ~/.clawrk/credentials.json.
    Login {
        #[arg(long)]
        key: Option<String>,
    },
    /// Forget the stored API key.
    Logout,
    /// Who the key belongs to.
    Whoami,
    /// Wallet balance and ledger, newest first.
    Balance {
        #[command(flatten)]
        paging: Paging,
    },
    /// Add money to the wallet (where the server takes payments).
    Topup {
        /// Dollars.
        amount: String,
    },
    /// Take money out of the wallet (where the server pays out).
    Withdraw {
        /// Dollars.
        amount: String,
    },
    /// Describe a task (`-` reads it from stdin): shows the estimate, asks, then pays it into escrow.
    Run {
        prompt: String,
        /// Your price in dollars instead of the estimate.
        #[arg(long)]
        price: Option<String>,
        /// Your time limit in seconds instead of the estimate.
        #[arg(long = "time-limit")]
        time_limit: Option<i64>,
        /// A secret for the worker, NAME=VALUE (repeatable); shown only to the agent that accepts.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Files for the worker: uploaded, then attached to the job (repeatable).
        #[arg(long = "attach", value_name = "FILE", num_args = 1.., action = clap::ArgAction::Append)]
        attach: Vec<PathBuf>,
        /// Confirm without asking (required without a terminal).
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Your jobs, newest first: those you sent, or with --work those your agents took.
    Jobs {
        #[arg(short = 's', long)]
        status: Option<String>,
        /// The jobs your agents hold, work on, submitted or finished.
        #[arg(long)]
        work: bool,
        /// With --work: only this agent's (name).
        #[arg(long, requires = "work")]
        agent: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One job: its terms, status, output and verdict.
    Job { id: String },
    /// Pay a job waiting for payment.
    Pay { id: String },
    /// Cancel a job.
    Cancel { id: String },
    /// Decide a submission the verifier could not judge: approve pays the agent, reject re-queues
    /// the job (or refunds you after its last attempt).
    #[command(group(clap::ArgGroup::new("decision").required(true).args(["approve", "reject"])))]
    Review {
        id: String,
        /// Accept the output and pay the agent.
        #[arg(long)]
        approve: bool,
        /// Refuse the output: the attempt fails.
        #[arg(long)]
        reject: bool,
    },
    /// Queued jobs anyone's agents can take.
    Board {
        #[command(flatten)]
        paging: Paging,
    },
    /// Your agents; subcommands create, show, update and delete them.
    Agents {
        #[command(subcommand)]
        action: Option<AgentsCmd>,
    },
    /// Act as this agent from now on (pull, claim, accept, reject), for the current key.
    Use { name: String },
    /// Hold the best matching job for your agent.
    Pull {
        /// Which agent (default: the one in `use`, else your default agent).
        #[arg(long)]
        agent: Option<String>,
        /// Wait up to this many seconds for a job (0 to 30).
        #[arg(long, default_value_t = 0)]
        wait: u32,
    },
    /// Hold one specific queued job.
    Claim {
        id: String,
        #[arg(long)]
        agent: Option<String>,
    },
    /// Accept the held job (the clock starts).
    Accept {
        id: Option<String>,
        #[arg(long)]
        agent: Option<String>,
    },
    /// Give the held job back.
    Reject {
        id: Option<String>,
        #[arg(long)]
        agent: Option<String>,
    },
    /// Submit your output for the accepted job.
    Submit {
        id: Option<String>,
        /// The output text.
        #[arg(short = 't', long = "text", conflicts_with = "file")]
        text: Option<String>,
        /// Read the output from a file (`-`: stdin).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Files of the output: uploaded, then attached to the submission (repeatable).
        #[arg(long = "attach", value_name = "FILE", num_args = 1.., action = clap::ArgAction::Append)]
        attach: Vec<PathBuf>,
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
    /// Judge an output against requirements (nothing is stored or paid).
    Verify {
        /// What the output must satisfy.
        #[arg(long)]
        requirements: String,
        /// A checkable statement (repeatable).
        #[arg(long = "criterion")]
        criteria: Vec<String>,
        /// The output text.
        #[arg(short = 't', long = "text", conflicts_with = "file")]
        text: Option<String>,
        /// Read the output from a file (`-`: stdin).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
    },
    /// Files: upload one, read one's details, or download one (yours, or a job's you may see).
    Files {
        #[command(subcommand)]
        action: FilesCmd,
    },
    /// Your webhook endpoints: signed events about your jobs and your agents' work, posted to a
    /// URL (see docs/WEBHOOKS.md).
    Webhooks {
        #[command(subcommand)]
        action: Option<WebhooksCmd>,
    },
    /// Run an agent: pull, accept, run a command on each job, submit its output.
    Agent {
        #[command(subcommand)]
        action: AgentCmd,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// List your agents (the default).
    List,
    /// Create an agent.
    Create {
        name: String,
        #[arg(long)]
        personality: Option<String>,
        #[arg(long = "avatar-url")]
        avatar_url: Option<String>,
    },
    /// One agent.
    Show { agent: String },
    /// Change an agent.
    Update {
        agent: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, conflicts_with = "clear_personality")]
        personality: Option<String>,
        #[arg(long)]
        clear_personality: bool,
        #[arg(long = "avatar-url", conflicts_with = "clear_avatar_url")]
        avatar_url: Option<String>,
        #[arg(long)]
        clear_avatar_url: bool,
    },
    /// Delete an agent (not the default one, not one at work).
    Delete { agent: String },
    /// The public directory of agents.
    Directory {
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(Subcommand)]
enum FilesCmd {
    /// Upload files; prints each one's id (use it in `attachments`).
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The media type (default: guessed from each file's extension).
        #[arg(long = "type")]
        content_type: Option<String>,
    },
    /// A file's name, type, size and SHA-256.
    Info { id: String },
    /// Download a file: to its own name in the current directory (never over an existing file),
    /// to PATH with -o, or to stdout with `-o -`.
    Get {
        id: String,
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WebhooksCmd {
    /// List your endpoints (the default).
    List,
    /// Register an endpoint; prints its signing secret, shown only this once.
    Add {
        /// Where events are posted (http:// or https://).
        url: String,
        /// Event types, comma-separated (job.queued, job.held, job.accepted, job.submitted,
        /// job.verified, job.requeued, job.failed, job.cancelled, payout.completed), or `*`.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change an endpoint.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Make a new signing secret (printed once; the old one stops at once).
        #[arg(long)]
        rotate_secret: bool,
    },
    /// Delete an endpoint.
    Rm { id: String },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Send a delivery again now (the event keeps its id).
    Redeliver { id: String, delivery: String },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Work jobs with a command: it gets the job as JSON on stdin and CLAWRK_JOB_ID,
    /// CLAWRK_DEADLINE, CLAWRK_OUTPUT_DIR and the job's env vars in its environment; its stdout is
    /// submitted; a non-zero exit gives the job up with its stderr's tail as the reason.
    Run(agent_run::Args),
}

/// What every command shares: where, as whom, how to print.
pub struct Ctx {
    pub out: Out,
    pub url: String,
    key: Option<String>,
}

impl Ctx {
    /// A client with the stored or given key.
    pub fn client(&self) -> Result<Client, Failure> {
        let key = self.key()?;
        Client::new(&self.url, key).map_err(|e| fail::explain(e, &self.url))
    }

    fn key(&self) -> Result<&str, Failure> {
        self.key.as_deref().ok_or_else(|| {
            Failure::new(
                exit::AUTH,
                "not logged in: run `clawrk login` (or set CLAWRK_API_KEY)",
            )
        })
    }

    fn anonymous(&self) -> Result<Client, Failure> {
        Client::anonymous(&self.url).map_err(|e| fail::explain(e, &self.url))
    }

    /// A client error, explained.
    pub fn explain(&self, e: clawrk_client::Error) -> Failure {
        fail::explain(e, &self.url)
    }

    fn state(&self) -> Result<config::State, Failure> {
        Ok(config::state(self.key()?)?)
    }

    fn save_state(&self, s: &config::State) -> Result<(), Failure> {
        Ok(config::save_state(self.key()?, s)?)
    }

    /// The agent named on the command line, else the one in `use`, else the default.
    fn agent(&self, named: Option<String>) -> Result<AgentChoice, Failure> {
        Ok(match named.or(self.state()?.agent) {
            Some(name) => AgentChoice::name(name),
            None => AgentChoice::default(),
        })
    }

    fn remember_job(&self, id: Uuid) -> Result<(), Failure> {
        let mut st = self.state()?;
        st.job = Some(id.to_string());
        self.save_state(&st)
    }

    /// The job given, or the one remembered from the last pull or claim.
    fn job_or_last(&self, id: Option<String>) -> Result<Uuid, Failure> {
        match id {
            Some(id) => job_id(&id),
            None => match self.state()?.job {
                Some(id) => job_id(&id),
                None => Err(Failure::usage(
                    "no job given and none remembered: pass an id, or `clawrk pull` first",
                )),
            },
        }
    }
}

/// A job id from the command line.
fn job_id(text: &str) -> Result<Uuid, Failure> {
    uuid_arg(text, "job id")
}

/// A UUID argument, or a usage error naming what it should have been.
fn uuid_arg(text: &str, what: &str) -> Result<Uuid, Failure> {
    text.trim()
        .parse()
        .map_err(|_| Failure::usage(format!("{text:?} is not a {what} (a UUID)")))
}

/// The server URL, checked: a scheme, no `/api` suffix.
fn server_url(raw: &str) -> Result<String, Failure> {
    let url = raw.trim().trim_end_matches('/');
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(Failure::usage(format!(
            "CLAWRK_API_URL {raw:?} needs a scheme: http://{url}"
        )));
    }
    Ok(url.strip_suffix("/api").unwrap_or(url).to_string())
}

/// Reads a file, or stdin for `-`.
fn read_input(path: &std::path::Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::from(format!("cannot read stdin: {e}")))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::from(format!("cannot read {}: {e}", path.display())))
    }
}

/// Asks a yes/no question on the terminal.
fn confirm(question: &str) -> Result<bool, Failure> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::from(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// A page request from the flags.
fn page_of(p: &Paging) -> PageRequest {
    PageRequest {
        limit: p.limit,
        before: None,
    }
}

/// The items of a list: one page, or every page with `--all`.
async fn list<T, F, Fut, S>(p: &Paging, one: F, all: S) -> Result<Vec<T>, clawrk_client::Error>
where
    F: FnOnce(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, clawrk_client::Error>>,
    S: futures::Stream<Item = Result<T, clawrk_client::Error>>,
{
    if p.all {
        all.try_collect().await
    } else {
        Ok(one(page_of(p)).await?.items)
    }
}

fn status_arg(s: &str) -> Result<JobStatus, Failure> {
    JobStatus::parse(s).ok_or_else(|| {
        Failure::usage(format!(
            "{s:?} is not a status: {}",
            JobStatus::ALL.map(|s| s.as_str()).join(", ")
        ))
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let stored = config::credentials()?;
    let raw_url = cli
        .api_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| stored.as_ref().and_then(|c| c.api_url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let url = server_url(&raw_url)?;
    let key = std::env::var("CLAWRK_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .or_else(|| stored.map(|c| c.api_key));
    let ctx = Ctx {
        out: Out::new(cli.json),
        url,
        key,
    };
    let out = ctx.out;
    match cli.cmd {
        Cmd::Login { key } => {
            let key = match key {
                Some(k) => k,
                None if std::io::stdin().is_terminal() => {
                    rpassword::prompt_password("API key: ")
                        .map_err(|e| Failure::from(format!("cannot read the key: {e}")))?
                }
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| Failure::from(format!("cannot read the key: {e}")))?;
                    line
                }
            };
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(Failure::new(exit::AUTH, "no API key given"));
            }
            let who = Client::new(&ctx.url, &key)
                .map_err(|e| ctx.explain(e))?
                .whoami()
                .await
                .map_err(|e| ctx.explain(e))?;
            config::save_credentials(&config::Credentials {
                api_key: key,
                api_url: cli.api_url.map(|_| ctx.url.clone()),
            })?;
            out.show(&who, || {
                format!("Logged in as {} ({})", who.user.name, who.user.id)
            });
        }
        Cmd::Logout => {
            let had = config::forget_credentials()?;
            out.show(&serde_json::json!({ "logged_out": had }), || {
                if had { "Logged out." } else { "Not logged in." }.to_string()
            });
        }
        Cmd::Whoami => {
            let w = ctx.client()?.whoami().await.map_err(|e| ctx.explain(e))?;
            out.show(&w, || {
                format!(
                    "{} ({})  balance {}",
                    w.user.name,
                    w.user.id,
                    money(w.user.balance_cents)
                )
            });
        }
        Cmd::Balance { paging } => {
            let c = ctx.client()?;
            let first = c
                .wallet(&page_of(&paging))
                .await
                .map_err(|e| ctx.explain(e))?;
            let mut ledger = first.ledger.items.clone();
            let mut next = first.ledger.next.clone();
            while paging.all
                && let Some(n) = next.take()
            {
                let page = c.wallet_next(&n).await.map_err(|e| ctx.explain(e))?;
                ledger.extend(page.ledger.items);
                next = page.ledger.next;
            }
            let wallet = Wallet {
                balance_cents: first.balance_cents,
                ledger,
            };
            out.show(&wallet, || {
                let mut text = format!("Balance: {}", money(wallet.balance_cents));
                for e in &wallet.ledger {
                    text.push('\n');
                    text.push_str(&out::ledger_line(e));
                }
                if !paging.all && first.ledger.next.is_some() {
                    text.push_str("\n  (more: --all, or --limit N)");
                }
                text
            });
        }
        Cmd::Topup { amount } => {
            let cents = out::parse_dollars(&amount).map_err(Failure::usage)?;
            let b = ctx
                .client()?
                .topup(cents)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&b, || format!("Balance: {}", money(b.balance_cents)));
        }
        Cmd::Withdraw { amount } => {
            let cents = out::parse_dollars(&amount).map_err(Failure::usage)?;
            let b = ctx
                .client()?
                .withdraw(cents)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&b, || format!("Balance: {}", money(b.balance_cents)));
        }
        Cmd::Run {
            prompt,
            price,
            time_limit,
            env,
            attach,
            yes,
        } => post_job(&ctx, prompt, price, time_limit, env, attach, yes).await?,
        Cmd::Jobs {
            status,
            work,
            agent,
            paging,
        } => {
            let c = ctx.client()?;
            let agent_id = match agent {
                Some(name) => Some(find_agent(&ctx, &c, &name).await?.id),
                None => None,
            };
            let query = JobsQuery {
                role: if work {
                    JobRole::Agent
                } else {
                    JobRole::Sender
                },
                agent_id,
                status: status.as_deref().map(status_arg).transpose()?,
                page: page_of(&paging),
            };
            let page = c.jobs(&query).await.map_err(|e| ctx.explain(e))?;
            let more = page.next.is_some() && !paging.all;
            let jobs = if paging.all {
                c.jobs_stream(&query)
                    .try_collect()
                    .await
                    .map_err(|e| ctx.explain(e))?
            } else {
                page.items
            };
            if out.json {
                out.json(&jobs);
            } else if jobs.is_empty() {
                out.line("No jobs.");
            } else {
                for j in &jobs {
                    out.line(out::job_line(j));
                }
                if more {
                    out.line("(more: --all, or --limit N)");
                }
            }
        }
        Cmd::Job { id } => {
            let j = ctx
                .client()?
                .job(job_id(&id)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || out::job_text(&j));
        }
        Cmd::Pay { id } => {
            let j = ctx
                .client()?
                .pay(job_id(&id)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || format!("Paid: {}", out::job_line(&j)));
        }
        Cmd::Cancel { id } => {
            let j = ctx
                .client()?
                .cancel(job_id(&id)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || match j.status {
                JobStatus::Cancelled => format!("Cancelled: {}", out::job_line(&j)),
                _ => format!(
                    "Cancellation requested: the job ends when the running attempt does.\n{}",
                    out::job_line(&j)
                ),
            });
        }
        Cmd::Review {
            id,
            approve,
            reject: _,
        } => {
            let decision = if approve {
                ReviewDecision::Approve
            } else {
                ReviewDecision::Reject
            };
            let j = ctx
                .client()?
                .review(job_id(&id)?, decision)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || match j.status {
                JobStatus::Verified => {
                    format!("Approved: the agent is paid.\n{}", out::job_line(&j))
                }
                JobStatus::Failed => {
                    format!(
                        "Rejected: that was the last attempt; you were refunded.\n{}",
                        out::job_line(&j)
                    )
                }
                _ => format!(
                    "Rejected: the job is queued for another attempt.\n{}",
                    out::job_line(&j)
                ),
            });
        }
        Cmd::Board { paging } => {
            let c = ctx.anonymous()?;
            let all = c.board_stream();
            let jobs = list(&paging, |p| async move { c.board(&p).await }, all)
                .await
                .map_err(|e| ctx.explain(e))?;
            if out.json {
                out.json(&jobs);
            } else if jobs.is_empty() {
                out.line("The board is empty.");
            } else {
                for j in &jobs {
                    out.line(out::board_line(j));
                }
            }
        }
        Cmd::Agents { action } => agents(&ctx, action.unwrap_or(AgentsCmd::List)).await?,
        Cmd::Webhooks { action } => webhooks(&ctx, action.unwrap_or(WebhooksCmd::List)).await?,
        Cmd::Files { action } => files(&ctx, action).await?,
        Cmd::Use { name } => {
            let c = ctx.client()?;
            let agent = find_agent(&ctx, &c, &name).await?;
            let mut st = ctx.state()?;
            st.agent = Some(agent.name.clone());
            ctx.save_state(&st)?;
            out.show(&agent, || format!("Acting as agent {}.", agent.name));
        }
        Cmd::Pull { agent, wait } => {
            let c = ctx.client()?;
            let choice = ctx.agent(agent)?;
            let spinner = (wait > 0).then(|| out.spinner("waiting for a job…"));
            let held = c
                .pull(&PullRequest::new(choice, wait))
                .await
                .map_err(|e| ctx.explain(e))?;
            drop(spinner);
            match held {
                Some(h) => {
                    ctx.remember_job(h.job.id)?;
                    out.show(&h, || out::held_text(&h));
                }
                None => {
                    if out.json {
                        out.line("null");
                    } else {
                        out.line(
                            "No job matches right now (`pull` never offers a job this agent held \
                             before; see `clawrk board` and `clawrk claim <id>`).",
                        );
                    }
                    return Err(Failure::quiet(exit::NOTHING));
                }
            }
        }
        Cmd::Claim { id, agent } => {
            let id = job_id(&id)?;
            let h = ctx
                .client()?
                .claim(id, &ctx.agent(agent)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            ctx.remember_job(id)?;
            out.show(&h, || out::held_text(&h));
        }
        Cmd::Accept { id, agent } => {
            let id = ctx.job_or_last(id)?;
            let j = ctx
                .client()?
                .accept(id, &ctx.agent(agent)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || {
                format!(
                    "Accepted: {}\n  submit with `clawrk submit -f FILE` before {}",
                    out::job_line(&j),
                    j.deadline_at.map(out::when).unwrap_or_default()
                )
            });
        }
        Cmd::Reject { id, agent } => {
            let id = ctx.job_or_last(id)?;
            let j = ctx
                .client()?
                .reject(id, &ctx.agent(agent)?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || format!("Rejected: {}", out::job_line(&j)));
        }
        Cmd::Submit {
            id,
            text,
            file,
            attach,
        } => {
            let output = match (text, file) {
                (Some(t), _) => Some(t),
                (None, Some(f)) => Some(read_input(&f)?),
                (None, None) if !attach.is_empty() => None,
                (None, None) => {
                    return Err(Failure::usage(
                        "give the output with -t TEXT, -f FILE (-f - reads stdin) or --attach FILE",
                    ));
                }
            };
            let id = ctx.job_or_last(id)?;
            let c = ctx.client()?;
            let files = upload_all(&ctx, &c, &attach, None).await?;
            let submission = SubmitRequest {
                output,
                attachments: None,
            }
            .attach(files.iter().map(|f| f.id));
            let j = c
                .submit(id, &submission)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || {
                format!(
                    "Submitted: {}\n  follow the verification with `clawrk logs {id}`",
                    out::job_line(&j)
                )
            });
        }
        Cmd::Fail { id, reason } => {
            let id = ctx.job_or_last(id)?;
            let j = ctx
                .client()?
                .fail(id, reason.as_deref())
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&j, || format!("Gave up: {}", out::job_line(&j)));
        }
        Cmd::Logs { id } => {
            let id = job_id(&id)?;
            let c = ctx.client()?;
            follow(&ctx, &c, id, None).await?;
        }
        Cmd::Wait { id } => wait(&ctx, job_id(&id)?).await?,
        Cmd::Verify {
            requirements,
            criteria,
            text,
            file,
        } => {
            let output = match (text, file) {
                (Some(t), _) => t,
                (None, Some(f)) => read_input(&f)?,
                (None, None) => {
                    return Err(Failure::usage("give the output with -t TEXT or -f FILE"));
                }
            };
            let c = ctx.client()?;
            let spinner = out.spinner("verifying…");
            let v = c
                .verify(&VerifyRequest {
                    requirements,
                    acceptance_criteria: (!criteria.is_empty()).then_some(criteria),
                    output,
                })
                .await
                .map_err(|e| ctx.explain(e))?;
            drop(spinner);
            out.show(&v, || out::verdict_text(&v));
        }
        Cmd::Agent {
            action: AgentCmd::Run(args),
        } => agent_run::run(&ctx, args).await?,
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "clawrk", &mut std::io::stdout());
        }
    }
    Ok(())
}

/// `run`: the estimate, a confirmation, the job.
async fn post_job(
    ctx: &Ctx,
    prompt: String,
    price: Option<String>,
    time_limit: Option<i64>,
    env: Vec<String>,
    attach: Vec<PathBuf>,
    yes: bool,
) -> Result<(), Failure> {
    let out = ctx.out;
    let prompt = if prompt == "-" {
        read_input(std::path::Path::new("-"))?
    } else {
        prompt
    };
    let mut env_vars = BTreeMap::new();
    for pair in env {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(Failure::usage(format!("--env {pair:?} is not NAME=VALUE")));
        };
        env_vars.insert(k.to_string(), v.to_string());
    }
    let interactive = std::io::stdin().is_terminal();
    if !yes && !interactive {
        return Err(Failure::new(
            exit::NEEDS_CONFIRMATION,
            "`run` asks before paying; without a terminal to ask on, pass --yes",
        ));
    }
    let c = ctx.client()?;
    // Uploaded before the estimate: the structurer sees the files' names and types.
    let files = upload_all(ctx, &c, &attach, None).await?;
    let req = RunRequest {
        prompt,
        env_vars: (!env_vars.is_empty()).then_some(env_vars),
        attachments: None,
        price_cents: price
            .as_deref()
            .map(out::parse_dollars)
            .transpose()
            .map_err(Failure::usage)?,
        time_limit_seconds: time_limit,
        confirmed: None,
    }
    .attach(files.iter().map(|f| f.id));
    let spinner = out.spinner("estimating…");
    let outcome = c.run(&req).await.map_err(|e| ctx.explain(e))?;
    drop(spinner);
    let RunOutcome::Estimate(est) = outcome else {
        return Err(Failure::from(
            "the server created a job without confirmation".to_string(),
        ));
    };
    out.note(out::estimate_text(&est));
    if !yes
        && !confirm(&format!(
            "Pay {} into escrow and post this job?",
            money(est.estimated_price_cents)
        ))?
    {
        out.show(&est, || "Not posted.".to_string());
        return Ok(());
    }
    let confirmed = RunRequest {
        confirmed: Some(true),
        ..req
    };
    match c.run(&confirmed).await.map_err(|e| ctx.explain(e))? {
        RunOutcome::Queued(job) => out.show(&job, || format!("Posted: {}", out::job_line(&job))),
        RunOutcome::PendingPayment {
            job,
            required_cents,
            available_cents,
        } => {
            if out.json {
                out.json(&job);
            }
            return Err(Failure::new(
                exit::PAYMENT,
                format!(
                    "insufficient balance: the job costs {}, the wallet holds {}. Job {} waits for \
                     payment: `clawrk topup {}`, then `clawrk pay {}`",
                    money(required_cents),
                    money(available_cents),
                    job.id,
                    money((required_cents - available_cents).max(500)).trim_start_matches('$'),
                    job.id
                ),
            ));
        }
        RunOutcome::Estimate(_) => {
            return Err(Failure::from(
                "the server did not create the job".to_string(),
            ));
        }
    }
    Ok(())
}

/// One of the caller's agents by name (or id).
async fn find_agent(ctx: &Ctx, c: &Client, name: &str) -> Result<Agent, Failure> {
    let agents = c.agents().await.map_err(|e| ctx.explain(e))?;
    agents
        .into_iter()
        .find(|a| a.name == name || a.id.to_string() == name)
        .ok_or_else(|| {
            Failure::new(
                exit::NOT_FOUND,
                format!("you have no agent named {name:?} (see `clawrk agents`)"),
            )
        })
}

async fn agents(ctx: &Ctx, action: AgentsCmd) -> Result<(), Failure> {
    let out = ctx.out;
    match action {
        AgentsCmd::List => {
            let c = ctx.client()?;
            let agents = c.agents().await.map_err(|e| ctx.explain(e))?;
            let current = ctx.state()?.agent;
            if out.json {
                out.json(&agents);
            } else {
                for a in &agents {
                    let used = match &current {
                        Some(name) => *name == a.name,
                        None => a.is_default,
                    };
                    out.line(out::agent_line(a, used));
                }
            }
        }
        AgentsCmd::Create {
            name,
            personality,
            avatar_url,
        } => {
            let a = ctx
                .client()?
                .create_agent(&NewAgent {
                    name,
                    personality,
                    avatar_url,
                })
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&a, || format!("Created agent {} ({})", a.name, a.id));
        }
        AgentsCmd::Show { agent } => {
            let c = ctx.client()?;
            let a = find_agent(ctx, &c, &agent).await?;
            out.show(&a, || {
                format!(
                    "{}  {}\n  personality: {}\n  avatar: {}\n  created {}{}",
                    a.name,
                    a.id,
                    a.personality.as_deref().unwrap_or("-"),
                    a.avatar_url.as_deref().unwrap_or("-"),
                    out::when(a.created_at),
                    if a.is_default { "  (default)" } else { "" }
                )
            });
        }
        AgentsCmd::Update {
            agent,
            name,
            personality,
            clear_personality,
            avatar_url,
            clear_avatar_url,
        } => {
            let c = ctx.client()?;
            let found = find_agent(ctx, &c, &agent).await?;
            let patch = AgentPatch {
                name: name.clone(),
                personality: if clear_personality {
                    Some(None)
                } else {
                    personality.map(Some)
                },
                avatar_url: if clear_avatar_url {
                    Some(None)
                } else {
                    avatar_url.map(Some)
                },
            };
            if patch == AgentPatch::default() {
                return Err(Failure::usage(
                    "nothing to change: --name, --personality, --avatar-url or a --clear-… flag",
                ));
            }
            let a = c
                .update_agent(found.id, &patch)
                .await
                .map_err(|e| ctx.explain(e))?;
            // A renamed agent in use stays in use.
            let mut st = ctx.state()?;
            if st.agent.as_deref() == Some(found.name.as_str()) && name.is_some() {
                st.agent = Some(a.name.clone());
                ctx.save_state(&st)?;
            }
            out.show(&a, || format!("Updated agent {} ({})", a.name, a.id));
        }
        AgentsCmd::Delete { agent } => {
            let c = ctx.client()?;
            let found = find_agent(ctx, &c, &agent).await?;
            c.delete_agent(found.id).await.map_err(|e| ctx.explain(e))?;
            let mut st = ctx.state()?;
            if st.agent.as_deref() == Some(found.name.as_str()) {
                st.agent = None;
                ctx.save_state(&st)?;
            }
            out.show(&serde_json::json!({ "deleted": found.id }), || {
                format!("Deleted agent {}", found.name)
            });
        }
        AgentsCmd::Directory { paging } => {
            let c = ctx.anonymous()?;
            let all = c.directory_stream();
            let entries = list(&paging, |p| async move { c.directory(&p).await }, all)
                .await
                .map_err(|e| ctx.explain(e))?;
            if out.json {
                out.json(&entries);
            } else {
                for p in &entries {
                    out.line(out::profile_line(p));
                }
            }
        }
    }
    Ok(())
}

/// Uploads `paths` in order (a note per file on stderr); their metadata.
async fn upload_all(
    ctx: &Ctx,
    c: &Client,
    paths: &[PathBuf],
    content_type: Option<&str>,
) -> Result<Vec<FileInfo>, Failure> {
    // Every path is checked before the first upload, so that a typo uploads nothing.
    if let Some(p) = paths.iter().find(|p| !p.is_file()) {
        return Err(Failure::usage(format!("{} is not a file", p.display())));
    }
    let mut done = Vec::with_capacity(paths.len());
    for p in paths {
        let f = c
            .upload_file(p, content_type)
            .await
            .map_err(|e| ctx.explain(e))?;
        ctx.out.note(format!(
            "uploaded {} ({}, {})",
            f.filename,
            f.content_type,
            out::size(f.size_bytes)
        ));
        done.push(f);
    }
    Ok(done)
}

async fn files(ctx: &Ctx, action: FilesCmd) -> Result<(), Failure> {
    let out = ctx.out;
    let c = ctx.client()?;
    match action {
        FilesCmd::Put {
            files,
            content_type,
        } => {
            let done = upload_all(ctx, &c, &files, content_type.as_deref()).await?;
            if out.json {
                out.json(&done);
            } else {
                for f in &done {
                    out.line(out::file_line(f));
                }
            }
        }
        FilesCmd::Info { id } => {
            let f = c
                .file_meta(uuid_arg(&id, "file id")?)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&f, || {
                format!("{}\n  sha256 {}", out::file_line(&f), f.sha256)
            });
        }
        FilesCmd::Get { id, output } => {
            let id = uuid_arg(&id, "file id")?;
            if output.as_deref() == Some(std::path::Path::new("-")) {
                let mut dl = c.download(id).await.map_err(|e| ctx.explain(e))?;
                let mut stdout = tokio::io::stdout();
                save(ctx, &mut dl, &mut stdout, "to stdout").await?;
                return Ok(());
            }
            let target = match output {
                Some(p) => p,
                None => {
                    let meta = c.file_meta(id).await.map_err(|e| ctx.explain(e))?;
                    let own = PathBuf::from(meta.filename);
                    // Its own name is a guess at what the caller wants: never over a file of
                    // theirs (a path given with -o is what they asked for).
                    if own.exists() {
                        return Err(Failure::usage(format!(
                            "{} exists here: choose where with -o PATH",
                            own.display()
                        )));
                    }
                    own
                }
            };
            let mut dl = c.download(id).await.map_err(|e| ctx.explain(e))?;
            // Written beside the target and renamed, so that a broken download leaves no half
            // file under its name.
            let part = target.with_extension(match target.extension() {
                Some(e) => format!("{}.part", e.to_string_lossy()),
                None => "part".into(),
            });
            let name = target.display().to_string();
            let fail = |e: std::io::Error| Failure::from(format!("cannot write {name}: {e}"));
            let mut file = tokio::fs::File::create(&part).await.map_err(fail)?;
            let written = save(ctx, &mut dl, &mut file, &name).await?;
            file.sync_all().await.map_err(fail)?;
            tokio::fs::rename(&part, &target).await.map_err(fail)?;
            out.show(
                &serde_json::json!({ "id": id, "path": target, "size_bytes": written }),
                || format!("Saved {name} ({})", out::size(written)),
            );
        }
    }
    Ok(())
}

/// Writes a download to `to` as it arrives (`name` says where, in errors); how many bytes.
async fn save(
    ctx: &Ctx,
    dl: &mut clawrk_client::Download,
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    name: &str,
) -> Result<u64, Failure> {
    let fail = |e: std::io::Error| Failure::from(format!("cannot write {name}: {e}"));
    let mut n = 0u64;
    while let Some(chunk) = dl.chunk().await.map_err(|e| ctx.explain(e))? {
        n += chunk.len() as u64;
        to.write_all(&chunk).await.map_err(fail)?;
    }
    to.flush().await.map_err(fail)?;
    Ok(n)
}

async fn webhooks(ctx: &Ctx, action: WebhooksCmd) -> Result<(), Failure> {
    let out = ctx.out;
    let c = ctx.client()?;
    match action {
        WebhooksCmd::List => {
            let hooks = c.webhooks().await.map_err(|e| ctx.explain(e))?;
            if out.json {
                out.json(&hooks);
            } else if hooks.is_empty() {
                out.line("No webhook endpoints: add one with `clawrk webhooks add URL`.");
            } else {
                for h in &hooks {
                    out.line(out::webhook_line(h));
                }
            }
        }
        WebhooksCmd::Add {
            url,
            events,
            description,
        } => {
            let h = c
                .create_webhook(&NewWebhook {
                    url,
                    events,
                    description,
                })
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&h, || {
                format!(
                    "Added {}\n  signing secret (shown once; keep it): {}",
                    out::webhook_line(&h),
                    h.secret.as_deref().unwrap_or("-")
                )
            });
        }
        WebhooksCmd::Update {
            id,
            url,
            events,
            description,
            enable,
            disable,
            rotate_secret,
        } => {
            let patch = WebhookPatch {
                url,
                events,
                description,
                enabled: (enable || disable).then_some(enable),
                rotate_secret: rotate_secret.then_some(true),
            };
            if patch == WebhookPatch::default() {
                return Err(Failure::usage(
                    "nothing to change: --url, --events, --description, --enable, --disable or --rotate-secret",
                ));
            }
            let h = c
                .update_webhook(uuid_arg(&id, "webhook id")?, &patch)
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&h, || match &h.secret {
                Some(s) => format!(
                    "Updated {}\n  new signing secret (shown once): {s}",
                    out::webhook_line(&h)
                ),
                None => format!("Updated {}", out::webhook_line(&h)),
            });
        }
        WebhooksCmd::Rm { id } => {
            let id = uuid_arg(&id, "webhook id")?;
            c.delete_webhook(id).await.map_err(|e| ctx.explain(e))?;
            out.show(&serde_json::json!({ "deleted": id }), || {
                format!("Deleted webhook {id}")
            });
        }
        WebhooksCmd::Deliveries { id, paging } => {
            let id = uuid_arg(&id, "webhook id")?;
            let all = c.webhook_deliveries_stream(id);
            let c = &c;
            let ds = list(
                &paging,
                |p| async move { c.webhook_deliveries(id, &p).await },
                all,
            )
            .await
            .map_err(|e| ctx.explain(e))?;
            if out.json {
                out.json(&ds);
            } else if ds.is_empty() {
                out.line("No deliveries yet.");
            } else {
                for d in &ds {
                    out.line(out::delivery_line(d));
                }
            }
        }
        WebhooksCmd::Redeliver { id, delivery } => {
            let d = c
                .redeliver(
                    uuid_arg(&id, "webhook id")?,
                    uuid_arg(&delivery, "delivery id")?,
                )
                .await
                .map_err(|e| ctx.explain(e))?;
            out.show(&d, || format!("Queued again: {}", out::delivery_line(&d)));
        }
    }
    Ok(())
}

/// What a followed log printed: its last seq, and when the verdict it printed was given.
struct Followed {
    last_seq: Option<i64>,
    verdict_at: Option<time::OffsetDateTime>,
}

/// Prints a job's log from after `after` to its end (the verdict, or the end of a job that has
/// none).
async fn follow(ctx: &Ctx, c: &Client, id: Uuid, after: Option<i64>) -> Result<Followed, Failure> {
    let out = ctx.out;
    let mut stream = match after {
        Some(seq) => c.follow_logs_after(id, seq).boxed(),
        None => c.follow_logs(id).boxed(),
    };
    let mut last = after;
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(|e| ctx.explain(e))?;
        match &ev {
            LogEvent::Line(l) => {
                last = Some(l.seq);
                out.show(&serde_json::json!({ "event": "log", "data": l }), || {
                    out::log_text(l)
                });
            }
            LogEvent::ServerError(e) => {
                out.note(format!(
                    "(the server cannot read the log right now: {}; still following)",
                    e.error
                ));
            }
            LogEvent::Verdict(v) => {
                out.show(
                    &serde_json::json!({ "event": "verdict", "data": v }),
                    || out::verdict_text(v),
                );
                return Ok(Followed {
                    last_seq: last,
                    verdict_at: Some(v.verified_at),
                });
            }
            LogEvent::End(e) => {
                out.show(&serde_json::json!({ "event": "end", "data": e }), || {
                    format!("the job ended without a verdict: {}", e.status)
                });
                return Ok(Followed {
                    last_seq: last,
                    verdict_at: None,
                });
            }
        }
    }
    Err(Failure::from("the log stream ended early".to_string()))
}

/// `wait`: follows each attempt to its verdict, says what it waits for between attempts, and
/// ends with the job.
async fn wait(ctx: &Ctx, id: Uuid) -> Result<(), Failure> {
    let out = ctx.out;
    let c = ctx.client()?;
    let mut last_seq = None;
    let mut said: Option<JobStatus> = None;
    // The verdict last printed, so that each is printed once.
    let mut shown: Option<time::OffsetDateTime> = None;
    loop {
        let job = c.job(id).await.map_err(|e| ctx.explain(e))?;
        // A verdict given while nobody followed (before `wait` started, or between two looks).
        if let Some(v) = &job.verification
            && job.status != JobStatus::Submitted
            && shown != Some(v.verified_at)
        {
            out.show(
                &serde_json::json!({ "event": "verdict", "data": v }),
                || out::verdict_text(v),
            );
            shown = Some(v.verified_at);
        }
        match job.status {
            JobStatus::Verified => {
                out.show(&job, || format!("Verified.\n{}", out::output_text(&job)));
                return Ok(());
            }
            JobStatus::Failed => {
                out.show(&job, || {
                    "Failed after all attempts; the sender was refunded.".to_string()
                });
                return Err(Failure::quiet(exit::JOB_FAILED));
            }
            JobStatus::Cancelled => {
                out.show(&job, || "Cancelled.".to_string());
                return Err(Failure::quiet(exit::JOB_CANCELLED));
            }
            JobStatus::Submitted => {
                said = None;
                if let Some(due) = job.review_due_at {
                    out.note(format!(
                        "the verifier could not judge this submission: it waits for your review \
                         (`clawrk review {id} --approve` or `--reject`); approved automatically {}",
                        out::when(due)
                    ));
                }
                let f = follow(ctx, &c, id, last_seq).await?;
                last_seq = f.last_seq;
                shown = f.verdict_at.or(shown);
                continue;
            }
            other => {
                if said != Some(other) {
                    let what = match other {
                        JobStatus::PendingPayment => format!(
                            "waiting for payment: `clawrk pay {id}` (needs {})",
                            money(job.price_cents)
                        ),
                        JobStatus::Queued if job.attempt_count > 0 => format!(
                            "re-queued (attempt {}/3 failed), waiting for an agent",
                            job.attempt_count
                        ),
                        JobStatus::Queued => "queued, waiting for an agent".to_string(),
                        JobStatus::Held => "held by an agent, waiting for it to accept".to_string(),
                        _ => format!(
                            "an agent is working on attempt {}/3 (deadline {})",
                            job.attempt_count,
                            job.deadline_at.map(out::when).unwrap_or_default()
                        ),
                    };
                    out.note(what);
                    said = Some(other);
                }
                // Between attempts the log has nothing to follow: look at the job now and then.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    fn server_urls_are_checked_and_cleaned() {
        assert_eq!(server_url("http://h:8080/").unwrap(), "http://h:8080");
        assert_eq!(server_url("http://h:8080/api").unwrap(), "http://h:8080");
        assert_eq!(server_url("http://h:8080/api/").unwrap(), "http://h:8080");
        let e = server_url("localhost:8080").unwrap_err();
        assert_eq!(e.code, exit::USAGE);
        assert!(e.message.contains("http://localhost:8080"), "{}", e.message);
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
