//! Users, their agents and their API keys.

use crate::error::{DomainError, Result};
use crate::ids::{AgentId, Timestamp, UserId};
use crate::job::AgentRef;
use crate::money::Cents;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The name every user's first agent gets.
pub const DEFAULT_AGENT_NAME: &str = "default";

/// Longest user or agent name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A user: sender of jobs and owner of agents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique name.
    pub name: String,
    /// The wallet's balance.
    pub balance_cents: Cents,
    /// Created.
    pub created_at: Timestamp,
}

/// An agent: a worker persona owned by a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Id.
    pub id: AgentId,
    /// Owner.
    pub owner_id: UserId,
    /// Unique per owner.
    pub name: String,
    /// Free text used for matching.
    pub personality: Option<String>,
    /// Picture.
    pub avatar_url: Option<String>,
    /// The agent created with the user.
    pub is_default: bool,
    /// Created.
    pub created_at: Timestamp,
}

impl Agent {
    /// The agent and its owner, as transitions need them.
    pub fn as_ref(&self) -> AgentRef {
        AgentRef {
            agent_id: self.id,
            owner_id: self.owner_id,
        }
    }
}

/// A public directory entry: an agent with its track record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// The agent.
    pub agent: Agent,
    /// Jobs it got verified.
    pub jobs_verified: i64,
    /// Attempts it failed (given up, late, or rejected by the verifier).
    pub jobs_failed: i64,
    /// What its owner earned through it.
    pub earned_cents: Cents,
}

/// Fields of a new agent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NewAgent {
    /// Name (required, unique per owner).
    pub name: String,
    /// Personality.
    pub personality: Option<String>,
    /// Avatar.
    pub avatar_url: Option<String>,
}

/// A change to an agent; `None` leaves a field as it is, `Some(None)` clears a nullable one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AgentPatch {
    /// New name.
    pub name: Option<String>,
    /// New personality.
    pub personality: Option<Option<String>>,
    /// New avatar.
    pub avatar_url: Option<Option<String>>,
}

/// Checks and trims a user or agent name; `field` names it in the error. The checks read the name
/// as given (length, control characters), so that what is refused does not depend on trimming.
pub fn valid_name(name: &str, field: &str) -> Result<String> {
    if crate::text::is_blank(name) && !name.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!("{field} is required")));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(name.trim().to_string())
}

/// What every API key starts with.
pub const KEY_PREFIX: &str = "ck_";

/// An API key made from 32 random bytes (256 bits): `ck_` and 64 lowercase hex digits. The
/// caller brings the randomness (the domain has no random source).
pub fn api_key_from(random: [u8; 32]) -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + 64);
    key.push_str(KEY_PREFIX);
    for b in random {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Whether `token` has the shape of an API key; anything else is refused without a lookup.
pub fn is_well_formed_key(token: &str) -> bool {
    token.len() == KEY_PREFIX.len() + 64
        && token.starts_with(KEY_PREFIX)
        && token[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The SHA-256 of an API key's secret: what stores keep and look keys up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }
}

/// A digest of a prompt, to find a sender's phase-1 quote by prompt without indexing long text.
pub fn prompt_digest(prompt: &str) -> [u8; 32] {
    Sha256::digest(prompt.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(valid_name("  bob ", "name").unwrap(), "bob");
        assert!(
            valid_name("   ", "name")
                .unwrap_err()
                .to_string()
                .contains("name is required")
        );
        assert!(valid_name(&"x".repeat(65), "name").is_err());
        assert!(valid_name("a\u{0}b", "name").is_err());
    }

    #[test]
    fn api_keys_are_256_bit_hex_with_a_prefix() {
        let key = api_key_from([0xab; 32]);
        assert_eq!(key.len(), 67);
        assert!(key.starts_with("ck_abab"));
        assert!(is_well_formed_key(&key));
        assert!(!is_well_formed_key("ck_test_alice"));
        assert!(!is_well_formed_key(&key.to_uppercase()));
        assert!(!is_well_formed_key(&format!("{key}0")));
        assert!(!is_well_formed_key(""));
    }

    #[test]
    fn key_hash_is_sha256() {
        // sha256("abc")
        assert_eq!(KeyHash::of("abc").0[..4], [0xba, 0x78, 0x16, 0xbf],);
    }
}
