//! The file use cases: upload (streamed into the file store, hashed and counted on the way),
//! metadata and download under the visibility rules of [`crate::files`], what the verifier reads
//! of a submission's files, and the sweeper's removal of uploads no job references.

use super::Marketplace;
use crate::error::{DomainError, Result};
use crate::files::{self, ByteRange, FileId, FileMeta, FileRole, VerifyFile};
use crate::ids::{JobId, Timestamp, UserId};
use crate::ports::FileBytes;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

/// How many unreferenced files one sweep transaction removes before it takes the next batch.
pub const FILE_SWEEP_BATCH: u32 = 200;

/// What a download finds.
pub enum Fetched {
    /// The file's bytes.
    Bytes(Download),
    /// The range asked for selects nothing of the file (it starts past the end).
    Unsatisfiable {
        /// The file's size.
        size: u64,
    },
}

/// A file to download: its metadata and its bytes (all of them, or the range asked for).
pub struct Download {
    /// The file.
    pub meta: FileMeta,
    /// The bytes `range.0..range.1` when a range was asked for; all of them otherwise.
    pub range: Option<(u64, u64)>,
    /// Those bytes.
    pub bytes: FileBytes,
}

/// What an upload declares before its body: its name, its type and, if known, its length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadInfo {
    /// The file's name.
    pub filename: String,
    /// Its media type (`application/octet-stream` when absent).
    pub content_type: Option<String>,
    /// The length the request declared, to refuse an upload that is too large before reading it.
    pub declared_len: Option<u64>,
}

impl Marketplace {
    /// Stores an upload: the body is streamed into the file store (never held whole), its
    /// SHA-256 and size computed on the way, and its metadata written once the bytes are complete.
    /// Over the file limit or the user's storage, it is refused with [`DomainError::TooLarge`] and
    /// nothing is kept. A failed or interrupted upload leaves nothing a job could reference.
    pub async fn upload<S>(&self, user: UserId, info: UploadInfo, mut body: S) -> Result<FileMeta>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let filename = files::check_filename(&info.filename)?;
        let content_type = files::check_content_type(info.content_type.as_deref())?;
        let used = self.store().read(move |tx| tx.storage_used(user)).await?;
        let max_file = self.config.max_file_bytes;
        let left = self.config.max_user_storage_bytes.saturating_sub(used);
        let too_large = |size: u64| {
            if size > max_file {
                DomainError::TooLarge(format!("the file is larger than {max_file} bytes"))
            } else {
                DomainError::TooLarge(format!(
                    "the file does not fit in your storage: {left} of {} bytes left",
                    self.config.max_user_storage_bytes
                ))
            }
        };
        let cap = max_file.min(left);
        if let Some(n) = info.declared_len.filter(|n| *n > cap) {
            return Err(too_large(n));
        }
        let id = FileId(self.ports.clock.new_id());
        let mut writer = self.ports.files.create(&id.to_string()).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let streamed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size = size.saturating_add(chunk.len() as u64);
                if size > cap {
                    return Err(too_large(size));
                }
                hasher.update(&chunk);
                writer.write(chunk).await?;
            }
            writer.finish().await
        }
        .await;
        if let Err(e) = streamed {
            writer.abort().await;
            return Err(e);
        }
        let meta = FileMeta {
            id,
            owner: user,
            filename,
            content_type,
            size_bytes: size,
            sha256: hasher.finalize().into(),
            created_at: self.now(),
        };
        let row = meta.clone();
        if let Err(e) = self.store().single(move |tx| tx.insert_file(&row)).await {
            // Without its metadata nothing can reference the bytes: remove them now rather than
            // leave them to nobody.
            let _ = self.ports.files.delete(&meta.key()).await;
            return Err(e);
        }
        Ok(meta)
    }

    /// A file's metadata, if `user` may read it ([`files::may_read`]); NotFound otherwise.
    pub async fn file(&self, user: UserId, id: FileId) -> Result<FileMeta> {
        self.store()
            .read(move |tx| {
                let Some(meta) = tx.files(&[id])?.into_iter().next() else {
                    return Err(DomainError::NotFound("file"));
                };
                if meta.owner == user {
                    return Ok(meta);
                }
                let references = tx.file_references(id)?;
                if files::may_read(user, &meta, &references) {
                    Ok(meta)
                } else {
                    Err(DomainError::NotFound("file"))
                }
            })
            .await
    }

    /// A file's bytes, or the range of them asked for, if `user` may read it.
    pub async fn download(
        &self,
        user: UserId,
        id: FileId,
        range: Option<ByteRange>,
    ) -> Result<Fetched> {
        let meta = self.file(user, id).await?;
        let range = match range.map(|r| r.resolve(meta.size_bytes)) {
            None => None,
            Some(Some(r)) => Some(r),
            Some(None) => {
                return Ok(Fetched::Unsatisfiable {
                    size: meta.size_bytes,
                });
            }
        };
        let bytes = self.ports.files.read(&meta.key(), range).await?;
        Ok(Fetched::Bytes(Download { meta, range, bytes }))
    }

    /// The files a job's submission of `attempt` attaches, as the verifier is given them: the
    /// first bytes of text files within [`files::verify_budget`], the others by name.
    pub(super) async fn verify_files(&self, job: JobId, attempt: u32) -> Result<Vec<VerifyFile>> {
        let metas = self
            .store()
            .read(move |tx| tx.job_files(job, FileRole::Output, Some(attempt)))
            .await?;
        let mut out = Vec::with_capacity(metas.len());
        for (meta, budget) in metas.iter().zip(files::verify_budget(&metas)) {
            if budget == 0 {
                out.push(files::verify_file(meta, None));
                continue;
            }
            let mut stream = self
                .ports
                .files
                .read(&meta.key(), Some((0, budget)))
                .await?;
            let mut head = Vec::with_capacity(usize::try_from(budget).unwrap_or(0));
            while let Some(chunk) = stream.next().await {
                head.extend_from_slice(&chunk?);
            }
            // A store that ignores the range must not widen the budget.
            head.truncate(usize::try_from(budget).unwrap_or(usize::MAX));
            out.push(files::verify_file(meta, Some(&head)));
        }
        Ok(out)
    }

    /// Removes uploads older than a day that no job references: their metadata first (in
    /// batches), then their bytes. Returns how many were removed and how many objects could not
    /// be deleted (left behind, referenced by nothing).
    pub(super) async fn purge_files(&self, now: Timestamp) -> Result<(u64, u64)> {
        let before = now.plus_millis(-i64::from(files::UNREFERENCED_TTL_SECONDS) * 1000);
        let (mut removed, mut orphaned) = (0, 0);
        loop {
            let gone = self
                .store()
                .transaction(move |tx| tx.delete_unreferenced_files(before, FILE_SWEEP_BATCH))
                .await?;
            for f in &gone {
                match self.ports.files.delete(&f.key()).await {
                    Ok(()) => removed += 1,
                    Err(_) => orphaned += 1,
                }
            }
            if gone.len() < FILE_SWEEP_BATCH as usize {
                return Ok((removed, orphaned));
            }
        }
    }
}
