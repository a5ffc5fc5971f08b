//! Files: what an upload must be, whose files a job may reference, who may download them, what
//! the verifier reads of them, and how a job shows them.
//!
//! A file is uploaded once by a user and referenced by id: a sender's files as a job's
//! attachments (role [`FileRole::Input`]), an agent's as a submission's (role
//! [`FileRole::Output`]). The bytes live in a [`FileStore`](crate::ports::FileStore), the
//! metadata in the [`Store`](crate::ports::Store); references are rows of their own, so that a
//! download can be checked against the jobs that reference the file.

use crate::error::{DomainError, Result};
pub use crate::ids::FileId;
use crate::ids::{Timestamp, UserId};
use crate::job::{Job, RawJson};
use std::fmt::Write as _;

/// The default largest file (`CLAWRK_MAX_FILE_BYTES`): 25 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// The default storage per user (`CLAWRK_MAX_USER_STORAGE_BYTES`): 1 GiB.
pub const DEFAULT_MAX_USER_STORAGE_BYTES: u64 = 1024 * 1024 * 1024;
/// The most files one job or one submission may reference.
pub const MAX_ATTACHMENTS: usize = 20;
/// The longest file name, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// The longest content type, in characters.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
/// How much of each text attachment the verifier reads.
pub const VERIFY_FILE_BYTES: u64 = 64 * 1024;
/// How much of all text attachments together the verifier reads.
pub const VERIFY_TOTAL_BYTES: u64 = 256 * 1024;
/// How long an upload no job references is kept (the sweeper removes it after).
pub const UNREFERENCED_TTL_SECONDS: u32 = 24 * 3600;

/// An uploaded file's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Id (also its key in the file store).
    pub id: FileId,
    /// Who uploaded it.
    pub owner: UserId,
    /// The name it was uploaded with.
    pub filename: String,
    /// Its media type, as uploaded (lower-cased).
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// When it was uploaded.
    pub created_at: Timestamp,
}

impl FileMeta {
    /// The SHA-256 in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Where its bytes are in the file store.
    pub fn key(&self) -> String {
        self.id.to_string()
    }

    /// Whether the verifier may read it as text (by its content type).
    pub fn is_text(&self) -> bool {
        is_text(&self.content_type)
    }
}

/// Which side of a job references a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileRole {
    /// The sender's attachment.
    Input,
    /// A submission's attachment.
    Output,
}

impl FileRole {
    /// The role as stores spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileRole::Input => "input",
            FileRole::Output => "output",
        }
    }

    /// The role a store spelled.
    pub fn parse(s: &str) -> Option<FileRole> {
        match s {
            "input" => Some(FileRole::Input),
            "output" => Some(FileRole::Output),
            _ => None,
        }
    }
}

/// A job's reference to a file: by the sender (attempt 0) or by a submission of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobFile {
    /// The file.
    pub file: FileId,
    /// Which side.
    pub role: FileRole,
    /// 0 for the sender's attachments; the attempt's number for a submission's.
    pub attempt: u32,
}

/// Checks an upload's name: 1..=255 characters, visible, no control characters and no path
/// separators (it is a name, never a path). Returns it trimmed.
pub fn check_filename(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("filename is required"));
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(DomainError::invalid(format!(
            "filename must be at most {MAX_FILENAME_CHARS} characters"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(DomainError::invalid(
            "filename must not contain control characters, '/' or '\\'",
        ));
    }
    if name == "." || name == ".." {
        return Err(DomainError::invalid("filename must not be '.' or '..'"));
    }
    Ok(name.to_string())
}

/// Checks a media type (`type/subtype`, optional `; parameters`), defaulting to
/// `application/octet-stream`. Returns it lower-cased and trimmed.
pub fn check_content_type(value: Option<&str>) -> Result<String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok("application/octet-stream".into());
    };
    let bad = || {
        DomainError::invalid(format!(
            "Content-Type must be a media type such as text/csv (at most \
             {MAX_CONTENT_TYPE_CHARS} characters)"
        ))
    };
    if value.chars().count() > MAX_CONTENT_TYPE_CHARS
        || value.chars().any(|c| c.is_control() || !c.is_ascii())
    {
        return Err(bad());
    }
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(value.to_ascii_lowercase()),
        _ => Err(bad()),
    }
}

/// Whether a content type is text the verifier can read: `text/*`, and the structured text
/// formats (JSON, XML, YAML, CSV, TOML, JavaScript, SQL, Markdown, and `+json`/`+xml` types).
pub fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || (kind == "application"
            && (matches!(
                sub,
                "json"
                    | "xml"
                    | "yaml"
                    | "x-yaml"
                    | "csv"
                    | "toml"
                    | "javascript"
                    | "x-javascript"
                    | "sql"
                    | "x-sh"
                    | "x-python"
                    | "markdown"
                    | "x-ndjson"
                    | "ndjson"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")))
}

/// The files `ids` name, each checked to exist and to belong to `owner` (`found` is what the
/// store returned for them, in any order). Duplicates are kept once; more than
/// [`MAX_ATTACHMENTS`] is refused. A bad one is named by its place in the list.
pub fn owned(owner: UserId, ids: &[FileId], found: &[FileMeta]) -> Result<Vec<FileMeta>> {
    if ids.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid(format!(
            "attachments: at most {MAX_ATTACHMENTS} files"
        )));
    }
    let mut out: Vec<FileMeta> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match found.iter().find(|f| f.id == *id && f.owner == owner) {
            Some(f) if !out.iter().any(|o| o.id == f.id) => out.push(f.clone()),
            Some(_) => {}
            None => {
                return Err(DomainError::invalid(format!(
                    "attachments[{i}]: no file {id} uploaded by you"
                )));
            }
        }
    }
    Ok(out)
}

/// Whether `user` may read a file: its owner; for a sender's attachment, whoever may see a job
/// that references it (the job's holder and receiver); for a submission's, the job's sender.
pub fn may_read(user: UserId, file: &FileMeta, references: &[(Job, FileRole)]) -> bool {
    file.owner == user
        || references.iter().any(|(job, role)| match role {
            FileRole::Input => job.visible_to(user),
            FileRole::Output => job.sender == user,
        })
}

/// How a job shows its files: a JSON array of `{id, filename, content_type, size_bytes, sha256}`.
pub fn attachments_json(files: &[FileMeta]) -> RawJson {
    let mut s = String::from("[");
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"id\":");
        json_string(&mut s, &f.id.to_string());
        s.push_str(",\"filename\":");
        json_string(&mut s, &f.filename);
        s.push_str(",\"content_type\":");
        json_string(&mut s, &f.content_type);
        let _ = write!(s, ",\"size_bytes\":{}", f.size_bytes);
        s.push_str(",\"sha256\":");
        json_string(&mut s, &f.sha256_hex());
        s.push('}');
    }
    s.push(']');
    RawJson(s)
}

/// Appends `value` as a JSON string.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One byte range of a file, as a download asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// From a byte to another (inclusive), or to the end.
    From(u64, Option<u64>),
    /// The last n bytes.
    Last(u64),
}

impl ByteRange {
    /// The half-open range it selects of a file of `size` bytes; `None` when it selects nothing.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From(a, _) if a >= size => None,
            ByteRange::From(a, b) => Some((a, b.map_or(size, |b| b.saturating_add(1).min(size)))),
            ByteRange::Last(0) => None,
            ByteRange::Last(n) => (size > 0).then(|| (size.saturating_sub(n), size)),
        }
    }
}

/// What the verifier is given of one submitted file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFile {
    /// Its name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its text (the first bytes of a text file, decoded as UTF-8); `None` for other files and
    /// once the total is spent.
    pub text: Option<String>,
    /// Whether `text` is only the beginning of the file.
    pub truncated: bool,
}

/// How many bytes of each file the verifier reads, in order: up to [`VERIFY_FILE_BYTES`] of each
/// text file while the [`VERIFY_TOTAL_BYTES`] budget lasts; 0 for the rest.
pub fn verify_budget(files: &[FileMeta]) -> Vec<u64> {
    let mut left = VERIFY_TOTAL_BYTES;
    files
        .iter()
        .map(|f| {
            if !f.is_text() {
                return 0;
            }
            let n = f.size_bytes.min(VERIFY_FILE_BYTES).min(left);
            left -= n;
            n
        })
        .collect()
}

/// The verifier's view of a file whose first bytes (`head`, as many as its budget) were read.
pub fn verify_file(file: &FileMeta, head: Option<&[u8]>) -> VerifyFile {
    let text = head.map(|b| {
        let mut t = String::from_utf8_lossy(b).into_owned();
        // A read cut inside a character leaves a replacement character at the end: drop it.
        if (b.len() as u64) < file.size_bytes && t.ends_with('\u{fffd}') {
            t.pop();
        }
        t
    });
    VerifyFile {
        filename: file.filename.clone(),
        content_type: file.content_type.clone(),
        size_bytes: file.size_bytes,
        truncated: head.is_some_and(|b| (b.len() as u64) < file.size_bytes),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn meta(n: u128, owner: u128, ctype: &str, size: u64) -> FileMeta {
        FileMeta {
            id: FileId(Uuid::from_u128(n)),
            owner: UserId(Uuid::from_u128(owner)),
            filename: format!("f{n}.txt"),
            content_type: ctype.into(),
            size_bytes: size,
            sha256: [0xab; 32],
            created_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn filenames_are_names() {
        assert_eq!(check_filename("  report.csv ").unwrap(), "report.csv");
        for bad in ["", "  ", "a/b", "a\\b", "..", "a\nb", &"x".repeat(256)] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        assert!(check_filename(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            check_content_type(None).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            check_content_type(Some("Text/CSV; charset=UTF-8")).unwrap(),
            "text/csv; charset=utf-8"
        );
        for bad in ["text", "/csv", "text/", "a b/c", "text/c\rsv", "tèxt/plain"] {
            assert!(check_content_type(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(is_text("text/plain; charset=utf-8"));
        assert!(is_text("application/vnd.api+json"));
        assert!(is_text("application/x-yaml"));
        assert!(!is_text("application/pdf"));
        assert!(!is_text("image/png"));
        assert!(!is_text("textual"));
    }

    #[test]
    fn owned_names_the_bad_one_and_folds_duplicates() {
        let me = UserId(Uuid::from_u128(1));
        let mine = meta(10, 1, "text/plain", 3);
        let theirs = meta(11, 2, "text/plain", 3);
        let found = [mine.clone(), theirs.clone()];
        assert_eq!(
            owned(me, &[mine.id, mine.id], &found).unwrap(),
            vec![mine.clone()]
        );
        let e = owned(me, &[mine.id, theirs.id], &found).unwrap_err();
        assert!(e.to_string().starts_with("attachments[1]: no file"), "{e}");
        let e = owned(me, &[FileId(Uuid::from_u128(99))], &found).unwrap_err();
        assert!(e.to_string().contains("attachments[0]"), "{e}");
        let many = vec![mine.id; MAX_ATTACHMENTS + 1];
        assert!(owned(me, &many, &found).is_err());
    }

    #[test]
    fn json_is_escaped() {
        let mut f = meta(1, 1, "text/plain", 5);
        f.filename = "a \"q\" \\ \u{1} é.txt".into();
        let j = attachments_json(&[f]).0;
        assert!(
            j.starts_with("[{\"id\":\"00000000-0000-0000-0000-000000000001\""),
            "{j}"
        );
        assert!(j.contains(r#""filename":"a \"q\" \\ \u0001 é.txt""#), "{j}");
        assert!(j.contains("\"size_bytes\":5"), "{j}");
        assert!(j.contains(&"ab".repeat(32)), "{j}");
        assert_eq!(attachments_json(&[]).0, "[]");
    }

    #[test]
    fn the_verifier_budget_is_per_file_and_in_all() {
        let files = [
            meta(1, 1, "text/plain", 100_000),
            meta(2, 1, "image/png", 10),
            meta(3, 1, "application/json", 10),
            meta(4, 1, "text/csv", 200_000),
            meta(5, 1, "text/csv", 200_000),
            meta(6, 1, "text/csv", 200_000),
        ];
        let b = verify_budget(&files);
        assert_eq!(b, vec![65_536, 0, 10, 65_536, 65_536, 65_536 - 10]);
        assert_eq!(b.iter().sum::<u64>(), VERIFY_TOTAL_BYTES);
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(ByteRange::From(0, Some(9)).resolve(5), Some((0, 5)));
        assert_eq!(ByteRange::From(2, None).resolve(5), Some((2, 5)));
        assert_eq!(ByteRange::From(5, None).resolve(5), None);
        assert_eq!(ByteRange::Last(3).resolve(5), Some((2, 5)));
        assert_eq!(ByteRange::Last(9).resolve(5), Some((0, 5)));
        assert_eq!(ByteRange::Last(0).resolve(5), None);
        assert_eq!(ByteRange::Last(1).resolve(0), None);
    }

    #[test]
    fn a_cut_character_is_dropped() {
        let f = meta(1, 1, "text/plain", 10);
        let v = verify_file(&f, Some("ab\u{e9}".as_bytes().get(..3).unwrap()));
        assert_eq!(v.text.as_deref(), Some("ab"));
        assert!(v.truncated);
        let whole = verify_file(&meta(1, 1, "text/plain", 3), Some(b"abc"));
        assert_eq!(whole.text.as_deref(), Some("abc"));
        assert!(!whole.truncated);
        assert_eq!(verify_file(&f, None).text, None);
    }
}
