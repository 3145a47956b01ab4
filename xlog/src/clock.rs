//! UTC calendar arithmetic for file names (`chime_YYYYMMDD.xlog`), retention and line
//! timestamps, without a date-time dependency: a Unix day number converts to and from a
//! proleptic Gregorian (year, month, day) with the usual era-based integer method.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The Unix day number (days since 1970-01-01, UTC) of a millisecond timestamp.
pub fn day_of_ms(ms: u64) -> i64 {
    i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX)
}

/// A UTC calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year (e.g. 2026).
    pub year: i64,
    /// The month, 1..=12.
    pub month: u32,
    /// The day of the month, 1..=31.
    pub day: u32,
}

impl Date {
    /// The date of a Unix day number.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097); // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
        let mp = (5 * doy + 2) / 153; // [0, 11]
        let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
        let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year,
            month: month as u32,
            day: day as u32,
        }
    }

    /// The Unix day number of this date.
    pub fn to_days(self) -> i64 {
        let month = i64::from(self.month);
        let year = if month <= 2 { self.year - 1 } else { self.year };
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let mp = if month > 2 { month - 3 } else { month + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// `YYYYMMDD`, as in file names.
    pub fn compact(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// Parses `YYYYMMDD` (exactly eight ASCII digits, a real calendar date).
    pub fn parse_compact(s: &str) -> Option<Date> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i64 = s[0..4].parse().ok()?;
        let month: u32 = s[4..6].parse().ok()?;
        let day: u32 = s[6..8].parse().ok()?;
        let date = Date { year, month, day };
        // Reject 20260231 and the like: a real date survives the round trip.
        (Date::from_days(date.to_days()) == date).then_some(date)
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of a millisecond timestamp, as at the start of each line.
pub fn format_timestamp(ms: u64, out: &mut String) {
    use std::fmt::Write;
    let date = Date::from_days(day_of_ms(ms));
    let in_day = ms % 86_400_000;
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {h:02}:{m:02}:{s:02}.{milli:03}",
        date.year, date.month, date.day
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_convert_both_ways() {
        assert_eq!(
            Date::from_days(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        assert_eq!(
            Date::from_days(20_516),
            Date {
                year: 2026,
                month: 3,
                day: 4
            }
        );
        assert_eq!(
            Date {
                year: 2000,
                month: 2,
                day: 29
            }
            .to_days(),
            11_016
        );
        for days in -800_000..800_000i64 {
            if days % 997 == 0 {
                assert_eq!(Date::from_days(days).to_days(), days);
            }
        }
    }

    #[test]
    fn compact_dates_parse_only_when_real() {
        let d = Date::parse_compact("20261125");
        assert_eq!(
            d,
            Some(Date {
                year: 2026,
                month: 11,
                day: 25
            })
        );
        assert_eq!(d.map(Date::compact).as_deref(), Some("20261125"));
        assert_eq!(Date::parse_compact("20260231"), None);
        assert_eq!(Date::parse_compact("2026112"), None);
        assert_eq!(Date::parse_compact("2026-1125"), None);
    }

    #[test]
    fn timestamps_format_in_utc() {
        let mut s = String::new();
        format_timestamp(1_764_106_849_123, &mut s);
        assert_eq!(s, "2025-11-25 21:40:49.123");
    }
}
