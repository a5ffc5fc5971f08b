//! [`ObjectFiles`]: the domain's [`FileStore`] port on the `object_store` crate — a local
//! directory by default (`CLAWRK_FILES_DIR`), or any S3-compatible bucket
//! (`CLAWRK_FILES_URL=s3://bucket/prefix`, configured by the usual `AWS_*` variables).
//!
//! Uploads are written through a bounded buffer: a small file is one PUT, a larger one a
//! multipart upload in parts of [`PART_BYTES`], so an upload never holds more than a part in
//! memory. Nothing is visible under a key before the writer finishes (local files are renamed
//! into place, multipart uploads completed), so an interrupted upload leaves nothing to read.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use bytes::Bytes;
use clawrk_domain::error::{DomainError, Result};
use clawrk_domain::ports::{FileBytes, FileStore, FileWriter};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// How much of an upload is buffered before it becomes a multipart upload, and each part's size
/// (S3's smallest part is 5 MiB).
pub const PART_BYTES: usize = 5 * 1024 * 1024;

/// Files kept in an object store.
#[derive(Clone, Debug)]
pub struct ObjectFiles {
    store: Arc<dyn ObjectStore>,
    /// Where, for logs: the directory or the bucket URL.
    location: String,
}

impl ObjectFiles {
    /// Files in a local directory, created if missing.
    pub fn local(dir: &std::path::Path) -> std::result::Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the files directory {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("cannot use the files directory {}: {e}", dir.display()))?;
        Ok(ObjectFiles {
            store: Arc::new(store),
            location: dir.display().to_string(),
        })
    }

    /// Files in an S3-compatible bucket: `url` is `s3://bucket` or `s3://bucket/prefix`; the
    /// credentials, region and endpoint come from the `AWS_*` environment variables
    /// (`AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for a local S3-compatible server).
    pub fn s3(url: &str) -> std::result::Result<Self, String> {
        Self::s3_with(url, AmazonS3Builder::from_env())
    }

    /// [`Self::s3`] with an explicit builder (tests configure one without the environment).
    pub fn s3_with(url: &str, builder: AmazonS3Builder) -> std::result::Result<Self, String> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let s3 = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| format!("CLAWRK_FILES_URL {url}: {e}"))?;
        let store: Arc<dyn ObjectStore> = match prefix {
            Some(p) => Arc::new(PrefixStore::new(s3, p)),
            None => Arc::new(s3),
        };
        Ok(ObjectFiles {
            store,
            location: url.to_string(),
        })
    }

    /// Where the files are, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// `s3://bucket[/prefix]` → the bucket and the prefix (without slashes at its ends).
pub fn parse_s3_url(url: &str) -> std::result::Result<(String, Option<String>), String> {
    let bad = || format!("CLAWRK_FILES_URL must be s3://bucket or s3://bucket/prefix, not {url:?}");
    let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(['?', '#', '@']) {
        return Err(bad());
    }
    let prefix = prefix.trim_matches('/');
    Ok((
        bucket.to_string(),
        (!prefix.is_empty()).then(|| prefix.to_string()),
    ))
}

fn storage_err(e: object_store::Error) -> DomainError {
    match e {
        object_store::Error::NotFound { .. } => DomainError::NotFound("file"),
        e => DomainError::Unavailable(format!("file storage: {e}")),
    }
}

fn key_path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| DomainError::Internal(format!("file key {key:?}: {e}")))
}

struct Writer {
    inner: BufWriter,
}

#[async_trait]
impl FileWriter for Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.put(chunk).await.map_err(storage_err)
    }

    async fn finish(&mut self) -> Result<()> {
        self.inner
            .shutdown()
            .await
            .map_err(|e| DomainError::Unavailable(format!("file storage: {e}")))
    }

    async fn abort(&mut self) {
        let _ = self.inner.abort().await;
    }
}

#[async_trait]
impl FileStore for ObjectFiles {
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>> {
        let inner = BufWriter::with_capacity(self.store.clone(), key_path(key)?, PART_BYTES);
        Ok(Box::new(Writer { inner }))
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<FileBytes> {
        let options = GetOptions {
            range: range.map(|(a, b)| GetRange::Bounded(a..b)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&key_path(key)?, options)
            .await
            .map_err(storage_err)?;
        Ok(got.into_stream().map_err(storage_err).boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&key_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_err(e)),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), None));
        assert_eq!(
            parse_s3_url("s3://b/a/c/").unwrap(),
            ("b".into(), Some("a/c".into()))
        );
        for bad in ["b", "s3://", "s3:///p", "file:///tmp", "s3://u@b"] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }
}
