//! Wires one adapter of each kind to the domain: the store (PostgreSQL when `DATABASE_URL` is set,
//! else the embedded SQLite file), the LLM, the clock and the payment ports.

use crate::cli::{Payments, ServeArgs, StoreArgs};
use async_trait::async_trait;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ids::{Timestamp, UserId};
use clawrk_domain::money::Cents;
use clawrk_domain::ports::{Clock, FileStore, LogWatch, PaymentGateway, PayoutGateway, Store};
use clawrk_domain::service::{Config, Marketplace, Ports};
use clawrk_files::ObjectFiles;
use clawrk_postgres::PgStore;
use clawrk_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time and v7 ids.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }

    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// Which store was opened: what the log watch and the shutdown depend on.
enum Backend {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

/// The opened store.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// What to say in the start-up log (never a password).
    pub describe: String,
    backend: Backend,
}

impl Opened {
    /// Wake-ups for log streams (for PostgreSQL this starts the LISTEN connection).
    pub fn watch(&self) -> Arc<dyn LogWatch> {
        match &self.backend {
            Backend::Postgres(pg) => pg.watch(),
            Backend::Sqlite(db) => db.watch(),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The connection pool's state for the metrics (the embedded store has no pool).
    pub fn pool_probe(
        &self,
    ) -> Option<impl Fn() -> Option<clawrk_http::metrics::PoolState> + Send + Sync + 'static> {
        match &self.backend {
            Backend::Postgres(pg) => {
                let pg = pg.clone();
                Some(move || {
                    let (connections, idle, max) = pg.pool_state();
                    Some(clawrk_http::metrics::PoolState {
                        connections,
                        idle,
                        max,
                    })
                })
            }
            Backend::Sqlite(_) => None,
        }
    }

    /// Releases what must not outlive the process's last moments (the LISTEN thread).
    pub fn shutdown(&self) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.shutdown();
        }
    }
}

/// Connection-string keys whose values are secrets (libpq's names).
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// A PostgreSQL connection string without its secrets, for logs and output. Both libpq forms are
/// handled: the URL (`postgres://user:pw@host/db?password=…`) and `key=value` pairs
/// (`host=db password='…'`); a secret becomes `***`.
pub fn redact(conn: &str) -> String {
    let conn = conn.trim();
    if let Some(scheme_end) = conn.find("://") {
        let (scheme, rest) = conn.split_at(scheme_end + 3);
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        // The user info ends at the last '@' before the path.
        let authority_end = before_query.find('/').unwrap_or(before_query.len());
        let (authority, path) = before_query.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((info, host)) => match info.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{info}@{host}"),
            },
            None => authority.to_string(),
        };
        let query = query.map(|q| {
            q.split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                        format!("{k}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        return match query {
            Some(q) => format!("{scheme}{authority}{path}?{q}"),
            None => format!("{scheme}{authority}{path}"),
        };
    }
    redact_pairs(conn)
}

/// `key=value` pairs with secret values replaced; values may be single-quoted with `\'` escapes.
fn redact_pairs(conn: &str) -> String {
    let mut out = String::with_capacity(conn.len());
    let mut chars = conn.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        // Spaces are allowed around '='.
        let mut sep = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                sep.push(c);
                chars.next();
                if c == '=' {
                    break;
                }
            } else {
                break;
            }
        }
        while let Some(&c) = chars.peek() {
            if !c.is_whitespace() {
                break;
            }
            sep.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            value.push('\'');
            chars.next();
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else if c == '\'' {
                    break;
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push_str(&key);
        out.push_str(&sep);
        if SECRET_KEYS.iter().any(|s| key.eq_ignore_ascii_case(s)) {
            out.push_str("***");
        } else {
            out.push_str(&value);
        }
    }
    out
}

/// Opens the configured store (running pending migrations) on the blocking pool.
pub async fn open_store(args: &StoreArgs) -> Result<Opened> {
    let args = args.clone();
    let url = args.database_url.clone().filter(|u| !u.trim().is_empty());
    match url {
        Some(url) => {
            let pool = args.db_pool.max(2);
            let timeouts = clawrk_postgres::Timeouts::uniform(args.db_timeout_seconds);
            let pg = {
                let url = url.clone();
                tokio::task::spawn_blocking(move || PgStore::connect_with(&url, pool, timeouts))
                    .await
                    .map_err(|e| DomainError::Internal(e.to_string()))??
            };
            Ok(Opened {
                store: Arc::new(pg.clone()),
                describe: format!("PostgreSQL {}", redact(&url)),
                backend: Backend::Postgres(pg),
            })
        }
        None => {
            let path = args.db_path.clone();
            let busy = Duration::from_secs(args.db_timeout_seconds);
            let db = tokio::task::spawn_blocking(move || SqliteStore::open_with(path, busy))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))??;
            // The absolute path: admin commands run elsewhere would open another file.
            let path = std::fs::canonicalize(db.path()).unwrap_or_else(|_| db.path().to_path_buf());
            Ok(Opened {
                describe: format!("embedded SQLite {}", path.display()),
                store: Arc::new(db.clone()),
                backend: Backend::Sqlite(db),
            })
        }
    }
}

/// Runs the store's migrations and says how many ran (SQLite migrates when opened).
pub fn migrate(args: &StoreArgs) -> Result<String> {
    match args
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => {
            let n = clawrk_postgres::migrate(url)?;
            Ok(format!(
                "PostgreSQL {}: {n} migration(s) applied",
                redact(url)
            ))
        }
        None => {
            let db = SqliteStore::open(&args.db_path)?;
            Ok(format!(
                "embedded SQLite {}: schema up to date",
                db.path().display()
            ))
        }
    }
}

/// Manual payments: an operator credits and debits wallets with `admin credit`.
pub struct ManualPayments;

const MANUAL: &str = "payments are manual on this installation: an operator credits or debits \
                      wallets with `clawrk-server admin credit USER CENTS`";

#[async_trait]
impl PaymentGateway for ManualPayments {
    async fn collect(&self, _user: UserId, _amount: Cents) -> Result<()> {
        Err(DomainError::NotSupported(MANUAL.into()))
    }
}

#[async_trait]
impl PayoutGateway for ManualPayments {
    async fn available(&self) -> Result<()> {
        Err(DomainError::NotSupported(MANUAL.into()))
    }
    async fn send(&self, _user: UserId, _amount: Cents) -> Result<()> {
        Err(DomainError::NotSupported(MANUAL.into()))
    }
}

/// Development payments: money appears and leaves without any outside system.
pub struct DevPayments;

#[async_trait]
impl PaymentGateway for DevPayments {
    async fn collect(&self, user: UserId, amount: Cents) -> Result<()> {
        tracing::info!(%user, cents = amount.get(), "dev payments: top-up credited without collection");
        Ok(())
    }
}

#[async_trait]
impl PayoutGateway for DevPayments {
    async fn available(&self) -> Result<()> {
        Ok(())
    }
    async fn send(&self, user: UserId, amount: Cents) -> Result<()> {
        tracing::info!(%user, cents = amount.get(), "dev payments: withdrawal not sent anywhere");
        Ok(())
    }
}

/// The LLM configuration from `serve`'s settings.
pub fn llm_config(s: &ServeArgs) -> clawrk_llm::LlmConfig {
    clawrk_llm::LlmConfig {
        api_key: s.openai_api_key.clone().filter(|k| !k.trim().is_empty()),
        base_url: s.openai_base_url.clone().filter(|u| !u.trim().is_empty()),
        model: s.llm_model.clone(),
        timeout: Duration::from_secs(s.llm_timeout_seconds.max(1)),
        retries: usize::try_from(s.llm_retries).unwrap_or(3),
        max_tokens: s.llm_max_tokens,
        response_format: s.llm_response_format,
    }
}

/// The longest one verification can take with these LLM settings: every attempt of the call up to
/// its timeout, and the retry layer's waits between them (at most 8 s each) — twice in `auto`,
/// whose first refusal of `json_schema` is followed by a `json_object` call. None for the offline
/// heuristic, which answers at once.
pub fn worst_verification(s: &ServeArgs) -> Option<Duration> {
    let llm = llm_config(s);
    llm.api_key.as_ref()?;
    let retries = u32::try_from(llm.retries).unwrap_or(10);
    let calls = match llm.response_format {
        clawrk_llm::ResponseFormatMode::Auto => 2,
        _ => 1,
    };
    Some(
        (llm.timeout * (retries + 1) + Duration::from_secs(8) * retries) * calls
            + Duration::from_secs(1),
    )
}

/// The verification lease: the one configured, which must outlast the worst verification, or
/// that plus 30 s (at least 60 s).
pub fn verification_lease(s: &ServeArgs) -> std::result::Result<Duration, String> {
    let worst = worst_verification(s);
    match (s.verify_lease_seconds.map(Duration::from_secs), worst) {
        (Some(lease), Some(worst)) if lease < worst => Err(format!(
            "CLAWRK_VERIFY_LEASE_SECONDS={} is shorter than a verification can take with \
             CLAWRK_LLM_TIMEOUT_SECONDS={} and CLAWRK_LLM_RETRIES={} (up to {} s): a verification \
             would outlive its lease and run twice. Raise it, or lower the LLM settings",
            lease.as_secs(),
            s.llm_timeout_seconds,
            s.llm_retries,
            worst.as_secs()
        )),
        (Some(lease), _) => Ok(lease),
        (None, Some(worst)) => Ok((worst + Duration::from_secs(30)).max(Duration::from_secs(60))),
        (None, None) => Ok(Duration::from_secs(60)),
    }
}

/// Where uploaded files are kept: the bucket of `CLAWRK_FILES_URL`, else `CLAWRK_FILES_DIR`, else
/// `clawrk-files/` beside the embedded database (or in the working directory with PostgreSQL).
pub fn file_store(
    store_args: &StoreArgs,
    s: &ServeArgs,
) -> std::result::Result<ObjectFiles, String> {
    match files_location(store_args, s) {
        Ok(url) => ObjectFiles::s3(&url),
        Err(dir) => ObjectFiles::local(&dir),
    }
}

/// The bucket URL (`Ok`) or the directory (`Err`) that [`file_store`] uses.
fn files_location(
    store_args: &StoreArgs,
    s: &ServeArgs,
) -> std::result::Result<String, std::path::PathBuf> {
    if let Some(url) = s.files_url.as_deref().filter(|u| !u.trim().is_empty()) {
        return Ok(url.trim().to_string());
    }
    // An empty DATABASE_URL means the embedded store, as for the store itself.
    let postgres = store_args
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    Err(match (&s.files_dir, postgres) {
        (Some(dir), _) => dir.clone(),
        (None, Some(_)) => std::path::PathBuf::from("clawrk-files"),
        (None, None) => store_args
            .db_path
            .parent()
            .map(|p| p.join("clawrk-files"))
            .unwrap_or_else(|| std::path::PathBuf::from("clawrk-files")),
    })
}

/// The marketplace over the opened store and file storage.
pub fn marketplace(
    store: Arc<dyn Store>,
    files: Arc<dyn FileStore>,
    s: &ServeArgs,
) -> Result<Marketplace> {
    let (structurer, verifier) = clawrk_llm::from_config(&llm_config(s));
    let (payments, payouts): (Arc<dyn PaymentGateway>, Arc<dyn PayoutGateway>) = match s.payments {
        Payments::Manual => (Arc::new(ManualPayments), Arc::new(ManualPayments)),
        Payments::Dev => (Arc::new(DevPayments), Arc::new(DevPayments)),
    };
    let webhooks = clawrk_http::webhooks::HttpSender::new(
        Duration::from_secs(s.webhook_timeout_seconds),
        s.webhook_allow_private,
    )
    .map_err(DomainError::Internal)?;
    Ok(Marketplace::new(
        Ports {
            store,
            structurer,
            verifier,
            clock: Arc::new(SystemClock),
            payments,
            payouts,
            webhooks: Arc::new(webhooks),
            files,
        },
        Config {
            hold_seconds: s.hold_seconds,
            // `serve` refuses a lease that is too short before it gets here.
            verification_lease: verification_lease(s).unwrap_or(Duration::from_secs(60)),
            verify_max_errors: s.verify_max_errors,
            verify_retry: Duration::from_secs(s.verify_retry_seconds),
            review_seconds: s.review_hours.saturating_mul(3600),
            max_file_bytes: s.max_file_bytes,
            max_user_storage_bytes: s.max_user_storage_bytes,
            ..Config::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn files_go_beside_the_embedded_database_unless_told_otherwise() {
        use crate::cli::{ServeArgs, StoreArgs};
        use std::path::PathBuf;
        let store = |url: Option<&str>| StoreArgs {
            database_url: url.map(str::to_string),
            db_path: PathBuf::from("/data/clawrk.db"),
            db_pool: 1,
            db_timeout_seconds: 1,
        };
        let serve = |url: Option<&str>, dir: Option<&str>| ServeArgs {
            files_url: url.map(str::to_string),
            files_dir: dir.map(PathBuf::from),
            ..ServeArgs::defaults()
        };
        let at = |s: &StoreArgs, a: &ServeArgs| super::files_location(s, a);
        let beside = Err(PathBuf::from("/data/clawrk-files"));
        assert_eq!(at(&store(None), &serve(None, None)), beside);
        // An empty DATABASE_URL is the embedded store too.
        assert_eq!(at(&store(Some("")), &serve(None, None)), beside);
        assert_eq!(
            at(&store(Some("postgres://db/x")), &serve(None, None)),
            Err(PathBuf::from("clawrk-files"))
        );
        assert_eq!(
            at(&store(None), &serve(None, Some("/files"))),
            Err(PathBuf::from("/files"))
        );
        assert_eq!(
            at(&store(None), &serve(Some(" s3://b/p "), Some("/files"))),
            Ok("s3://b/p".to_string())
        );
    }

    #[test]
    fn passwords_are_not_logged() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/clawrk",
                "postgres://app:***@db:5432/clawrk",
            ),
            ("postgres://db/clawrk", "postgres://db/clawrk"),
            ("postgresql://app@db/clawrk", "postgresql://app@db/clawrk"),
            (
                "postgres://app:p@ss@db/clawrk?sslmode=require&password=s3cret",
                "postgres://app:***@db/clawrk?sslmode=require&password=***",
            ),
            (
                "postgres:///clawrk?host=/run/pg&PASSWORD=s3cret&sslpassword=k3y",
                "postgres:///clawrk?host=/run/pg&PASSWORD=***&sslpassword=***",
            ),
            (
                "host=db user=app password=s3cret dbname=clawrk",
                "host=db user=app password=*** dbname=clawrk",
            ),
            (
                "host=db password = 'it\\'s secret' dbname=clawrk",
                "host=db password = *** dbname=clawrk",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(redact(given), want, "{given}");
            assert!(!redact(given).contains("s3cret"), "{given}");
        }
    }
}
