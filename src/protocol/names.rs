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
    #[error(
        "a route slug is the first label of a host name: at most 63 characters, and no '--' in its 3rd and 4th places (punycode like xn--… could pass for another name) (got {0:?})"
    )]
    NotAHostLabel(String),
    #[error(
        "display name must be 1-60 characters, at least one visible, without control, format, direction or invisible characters"
    )]
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

/// Whether `c` draws nothing although it is a letter or a mark: the Hangul fillers
/// (U+115F, U+1160, U+3164, U+FFA0), the combining grapheme joiner (U+034F), the blank
/// Braille pattern (U+2800), Khmer inherent vowels, Mongolian free variation selectors
/// and the rest of Unicode's default-ignorable code points that are not formatting.
/// "Ada\u{3164}" would pass for "Ada", and a name of them alone shows nothing at all.
pub fn is_invisible_letter(c: char) -> bool {
    matches!(c as u32,
        0x034F | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x2800 | 0x3164
        | 0xFFA0 | 0xFFF0..=0xFFF8 | 0xE0000..=0xE0FFF)
}

/// Whether text shows nothing: only whitespace and invisible formatting.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_format_char(c))
}

/// A display name: NFKC-normalized, trimmed, 1-60 characters, with no control, format
/// or invisible characters, and at least one that draws something (variation selectors
/// alone do not). Returns the normalized name.
pub fn validate_display_name(s: &str) -> Result<String, NameError> {
    use unicode_normalization::UnicodeNormalization;
    let normalized: String = s.nfkc().collect();
    let t = normalized.trim();
    let n = t.chars().count();
    let hidden = |c: char| c.is_control() || is_format_char(c) || is_invisible_letter(c);
    let selector = |c: char| matches!(c as u32, 0xFE00..=0xFE0F | 0xE0100..=0xE01EF);
    let visible = t.chars().any(|c| !c.is_whitespace() && !selector(c));
    if n == 0 || n > 60 || !visible || t.chars().any(hidden) {
        return Err(NameError::BadDisplayName);
    }
    Ok(t.to_string())
}

/// What a name looks like, for uniqueness: names with the same look-alike skeleton (UTS
/// #39) would pass for each other, e.g. "Ada" and Cyrillic "Аda". The skeleton is taken
/// before case folding too: Greek capital Eta folds to "η", which looks like no "h",
/// while "Ηost" itself is "Host" to the eye.
pub fn name_skeleton(name: &str) -> String {
    use unicode_security::confusable_detection::skeleton;
    let first: String = skeleton(name).collect();
    let lower = first.to_lowercase();
    let skel: String = skeleton(&lower).collect();
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
    fn greek_capitals_and_invisible_letters_pass_for_no_one() {
        assert_eq!(name_skeleton("\u{397}ost"), name_skeleton("host"));
        assert_eq!(name_skeleton("\u{392}ob"), name_skeleton("Bob"));
        assert_ne!(name_skeleton("Host"), name_skeleton("Bob"));
        for bad in [
            "\u{3164}",
            "\u{115f}",
            "\u{2800}",
            "\u{34f}",
            "Ada\u{3164}",
            "Bo\u{34f}b",
            "\u{fe0f}",
        ] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_display_name("\u{2764}\u{fe0f} Ada").is_ok());
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
