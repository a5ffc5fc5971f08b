//! Files over HTTP: `POST /api/files` (the raw bytes as the body, streamed to storage),
//! `GET /api/files/{id}` (streamed back, with single byte ranges) and `GET /api/files/{id}/meta`.
//!
//! Downloads are served as attachments with `nosniff` and a sandboxing CSP, so that an uploaded
//! page never runs as the API's origin in a browser.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, path_id};
use crate::views;
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use clawrk_api::{self as api, ErrorBody, ErrorCode};
use clawrk_domain::error::DomainError;
use clawrk_domain::files::{ByteRange, FileId, FileMeta};
use clawrk_domain::service::{Fetched, UploadInfo};
use futures::StreamExt;

fn file_id(raw: &str) -> ApiResult<FileId> {
    path_id(raw, "file id")
}

/// Uploads a file: the request's body is the file, `Content-Type` its type.
#[utoipa::path(post, path = "/api/files", tag = "files",
    params(
        ("filename" = String, Query, min_length = 1, max_length = 255, pattern = "^(?!\\s*\\.{1,2}\\s*$)[^/\\\\\\u0000-\\u001F\\u007F-\\u009F]*[^/\\\\\\s\\u0000-\\u001F\\u007F-\\u009F][^/\\\\\\u0000-\\u001F\\u007F-\\u009F]*$", description = "the file's name: no `/`, `\\` or control characters, not `.` or `..`"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes; the request's `Content-Type` is stored as the file's type (any media type; `application/octet-stream` when absent)"),
    responses((status = 201, description = "the file: reference it by `id` in `attachments`", body = api::FileInfo),
        (status = 400, description = "`invalid_input`: no or a bad `filename`, a malformed `Content-Type`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over `CLAWRK_MAX_FILE_BYTES` (25 MiB by default) or over what is left of your storage (`CLAWRK_MAX_USER_STORAGE_BYTES`)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn upload(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let query = actix_web::web::Query::<api::UploadQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let filename = query
        .into_inner()
        .filename
        .ok_or_else(|| ApiError::bad_request("filename is required (?filename=…)"))?;
    let content_type = match req.headers().get(header::CONTENT_TYPE) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Content-Type must be ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let info = UploadInfo {
        filename,
        content_type,
        declared_len,
    };
    let chunks = body
        .map(|c| c.map_err(|e| DomainError::invalid(format!("the upload was interrupted: {e}"))));
    let meta = st.market.upload(caller.0.id, info, chunks).await?;
    Ok(HttpResponse::Created().json(views::file_info(&meta)))
}

/// A file's metadata.
#[utoipa::path(get, path = "/api/files/{id}/meta", tag = "files",
    responses((status = 200, description = "the file", body = api::FileInfo),
        (status = 404, description = "`not_found`: no such file, or not one you may read", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn file_meta(
    st: Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let meta = st.market.file(caller.0.id, file_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(views::file_info(&meta)))
}

/// Downloads a file. A single byte range (`Range: bytes=a-b`, `a-` or `-n`) answers 206.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    params(("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for (`Content-Range` says which)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "`not_found`: no such file, or not one you may read", body = ErrorBody),
        (status = 416, description = "`invalid_input`: the range starts past the file's end", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn download(
    st: Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let id = file_id(&id)?;
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let range = asked.as_deref().and_then(parse_range);
    let dl = match st.market.download(caller.0.id, id, range).await? {
        Fetched::Bytes(dl) => dl,
        Fetched::Unsatisfiable { size } => {
            return Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(ErrorBody::new(
                    ErrorCode::InvalidInput,
                    format!("the range starts past the file's end ({size} bytes)"),
                )));
        }
    };
    let meta = &dl.meta;
    let (status, len) = match dl.range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a),
        None => (StatusCode::OK, meta.size_bytes),
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, content_type(meta)))
        .insert_header((header::CONTENT_DISPOSITION, disposition(&meta.filename)))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, format!("\"{}\"", meta.sha256_hex())))
        .insert_header((header::CACHE_CONTROL, "private, max-age=0"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("content-security-policy", "sandbox"));
    if let Some((a, b)) = dl.range {
        resp.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {a}-{}/{}", b - 1, meta.size_bytes),
        ));
    }
    Ok(resp.body(SizedStream::new(len, dl.bytes)))
}

fn content_type(meta: &FileMeta) -> HeaderValue {
    HeaderValue::from_str(&meta.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `attachment; filename="…"; filename*=UTF-8''…`: an ASCII fallback (quotes and non-ASCII
/// replaced) and the exact name percent-encoded (RFC 6266).
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = api::files::percent_encode(name, b"!#$&+-.^_`|~");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A single `bytes=` range; `None` for anything else (several ranges, other units, garbage),
/// which is answered with the whole file, as RFC 9110 allows.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, false) => num(b).map(ByteRange::Last),
        (false, true) => num(a).map(|a| ByteRange::From(a, None)),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(ByteRange::From(a, Some(b)))
        }
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::From(0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5, None)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Last(3)));
        for ignored in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=9-2",
            "bytes=-",
            "bytes=a-b",
            "",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition("a b.csv"),
            "attachment; filename=\"a b.csv\"; filename*=UTF-8''a%20b.csv"
        );
        assert_eq!(
            disposition("ré\"sumé.pdf"),
            "attachment; filename=\"r__sum_.pdf\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9.pdf"
        );
    }
}
