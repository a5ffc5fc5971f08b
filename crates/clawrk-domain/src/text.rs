//! Rules for the texts clawrk stores (prompts, outputs, names, env vars, reasons): none may contain
//! a NUL character. PostgreSQL's `text` cannot hold one, and no legitimate input needs one, so
//! both stores refuse it the same way: a clear error naming the field, before anything is written.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_with_the_field_named() {
        assert!(no_nul("prompt", "a haiku").is_ok());
        let e = no_nul("prompt", "a\0b").unwrap_err();
        assert_eq!(e.to_string(), "prompt must not contain NUL characters");
        assert!(no_nul_opt("reason", None).is_ok());
        assert!(no_nul_opt("reason", Some("\0")).is_err());
    }
}
