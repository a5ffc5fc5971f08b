//! The real `clawrk` binary against a spawned `clawrk-server` (embedded store, heuristic LLM): a
//! sender's and an agent operator's whole flow, the one-line errors with their exit codes, pipes,
//! stdin and URL mistakes, `wait` across a failed attempt, and `clawrk agent run` working jobs
//! (a failing command, one past its deadline, a restart while a job is accepted).
//!
//! The server binary is the one `cargo test --workspace` builds next to `clawrk`.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_BIN_EXE_clawrk");

fn server_bin() -> PathBuf {
    let p = Path::new(CLI).with_file_name("clawrk-server");
    assert!(
        p.exists(),
        "{} is missing: build it first (`cargo build -p clawrk-server`; `cargo test --workspace` does)",
        p.display()
    );
    p
}

struct Server {
    child: Child,
    url: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("clawrk.db");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server_bin())
            .env("CLAWRK_DB_PATH", &db)
            .env("CLAWRK_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .env_remove("OPENAI_API_KEY")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            url,
            db,
            _dir: dir,
        }
    }

    fn admin(&self, args: &[&str]) -> Value {
        let out = Command::new(server_bin())
            .env("CLAWRK_DB_PATH", &self.db)
            .env_remove("DATABASE_URL")
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// One person at a terminal: their own HOME (so their own ~/.clawrk).
struct Person {
    home: tempfile::TempDir,
    url: String,
}

impl Person {
    fn new(server: &Server) -> Person {
        Person {
            home: tempfile::tempdir().unwrap(),
            url: server.url.clone(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(CLI);
        cmd.env("HOME", self.home.path())
            .env("CLAWRK_API_URL", &self.url)
            .env_remove("CLAWRK_API_KEY")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Logs in with a key.
    fn login(server: &Server, key: &str) -> Person {
        let p = Person::new(server);
        p.ok(&["login", "--key", key]);
        p
    }

    /// A command for this person (HOME, server), to spawn.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CLI);
        cmd.env("HOME", self.home.path())
            .env("CLAWRK_API_URL", &self.url)
            .env_remove("CLAWRK_API_KEY")
            .args(args);
        cmd
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "clawrk {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A user with `cents` and a logged-in person.
fn user(server: &Server, name: &str, cents: i64) -> Person {
    let key = server.admin(&["create-user", name])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    if cents > 0 {
        server.admin(&["credit", name, &cents.to_string()]);
    }
    Person::login(server, &key)
}

/// A haiku the offline verifier passes for "Write a haiku about the sea".
const HAIKU: &str =
    "Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home";

#[test]
fn a_sender_and_an_agent_operator_walk_a_job_through() {
    let server = Server::start();
    let alice_key = server.admin(&["create-user", "alice"])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_key = server.admin(&["create-user", "bob"])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    server.admin(&["credit", "alice", "2000"]);
    let alice = Person::new(&server);
    let bob = Person::new(&server);

    // Not logged in yet: a clear error and exit code 3.
    let o = alice.run(&["whoami"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("clawrk login"));

    // Login with the key on stdin (no terminal: nothing to hide); stored owner-only.
    let o = alice.run_with(&["login"], Some(&format!("{alice_key}\n")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(&alice_key), "the key is never echoed");
    let creds = alice.home.path().join(".clawrk/credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(alice.ok(&["whoami"]).contains("alice"));
    assert!(alice.ok(&["balance"]).contains("$20.00"));

    // Run: estimate, confirm with -y; the job is posted and paid.
    let posted = alice.ok(&["run", "Write a haiku about the sea", "-y"]);
    assert!(
        posted.contains("Posted") && posted.contains("queued"),
        "{posted}"
    );
    let jobs: Value = serde_json::from_str(&alice.ok(&["--json", "jobs", "-s", "queued"])).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_string();
    let price = jobs[0]["price_cents"].as_i64().unwrap();

    // Without a terminal and without --yes, `run` refuses (nothing is posted).
    let o = alice.run_with(&["run", "Something else entirely"], Some("y\n"));
    assert_eq!(code(&o), 12, "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_str::<Value>(&alice.ok(&["--json", "jobs"]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bob logs in with --key, creates an agent and uses it, pulls, accepts and submits by memory.
    bob.ok(&["login", "--key", &bob_key]);
    bob.ok(&[
        "agents",
        "create",
        "poet",
        "--personality",
        "haiku poems about the sea",
    ]);
    assert!(bob.ok(&["use", "poet"]).contains("poet"));
    assert!(bob.ok(&["agents"]).contains("* poet"));
    let pulled = bob.ok(&["pull"]);
    assert!(
        pulled.contains(&id) && pulled.contains("left to accept"),
        "{pulled}"
    );
    assert!(bob.ok(&["accept"]).contains("Accepted"));
    let work: Value = serde_json::from_str(&bob.ok(&["--json", "jobs", "--work"])).unwrap();
    assert_eq!(work[0]["id"], id.as_str(), "the agent's own work list");
    let out_file = bob.home.path().join("haiku.txt");
    std::fs::write(&out_file, HAIKU.replace("\\n", "\n")).unwrap();
    assert!(
        bob.ok(&["submit", "-f", out_file.to_str().unwrap()])
            .contains("Submitted")
    );

    // Alice waits for the verdict: exit 0 on verified, and she sees the output.
    let waited = alice.ok(&["wait", &id]);
    assert!(
        waited.contains("verdict: PASSED") && waited.contains("Verified."),
        "{waited}"
    );
    assert!(
        waited.contains("white foam breathes upon the sand"),
        "{waited}"
    );
    let shown = alice.ok(&["job", &id]);
    assert!(
        shown.contains("white foam breathes upon the sand") && shown.contains("requirements"),
        "{shown}"
    );
    let logs = alice.ok(&["logs", &id]);
    assert!(logs.contains("[1] info"), "{logs}");
    let fee = price * 20 / 100 + 50;
    let earned: Value = serde_json::from_str(&bob.ok(&["--json", "balance"])).unwrap();
    assert_eq!(earned["balance_cents"], price - fee);
    assert!(bob.ok(&["balance"]).contains("earning"));

    // Nothing left to pull: exit 10, with a pointer to claim.
    let o = bob.run(&["pull"]);
    assert_eq!(code(&o), 10);
    assert!(stdout(&o).contains("claim"), "{}", stdout(&o));

    // 402: the pending job's id and what to do, in dollars.
    let o = alice.run(&["run", "A very expensive study", "--price", "1000", "-y"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let pending: Value =
        serde_json::from_str(&alice.ok(&["--json", "jobs", "-s", "pending_payment"])).unwrap();
    let pending_id = pending[0]["id"].as_str().unwrap();
    assert!(
        stderr(&o).contains(pending_id)
            && stderr(&o).contains("clawrk pay")
            && stderr(&o).contains("$1000.00"),
        "{}",
        stderr(&o)
    );

    // Not found, unknown agent, logout.
    assert_eq!(
        code(&alice.run(&["job", "01a22221-4465-7399-b742-bba004ae816c"])),
        6
    );
    assert_eq!(code(&bob.run(&["use", "nobody"])), 6);
    assert!(alice.ok(&["logout"]).contains("Logged out"));
    assert_eq!(code(&alice.run(&["whoami"])), 3);
}

#[test]
fn an_unreachable_server_and_a_bad_key_are_one_line_errors() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(CLI)
        .env("HOME", home.path())
        .env("CLAWRK_API_URL", format!("http://127.0.0.1:{dead}"))
        .env("CLAWRK_API_KEY", "ck_whatever")
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(code(&o), 7);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach"), "{err}");

    let server = Server::start();
    let o = Command::new(CLI)
        .env("HOME", home.path())
        .env("CLAWRK_API_URL", &server.url)
        .env("CLAWRK_API_KEY", "ck_not_a_key")
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(code(&o), 3);

    // URL mistakes: no scheme is explained; a trailing /api is fine.
    let key = server.admin(&["create-user", "carol"])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let with = |url: &str| {
        Command::new(CLI)
            .env("HOME", home.path())
            .env("CLAWRK_API_URL", url)
            .env("CLAWRK_API_KEY", &key)
            .arg("whoami")
            .output()
            .unwrap()
    };
    let o = with(server.url.trim_start_matches("http://"));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("http://"), "{}", stderr(&o));
    let o = with(&format!("{}/api", server.url));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn pipes_stdin_dollars_and_the_thin_commands() {
    let server = Server::start_with(&[("CLAWRK_PAYMENTS", "dev")]);
    let alice = user(&server, "alice", 0);
    let bob = user(&server, "bob", 0);

    // Dollars in, dollars out.
    assert!(alice.ok(&["topup", "25"]).contains("$25.00"));
    assert!(alice.ok(&["topup", "$5.50"]).contains("$30.50"));
    assert_eq!(code(&alice.run(&["topup", "five"])), 2);
    assert!(alice.ok(&["withdraw", "5.50"]).contains("$25.00"));

    // A long ledger into `head -1`: quiet, exit 0, no panic.
    for _ in 0..40 {
        server.admin(&["credit", "alice", "1"]);
    }
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{CLI}' balance --limit 200 | head -1; exit ${{PIPESTATUS[0]}}"
        ))
        .env("HOME", alice.home.path())
        .env("CLAWRK_API_URL", &alice.url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1);

    // The prompt from stdin; the output from stdin.
    let o = alice.run_with(&["run", "-", "-y"], Some("Write a haiku about the sea\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Posted"), "{}", stdout(&o));
    let o = alice.run_with(&["run", "-", "-y", "--env", "NOT_A_PAIR"], Some("x"));
    assert_eq!(code(&o), 2);
    let board = bob.ok(&["board"]);
    assert!(board.contains("Haiku"), "{board}");
    bob.ok(&["pull"]);
    bob.ok(&["accept"]);
    let o = bob.run(&["submit"]);
    assert_eq!(code(&o), 2, "no output given is a usage error");
    let o = bob.run_with(&["submit", "-f", "-"], Some(&HAIKU.replace("\\n", "\n")));
    assert!(o.status.success(), "{}", stderr(&o));

    // Paging: --limit announces more, --all gets everything.
    alice.ok(&["run", "Write a limerick about the sea", "-y"]);
    let one = alice.ok(&["jobs", "--limit", "1"]);
    assert!(one.contains("(more"), "{one}");
    let all: Value = serde_json::from_str(&alice.ok(&["--json", "jobs", "--all"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Agents: show, update, delete; the directory; verify; completions.
    bob.ok(&["agents", "create", "scribe"]);
    assert!(bob.ok(&["agents", "show", "scribe"]).contains("scribe"));
    assert!(
        bob.ok(&["agents", "update", "scribe", "--personality", "terse"])
            .contains("Updated")
    );
    assert_eq!(code(&bob.run(&["agents", "update", "scribe"])), 2);
    assert!(bob.ok(&["agents", "directory"]).contains("scribe"));
    assert!(bob.ok(&["agents", "delete", "scribe"]).contains("Deleted"));
    assert_eq!(code(&bob.run(&["agents", "show", "scribe"])), 6);
    let verdict = alice.ok(&[
        "verify",
        "--requirements",
        "a haiku about the sea",
        "-t",
        &HAIKU.replace("\\n", "\n"),
    ]);
    assert!(verdict.contains("verdict:"), "{verdict}");
    let completions = alice.ok(&["completions", "bash"]);
    assert!(completions.contains("clawrk"), "{completions}");
}

#[test]
fn wait_reports_a_failed_attempt_once_and_follows_the_next() {
    let server = Server::start();
    let alice = user(&server, "alice", 2000);
    let bob = user(&server, "bob", 0);
    alice.ok(&["run", "Write a haiku about the sea", "-y"]);
    let jobs: Value = serde_json::from_str(&alice.ok(&["--json", "jobs"])).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_string();

    // The first attempt fails verification.
    bob.ok(&["pull"]);
    bob.ok(&["accept"]);
    bob.ok(&["submit", "-t", "nothing to do with anything"]);
    let waiter = alice
        .command(&["wait", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give `wait` time to see the failed verdict and the re-queued job, then a second attempt.
    std::thread::sleep(Duration::from_secs(4));
    let o = bob.run(&["claim", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    bob.ok(&["accept"]);
    bob.ok(&["submit", "-t", &HAIKU.replace("\\n", "\n")]);
    let o = waiter.wait_with_output().unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out.matches("verdict: FAILED").count(), 1, "{out}");
    assert_eq!(out.matches("verdict: PASSED").count(), 1, "{out}");
    assert_eq!(
        err.matches("re-queued (attempt 1/3 failed)").count(),
        1,
        "{err}"
    );
    assert!(out.contains("Verified."), "{out}");

    // On a job waiting for payment, `wait` says what it waits for.
    let o = alice.run(&["run", "A very expensive study", "--price", "1000", "-y"]);
    assert_eq!(code(&o), 4);
    let pending: Value =
        serde_json::from_str(&alice.ok(&["--json", "jobs", "-s", "pending_payment"])).unwrap();
    let pid = pending[0]["id"].as_str().unwrap().to_string();
    let mut waiter = alice
        .command(&["wait", &pid])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = waiter.kill();
    let o = waiter.wait_with_output().unwrap();
    assert!(
        stderr(&o).contains("waiting for payment") && stderr(&o).contains("clawrk pay"),
        "{}",
        stderr(&o)
    );
}

/// The operator's command: does the work, fails on "fail-me", hangs on "slow-me".
const WORKER: &str = r#"input=$(cat)
case "$input" in
  *fail-me*) echo "cannot do this one" >&2; exit 3 ;;
  *slow-me*) sleep 60 ;;
esac
test -n "$CLAWRK_JOB_ID" || exit 9
printf 'Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home (%s)\n' "$SECRET"
"#;

#[test]
fn agent_run_works_jobs_with_a_command() {
    let server = Server::start();
    let alice = user(&server, "alice", 10_000);
    let bob = user(&server, "bob", 0);
    let script = bob.home.path().join("worker.sh");
    std::fs::write(&script, WORKER).unwrap();
    let exec = format!("sh {}", script.display());

    // Three jobs: one done, one the command refuses, one that outlasts its deadline.
    alice.ok(&[
        "run",
        "Write a haiku about the sea",
        "-y",
        "--env",
        "SECRET=s3cret",
    ]);
    alice.ok(&["run", "fail-me: a haiku about the sea", "-y"]);
    alice.ok(&[
        "run",
        "slow-me: a haiku about the sea",
        "-y",
        "--time-limit",
        "60",
    ]);
    let o = bob.run(&[
        "--json",
        "agent",
        "run",
        "--exec",
        &exec,
        "--max-jobs",
        "3",
        "--deadline-margin",
        "57",
    ]);
    let events: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "submitted").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "gave_up").count(),
        2,
        "{kinds:?}"
    );
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "gave_up")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("cannot do this one")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("margin")), "{reasons:?}");
    let verdict = events
        .iter()
        .find(|e| e["event"] == "verdict")
        .expect("the verdict came");
    assert_eq!(verdict["passed"], true, "{verdict}");
    let jobs: Value = serde_json::from_str(&alice.ok(&["--json", "jobs", "--all"])).unwrap();
    let done = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "verified")
        .expect("one job verified");
    assert!(
        done["output_text"].as_str().unwrap().contains("s3cret"),
        "the job's env vars reach the command"
    );

    // A restart while a job is accepted: the next run picks it up and finishes it.
    alice.ok(&["run", "Write another haiku about the sea", "-y"]);
    let mut first = bob
        .command(&["agent", "run", "--exec", "sleep 60", "--max-jobs", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let accepted = || {
        let work: Value =
            serde_json::from_str(&bob.ok(&["--json", "jobs", "--work", "-s", "accepted"])).unwrap();
        work.as_array().unwrap().len()
    };
    let started = Instant::now();
    while accepted() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job was accepted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let o = bob.run(&["--json", "agent", "run", "--exec", &exec, "--max-jobs", "0"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("\"resume\"") && out.contains("\"submitted\""),
        "{out}"
    );
    assert_eq!(accepted(), 0);
}

/// A receiver on loopback that answers 200 to every request and counts them.
fn receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

#[test]
fn webhooks_are_managed_from_the_cli() {
    let server = Server::start_with(&[
        ("CLAWRK_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("CLAWRK_WEBHOOK_RETRY_SECONDS", "0.2"),
    ]);
    let alice = user(&server, "alice", 1_000);
    let (url, seen) = receiver();
    let added: Value = serde_json::from_str(&alice.ok(&[
        "--json",
        "webhooks",
        "add",
        &url,
        "--events",
        "job.queued,job.cancelled",
        "--description",
        "mine",
    ]))
    .unwrap();
    let id = added["id"].as_str().unwrap().to_string();
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let text = alice.ok(&["webhooks", "add", &url]);
    assert!(text.contains("signing secret (shown once"), "{text}");
    let list = alice.ok(&["webhooks"]);
    assert!(
        list.contains(&url) && list.contains("[job.queued,job.cancelled]"),
        "{list}"
    );
    assert!(!list.contains("whsec_"), "{list}");

    alice.ok(&["run", "Write a haiku about the sea", "-y"]);
    let started = Instant::now();
    let delivered = loop {
        let ds: Value =
            serde_json::from_str(&alice.ok(&["--json", "webhooks", "deliveries", &id])).unwrap();
        if ds[0]["state"] == "delivered" {
            break ds;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{ds}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(delivered.as_array().unwrap().len(), 1);
    assert_eq!(delivered[0]["event_type"], "job.queued");
    let text = alice.ok(&["webhooks", "deliveries", &id]);
    assert!(
        text.contains("job.queued") && text.contains("delivered"),
        "{text}"
    );
    let delivery = delivered[0]["id"].as_str().unwrap();
    assert!(
        alice
            .ok(&["webhooks", "redeliver", &id, delivery])
            .contains("Queued again")
    );
    let before = seen.load(std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    while seen.load(std::sync::atomic::Ordering::SeqCst) == before {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not redelivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    assert!(
        alice
            .ok(&["webhooks", "update", &id, "--disable"])
            .contains("(disabled)")
    );
    assert_eq!(code(&alice.run(&["webhooks", "update", &id])), 2);
    let rotated = alice.ok(&["webhooks", "update", &id, "--rotate-secret"]);
    assert!(
        rotated.contains("new signing secret (shown once): whsec_"),
        "{rotated}"
    );
    // Refused input and someone else's endpoint: the API's errors, as exit codes.
    let bad = alice.run(&["webhooks", "add", "ftp://example.com/"]);
    assert_eq!(code(&bad), 1, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("http"), "{}", stderr(&bad));
    assert_eq!(code(&alice.run(&["webhooks", "rm", "not-an-id"])), 2);
    let bob = user(&server, "bob", 0);
    assert_eq!(code(&bob.run(&["webhooks", "rm", &id])), 6);
    assert!(alice.ok(&["webhooks", "rm", &id]).contains("Deleted"));
    assert_eq!(code(&alice.run(&["webhooks", "deliveries", &id])), 6);
}

/// Reads the job's file, writes a file of its own and prints a haiku.
const FILE_WORKER: &str = r#"#!/bin/sh
set -e
test -f "$CLAWRK_INPUT_DIR/notes.txt"
tr 'a-z' 'A-Z' < "$CLAWRK_INPUT_DIR/notes.txt" > "$CLAWRK_OUTPUT_DIR/summary.txt"
printf 'Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home\n'
"#;

#[test]
fn files_travel_with_jobs_both_ways() {
    let server = Server::start();
    let alice = user(&server, "alice", 10_000);
    let bob = user(&server, "bob", 0);
    let notes = alice.home.path().join("notes.txt");
    std::fs::write(&notes, "the sea at dawn, grey waves\n").unwrap();
    let posted: Value = serde_json::from_str(&alice.ok(&[
        "--json",
        "run",
        "Write a haiku about the sea from my notes",
        "-y",
        "--attach",
        notes.to_str().unwrap(),
    ]))
    .unwrap();
    let job = posted["id"].as_str().unwrap().to_string();
    assert_eq!(posted["attachments"][0]["filename"], "notes.txt");
    assert_eq!(posted["attachments"][0]["content_type"], "text/plain");
    let shown = alice.ok(&["job", &job]);
    assert!(
        shown.contains("file: notes.txt (text/plain, 28 B)"),
        "{shown}"
    );

    // The agent runtime hands the command the job's files and submits the files it writes.
    let script = bob.home.path().join("worker.sh");
    std::fs::write(&script, FILE_WORKER).unwrap();
    let exec = format!("sh {}", script.display());
    let o = bob.run(&["--json", "agent", "run", "--exec", &exec, "--max-jobs", "1"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let done: Value = serde_json::from_str(&alice.ok(&["--json", "job", &job])).unwrap();
    assert_eq!(done["status"], "verified", "{done}");
    let out = &done["output_attachments"][0];
    assert_eq!(out["filename"], "summary.txt");
    let out_id = out["id"].as_str().unwrap();
    let saved = alice.home.path().join("got.txt");
    alice.ok(&["files", "get", out_id, "-o", saved.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap(),
        "THE SEA AT DAWN, GREY WAVES\n"
    );
    assert_eq!(
        alice.ok(&["files", "get", out_id, "-o", "-"]),
        "THE SEA AT DAWN, GREY WAVES\n"
    );
    assert!(
        alice
            .ok(&["job", &job])
            .contains("output file: summary.txt")
    );
    // Without -o: its own name here, and never over a file that is there already.
    let here = tempfile::tempdir().unwrap();
    let get_here = || {
        alice
            .command(&["files", "get", out_id])
            .current_dir(here.path())
            .output()
            .unwrap()
    };
    assert!(get_here().status.success());
    assert_eq!(
        std::fs::read_to_string(here.path().join("summary.txt")).unwrap(),
        "THE SEA AT DAWN, GREY WAVES\n"
    );
    let again = get_here();
    assert_eq!(code(&again), 2);
    assert!(
        stderr(&again).contains("summary.txt exists here"),
        "{}",
        stderr(&again)
    );
    // Nobody else reads it.
    let carol = user(&server, "carol", 0);
    let denied = carol.run(&["files", "info", out_id]);
    assert_ne!(code(&denied), 0);
    assert!(
        stderr(&denied).contains("file not found"),
        "{}",
        stderr(&denied)
    );

    // By hand: upload, inspect, submit attachments only.
    alice.ok(&["run", "Write a haiku about the sea", "-y"]);
    bob.ok(&["pull"]);
    bob.ok(&["accept"]);
    let haiku = bob.home.path().join("haiku.md");
    std::fs::write(&haiku, HAIKU).unwrap();
    let put = bob.ok(&["files", "put", haiku.to_str().unwrap()]);
    assert!(put.contains("haiku.md  text/markdown"), "{put}");
    let info = bob.ok(&["files", "info", put.split_whitespace().next().unwrap()]);
    assert!(info.contains("sha256 "), "{info}");
    let sent = bob.ok(&["submit", "--attach", haiku.to_str().unwrap()]);
    assert!(sent.contains("Submitted"), "{sent}");
    let missing = bob.run(&["submit", "--attach", "/nonexistent/file.txt"]);
    assert_eq!(code(&missing), 2, "{}", stderr(&missing));
}
