//! Wall-clock times as RFC 3339 strings (UTC, milliseconds), the form every
//! record uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats a time as `2026-11-21T22:39:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Parses an RFC 3339 time written by [`rfc3339`]; `None` if malformed.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

/// Milliseconds from `earlier` to `later`, zero if the clock went backwards.
pub fn millis_between(earlier: SystemTime, later: SystemTime) -> u64 {
    let elapsed = later.duration_since(earlier).unwrap_or(Duration::ZERO);
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, for ordering records.
pub fn unix_millis(time: SystemTime) -> u64 {
    millis_between(UNIX_EPOCH, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_millisecond_precision() {
        let time = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let text = rfc3339(time);
        assert!(text.ends_with(".123Z"), "{text}");
        assert_eq!(parse_rfc3339(&text), Some(time));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
