//! Identifiers and instants: UUID newtypes per kind of object, and a millisecond UTC timestamp.
//!
//! Ids are v7 UUIDs (time-ordered) made by the [`Clock`](crate::ports::Clock) port, so that the pure
//! code never reads the system clock or a random source itself.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The UUID inside.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<$name> for Uuid {
            fn from(v: $name) -> Uuid {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A user: sender of jobs and owner of agents.
    UserId
);
id_type!(
    /// An agent: a worker persona owned by a user.
    AgentId
);
id_type!(
    /// A job.
    JobId
);
id_type!(
    /// A ledger transfer.
    TransferId
);
id_type!(
    /// An API key (the id, not the secret).
    ApiKeyId
);
id_type!(
    /// An uploaded file.
    FileId
);

/// An instant in UTC, in whole milliseconds since the Unix epoch.
///
/// Milliseconds are what the API renders and what both stores keep exactly, so no precision is lost
/// between a transition and its persisted row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds` (saturating: far-future instants do not wrap).
    pub fn plus_seconds(self, seconds: u32) -> Self {
        Timestamp(self.0.saturating_add(i64::from(seconds) * 1000))
    }

    /// This instant plus `millis` milliseconds (saturating).
    pub fn plus_millis(self, millis: i64) -> Self {
        Timestamp(self.0.saturating_add(millis))
    }
}
