//! # clawrk-api
//!
//! The wire types of clawrk's HTTP API: every request body and every response of SPEC §5, with real
//! enums for job statuses, ledger reasons, log levels and error codes, and times as
//! [`OffsetDateTime`](time::OffsetDateTime) (RFC 3339, UTC, milliseconds on the wire). The server
//! shapes its answers with them and generates its OpenAPI document from them (feature `openapi`);
//! `clawrk-client` and every tool built on it read them. So the document, the server and the clients
//! cannot disagree.
//!
//! Money is always integer cents (`i64`); ids are UUIDs. A required field of a request body reads as
//! empty when it is absent, so that the server answers 400 with its own message naming the field;
//! the OpenAPI document still marks it required.

#![warn(missing_docs)]

pub mod accounts;
pub mod error;
pub mod files;
pub mod jobs;
pub mod num;
pub mod ops;
pub mod times;
pub mod webhooks;

pub use accounts::*;
pub use error::{ErrorBody, ErrorCode, StreamEnd, StreamError};
pub use files::{AttachmentRef, FileAttachment, FileInfo, UploadQuery};
pub use jobs::*;
pub use ops::*;
pub use webhooks::{
    DeliveryState, NewWebhook, Webhook, WebhookDelivery, WebhookEvent, WebhookPatch,
};
