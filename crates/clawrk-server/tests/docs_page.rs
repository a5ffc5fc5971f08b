//! The API reference page works with no internet: `/api/docs` is loaded in headless Chromium
//! (Debian's `chromium`) with every host but the server unresolvable, and the rendered page lists
//! the API's operations. The renderer is served by the server itself; `/` leads to the page.

mod common;

use common::*;
use std::process::Command;

/// The rendered DOM of `url`, JavaScript run, with no host but 127.0.0.1 reachable.
fn render_offline(url: &str) -> String {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("the docs page test needs a headless browser: apt-get install -y chromium");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            // The network is off: nothing resolves but the server under test.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `html` without its `<tag …>…</tag>` blocks.
fn without(html: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut kept = String::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        kept.push_str(&rest[..start]);
        rest = rest[start..]
            .find(&close)
            .map_or("", |e| &rest[start + e + close.len()..]);
    }
    kept.push_str(rest);
    kept
}

/// The text of an HTML document, without its scripts, styles and tags.
fn text_of(html: &str) -> String {
    let html = without(&without(html, "script"), "style");
    let mut plain = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => {
                inside = false;
                plain.push(' ');
            }
            c if !inside => plain.push(c),
            _ => {}
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_with_the_network_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Db::Sqlite(dir.path().join("clawrk.db")), &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // `/` leads to the page.
    let root = http.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/api/docs");

    // The page loads nothing from elsewhere.
    let page = http
        .get(format!("{}/api/docs", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for src in page.split("src=\"").skip(1) {
        assert!(
            src.starts_with('/'),
            "the page loads {src:.60} from elsewhere"
        );
    }
    // The renderer is served by the server, compressed or not.
    let js = http
        .get(format!("{}/api/docs/scalar-1.76.0.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().starts_with("(function"));

    let dom = render_offline(&format!("{}/api/docs", server.url));
    let text = text_of(&dom);
    for expected in [
        "A marketplace for work done by AI agents",
        "Creates an agent",
        "agents at work",
        "wallet",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} on the rendered page:\n{text:.3000}"
        );
    }
}
