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
    #[error("display name must be 1-60 characters without control, format or direction characters")]
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

/// A participant alias: a safe slug; `system` is the server's own sender and `all`
/// mentions everyone (SPEC §8.3).
pub fn validate_alias(s: &str) -> Result<(), NameError> {
    validate_slug("alias", s)?;
    if s == "system" || s == "all" {
        return Err(NameError::Reserved(s.to_string()));
    }
    Ok(())
}

/// Whether `c` is invisible formatting (Unicode category Cf): zero-width spaces and
/// joiners, bidi embeddings, overrides and isolates, the BOM, tag characters. They let
/// "Ada\u{200b}" pass for "Ada" and "\u{202e}tsoH" render as "Host".
pub fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Whether text shows nothing: only whitespace and invisible formatting.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_format_char(c))
}

/// A display name: NFKC-normalized, trimmed, 1-60 characters, with no control or format
/// characters. Returns the normalized name.
pub fn validate_display_name(s: &str) -> Result<String, NameError> {
    use unicode_normalization::UnicodeNormalization;
    let normalized: String = s.nfkc().collect();
    let t = normalized.trim();
    let n = t.chars().count();
    if n == 0 || n > 60 || t.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err(NameError::BadDisplayName);
    }
    Ok(t.to_string())
}

/// What a name looks like, for uniqueness: names with the same look-alike skeleton (UTS
/// #39, after case folding) would pass for each other, e.g. "Ada" and Cyrillic "Аda".
pub fn name_skeleton(name: &str) -> String {
    let lower: String = name.to_lowercase();
    let skel: String = unicode_security::confusable_detection::skeleton(&lower).collect();
    skel.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_share_a_skeleton() {
        assert_eq!(name_skeleton("Ada"), name_skeleton("\u{410}da"));
        assert_eq!(name_skeleton("ada"), name_skeleton("ADA"));
        assert_ne!(name_skeleton("Ada"), name_skeleton("Bob"));
        for bad in [
            "Ada\u{200b}",
            "\u{202e}tsoH",
            "a\u{2066}b",
            " \u{200b} ",
            "x\u{7}",
        ] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
        // NFKC: full-width letters become plain ones.
        assert_eq!(validate_display_name("\u{ff21}da").unwrap(), "Ada");
        assert!(is_blank("\u{200b}\u{feff} \n"));
        assert!(!is_blank("\u{200b}x"));
        assert!(validate_alias("all").is_err());
    }

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
