//! Files on the wire: an uploaded file's metadata, how a job or submission references files, and
//! the query of an upload (`POST /api/files?filename=…` with the raw bytes as the body).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An uploaded file (`POST /api/files` answers it; `GET /api/files/{id}/meta` reads it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileInfo {
    /// Id: what `attachments` reference.
    pub id: Uuid,
    /// The name it was uploaded with.
    pub filename: String,
    /// Its media type (lower-cased).
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The SHA-256 of its bytes, in lower-case hex.
    pub sha256: String,
    /// When it was uploaded.
    #[serde(with = "crate::times::ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A file as a job shows it among its `attachments` or `output_attachments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileAttachment {
    /// The file's id (download it with `GET /api/files/{id}`).
    pub id: Uuid,
    /// Its name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The SHA-256 of its bytes, in lower-case hex.
    pub sha256: String,
}

/// A reference to an uploaded file in `attachments`: its id, or an object with its id (a job's
/// own attachment objects can be passed back as they are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum AttachmentRef {
    /// The file's id.
    Id(Uuid),
    /// An object with the file's id; other fields are ignored.
    Object {
        /// The file's id.
        id: Uuid,
    },
}

impl AttachmentRef {
    /// The file's id.
    pub fn id(&self) -> Uuid {
        match self {
            AttachmentRef::Id(id) | AttachmentRef::Object { id } => *id,
        }
    }
}

impl<'de> Deserialize<'de> for AttachmentRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = || {
            serde::de::Error::custom(
                "expected a file id (a UUID string) or an object with one ({\"id\": \"…\"})",
            )
        };
        let parse = |v: &serde_json::Value| {
            v.as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(bad)
        };
        match serde_json::Value::deserialize(d)? {
            v @ serde_json::Value::String(_) => parse(&v).map(AttachmentRef::Id),
            serde_json::Value::Object(o) => o
                .get("id")
                .ok_or_else(bad)
                .and_then(parse)
                .map(|id| AttachmentRef::Object { id }),
            _ => Err(bad()),
        }
    }
}

/// `attachments` naming `files` by id; `None` for none.
pub(crate) fn refs(files: impl IntoIterator<Item = Uuid>) -> Option<Vec<AttachmentRef>> {
    let refs: Vec<_> = files.into_iter().map(AttachmentRef::Id).collect();
    (!refs.is_empty()).then_some(refs)
}

/// Percent-encodes every byte of `text` but ASCII letters, digits and `keep` (UTF-8 bytes as
/// `%XX`): a file name in a query string, or in `Content-Disposition`'s `filename*`.
pub fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl From<Uuid> for AttachmentRef {
    fn from(id: Uuid) -> Self {
        AttachmentRef::Id(id)
    }
}

/// The query of `POST /api/files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UploadQuery {
    /// The file's name (1..=255 characters, no `/`, `\\` or control characters).
    pub filename: Option<String>,
}

fn parse_files(values: &[serde_json::Value]) -> Vec<FileAttachment> {
    values
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

impl crate::jobs::Job {
    /// The sender's files (entries of another shape, from before uploads, are skipped).
    pub fn attachment_files(&self) -> Vec<FileAttachment> {
        parse_files(&self.attachments)
    }

    /// The latest submission's files.
    pub fn output_files(&self) -> Vec<FileAttachment> {
        self.output_attachments
            .as_deref()
            .map(parse_files)
            .unwrap_or_default()
    }
}
