//! Drives the real `clawrk-server` binary: start it on a free port with a given environment, wait
//! for `/api/health`, run its admin commands, restart or kill it, and hand out typed clients
//! (`clawrk-client`); and a wiremock OpenAI server whose verdicts the test controls.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const BIN: &str = env!("CARGO_BIN_EXE_clawrk-server");

/// Where a server keeps its data.
#[derive(Clone)]
pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Db::Sqlite(p) => vec![
                ("CLAWRK_DB_PATH".into(), p.display().to_string()),
                ("DATABASE_URL".into(), String::new()),
            ],
            Db::Postgres(url) => vec![
                ("DATABASE_URL".into(), url.clone()),
                // One directory per database, outside the clone (the default is the working
                // directory's `clawrk-files/`).
                (
                    "CLAWRK_FILES_DIR".into(),
                    std::env::temp_dir()
                        .join(format!(
                            "clawrk-test-files-{}",
                            url.rsplit('/').next().unwrap_or("db")
                        ))
                        .display()
                        .to_string(),
                ),
            ],
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process (killed on drop).
pub struct Server {
    pub child: Child,
    pub url: String,
    pub db: Db,
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts the server and waits until it answers.
    pub async fn start(db: &Db, extra: &[(String, String)]) -> Server {
        let port = free_port();
        let mut env = db.env();
        env.push(("CLAWRK_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("OPENAI_API_KEY".into(), String::new()));
        env.push(("CRON_SECRET".into(), String::new()));
        env.extend(extra.iter().cloned());
        let child = Command::new(BIN)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start clawrk-server");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db: db.clone(),
            env,
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client
                .get(format!("{}/api/health", server.url))
                .send()
                .await
                && r.status() == 200
            {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process and starts it again with the same settings (address and store included).
    pub async fn restart(&mut self) {
        self.kill();
        let addr = self
            .env
            .iter()
            .find(|(k, _)| k == "CLAWRK_ADDR")
            .map(|(_, v)| v.clone())
            .unwrap();
        let extra: Vec<(String, String)> = self.env.clone();
        let started = Instant::now();
        // The port may take a moment to be free again.
        let next = loop {
            let child = Command::new(BIN)
                .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start clawrk-server");
            let mut probe = Server {
                child,
                url: format!("http://{addr}"),
                db: self.db.clone(),
                env: extra.clone(),
            };
            if probe.wait_healthy(Duration::from_secs(10)).await {
                break probe;
            }
            probe.kill();
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not restart"
            );
        };
        // The old value's drop kills a process that is already gone.
        *self = next;
    }

    /// Waits until the server answers its health check (false after `timeout`, or if it exited).
    async fn wait_healthy(&mut self, timeout: Duration) -> bool {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = client.get(format!("{}/api/health", self.url)).send().await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A typed client as `key`.
    pub fn client(&self, key: &str) -> clawrk_client::Client {
        clawrk_client::Client::new(&self.url, key).unwrap()
    }

    /// Kills the process at once (no graceful shutdown): a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `clawrk-server admin …` on a store and returns its JSON.
pub fn admin(db: &Db, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .envs(db.env())
        .env("RUST_LOG", "warn")
        .arg("admin")
        .args(args)
        .output()
        .expect("run admin");
    assert!(
        out.status.success(),
        "admin {args:?} failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin prints one JSON object")
}

/// A user: id and key.
pub struct User {
    pub id: String,
    pub key: String,
}

pub fn create_user(db: &Db, name: &str, cents: i64) -> User {
    let v = admin(db, &["create-user", name]);
    if cents != 0 {
        admin(db, &["credit", name, &cents.to_string()]);
    }
    User {
        id: v["user_id"].as_str().unwrap().into(),
        key: v["api_key"].as_str().unwrap().into(),
    }
}

/// The criteria the fake LLM writes into every job.
pub const CRITERIA: [&str; 2] = ["Mentions the sea", "Has three lines"];

/// A fake OpenAI: structures every prompt the same way; verdicts pass or fail as the test says,
/// optionally after a delay.
#[derive(Clone)]
pub struct FakeLlm {
    pub pass: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    pub verdicts: Arc<AtomicU64>,
    /// Verification requests answer 500 while this is set.
    pub broken: Arc<AtomicBool>,
}

impl Respond for FakeLlm {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&req.body);
        let content = if body.contains("structured_job") {
            json!({
                "title": "Sea haiku",
                "description": "Write a haiku about the sea.",
                "requirements": "Three lines about the sea.",
                "acceptance_criteria": CRITERIA,
                "estimated_price_cents": 500,
                "estimated_time_limit_seconds": 600
            })
        } else {
            self.verdicts.fetch_add(1, Ordering::SeqCst);
            if self.broken.load(Ordering::SeqCst) {
                return ResponseTemplate::new(500).set_body_json(
                    json!({"error": {"message": "model crashed", "type": "server_error"}}),
                );
            }
            let pass = self.pass.load(Ordering::SeqCst);
            json!({
                "passed": pass,
                "reasoning": if pass { "meets both" } else { "does not" },
                "criteria": CRITERIA.iter().map(|c| json!({"criterion": c, "passed": pass, "note": "checked"})).collect::<Vec<_>>()
            })
        };
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()},
                         "finish_reason": "stop", "logprobs": null}]
        });
        ResponseTemplate::new(200)
            .set_body_json(completion)
            .set_delay(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)))
    }
}

/// Starts the fake OpenAI server; returns it with its controls and the env for the server.
pub async fn fake_llm(pass: bool) -> (MockServer, FakeLlm, Vec<(String, String)>) {
    let server = MockServer::start().await;
    let fake = FakeLlm {
        pass: Arc::new(AtomicBool::new(pass)),
        delay_ms: Arc::new(AtomicU64::new(0)),
        verdicts: Arc::new(AtomicU64::new(0)),
        broken: Arc::new(AtomicBool::new(false)),
    };
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    let env = vec![
        ("OPENAI_API_KEY".to_string(), "sk-test".to_string()),
        (
            "OPENAI_BASE_URL".to_string(),
            format!("{}/v1", server.uri()),
        ),
        ("CLAWRK_LLM_MODEL".to_string(), "test-model".to_string()),
        ("CLAWRK_LLM_RETRIES".to_string(), "0".to_string()),
    ];
    (server, fake, env)
}

/// A fresh PostgreSQL database (dropped with the value).
pub fn postgres() -> (clawrk_postgres::testing::TestDatabase, Db) {
    let db = clawrk_postgres::testing::TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let url = db.url.clone();
    (db, Db::Postgres(url))
}

/// Waits until `f` is true.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Environment pairs from string slices.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A TCP proxy in front of PostgreSQL that can be partitioned: while `cut` is set it forwards
/// nothing in either direction and keeps the connections open, as a network partition looks to
/// both ends (no reset, no answer).
pub struct Partition {
    pub port: u16,
    pub cut: Arc<AtomicBool>,
    upstream: String,
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

impl Partition {
    /// Starts the proxy towards `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let upstream_for_route = upstream.clone();
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, flag.clone()));
                tokio::spawn(pump(sr, cw, flag.clone()));
            }
        });
        Partition {
            port,
            cut,
            upstream: upstream_for_route,
        }
    }

    /// `url` routed through the proxy.
    pub fn route(&self, url: &str) -> String {
        url.replacen(&self.upstream, &format!("127.0.0.1:{}", self.port), 1)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if cut.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
