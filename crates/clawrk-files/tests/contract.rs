//! The FileStore contract on both backends: a local directory, and a real S3-compatible server
//! (moto). Writes in chunks (past a part, so S3 takes the multipart path), whole and ranged
//! reads, nothing visible before the writer finishes or after it aborts, deletes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use clawrk_domain::error::DomainError;
use clawrk_domain::ports::FileStore;
use clawrk_files::testing::Moto;
use clawrk_files::{ObjectFiles, PART_BYTES};
use futures::StreamExt;

async fn read_all(files: &dyn FileStore, key: &str, range: Option<(u64, u64)>) -> Vec<u8> {
    let mut s = files.read(key, range).await.expect("read");
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("chunk"));
    }
    out
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

async fn contract(files: &dyn FileStore) {
    // Small: one chunk.
    let mut w = files.create("small").await.unwrap();
    w.write(Bytes::from_static(b"hello, ")).await.unwrap();
    w.write(Bytes::from_static(b"world")).await.unwrap();
    assert!(
        matches!(
            files.read("small", None).await,
            Err(DomainError::NotFound(_))
        ),
        "an unfinished object is not visible"
    );
    w.finish().await.unwrap();
    assert_eq!(read_all(files, "small", None).await, b"hello, world");
    assert_eq!(read_all(files, "small", Some((7, 12))).await, b"world");

    // Large: more than two parts, in uneven chunks.
    let big = pattern(2 * PART_BYTES + 12_345);
    let mut w = files.create("big").await.unwrap();
    for chunk in big.chunks(1_000_003) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    w.finish().await.unwrap();
    let back = read_all(files, "big", None).await;
    assert_eq!(back.len(), big.len());
    assert!(back == big, "the large object reads back as written");
    let (a, b) = (PART_BYTES as u64 - 10, PART_BYTES as u64 + 10);
    assert_eq!(
        read_all(files, "big", Some((a, b))).await,
        big[a as usize..b as usize]
    );

    // Aborted: nothing.
    let mut w = files.create("aborted").await.unwrap();
    w.write(Bytes::from(pattern(PART_BYTES + 1))).await.unwrap();
    w.abort().await;
    assert!(matches!(
        files.read("aborted", None).await,
        Err(DomainError::NotFound(_))
    ));

    // Deleted: gone; deleting again is fine.
    files.delete("small").await.unwrap();
    assert!(matches!(
        files.read("small", None).await,
        Err(DomainError::NotFound(_))
    ));
    files.delete("small").await.unwrap();
    files.delete("never").await.unwrap();
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let files = ObjectFiles::local(&dir.path().join("nested/files")).unwrap();
    contract(&files).await;
    // Only finished objects remain in the directory (no staging files of the aborted one).
    let names: Vec<String> = std::fs::read_dir(dir.path().join("nested/files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["big".to_string()], "{names:?}");
}

#[tokio::test]
async fn s3_compatible_bucket() {
    let moto = Moto::start();
    moto.create_bucket("clawrk-test");
    let files = ObjectFiles::s3_with("s3://clawrk-test/some/prefix/", moto.builder()).unwrap();
    contract(&files).await;
    assert_eq!(
        moto.keys("clawrk-test"),
        vec!["some/prefix/big".to_string()]
    );
}

#[tokio::test]
async fn unreachable_storage_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let builder = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_access_key_id("x")
        .with_secret_access_key("x")
        .with_region("us-east-1")
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        });
    let files = ObjectFiles::s3_with("s3://nowhere", builder).unwrap();
    let e = files.read("k", None).await.err().expect("an error");
    assert!(matches!(e, DomainError::Unavailable(_)), "{e:?}");
}
