//! Civil dates and times (proleptic Gregorian, UTC) of Unix timestamps.
//!
//! openheim prints a handful of timestamps — a note's date, a session's
//! `updatedAt` for ACP clients, when an MCP sign-in expires — and pulls in
//! no date crate for them. The one conversion they share lives here:
//! [`civil_from_days`] (Howard Hinnant's algorithm) and [`UtcTime`], a
//! timestamp split into its fields, which each caller formats its own way.
//!
//! Pure arithmetic without dependencies, exact for every `i64` input: no
//! overflow, no panic.

/// The civil date of `days` since 1970-01-01: `(year, month, day)`, with
/// months and days counted from 1. Years before 1 are astronomical (the
/// year before 1 is 0).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, so a leap day ends its year, and
    // count whole 400-year eras. Splitting `days` first keeps the shift
    // from overflowing at the ends of the `i64` range.
    const DAYS_PER_ERA: i64 = 146_097;
    const EPOCH_SHIFT: i64 = 719_468;
    let shifted = days.rem_euclid(DAYS_PER_ERA) + EPOCH_SHIFT;
    let era = days.div_euclid(DAYS_PER_ERA) + shifted.div_euclid(DAYS_PER_ERA);
    let doe = shifted.rem_euclid(DAYS_PER_ERA); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive (see the ranges above).
    (year, month as u32, day as u32)
}

/// A Unix timestamp split into its UTC calendar and clock fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59 (Unix time has no leap seconds).
    pub second: u32,
    /// 0 to 999.
    pub millisecond: u32,
}

impl UtcTime {
    /// `secs` seconds since the Unix epoch (negative: before it).
    pub fn from_unix_secs(secs: i64) -> Self {
        Self::from_parts(secs, 0)
    }

    /// `ms` milliseconds since the Unix epoch (negative: before it).
    pub fn from_unix_ms(ms: i64) -> Self {
        // In [0, 999], so the cast is exact.
        Self::from_parts(ms.div_euclid(1_000), ms.rem_euclid(1_000) as u32)
    }

    fn from_parts(secs: i64, millisecond: u32) -> Self {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        // In [0, 86399], so the casts are exact.
        let rest = secs.rem_euclid(86_400) as u32;
        Self {
            year,
            month,
            day,
            hour: rest / 3_600,
            minute: rest % 3_600 / 60,
            second: rest % 60,
            millisecond,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days from 1970-01-01 to `year-month-day`, counted the slow way.
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let year_days = |y: i64| if leap(y) { 366 } else { 365 };
        let mut days: i64 = if year >= 1970 {
            (1970..year).map(year_days).sum()
        } else {
            -(year..1970).map(year_days).sum::<i64>()
        };
        let lengths = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += lengths[..month as usize - 1].iter().sum::<i64>();
        days + i64::from(day) - 1
    }

    #[test]
    fn the_epoch_is_1970_01_01() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(365), (1971, 1, 1));
    }

    #[test]
    fn leap_days_and_century_years() {
        // 2000 is a leap year (divisible by 400); 1900 and 2100 are not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(
            civil_from_days(days_from_civil(2100, 3, 1) - 1),
            (2100, 2, 28)
        );
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn every_day_of_eight_centuries_matches_a_slow_count() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let length = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut expected = (1600, 1, 1);
        for days in days_from_civil(1600, 1, 1)..=days_from_civil(2400, 12, 31) {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (year, month, day) = expected;
            expected = match (day == length(year, month), month) {
                (false, _) => (year, month, day + 1),
                (true, 12) => (year + 1, 1, 1),
                (true, _) => (year, month + 1, 1),
            };
        }
    }

    #[test]
    fn the_far_future_and_past_neither_overflow_nor_panic() {
        assert_eq!(
            civil_from_days(days_from_civil(9999, 12, 31)),
            (9999, 12, 31)
        );
        assert_eq!(
            civil_from_days(days_from_civil(20_000, 1, 1)),
            (20_000, 1, 1)
        );
        assert_eq!(
            civil_from_days(days_from_civil(-4_713, 11, 24)),
            (-4_713, 11, 24)
        );
        for days in [i64::MAX, i64::MAX - 1, i64::MIN, i64::MIN + 1] {
            let (_, month, day) = civil_from_days(days);
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
        }
        // Whole eras (146,097 days = 400 years) move the year by exactly 400.
        let era = 146_097;
        let (year, month, day) = civil_from_days(i64::MAX);
        assert_eq!(civil_from_days(i64::MAX - era), (year - 400, month, day));
        let (year, month, day) = civil_from_days(i64::MIN);
        assert_eq!(civil_from_days(i64::MIN + era), (year + 400, month, day));
        let far = UtcTime::from_unix_ms(i64::MAX);
        assert!(far.year > 292_000_000 && far.hour < 24 && far.millisecond == 807);
        let _ = UtcTime::from_unix_secs(i64::MIN);
    }

    #[test]
    fn timestamps_split_into_fields() {
        let t = UtcTime::from_unix_ms(1_796_515_199_999);
        assert_eq!(
            t,
            UtcTime {
                year: 2026,
                month: 12,
                day: 5,
                hour: 23,
                minute: 59,
                second: 59,
                millisecond: 999,
            }
        );
        assert_eq!(t.date(), "2026-12-05");
        assert_eq!(UtcTime::from_unix_secs(951_782_400).date(), "2000-02-29");
        // Before the epoch, the clock still counts forward within its day.
        let before = UtcTime::from_unix_ms(-1);
        assert_eq!(
            (before.date(), before.hour, before.millisecond),
            ("1969-12-31".into(), 23, 999)
        );
        assert_eq!(UtcTime::from_unix_secs(0), UtcTime::from_unix_ms(0));
    }
}
