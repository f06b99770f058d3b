//! Sizes of bytes as people write them (`200M`, `2GiB`, `none`) and as
//! people read them (`1.5 GiB`): the output cap (`--max-output`,
//! `BG_MAX_OUTPUT`) and the state dir's budget (`BG_STATE_MAX`).
//! Every unit is binary: `1M` is 1024 * 1024 bytes, as in `ls -h`, `df -h`.

/// Parses a size: a whole number of bytes with an optional binary unit
/// (`K`, `M`, `G`, `T`, `P`, each also as `KB`/`KiB`, any case), or `none`
/// for no limit (`Ok(None)`).
pub fn parse_size(text: &str) -> std::result::Result<Option<u64>, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let explain = || {
        format!(
            "'{}' is not a size; examples: 500K, 200M, 2G, 1GiB, 1048576, none",
            crate::format::printable(text)
        )
    };
    if number.is_empty() {
        return Err(explain());
    }
    let shift = unit_shift(unit.trim_start()).ok_or_else(explain)?;
    let value: u64 = number.parse().map_err(|_| too_large(text))?;
    let bytes = value
        .checked_mul(1 << shift)
        .ok_or_else(|| too_large(text))?;
    Ok(Some(bytes))
}

fn too_large(text: &str) -> String {
    format!("'{}' is too large", crate::format::printable(text))
}

/// The power of two a unit stands for.
fn unit_shift(unit: &str) -> Option<u32> {
    let lower = unit.to_ascii_lowercase();
    let prefix = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    match (prefix, lower.as_str()) {
        (_, "" | "b") => Some(0),
        ("k", _) => Some(10),
        ("m", _) => Some(20),
        ("g", _) => Some(30),
        ("t", _) => Some(40),
        ("p", _) => Some(50),
        _ => None,
    }
}

/// `512 B`, `1.5 KiB`, `200 MiB`, `2.0 GiB`: three digits at most, so
/// that columns stay narrow.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 && value.fract() != 0.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_in_any_spelling() {
        assert_eq!(parse_size("1048576"), Ok(Some(1 << 20)));
        assert_eq!(parse_size("200M"), Ok(Some(200 << 20)));
        assert_eq!(parse_size("200mb"), Ok(Some(200 << 20)));
        assert_eq!(parse_size("2GiB"), Ok(Some(2 << 30)));
        assert_eq!(parse_size("2 G"), Ok(Some(2 << 30)));
        assert_eq!(parse_size("512K"), Ok(Some(512 << 10)));
        assert_eq!(parse_size("10B"), Ok(Some(10)));
        assert_eq!(parse_size("none"), Ok(None));
        assert_eq!(parse_size("NONE"), Ok(None));
        assert_eq!(parse_size("0"), Ok(Some(0)));
    }

    #[test]
    fn sizes_refuse_what_is_not_one() {
        for bad in ["", "-1", "1XB", "M", "1.5G", "1 2", "garbage", "1e9", "1Gx"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.contains("is not a size"), "{bad}: {err}");
        }
        let err = parse_size("99999999999999999999").expect_err("overflow");
        assert!(err.contains("too large"), "{err}");
        let err = parse_size("20000000P").expect_err("overflow");
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 << 20), "200 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(10 << 30), "10 GiB");
        assert_eq!(human_size(u64::MAX), "16 EiB");
    }
}
