//! Rules for the texts clawrk stores (prompts, outputs, names, env vars, reasons): none may contain
//! a NUL character. PostgreSQL's `text` cannot hold one, and no legitimate input needs one, so
//! both stores refuse it the same way: a clear error naming the field, before anything is written.
//!
//! A required text must also be *visible*: it needs one character that is neither white space nor
//! a control character. (The API document states the same rule as a pattern, and the two sets —
//! Unicode White_Space plus the Cc controls — are the same in Rust and in the regex engines that
//! read the document.)

use crate::error::{DomainError, Result};

/// Refuses a text containing NUL; `field` names it in the error.
pub fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        Err(DomainError::invalid(format!(
            "{field} must not contain NUL characters"
        )))
    } else {
        Ok(())
    }
}

/// [`no_nul`] for an optional text.
pub fn no_nul_opt(field: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| no_nul(field, v))
}

/// Whether `value` has no visible character (only white space and control characters, or none).
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_means_no_visible_character() {
        for blank in ["", "  ", "\t\n", "\u{1c}\u{7f}", "\u{a0}\u{3000}", "\u{85}"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for visible in ["a", " a ", "\u{1c}x", "\u{200b}", "é"] {
            assert!(!is_blank(visible), "{visible:?}");
        }
    }

    #[test]
    fn nul_is_refused_with_the_field_named() {
        assert!(no_nul("prompt", "a haiku").is_ok());
        let e = no_nul("prompt", "a\0b").unwrap_err();
        assert_eq!(e.to_string(), "prompt must not contain NUL characters");
        assert!(no_nul_opt("reason", None).is_ok());
        assert!(no_nul_opt("reason", Some("\0")).is_err());
    }
}
