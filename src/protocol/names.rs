//! Room ids and aliases become directory names and URL parts, so they are held to a
//! safe slug before anything touches the disk; display names are free text shown to
//! people, so they only exclude what would break a line or hide who is speaking.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{what} must be 1-64 characters of a-z, 0-9 and '-' (got {got:?})")]
    BadSlug { what: &'static str, got: String },
    #[error("{what} must not start or end with '-' (got {got:?})")]
    EdgeDash { what: &'static str, got: String },
    #[error("{0:?} is reserved")]
    Reserved(String),
    #[error("display name must be 1-60 characters without control characters")]
    BadDisplayName,
}

fn validate_slug(what: &'static str, s: &str) -> Result<(), NameError> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s.is_empty() || s.len() > 64 || !ok_chars {
        return Err(NameError::BadSlug {
            what,
            got: s.chars().take(80).collect(),
        });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::EdgeDash {
            what,
            got: s.to_string(),
        });
    }
    Ok(())
}

/// A room id: a safe slug, usable as one path segment.
pub fn validate_room_id(s: &str) -> Result<(), NameError> {
    validate_slug("room id", s)
}

/// A participant alias: a safe slug; `system` is the server's own sender.
pub fn validate_alias(s: &str) -> Result<(), NameError> {
    validate_slug("alias", s)?;
    if s == "system" {
        return Err(NameError::Reserved(s.to_string()));
    }
    Ok(())
}

/// A display name: 1-60 characters, no control characters, not blank. Returns it trimmed.
pub fn validate_display_name(s: &str) -> Result<String, NameError> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 || n > 60 || t.chars().any(char::is_control) {
        return Err(NameError::BadDisplayName);
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "room-1", "x2", &"a".repeat(64)] {
            assert!(validate_room_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a.b",
            "../x",
            "a/b",
            "a b",
            "-a",
            "a-",
            "é",
            &"a".repeat(65),
            "a\0",
        ] {
            assert!(validate_room_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_alias("system").is_err());
        assert!(validate_alias("reviewer").is_ok());
    }

    #[test]
    fn display_names() {
        assert_eq!(validate_display_name("  Ada L. ").unwrap(), "Ada L.");
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name("a\nb").is_err());
        assert!(validate_display_name(&"x".repeat(61)).is_err());
        assert!(validate_display_name(&"é".repeat(60)).is_ok());
    }
}
