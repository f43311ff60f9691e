//! Wall-clock helpers: microsecond timestamps as stored in the database, and the two date formats
//! sponts writes (RFC 5322 in Received:, RFC 3339 in the CLI and JSON). No time-zone database is
//! needed: sponts writes UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) of a timestamp in microseconds, UTC.
pub fn date(us: i64) -> (i64, u32, u32) {
    civil(us.div_euclid(86_400_000_000))
}

fn split(us: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60, days)
}

/// `Sat, 28 Nov 2026 01:19:04 +0000`
pub fn rfc5322(us: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss, days) = split(us);
    format!(
        "{}, {d:02} {} {y} {hh:02}:{mm:02}:{ss:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// `2026-11-28T01:19:04Z`
pub fn rfc3339(us: i64) -> String {
    let (y, m, d, hh, mm, ss, _) = split(us);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2026-11-28 01:19:04 UTC
        assert_eq!(
            rfc5322(1_795_828_744_000_000),
            "Sat, 28 Nov 2026 01:19:04 +0000"
        );
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00Z");
    }
}

/// Microseconds at 00:00 UTC of a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let (y, m, d): (i64, u32, u32) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // H. Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let us = days * 86_400_000_000;
    (rfc3339(us)[..10] == *s.trim()).then_some(us)
}

#[cfg(test)]
mod date_tests {
    #[test]
    fn parse_dates() {
        assert_eq!(super::parse_date("1970-01-01"), Some(0));
        assert_eq!(super::parse_date("2000-02-29"), Some(951_782_400_000_000));
        assert_eq!(super::parse_date("2001-02-29"), None);
        assert_eq!(super::parse_date("yesterday"), None);
    }
}
