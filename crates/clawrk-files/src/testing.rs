//! A real S3-compatible server for tests: PyPI's `moto[server]`, started on a free port and
//! stopped when dropped. `.ci/run` installs it into `~/.cache/clawrk-moto`; `CLAWRK_MOTO_SERVER`
//! names another `moto_server`. A test that needs it and cannot start it fails, saying why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use object_store::aws::AmazonS3Builder;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    port: u16,
}

fn moto_binary() -> String {
    if let Ok(b) = std::env::var("CLAWRK_MOTO_SERVER") {
        return b;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = format!("{home}/.cache/clawrk-moto/bin/moto_server");
    if std::path::Path::new(&cached).exists() {
        return cached;
    }
    "moto_server".into()
}

impl Moto {
    /// Starts moto; panics with what to do when it cannot.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let bin = moto_binary();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3-compatible test server {bin:?} ({e}). Install it with \
                     `python3 -m venv ~/.cache/clawrk-moto && ~/.cache/clawrk-moto/bin/pip \
                     install 'moto[server]'` (.ci/run does), or set CLAWRK_MOTO_SERVER."
                )
            });
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("the S3-compatible test server {bin:?} exited at start: {status}");
            }
            assert!(
                Instant::now() < until,
                "the S3-compatible test server {bin:?} did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
    }

    /// The environment a server needs to use the bucket (`CLAWRK_FILES_URL` aside).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A builder for the bucket's client, without the process environment.
    pub fn builder(&self) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_region("us-east-1")
    }

    /// The keys under a bucket (to check what storage holds), by a ListObjectsV2 call.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "GET /{bucket}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        answer
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
