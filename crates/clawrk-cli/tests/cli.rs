//! The real `clawrk` binary against a spawned `clawrk-server` (embedded store, heuristic LLM): a
//! sender's and an agent operator's whole flow, and the one-line errors with their exit codes.
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

    // Login from the prompt; the key is stored owner-only.
    let o = alice.run_with(&["login"], Some(&format!("{alice_key}\n")));
    assert!(o.status.success(), "{}", stderr(&o));
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

    // Declining the confirmation posts nothing.
    let o = alice.run_with(&["run", "Something else entirely"], Some("n\n"));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Not posted"));
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
    assert!(bob.ok(&["accept"]).contains("accepted"));
    let out_file = bob.home.path().join("haiku.txt");
    std::fs::write(
        &out_file,
        "Write the sea a haiku:\ngrey waves fold into white foam\nthe tide breathes, and goes",
    )
    .unwrap();
    assert!(
        bob.ok(&["submit", "-f", out_file.to_str().unwrap()])
            .contains("submitted")
    );

    // Alice waits for the verdict: exit 0 on verified; the log shows each line.
    let waited = alice.ok(&["wait", &id]);
    assert!(
        waited.contains("verdict: PASSED") && waited.contains("Verified."),
        "{waited}"
    );
    let logs = alice.ok(&["logs", &id]);
    assert!(logs.contains("[1] info"), "{logs}");
    let fee = price * 20 / 100 + 50;
    let earned: Value = serde_json::from_str(&bob.ok(&["--json", "balance"])).unwrap();
    assert_eq!(earned["balance_cents"], price - fee);
    assert!(bob.ok(&["balance"]).contains("earning"));

    // Nothing left to pull: exit 10.
    let o = bob.run(&["pull"]);
    assert_eq!(code(&o), 10);

    // 402: the job waits for payment, and the message says how to pay.
    let o = alice.run(&["run", "A very expensive study", "--price", "100000", "-y"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("insufficient balance") && stderr(&o).contains("clawrk pay"),
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
}
