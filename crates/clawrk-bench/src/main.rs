//! The load harness (issue #8): starts the real `clawrk-server` on a fresh PostgreSQL database with
//! the heuristic LLM, seeds it in SQL, drives it over HTTP with the typed client (`clawrk-client`,
//! without retries, so that every answer counts), and runs the raw-SQL twin of the same
//! statements with `pgbench` (`bench/*.sql`) so that each figure stands beside what the database
//! alone does.
//!
//! `--quick`: W1 (N = 16), W2 (beside the limit twin's pull alone), W3 on small sizes; the last
//! line printed is one JSON object.
//! Default (`just bench`): W1 at N = 1, 4, 16, 64, W2, W3 at N = 1 and 16, W4 (10k and 1M jobs of
//! history), W5 (one sender against 1,000), W8 (1,000 SSE subscribers); writes
//! `bench/results/latest.json`.

use clap::Parser;
use clawrk_client::api::{AgentChoice, PullRequest, RunRequest, SubmitRequest};
use clawrk_client::{Client, JobsQuery, LogEvent, PageRequest, RetryPolicy, RunOutcome};
use clawrk_postgres::testing::with_database;
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "clawrk load benchmarks beside their raw-SQL twin")]
struct Args {
    /// W1 (N = 16), W2 and W3 on small sizes only.
    #[arg(long)]
    quick: bool,
    /// The PostgreSQL server (a database is created and dropped per scenario).
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Seconds per measured run.
    #[arg(long)]
    seconds: Option<u64>,
    /// Where the results go (the full run only, unless given).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only these workloads (comma-separated: w1,w3,w4,w5,w8); W2 comes with W1.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql is needed ({e})"));
    assert!(
        out.status.success(),
        "psql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database for one scenario, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str, tag: &str) -> Database {
        let name = format!("clawrk_bench_{tag}_{}", std::process::id());
        psql(
            admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(admin, &format!("CREATE DATABASE {name}"));
        let url = with_database(admin, &name);
        let out = Command::new(server_bin())
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .expect("migrate");
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Database {
            admin: admin.into(),
            name,
            url,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qAtX",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Sender `i`'s API key, as [`seed`] stores it (a well-formed key: `ck_` and 64 hex digits).
fn sender_key(i: impl std::fmt::LowerHex) -> String {
    format!("ck_{i:032x}{}", "a".repeat(32))
}

/// Worker `i`'s API key, as [`seed`] stores it.
fn worker_key(i: impl std::fmt::LowerHex) -> String {
    format!("ck_{i:032x}{}", "b".repeat(32))
}

/// Seeds `senders` funded senders, `workers` agent owners, `queued` queued jobs (spread over the
/// senders) and `history` cancelled jobs of sender 0. Keys are [`sender_key`] and
/// [`worker_key`] of the index. Money is seeded double-entry, as the product writes it.
fn seed(url: &str, senders: u32, workers: u32, queued: u32, history: u32) {
    psql(
        url,
        &format!(
            r#"
CREATE TEMP TABLE s AS SELECT gen_random_uuid() AS id, g - 1 AS i FROM generate_series(1, {senders}) g;
CREATE TEMP TABLE w AS SELECT gen_random_uuid() AS id, g - 1 AS i FROM generate_series(1, {workers}) g;
INSERT INTO users (id, name, created_at) SELECT id, 'sender' || i, 0 FROM s UNION ALL SELECT id, 'worker' || i, 0 FROM w;
INSERT INTO agents (id, owner_id, name, personality, avatar_url, is_default, created_at)
  SELECT gen_random_uuid(), id, 'default', NULL, NULL, true, 0 FROM (SELECT id FROM s UNION ALL SELECT id FROM w) u;
INSERT INTO api_keys (id, user_id, key_hash, created_at)
  SELECT gen_random_uuid(), id, sha256(convert_to('ck_' || lpad(to_hex(i), 32, '0') || repeat('a', 32), 'UTF8')), 0 FROM s
  UNION ALL SELECT gen_random_uuid(), id, sha256(convert_to('ck_' || lpad(to_hex(i), 32, '0') || repeat('b', 32), 'UTF8')), 0 FROM w;
CREATE TEMP TABLE j AS SELECT gen_random_uuid() AS id, g, s.id AS sender
  FROM generate_series(1, {queued}) g JOIN s ON s.i = g % {senders};
INSERT INTO jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender,
  price_cents, time_limit_seconds, attempt_count, cancellation_requested, env_vars, attachments,
  presented_to_agents, structured_by, created_at, updated_at)
  SELECT id, 'queued', 'write a report ' || g, 'Report ' || g, 'A report', 'a report', '["has a report"]', sender,
         100, 600, 0, false, '{{}}', '[]', '[]', 'heuristic', 1000000 + g, 1000000 + g FROM j;
INSERT INTO jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender,
  price_cents, time_limit_seconds, attempt_count, cancellation_requested, env_vars, attachments,
  presented_to_agents, structured_by, created_at, updated_at)
  SELECT gen_random_uuid(), 'cancelled', 'old ' || g, 'Old ' || g, 'old', 'old', '["old"]', (SELECT id FROM s WHERE i = 0),
         100, 600, 0, false, '{{}}', '[]', '[]', 'heuristic', g, g FROM generate_series(1, {history}) g;
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  SELECT gen_random_uuid(), 'world', 'wallet:' || id::text, 1000000000, 'adjustment', NULL, 0 FROM s;
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  SELECT gen_random_uuid(), 'wallet:' || sender::text, 'escrow:' || id::text, 100, 'job_payment', id, 1 FROM j;
INSERT INTO balances (account, balance_cents)
  SELECT 'wallet:' || s.id::text, 1000000000 - 100 * (SELECT COUNT(*) FROM j WHERE j.sender = s.id) FROM s
  UNION ALL SELECT 'wallet:' || id::text, 0 FROM w
  UNION ALL SELECT 'escrow:' || id::text, 100 FROM j;
ANALYZE;
"#
        ),
    );
}

/// [`seed`] for the embedded store: the same rows in a SQLite file the server migrated first
/// (literal values in batches, in one transaction: every value is made here, none comes from
/// outside).
fn seed_sqlite(path: &Path, senders: u32, workers: u32, queued: u32) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use sha2::{Digest, Sha256};
    let out = Command::new(server_bin())
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("CLAWRK_DB_PATH", path)
        .output()
        .expect("migrate");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).expect("open the bench file");
    let id = || uuid::Uuid::now_v7().to_string();
    let mut sql = String::from("BEGIN;\n");
    let mut batch = |table: &str, rows: Vec<String>| {
        for chunk in rows.chunks(500) {
            sql.push_str(&format!(
                "INSERT INTO {table} VALUES {};\n",
                chunk.join(",")
            ));
        }
    };
    let people: Vec<(String, String, String)> = (0..senders)
        .map(|i| (id(), format!("sender{i}"), sender_key(i)))
        .chain((0..workers).map(|i| (id(), format!("worker{i}"), worker_key(i))))
        .collect();
    batch(
        "users",
        people
            .iter()
            .map(|(u, n, _)| format!("('{u}', '{n}', 0)"))
            .collect(),
    );
    batch(
        "agents",
        people
            .iter()
            .map(|(u, _, _)| format!("('{}', '{u}', 'default', NULL, NULL, 1, 0)", id()))
            .collect(),
    );
    batch(
        "api_keys",
        people
            .iter()
            .map(|(u, _, k)| {
                format!(
                    "('{}', '{u}', X'{}', 0)",
                    id(),
                    hex::encode(Sha256::digest(k))
                )
            })
            .collect(),
    );
    let jobs: Vec<(String, usize)> = (0..queued)
        .map(|g| (id(), g as usize % senders as usize))
        .collect();
    // Named columns: the others take their defaults, so a column added later needs no change here.
    batch(
        "jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender, \
         price_cents, time_limit_seconds, attempt_count, cancellation_requested, env_vars, \
         attachments, presented_to_agents, structured_by, created_at, updated_at)",
        jobs.iter()
            .enumerate()
            .map(|(g, (j, s))| {
                format!(
                    "('{j}', 'queued', 'write a report {g}', 'Report {g}', 'A report', 'a report', \
                     '[\"has a report\"]', '{}', 100, 600, 0, 0, '{{}}', '[]', '[]', 'heuristic', \
                     {t}, {t})",
                    people[*s].0,
                    t = 1_000_000 + g
                )
            })
            .collect(),
    );
    let mut transfers: Vec<String> = people[..senders as usize]
        .iter()
        .map(|(u, _, _)| {
            format!(
                "('{}', 'world', 'wallet:{u}', 1000000000, 'adjustment', NULL, 0)",
                id()
            )
        })
        .collect();
    transfers.extend(jobs.iter().map(|(j, s)| {
        format!(
            "('{}', 'wallet:{}', 'escrow:{j}', 100, 'job_payment', '{j}', 1)",
            id(),
            people[*s].0
        )
    }));
    batch("transfers", transfers);
    let mut spent = vec![0i64; senders as usize];
    for (_, s) in &jobs {
        spent[*s] += 100;
    }
    let mut balances: Vec<String> = people
        .iter()
        .enumerate()
        .map(|(i, (u, _, _))| {
            let funded = if i < senders as usize {
                1_000_000_000 - spent[i]
            } else {
                0
            };
            format!("('wallet:{u}', {funded})")
        })
        .collect();
    balances.extend(jobs.iter().map(|(j, _)| format!("('escrow:{j}', 100)")));
    batch("balances", balances);
    sql.push_str("COMMIT;\nANALYZE;\n");
    c.batch_execute(&sql).expect("seed the bench file");
}

fn server_bin() -> PathBuf {
    let p = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("clawrk-server")))
        .unwrap_or_default();
    if !p.exists() {
        eprintln!("building clawrk-server (release)…");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-q", "-p", "clawrk-server"])
            .status()
            .expect("cargo");
        assert!(
            st.success() && p.exists(),
            "cannot build clawrk-server next to {}",
            p.display()
        );
    }
    p
}

/// A running server.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which store a server runs on.
#[derive(Clone, Copy)]
enum On<'a> {
    Postgres(&'a str),
    Sqlite(&'a Path),
}

impl Server {
    async fn start(db_url: &str) -> Server {
        Self::start_on(On::Postgres(db_url)).await
    }

    async fn start_on(store: On<'_>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(server_bin());
        match store {
            // The workloads upload nothing; the directory only keeps the server's default (the
            // working directory's `clawrk-files/`) out of the clone.
            On::Postgres(url) => cmd.env("DATABASE_URL", url).env(
                "CLAWRK_FILES_DIR",
                std::env::temp_dir().join(format!("clawrk-bench-files-{port}")),
            ),
            On::Sqlite(path) => cmd.env_remove("DATABASE_URL").env("CLAWRK_DB_PATH", path),
        };
        let child = cmd
            .env("CLAWRK_ADDR", format!("127.0.0.1:{port}"))
            .env("CLAWRK_HOLD_SECONDS", "3600")
            .env("CLAWRK_SWEEP_SECONDS", "0")
            .env("CLAWRK_DB_POOL", "32")
            .env("CLAWRK_VERIFY_WORKERS", "8")
            .env_remove("OPENAI_API_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start clawrk-server");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t = Instant::now();
        while http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { child, base }
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

/// A client of the server at `base` as `key`, without retries (every answer is measured).
fn client(base: &str, key: &str) -> Client {
    Client::builder(base)
        .api_key(key)
        .retry(RetryPolicy::none())
        .build()
        .expect("client")
}

/// A confirmed run that must queue the job.
async fn queue(c: &Client, prompt: String) -> uuid::Uuid {
    match c.run(&RunRequest::confirmed(prompt)).await.expect("run") {
        RunOutcome::Queued(job) => job.id,
        other => panic!("run: {other:?}"),
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One hold as the client saw it: the job, when the pull answered, when the reject was sent.
struct Hold {
    job: uuid::Uuid,
    held: Instant,
    released: Instant,
}

/// W1/W2: `n` agents loop pull + reject for `secs` (a rejected job goes back to the queue for the
/// others, never to the same agent). Checks that no job was ever held by two agents at once: for
/// each job, a pull may only answer after the previous holder sent its reject. Returns the pull +
/// reject cycles per second and the pull latency p50/p99 (ms).
async fn pulls(base: &str, n: u32, secs: u64) -> (f64, f64, f64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let tasks = (0..n).map(|i| {
        let c = client(base, &worker_key(i));
        tokio::spawn(async move {
            let (mut holds, mut lat) = (Vec::new(), Vec::new());
            while Instant::now() < end {
                let t = Instant::now();
                let answer = c.pull(&PullRequest::default()).await.expect("pull");
                let held = Instant::now();
                lat.push(held.duration_since(t).as_secs_f64() * 1000.0);
                let Some(h) = answer else {
                    break;
                };
                let job = h.job.id;
                let released = Instant::now();
                c.reject(job, &AgentChoice::default())
                    .await
                    .expect("reject");
                holds.push(Hold {
                    job,
                    held,
                    released,
                });
            }
            (holds, lat)
        })
    });
    let started = Instant::now();
    let results = futures::future::join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (mut all, mut lat) = (Vec::new(), Vec::new());
    for r in results {
        let (holds, l) = r.expect("puller");
        all.extend(holds);
        lat.extend(l);
    }
    let cycles = all.len();
    all.sort_by(|a, b| (&a.job, a.held).cmp(&(&b.job, b.held)));
    for w in all.windows(2) {
        if w[0].job == w[1].job {
            assert!(
                w[1].held > w[0].released,
                "job {} was held by two agents at once",
                w[0].job
            );
        }
    }
    lat.sort_by(f64::total_cmp);
    (cycles as f64 / elapsed, pct(&lat, 0.5), pct(&lat, 0.99))
}

/// Runs a pgbench script; returns transactions (script runs) per second.
fn pgbench(url: &str, script: &str, clients: u32, secs: u64) -> f64 {
    let path = repo_root().join("bench").join(script);
    pgbench_logged(url, &path, clients, secs, None)
}

/// [`pgbench`] of the script at `path`, with each run's latency logged under `log` (pgbench's
/// `-l`) when given.
fn pgbench_logged(url: &str, path: &Path, clients: u32, secs: u64, log: Option<&Path>) -> f64 {
    let mut cmd = Command::new("pgbench");
    cmd.args([
        "-n",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &secs.to_string(),
    ]);
    if let Some(prefix) = log {
        cmd.arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()));
    }
    let out = cmd
        .arg("-f")
        .arg(path)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("pgbench is needed ({e})"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"))
}

/// W1 at `n` agents, its own twin and the limit twin, on fresh databases of `jobs` queued jobs;
/// with `sqlite`, also on the embedded store.
async fn w1(admin: &str, n: u32, jobs: u32, history: u32, secs: u64, sqlite: bool) -> Value {
    let db = Database::create(admin, &format!("w1_{n}"));
    seed(&db.url, 10, n.max(1), jobs, history);
    let server = Server::start(&db.url).await;
    let (rate, p50, p99) = pulls(&server.base, n, secs).await;
    drop(server);
    drop(db);
    let twin = run_twin(admin, "w1t", "pull.sql", n, jobs, history, secs);
    let limit = run_twin(admin, "w1l", "limit/pull.sql", n, jobs, history, secs);
    let mut out = json!({ "n": n, "pulls_per_s": round(rate), "p50_ms": round(p50), "p99_ms": round(p99),
            "twin_per_s": round(twin), "ratio": round(rate / twin),
            "limit_per_s": round(limit), "limit_ratio": round(rate / limit) });
    if n == 16 {
        let (p50, p99) = limit_pull_latency(admin, n, jobs, secs);
        out["limit_pull_p50_ms"] = json!(round(p50));
        out["limit_pull_p99_ms"] = json!(round(p99));
    }
    if sqlite {
        let dir = tempdir("w1");
        let path = dir.join("clawrk.db");
        // Fewer jobs: enough for the run (an agent pulls each job at most once).
        seed_sqlite(&path, 10, n.max(1), jobs.min(20_000));
        let server = Server::start_on(On::Sqlite(&path)).await;
        let (rate_sqlite, _, p99_sqlite) = pulls(&server.base, n, secs).await;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        out["sqlite_pulls_per_s"] = json!(round(rate_sqlite));
        out["sqlite_p99_ms"] = json!(round(p99_sqlite));
        out["sqlite_vs_postgres"] = json!(round(rate_sqlite / rate));
    }
    out
}

/// W2's bound: the limit twin's pull alone (`bench/limit/pull.sql` up to its first `COMMIT`, so
/// without the reject) at `n` clients on a database seeded as W1's, its p50 and p99 in
/// milliseconds from pgbench's per-run log. What the database itself answers a pull in on this
/// machine, without HTTP, JSON or the server's threads. The pulled jobs stay held, as the product's
/// holds do in W1; W1's seed has enough queued jobs for the run.
fn limit_pull_latency(admin: &str, n: u32, jobs: u32, secs: u64) -> (f64, f64) {
    let twin = std::fs::read_to_string(repo_root().join("bench/limit/pull.sql"))
        .expect("bench/limit/pull.sql");
    let pull: String = twin
        .split_inclusive('\n')
        .scan(false, |done, line| {
            let take = !*done;
            *done |= line.trim() == "COMMIT;";
            take.then_some(line)
        })
        .collect();
    assert!(
        pull.trim_end().ends_with("COMMIT;"),
        "no pull transaction in bench/limit/pull.sql"
    );
    let db = Database::create(admin, &format!("w2l_{n}"));
    seed(&db.url, 10, n.max(1), jobs, 0);
    let dir = tempdir("w2l");
    let script = dir.join("pull_only.sql");
    std::fs::write(&script, pull).expect("the pull's script");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("pgbench's log directory");
    pgbench_logged(&db.url, &script, n, secs, Some(&logs.join("pull")));
    // One file per pgbench thread; each line is `client run latency_us script epoch us`.
    let mut lat: Vec<f64> = std::fs::read_dir(&logs)
        .expect("pgbench's log directory")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
                .map(|us| us / 1000.0)
                .collect::<Vec<_>>()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!lat.is_empty(), "pgbench logged no pulls");
    lat.sort_by(f64::total_cmp);
    (pct(&lat, 0.5), pct(&lat, 0.99))
}

/// A pgbench `script` at `n` clients on a freshly seeded database.
fn run_twin(
    admin: &str,
    tag: &str,
    script: &str,
    n: u32,
    jobs: u32,
    history: u32,
    secs: u64,
) -> f64 {
    let db = Database::create(admin, &format!("{tag}_{n}"));
    seed(
        &db.url,
        if jobs == 0 { n } else { 10 },
        n.max(1),
        jobs,
        history,
    );
    pgbench(&db.url, script, n, secs)
}

/// A fresh scratch directory for an embedded store.
fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clawrk-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The steps of one lifecycle as the client sees them, in order.
const STEPS: [&str; 5] = ["run", "pull", "accept", "submit", "verdict"];

/// `n` sender/worker pairs run whole lifecycles for `secs` (run, pull, accept, submit, then follow
/// the log to the verdict); lifecycles per second, and each step's mean and p99 in milliseconds
/// (where a lifecycle's time goes: the verdict's wait includes the verification workers' queue).
async fn lifecycles(base: &str, n: u32, secs: u64) -> (f64, Value) {
    let end = Instant::now() + Duration::from_secs(secs);
    let tasks = (0..n).map(|i| {
        let (sender, worker) = (client(base, &sender_key(i)), client(base, &worker_key(i)));
        tokio::spawn(async move {
            let mut k = 0u64;
            let mut steps: Vec<[f64; 5]> = Vec::new();
            while Instant::now() < end {
                k += 1;
                let mut t = [0.0; 5];
                let mut at = Instant::now();
                let mut lap = |i: usize| {
                    t[i] = at.elapsed().as_secs_f64() * 1000.0;
                    at = Instant::now();
                };
                queue(&sender, format!("write a short report number {i}-{k}")).await;
                lap(0);
                let Some(held) = worker.pull(&PullRequest::default()).await.expect("pull") else {
                    continue;
                };
                lap(1);
                let id = held.job.id;
                worker
                    .accept(id, &AgentChoice::default())
                    .await
                    .expect("accept");
                lap(2);
                worker
                    .submit(id, &SubmitRequest::text("a short report with the report"))
                    .await
                    .expect("submit");
                lap(3);
                // Wait for the verdict the way a client does: follow the job's log to its end.
                let mut log = Box::pin(worker.follow_logs(id));
                while let Some(ev) = log.next().await {
                    if matches!(ev, Ok(LogEvent::Verdict(_) | LogEvent::End(_)) | Err(_)) {
                        break;
                    }
                }
                lap(4);
                steps.push(t);
            }
            steps
        })
    });
    let started = Instant::now();
    let all: Vec<[f64; 5]> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap_or_default())
        .collect();
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let mut steps = json!({});
    for (i, name) in STEPS.iter().enumerate() {
        let mut v: Vec<f64> = all.iter().map(|t| t[i]).collect();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        steps[*name] = json!({ "mean_ms": round(mean), "p99_ms": round(pct(&v, 0.99)) });
    }
    (rate, steps)
}

/// W3 at `n` pairs, its own twin and the limit twin; with `sqlite`, also on the embedded store.
async fn w3(admin: &str, n: u32, secs: u64, sqlite: bool) -> Value {
    let db = Database::create(admin, "w3");
    seed(&db.url, n, n, 0, 0);
    let server = Server::start(&db.url).await;
    let (rate, steps) = lifecycles(&server.base, n, secs).await;
    drop(server);
    drop(db);
    let twin = run_twin(admin, "w3t", "lifecycle.sql", n, 0, 0, secs);
    let limit = run_twin(admin, "w3l", "limit/lifecycle.sql", n, 0, 0, secs);
    let mut out = json!({ "n": n, "jobs_per_s": round(rate), "twin_per_s": round(twin),
            "ratio": round(rate / twin), "limit_per_s": round(limit), "limit_ratio": round(rate / limit), "steps": steps });
    if sqlite {
        let dir = tempdir("w3");
        let path = dir.join("clawrk.db");
        seed_sqlite(&path, n, n, 0);
        let server = Server::start_on(On::Sqlite(&path)).await;
        let (rate_sqlite, steps_sqlite) = lifecycles(&server.base, n, secs).await;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        out["sqlite_jobs_per_s"] = json!(round(rate_sqlite));
        out["sqlite_steps"] = steps_sqlite;
    }
    out
}

/// W4: the sender's listing latency with `history` jobs, and W1 (N = 16) on the same database.
async fn w4(admin: &str, history: u32, secs: u64) -> Value {
    let db = Database::create(admin, &format!("w4_{history}"));
    seed(&db.url, 10, 16, 50_000, history);
    let server = Server::start(&db.url).await;
    let c = client(&server.base, &sender_key(0));
    let query = JobsQuery {
        page: PageRequest {
            limit: Some(50),
            before: None,
        },
        ..JobsQuery::default()
    };
    let mut lat = Vec::new();
    // Warm up (connections open on demand), then measure.
    for i in 0..330 {
        let t = Instant::now();
        c.jobs(&query).await.expect("list");
        if i >= 30 {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    let (rate, _, _) = pulls(&server.base, 16, secs).await;
    json!({ "history": history, "list_p50_ms": round(pct(&lat, 0.5)), "list_p99_ms": round(pct(&lat, 0.99)),
            "w1_pulls_per_s": round(rate) })
}

/// W5: confirmed runs/s at 16 clients, all from one sender (hot) or spread over 1,000.
async fn w5(admin: &str, secs: u64) -> Value {
    let mut out = json!({});
    for (label, senders) in [("hot", 1u32), ("spread", 1000u32)] {
        let db = Database::create(admin, &format!("w5_{label}"));
        seed(&db.url, senders, 1, 0, 0);
        let server = Server::start(&db.url).await;
        let done = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + Duration::from_secs(secs);
        // One client per sender this task uses (the hot one shares a key).
        let tasks = (0..16u32).map(|c| {
            let (base, done) = (server.base.clone(), done.clone());
            tokio::spawn(async move {
                let mut clients = std::collections::HashMap::new();
                let mut k = 0u32;
                while Instant::now() < end {
                    k += 1;
                    let s = (c * 7919 + k) % senders;
                    let sender = clients
                        .entry(s)
                        .or_insert_with(|| client(&base, &sender_key(s)));
                    queue(sender, format!("report {c}-{k}")).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        let started = Instant::now();
        futures::future::join_all(tasks).await;
        out[label] = json!(round(
            done.load(Ordering::SeqCst) as f64 / started.elapsed().as_secs_f64()
        ));
    }
    let ratio = out["hot"].as_f64().unwrap_or(0.0) / out["spread"].as_f64().unwrap_or(1.0);
    out["ratio"] = json!(round(ratio));
    out
}

/// W8: `subs` concurrent SSE streams on one job: server memory per idle subscriber, and the p99
/// time from the submission to each stream's verdict.
async fn w8(admin: &str, subs: usize) -> Value {
    let db = Database::create(admin, "w8");
    seed(&db.url, 1, 1, 0, 0);
    let server = Server::start(&db.url).await;
    let (sender, worker) = (
        client(&server.base, &sender_key(0)),
        client(&server.base, &worker_key(0)),
    );
    let id = queue(&sender, "write a report".into()).await;
    worker
        .claim(id, &AgentChoice::default())
        .await
        .expect("claim");
    worker
        .accept(id, &AgentChoice::default())
        .await
        .expect("accept");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut streams = Vec::new();
    let mut half = 0;
    for i in 0..subs {
        if i == subs / 2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            half = server.rss_kib();
        }
        let tx = tx.clone();
        let mut log = Box::pin(sender.follow_logs(id));
        streams.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = log.next().await {
                if matches!(ev, LogEvent::Verdict(_)) {
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    let submitted = Instant::now();
    worker
        .submit(id, &SubmitRequest::text("a report"))
        .await
        .expect("submit");
    let mut delays = Vec::new();
    while let Ok(Some(t)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        delays.push(t.duration_since(submitted).as_secs_f64() * 1000.0);
    }
    delays.sort_by(f64::total_cmp);
    json!({ "subscribers": subs, "delivered": delays.len(),
            "kib_per_subscriber": round(after.saturating_sub(before) as f64 / subs as f64),
            // The second half's growth alone: what one more subscriber costs, without what the
            // first connections on each thread cost once (allocator arenas, buffers' pools).
            "kib_per_subscriber_marginal": round(after.saturating_sub(half) as f64 / (subs - subs / 2) as f64),
            "delivery_p99_ms": round(pct(&delays, 0.99)) })
}

fn machine() -> Value {
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    json!({ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "mem_gib": mem.map(|k| round(k as f64 / 1048576.0)) })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let admin = args.database_url.clone();
    psql(&admin, "SELECT 1");
    let started = Instant::now();
    let secs = args.seconds.unwrap_or(if args.quick { 4 } else { 8 });
    let mut results = json!({ "machine": machine(), "quick": args.quick, "seconds_per_run": secs });
    let mut rows: Vec<String> = Vec::new();

    let on = |w: &str| args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(w));
    let ns: &[u32] = match (on("w1"), args.quick) {
        (false, _) => &[],
        (true, true) => &[16],
        (true, false) => &[1, 4, 16, 64],
    };
    let mut w1s = Vec::new();
    for &n in ns {
        let r = w1(
            &admin,
            n,
            if args.quick { 30_000 } else { 100_000 },
            0,
            secs,
            n == 16,
        )
        .await;
        rows.push(format!(
            "W1 pull+reject N={n:<3} {:>8} cycles/s  twin {:>8}/s (ratio {:>5})  limit {:>8}/s (ratio {:>5})  p50 {} ms  p99 {} ms",
            r["pulls_per_s"], r["twin_per_s"], r["ratio"], r["limit_per_s"], r["limit_ratio"], r["p50_ms"], r["p99_ms"]
        ));
        if n == 16 {
            rows.push(format!(
                "W2 pull latency N=16 p50 {} ms  p99 {} ms  the limit twin's pull alone p50 {} ms  p99 {} ms",
                r["p50_ms"], r["p99_ms"], r["limit_pull_p50_ms"], r["limit_pull_p99_ms"]
            ));
            rows.push(format!(
                "W1 embedded SQLite N=16 {:>8} cycles/s ({} × PostgreSQL)  p99 {} ms",
                r["sqlite_pulls_per_s"], r["sqlite_vs_postgres"], r["sqlite_p99_ms"]
            ));
        }
        w1s.push(r);
    }
    let w16 = w1s
        .iter()
        .find(|r| r["n"] == 16)
        .cloned()
        .unwrap_or(Value::Null);
    if !w1s.is_empty() {
        results["w1"] = json!(w1s);
        results["w1_pulls_per_s"] = w16["pulls_per_s"].clone();
        results["w1_twin_per_s"] = w16["twin_per_s"].clone();
        results["w1_ratio"] = w16["ratio"].clone();
        results["w1_limit_per_s"] = w16["limit_per_s"].clone();
        results["w1_limit_ratio"] = w16["limit_ratio"].clone();
        results["w1_sqlite_pulls_per_s"] = w16["sqlite_pulls_per_s"].clone();
        results["w1_sqlite_vs_postgres"] = w16["sqlite_vs_postgres"].clone();
        results["w2_p50_ms"] = w16["p50_ms"].clone();
        results["w2_p99_ms"] = w16["p99_ms"].clone();
        results["w2_limit_pull_p50_ms"] = w16["limit_pull_p50_ms"].clone();
        results["w2_limit_pull_p99_ms"] = w16["limit_pull_p99_ms"].clone();
    }

    if on("w3") {
        // N = 1 (full runs): one pair alone, so each step's time is its own latency, not a queue's.
        let ns: &[u32] = if args.quick { &[16] } else { &[1, 16] };
        for &n in ns {
            let r3 = w3(&admin, n, secs, true).await;
            rows.push(format!(
                "W3 lifecycle N={n:<2} {:>6} jobs/s  twin {:>6}/s (ratio {})  limit {:>6}/s (ratio {})  embedded SQLite {} jobs/s",
                r3["jobs_per_s"], r3["twin_per_s"], r3["ratio"], r3["limit_per_s"], r3["limit_ratio"], r3["sqlite_jobs_per_s"]
            ));
            let steps = STEPS
                .iter()
                .map(|s| format!("{s} {}", r3["steps"][*s]["mean_ms"]))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push(format!("W3 N={n} mean ms per step: {steps}"));
            if n != 16 {
                results[format!("w3_n{n}")] = r3;
                continue;
            }
            results["w3_jobs_per_s"] = r3["jobs_per_s"].clone();
            results["w3_twin_per_s"] = r3["twin_per_s"].clone();
            results["w3_ratio"] = r3["ratio"].clone();
            results["w3_limit_per_s"] = r3["limit_per_s"].clone();
            results["w3_limit_ratio"] = r3["limit_ratio"].clone();
            results["w3_sqlite_jobs_per_s"] = r3["sqlite_jobs_per_s"].clone();
            results["w3"] = r3;
        }
    }

    if !args.quick && on("w4") {
        let small = w4(&admin, 10_000, secs).await;
        let large = w4(&admin, 1_000_000, secs).await;
        let ratio = large["w1_pulls_per_s"].as_f64().unwrap_or(0.0)
            / small["w1_pulls_per_s"].as_f64().unwrap_or(1.0);
        rows.push(format!(
            "W4 growth 10k: list p99 {} ms, W1 {}/s; 1M: list p99 {} ms, W1 {}/s; W1 1M/10k {:.2}",
            small["list_p99_ms"],
            small["w1_pulls_per_s"],
            large["list_p99_ms"],
            large["w1_pulls_per_s"],
            ratio
        ));
        results["w4"] = json!({ "10k": small, "1m": large, "w1_ratio_1m_10k": round(ratio) });
    }
    if !args.quick && on("w5") {
        let r5 = w5(&admin, secs).await;
        rows.push(format!(
            "W5 money hot {} runs/s, spread {} runs/s, ratio {}",
            r5["hot"], r5["spread"], r5["ratio"]
        ));
        results["w5"] = r5;
    }
    if !args.quick && on("w8") {
        let r8 = w8(&admin, 1000).await;
        rows.push(format!(
            "W8 SSE {} subscribers: {} KiB each, delivery p99 {} ms ({} delivered)",
            r8["subscribers"], r8["kib_per_subscriber"], r8["delivery_p99_ms"], r8["delivered"]
        ));
        results["w8"] = r8;
    }
    results["elapsed_s"] = json!(started.elapsed().as_secs());
    println!("clawrk benchmarks ({} s)", started.elapsed().as_secs());
    for r in &rows {
        println!("  {r}");
    }
    // Only a full run replaces the recorded results.
    let full = !args.quick && args.only.is_empty();
    let out = args
        .out
        .clone()
        .or_else(|| full.then(|| repo_root().join("bench/results/latest.json")));
    if let Some(path) = out {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&results).unwrap_or_default(),
        )
        .expect("write results");
        println!("  results: {}", path.display());
    }
    println!("{results}");
}
