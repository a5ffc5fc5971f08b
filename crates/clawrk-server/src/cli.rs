//! The command line (clap): subcommands and every setting of SPEC §9, each an environment variable
//! and a flag, with its default shown in `--help`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// clawrk: a marketplace for work done by AI agents.
#[derive(Parser, Debug)]
#[command(name = "clawrk-server", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(
        long,
        env = "CLAWRK_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the data lives.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// PostgreSQL URL; unset means the embedded SQLite store.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// The embedded store's file (used when DATABASE_URL is unset).
    #[arg(
        long,
        env = "CLAWRK_DB_PATH",
        default_value = "clawrk.db",
        global = true
    )]
    pub db_path: PathBuf,
    /// Most PostgreSQL connections per instance.
    #[arg(long, env = "CLAWRK_DB_POOL", default_value_t = 16, global = true)]
    pub db_pool: u32,
    /// Seconds PostgreSQL may take to hand out a connection, to run one statement
    /// (statement_timeout) and to answer on the network (keepalives, tcp_user_timeout) before a
    /// request answers 503.
    #[arg(long, env = "CLAWRK_DB_TIMEOUT_SECONDS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub db_timeout_seconds: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server, the verification worker and the deadline sweeper (the default).
    Serve(Box<ServeArgs>),
    /// Bring the store's schema up to date and exit.
    Migrate,
    /// Operator commands on the configured store; each prints one JSON object.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand, Debug)]
pub enum Admin {
    /// Create a user (with its default agent and a first API key): {"user_id", "name", "api_key"}.
    CreateUser { name: String },
    /// Create another API key for USER (id or name): {"user_id", "api_key"}.
    CreateKey { user: String },
    /// Credit (or, negative, debit) USER's wallet by CENTS: {"user_id", "balance_cents"}.
    Credit {
        user: String,
        #[arg(allow_negative_numbers = true)]
        cents: i64,
    },
}

/// How top-ups and withdrawals are handled.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payments {
    /// The top-up and withdraw routes answer 501; operators use `admin credit`.
    Manual,
    /// Top-ups are credited at once and withdrawals always succeed. Local use only.
    Dev,
}

/// Settings of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, env = "CLAWRK_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Hold window of a pulled or claimed job, in seconds.
    #[arg(long, env = "CLAWRK_HOLD_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub hold_seconds: u32,
    /// In-process deadline sweep interval in seconds (0 turns it off).
    #[arg(long, env = "CLAWRK_SWEEP_SECONDS", default_value_t = 15)]
    pub sweep_seconds: u64,
    /// Seconds a SIGTERM/SIGINT may take: workers stop taking work, log streams are closed,
    /// requests in flight and running verifications finish within this, then the process exits.
    #[arg(long, env = "CLAWRK_SHUTDOWN_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_seconds: u64,
    /// `manual` or `dev`.
    #[arg(
        long,
        env = "CLAWRK_PAYMENTS",
        value_enum,
        default_value = "manual",
        ignore_case = true
    )]
    pub payments: Payments,
    /// Enables GET /api/cron/enforce-deadlines with this bearer secret.
    #[arg(long, env = "CRON_SECRET", hide_env_values = true)]
    pub cron_secret: Option<String>,
    /// OpenAI API key; without it the offline heuristic LLM is used.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// OpenAI-compatible base URL (default: OpenAI's).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// Model name.
    #[arg(long, env = "CLAWRK_LLM_MODEL", default_value = clawrk_llm::DEFAULT_MODEL)]
    pub llm_model: String,
    /// Limit of one LLM call, in seconds.
    #[arg(long, env = "CLAWRK_LLM_TIMEOUT_SECONDS", default_value_t = 60)]
    pub llm_timeout_seconds: u64,
    /// Retries of an LLM call on 429 and 5xx.
    #[arg(long, env = "CLAWRK_LLM_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(0..=10))]
    pub llm_retries: u64,
    /// The output cap sent with every LLM call (max_tokens).
    #[arg(long, env = "CLAWRK_LLM_MAX_TOKENS", default_value_t = clawrk_llm::DEFAULT_MAX_TOKENS,
          value_parser = clap::value_parser!(u32).range(clawrk_llm::MIN_MAX_TOKENS as i64..=1_000_000))]
    pub llm_max_tokens: u32,
    /// How structured output is asked for: json_schema, json_object (the schema sent beside it),
    /// or auto (json_schema, falling back once to json_object when the server refuses it).
    #[arg(long, env = "CLAWRK_LLM_RESPONSE_FORMAT", default_value = "auto",
          value_parser = parse_response_format)]
    pub llm_response_format: clawrk_llm::ResponseFormatMode,
    /// How long a verification may run before another worker takes the job over, in seconds.
    /// Default: what the LLM settings allow a verification at worst, plus 30 s; a value below that
    /// is refused (a verification would outlive its lease and run twice).
    #[arg(long, env = "CLAWRK_VERIFY_LEASE_SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub verify_lease_seconds: Option<u64>,
    /// Seconds before a submission is verified again after a verifier error.
    #[arg(long, env = "CLAWRK_VERIFY_RETRY_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub verify_retry_seconds: u64,
    /// Verifier failures on one submission before it goes to its sender's review.
    #[arg(long, env = "CLAWRK_VERIFY_MAX_ERRORS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub verify_max_errors: u32,
    /// Hours a submission waits for its sender's review before it is approved.
    #[arg(long, env = "CLAWRK_REVIEW_HOURS", default_value_t = 72,
          value_parser = clap::value_parser!(u32).range(1..=720))]
    pub review_hours: u32,
    /// Concurrent verifications per instance (0: this instance serves the API only; another
    /// instance on the same database verifies).
    #[arg(long, env = "CLAWRK_VERIFY_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(0..=64))]
    pub verify_workers: u64,
    /// Webhook delivery workers per instance (0: this instance sends no webhooks; another
    /// instance on the same database does).
    #[arg(long, env = "CLAWRK_WEBHOOK_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=16))]
    pub webhook_workers: u64,
    /// Seconds a receiver has to answer a webhook delivery.
    #[arg(long, env = "CLAWRK_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub webhook_timeout_seconds: u64,
    /// The first pause before a failed webhook delivery is tried again, in seconds; it doubles
    /// per failure up to an hour, for 24 hours.
    #[arg(long, env = "CLAWRK_WEBHOOK_RETRY_SECONDS", default_value_t = 10.0,
          value_parser = parse_retry_seconds)]
    pub webhook_retry_seconds: f64,
    /// Let webhook deliveries reach loopback, private and link-local addresses (`1`: for local
    /// use and tests; never on a server others can register endpoints on).
    #[arg(long, env = "CLAWRK_WEBHOOK_ALLOW_PRIVATE", default_value = "0",
          value_parser = parse_flag)]
    pub webhook_allow_private: bool,
    /// Requests per second per caller (API key, or IP without one); 0: no limit.
    /// Where uploaded files are kept: `s3://bucket[/prefix]` for an S3-compatible bucket
    /// (configured by the `AWS_*` variables); unset means the local directory below.
    #[arg(long, env = "CLAWRK_FILES_URL")]
    pub files_url: Option<String>,
    /// The local directory for uploaded files (default: `clawrk-files/` beside the embedded
    /// database, or in the working directory with DATABASE_URL).
    #[arg(long, env = "CLAWRK_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// The largest file an upload may be, in bytes (413 above).
    #[arg(long, env = "CLAWRK_MAX_FILE_BYTES", default_value_t = clawrk_domain::files::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// How many bytes one user's files may take in all (413 above).
    #[arg(long, env = "CLAWRK_MAX_USER_STORAGE_BYTES",
          default_value_t = clawrk_domain::files::DEFAULT_MAX_USER_STORAGE_BYTES)]
    pub max_user_storage_bytes: u64,
    #[arg(long, env = "CLAWRK_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CLAWRK_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
}

impl ServeArgs {
    /// The defaults, as `serve` with no flag and no variable would have them.
    pub fn defaults() -> ServeArgs {
        // Parsing an empty command line yields exactly the documented defaults (and the env).
        match ServeParser::try_parse_from(["serve"]) {
            Ok(p) => p.args,
            Err(e) => e.exit(),
        }
    }
}

#[derive(Parser)]
struct ServeParser {
    #[command(flatten)]
    args: ServeArgs,
}

/// A positive number of seconds, at most an hour.
fn parse_retry_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("expected seconds between 0 and 3600, got {s:?}")),
    }
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (and empty: off).
fn parse_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected 1 or 0, got {s:?}")),
    }
}

/// `CLAWRK_LLM_RESPONSE_FORMAT`'s values.
fn parse_response_format(s: &str) -> Result<clawrk_llm::ResponseFormatMode, String> {
    s.parse()
}
