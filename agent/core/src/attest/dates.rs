//! The dates Intel's collateral and certificates carry, read and written as unix seconds: a leaf the
//! collateral checks (`pck`), the collateral port and the node share.

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → unix seconds (the form Intel's collateral uses).
pub fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (the form [`parse_rfc3339_utc`] reads); `None` past what
/// that form can write (year 9999).
pub fn rfc3339_utc(unix: u64) -> Option<String> {
    let t = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix)).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minutes(),
        t.seconds()
    ))
}

/// [`rfc3339_utc`] for display: the bare number for a time it cannot write.
pub fn format_rfc3339_utc(unix: u64) -> String {
    rfc3339_utc(unix).unwrap_or_else(|| unix.to_string())
}
