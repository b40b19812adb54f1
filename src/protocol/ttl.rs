//! Room TTLs are typed by people (`2h`, `30m`, `1h30m`), so we accept humantime's
//! forms, and bound them so a typo cannot make a room that closes at once or never.

use std::time::Duration;

pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a TTL such as `2h`, `30m`, `90s`, `1h 30m` or `1d`.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid TTL {s:?}: {e} (try 30m, 2h or 1d)"))?;
    if d < MIN_TTL {
        return Err(format!("TTL {s:?} is shorter than the minimum of 1m"));
    }
    if d > MAX_TTL {
        return Err(format!("TTL {s:?} is longer than the maximum of 30d"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_ttl("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl(" 1d ").unwrap(), Duration::from_secs(86400));
    }

    #[test]
    fn rejects_bad_and_out_of_range() {
        for bad in ["", "abc", "5", "-1h", "10s", "31d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
