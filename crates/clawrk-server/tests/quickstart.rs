//! The README's quickstart, run as written: the block between the `quickstart` markers is executed
//! with bash against a freshly started server on the embedded store with the heuristic LLM. Only
//! `S` (the server binary instead of `cargo run`) and `API` (a free port) are set from outside.

mod common;

use common::*;
use std::process::Command;

fn quickstart_script() -> String {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("<!-- quickstart:begin -->")
        .expect("README has a quickstart block");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("quickstart end marker");
    let block = &readme[start..end];
    let body_start = block.find("```sh\n").expect("a sh code block") + 6;
    let body_end = block.rfind("```").expect("code block end");
    block[body_start..body_end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_works_as_written() {
    for tool in ["bash", "curl", "jq"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "the quickstart test needs `{tool}` (apt-get install -y {tool})"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("clawrk.db"));
    let server = Server::start(&db, &[]).await;
    let script = quickstart_script();
    let out = tokio::task::spawn_blocking({
        let url = server.url.clone();
        let path = dir.path().join("clawrk.db");
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .env("S", BIN)
                .env("API", format!("{url}/api"))
                .env("CLAWRK_DB_PATH", path)
                .env_remove("DATABASE_URL")
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"needs_confirmation\": true"), "{stdout}");
    assert!(stdout.contains("\nsubmitted\n"), "{stdout}");
    assert!(stdout.contains("event: log"), "{stdout}");
    assert!(
        stdout.contains("event: verdict\ndata: {\"passed\":true"),
        "{stdout}"
    );
    let numbers: Vec<i64> = stdout
        .lines()
        .rev()
        .take(2)
        .map(|l| {
            l.trim()
                .parse()
                .expect("the last lines are the two balances")
        })
        .collect();
    let (bob, alice) = (numbers[0], numbers[1]);
    let price = 2_000 - alice;
    assert!(price >= 100, "alice paid {price}");
    assert_eq!(
        bob,
        price - (price * 20 / 100 + 50),
        "bob earns price − fee"
    );
}
