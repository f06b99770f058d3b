//! Time as the tools read and write it: durations typed by people (`30`,
//! `500ms`, `1h30m`) and shown to them (`2m05s`), wall-clock times as
//! RFC 3339 strings (UTC, milliseconds, the form every record uses), and
//! deadlines and milliseconds that never overflow.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Nanoseconds since the Unix epoch (zero before it), for moments that
/// must be told apart below a millisecond.
pub fn unix_nanos(time: SystemTime) -> u64 {
    u64::try_from(since_epoch(time).as_nanos()).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch (zero before it).
pub fn unix_micros(time: SystemTime) -> u64 {
    u64::try_from(since_epoch(time).as_micros()).unwrap_or(u64::MAX)
}

/// How long after the Unix epoch `time` is (zero before it).
fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}

/// Milliseconds since the Unix epoch, for ordering records.
pub fn unix_millis(time: SystemTime) -> u64 {
    millis_between(UNIX_EPOCH, time)
}

/// The longest duration accepted anywhere: ten years is "forever" for a
/// task, and keeps every deadline computation far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses a duration: `1.5` (seconds), `500ms`, `30s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let duration = if let Ok(seconds) = text.parse::<f64>() {
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("'{text}' is not a duration of zero or more seconds"))?
    } else {
        humantime::parse_duration(text).map_err(|err| {
            format!("'{text}' is not a duration ({err}); examples: 30, 1.5, 500ms, 2m, 1h30m")
        })?
    };
    if duration > MAX_DURATION {
        return Err(format!("'{text}' is too long (at most 10 years)"));
    }
    Ok(duration)
}

/// A duration as [`parse_duration`] reads it back exactly, in one word
/// (`9m`, `1h30m`, `1500ms`): for a command printed to be run again.
pub fn exact_duration(duration: Duration) -> String {
    let ms = millis(duration);
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let parts = [
        (secs / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() { "0s".into() } else { text }
}

/// The moment `after` from now, or `None` (never) if it cannot be represented.
pub fn deadline(after: Duration) -> Option<Instant> {
    Instant::now().checked_add(after)
}

/// Milliseconds in a duration, saturating rather than overflowing.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `850ms`, `12.3s`, `2m05s`, `3h07m`, `2d04h`.
pub fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
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

    #[test]
    fn exact_durations_read_back_as_they_were() {
        for ms in [
            0, 1, 1500, 60_000, 540_000, 5_400_000, 5_401_000, 90_061_000,
        ] {
            let duration = Duration::from_millis(ms);
            let text = exact_duration(duration);
            assert!(!text.contains(' '), "{text}");
            assert_eq!(parse_duration(&text), Ok(duration), "{text}");
        }
        assert_eq!(exact_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn durations_accept_bare_seconds_and_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e19").is_err());
        assert!(parse_duration("20000000h").is_err());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_345), "12.3s");
        assert_eq!(human_duration(125_000), "2m05s");
        assert_eq!(human_duration(3 * 3_600_000 + 7 * 60_000), "3h07m");
        assert_eq!(human_duration(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
    }
}
