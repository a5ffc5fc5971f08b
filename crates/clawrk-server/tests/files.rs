//! Files end to end on the real server binary, on both stores and both file backends (a local
//! directory, and a real S3-compatible server: moto): an upload's round trip with its checksum
//! and byte ranges; the limits; who may download what; a job whose attachments the verifier
//! reads; and uploads that break off (the client goes away, the server is killed) leaving nothing
//! referenced.

mod common;

use clawrk_client::api::*;
use clawrk_client::{ErrorCode, RunOutcome};
use clawrk_files::testing::Moto;
use common::*;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::time::Duration;

/// Where the server keeps files in a scenario.
enum Backend {
    Local,
    S3(Moto),
}

impl Backend {
    fn s3() -> Backend {
        let moto = Moto::start();
        moto.create_bucket("clawrk-files");
        Backend::S3(moto)
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Local => Vec::new(),
            Backend::S3(moto) => {
                let mut env: Vec<(String, String)> = moto
                    .env()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                env.push((
                    "CLAWRK_FILES_URL".into(),
                    "s3://clawrk-files/uploads".into(),
                ));
                env
            }
        }
    }
}

/// The scenario on SQLite and PostgreSQL, each with local files and with S3.
macro_rules! everywhere {
    ($scenario:ident: $($name:ident => $store:ident, $backend:ident);+ $(;)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let (_pg, db) = match stringify!($store) {
                    "sqlite" => (None, Db::Sqlite(dir.path().join("clawrk.db"))),
                    _ => {
                        let (pg, db) = postgres();
                        (Some(pg), db)
                    }
                };
                let backend = match stringify!($backend) {
                    "local" => Backend::Local,
                    _ => Backend::s3(),
                };
                $scenario(db, backend).await;
            }
        )+
    };
}

everywhere!(round_trip:
    round_trip_on_sqlite_with_local_files => sqlite, local;
    round_trip_on_sqlite_with_s3 => sqlite, s3;
    round_trip_on_postgres_with_local_files => postgres, local;
    round_trip_on_postgres_with_s3 => postgres, s3;
);
everywhere!(limits:
    limits_on_sqlite => sqlite, local;
    limits_on_postgres => postgres, local;
);
everywhere!(verified_with_attachments:
    a_job_with_attachments_is_verified_on_sqlite_with_local_files => sqlite, local;
    a_job_with_attachments_is_verified_on_postgres_with_s3 => postgres, s3;
);
everywhere!(broken_uploads:
    broken_uploads_leave_nothing_on_sqlite => sqlite, local;
    broken_uploads_leave_nothing_on_postgres_with_s3 => postgres, s3;
);

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn round_trip(db: Db, backend: Backend) {
    let server = Server::start(&db, &backend.env()).await;
    let ann = create_user(&db, "ann", 0);
    let c = server.client(&ann.key);
    // Larger than a part, so S3 takes the multipart path; from a file, streamed.
    let data = pattern(6 * 1024 * 1024 + 321);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data set.csv");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let f = c.upload_file(&path, None).await.unwrap();
    assert_eq!(f.filename, "data set.csv");
    assert_eq!(f.content_type, "text/csv");
    assert_eq!(f.size_bytes, data.len() as u64);
    assert_eq!(f.sha256, hex(&Sha256::digest(&data)));
    assert_eq!(c.file_meta(f.id).await.unwrap(), f);
    let dl = c.download(f.id).await.unwrap();
    assert_eq!(dl.size, Some(data.len() as u64));
    assert_eq!(dl.content_type.as_deref(), Some("text/csv"));
    let back = dl.bytes().await.unwrap();
    assert!(back == data, "the download is the upload");
    assert_eq!(hex(&Sha256::digest(&back)), f.sha256);

    // Headers and ranges, as a browser or curl sees them.
    let http = reqwest::Client::new();
    let get = |range: Option<&'static str>| {
        let mut r = http
            .get(format!("{}/api/files/{}", server.url, f.id))
            .bearer_auth(&ann.key);
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        r.send()
    };
    let whole = get(None).await.unwrap();
    assert_eq!(whole.status(), 200);
    let h = whole.headers();
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"data set.csv\"; filename*=UTF-8''data%20set.csv"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    let part = get(Some("bytes=5242870-5242889")).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 5242870-5242889/{}", data.len())
    );
    assert_eq!(part.bytes().await.unwrap(), data[5_242_870..5_242_890]);
    let tail = get(Some("bytes=-10")).await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), data[data.len() - 10..]);
    let past = get(Some("bytes=99999999-")).await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{}", data.len())
    );
    // An empty file and a name that needs escaping.
    let empty = c
        .upload_bytes("ré sumé\".txt", "text/plain", Vec::new())
        .await
        .unwrap();
    assert_eq!(empty.filename, "ré sumé\".txt");
    assert_eq!(
        empty.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(
        c.download(empty.id)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .is_empty()
    );
    if let Backend::S3(moto) = &backend {
        let keys = moto.keys("clawrk-files");
        assert!(keys.contains(&format!("uploads/{}", f.id)), "{keys:?}");
    }
}

async fn limits(db: Db, backend: Backend) {
    let mut env = backend.env();
    env.extend(common::env(&[
        ("CLAWRK_MAX_FILE_BYTES", "1000"),
        ("CLAWRK_MAX_USER_STORAGE_BYTES", "1500"),
    ]));
    let server = Server::start(&db, &env).await;
    let ann = create_user(&db, "ann", 0);
    let c = server.client(&ann.key);
    let too_big = c
        .upload_bytes("big.bin", "application/octet-stream", pattern(1001))
        .await
        .unwrap_err();
    assert_eq!(
        too_big.code(),
        Some(ErrorCode::PayloadTooLarge),
        "{too_big}"
    );
    c.upload_bytes("a.bin", "application/octet-stream", pattern(900))
        .await
        .unwrap();
    let full = c
        .upload_bytes("b.bin", "application/octet-stream", pattern(700))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Some(ErrorCode::PayloadTooLarge));
    assert!(
        full.to_string().contains("600 of 1500 bytes left"),
        "{full}"
    );
    // Chunked, without a length: refused while reading.
    let http = reqwest::Client::new();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 100])),
    ));
    let r = http
        .post(format!("{}/api/files?filename=c.txt", server.url))
        .bearer_auth(&ann.key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "payload_too_large");
    // Bad input.
    for (query, why) in [
        ("", "filename is required"),
        ("?filename=a%2Fb", "filename"),
        ("?filename=", "filename"),
    ] {
        let r = http
            .post(format!("{}/api/files{query}", server.url))
            .bearer_auth(&ann.key)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(why), "{v}");
    }
    let r = http
        .post(format!("{}/api/files?filename=a.txt", server.url))
        .bearer_auth(&ann.key)
        .header("content-type", "not a type")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{}/api/files?filename=a.txt", server.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn verified_with_attachments(db: Db, backend: Backend) {
    let (llm, _fake, mut env) = fake_llm(true).await;
    env.extend(backend.env());
    let server = Server::start(&db, &env).await;
    let sender = create_user(&db, "sender", 10_000);
    let worker = create_user(&db, "worker", 0);
    let stranger = create_user(&db, "stranger", 0);
    let (s, w, x) = (
        server.client(&sender.key),
        server.client(&worker.key),
        server.client(&stranger.key),
    );
    let input = s
        .upload_bytes(
            "poem-notes.txt",
            "text/plain",
            b"the sea, the tide".to_vec(),
        )
        .await
        .unwrap();
    let secret = s
        .upload_bytes("private.txt", "text/plain", b"mine".to_vec())
        .await
        .unwrap();
    // Someone else's file, or none at all, is refused, naming which.
    let theirs = x
        .upload_bytes("x.txt", "text/plain", b"x".to_vec())
        .await
        .unwrap();
    let e = s
        .run(&RunRequest::confirmed("A haiku about the sea").attach([input.id, theirs.id]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    assert!(e.to_string().contains("attachments[1]"), "{e}");
    assert!(e.to_string().contains(&theirs.id.to_string()), "{e}");
    let RunOutcome::Queued(job) = s
        .run(&RunRequest::confirmed("A haiku about the sea").attach([input.id]))
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    let shown = job.attachment_files();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (shown[0].id, shown[0].filename.as_str(), shown[0].size_bytes),
        (input.id, "poem-notes.txt", 17)
    );
    assert_eq!(shown[0].sha256, input.sha256);
    let structuring = llm.received_requests().await.unwrap();
    assert!(
        String::from_utf8_lossy(&structuring[0].body).contains("poem-notes.txt"),
        "the structurer sees the file's name"
    );

    // Before holding the job, the worker may not read the sender's file.
    let not_yet = w.download(input.id).await.err().unwrap();
    assert_eq!(not_yet.code(), Some(ErrorCode::NotFound));
    w.pull(&PullRequest::default()).await.unwrap().unwrap();
    assert_eq!(
        w.download(input.id).await.unwrap().bytes().await.unwrap(),
        b"the sea, the tide"
    );
    assert_eq!(
        w.file_meta(secret.id).await.unwrap_err().code(),
        Some(ErrorCode::NotFound),
        "the sender's other files stay private"
    );
    assert_eq!(
        x.download(input.id).await.err().unwrap().code(),
        Some(ErrorCode::NotFound)
    );
    w.accept(job.id, &AgentChoice::default()).await.unwrap();
    let out = w
        .upload_bytes(
            "haiku.txt",
            "text/plain",
            b"waves fold on the shore\nthe tide keeps its slow promise\nsalt wind, then the sea"
                .to_vec(),
        )
        .await
        .unwrap();
    let submitted = w
        .submit(
            job.id,
            &SubmitRequest {
                output: None,
                attachments: None,
            }
            .attach([out.id]),
        )
        .await
        .unwrap();
    assert_eq!(submitted.output_files()[0].id, out.id);
    eventually("the verdict", Duration::from_secs(20), || async {
        s.job(job.id).await.unwrap().status == JobStatus::Verified
    })
    .await;
    let asked: Vec<String> = llm
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| !b.contains("structured_job"))
        .collect();
    assert!(
        asked
            .iter()
            .any(|b| b.contains("haiku.txt") && b.contains("the tide keeps its slow promise")),
        "the verifier reads the text attachment: {asked:?}"
    );
    // The sender reads the output; nobody else does.
    assert_eq!(
        s.download(out.id)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len() as u64,
        out.size_bytes
    );
    assert_eq!(
        x.file_meta(out.id).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    let done = s.job(job.id).await.unwrap();
    assert_eq!(done.output_files()[0].filename, "haiku.txt");
    assert_eq!(done.attachment_files()[0].id, input.id);
}

async fn broken_uploads(db: Db, backend: Backend) {
    let mut env = backend.env();
    env.extend(common::env(&[("CLAWRK_MAX_USER_STORAGE_BYTES", "2000000")]));
    let mut server = Server::start(&db, &env).await;
    let ann = create_user(&db, "ann", 0);
    let addr = server.url.trim_start_matches("http://").to_string();
    // Half of a declared 1.5 MB body, then the client goes away.
    let half_upload = |addr: String, key: String| async move {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/files?filename=half.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: \
             Bearer {key}\r\nContent-Type: application/octet-stream\r\nContent-Length: \
             1500000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&vec![b'x'; 750_000]).await.unwrap();
        s.flush().await.unwrap();
        s
    };
    drop(half_upload(addr.clone(), ann.key.clone()).await);
    // Half again, and the server is killed meanwhile.
    let conn = half_upload(addr.clone(), ann.key.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    drop(conn);
    server.restart().await;
    // Nothing was kept: the whole allowance is still there.
    let c = server.client(&ann.key);
    let f = c
        .upload_bytes("full.bin", "application/octet-stream", pattern(2_000_000))
        .await
        .unwrap();
    assert_eq!(f.size_bytes, 2_000_000);
    if let Backend::S3(moto) = &backend {
        assert_eq!(
            moto.keys("clawrk-files"),
            vec![format!("uploads/{}", f.id)],
            "no partial object is visible"
        );
    }
}
