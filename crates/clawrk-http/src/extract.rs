//! Request extractors whose failures use the `{"error"}` shape: the authenticated caller, JSON
//! bodies (1 MiB at most; errors name the field), ids in paths and page queries.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use clawrk_domain::ports::Page;
use clawrk_domain::service::Principal;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

/// The largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The caller, authenticated by `Authorization: Bearer <api key>`.
pub struct Caller(pub Principal);

/// The bearer token of a request, if any (API keys; the cron route's secret).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ApiError::unauthorized());
            };
            match state.market.authenticate(&token).await? {
                Some(user) => {
                    tracing::Span::current().record("user", tracing::field::display(user.id));
                    Ok(Caller(user))
                }
                None => Err(ApiError::unauthorized()),
            }
        })
    }
}

/// A JSON body of type `T`, with its raw bytes (for idempotency digests). An empty body is
/// `T::default()`; required fields are checked by the handlers, which name them.
pub struct JsonBody<T> {
    /// The parsed body.
    pub value: T,
    /// The bytes as received.
    pub raw: Bytes,
}

impl<T> JsonBody<T> {
    /// Whether the request had no body at all (routes whose body is required refuse it).
    pub fn is_empty(&self) -> bool {
        is_blank(&self.raw)
    }
}

/// Whether a body is empty: nothing but JSON whitespace (space, tab, line feed, carriage return).
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses a JSON body, which must be an object (or empty: `T::default()`); the error names the
/// offending field.
pub fn parse<T: DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if is_blank(bytes) {
        return Ok(T::default());
    }
    // Request bodies are objects; serde would otherwise read a struct from a JSON array too.
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("malformed JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid value for field `{path}`: {inner}"))
        }
    })
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<JsonBody<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let raw = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        clawrk_api::ErrorCode::PayloadTooLarge,
                        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {e}"))
                }
            })?;
            Ok(JsonBody {
                value: parse(&raw)?,
                raw,
            })
        })
    }
}

/// Parses an id from a path segment; 400 naming the segment otherwise.
pub fn path_id<T: FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} must be a UUID, got {raw:?}")))
}

/// A page from `?limit=` and `?before=`.
pub fn page<C: FromStr>(limit: Option<&str>, before: Option<&str>) -> ApiResult<Page<C>> {
    let limit = limit
        .map(|l| {
            l.parse::<u32>()
                .map_err(|_| ApiError::bad_request("limit must be an integer between 1 and 200"))
        })
        .transpose()?;
    let before = before.map(|b| path_id::<C>(b, "before")).transpose()?;
    Ok(Page::new(limit, before)?)
}
