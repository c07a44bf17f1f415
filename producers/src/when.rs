//! Times and durations as people type them on a command line, turned into the epoch milliseconds
//! that time rules hold.
//!
//! A provider thinks "9:00" or "within 1h30m", not in milliseconds since 1970. Parsing is split
//! from resolving: `09:00` is only an instant once a zone and a day are known, and keeping the
//! clock out of the parser lets the tests fix "today".

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveTime, TimeZone, Utc};

/// Why a time, zone, window or duration could not be read or placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum WhenError {
    /// Neither RFC 3339 nor a time of day.
    #[error(
        "`{0}` is not a time: expected RFC 3339 like 2026-11-26T09:00:00+01:00, or a time of day like 09:00 or 09:00:30"
    )]
    Time(String),
    /// Not `UTC`, `local` or a fixed offset.
    #[error("`{0}` is not a zone: expected UTC, local, or an offset like +08:00 or -05:30")]
    Zone(String),
    /// No `..` between the ends.
    #[error("`{0}` is not a window: expected FROM..TO, e.g. 08:00..09:00")]
    Window(String),
    /// Not a duration humantime understands.
    #[error("`{text}` is not a duration ({reason}); expected e.g. 90s, 15m, 1h or 1h30m")]
    Duration { text: String, reason: String },
    /// The duration does not fit in i64 milliseconds.
    #[error("`{0}` is too long a duration")]
    DurationTooLong(String),
    /// The local clock skips this time today (a daylight-saving gap) or shows it twice.
    #[error("{time} is not one instant in the local zone on {date}; give an RFC 3339 time instead")]
    Ambiguous { time: NaiveTime, date: NaiveDate },
}

/// The zone a time of day is read in. Only fixed offsets and the machine's own zone: tessera has
/// no time-zone database, and an RFC 3339 time carries its own offset anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Coordinated Universal Time.
    Utc,
    /// The zone this machine is set to.
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

impl FromStr for Zone {
    type Err = WhenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("utc") || trimmed == "Z" {
            return Ok(Zone::Utc);
        }
        if trimmed.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        // chrono reads an offset only as part of a date-time; borrow one for it.
        DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{trimmed}"))
            .map(|t| Zone::Fixed(*t.offset()))
            .map_err(|_| WhenError::Zone(text.to_string()))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Utc => f.write_str("UTC"),
            Zone::Local => f.write_str("local"),
            Zone::Fixed(offset) => write!(f, "{offset}"),
        }
    }
}

/// A time as typed: a full instant, or a time of day that still needs a zone and a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// An RFC 3339 instant, which carries its own offset.
    Instant(DateTime<FixedOffset>),
    /// `HH:MM` or `HH:MM:SS`, meaning today in the zone given with it.
    TimeOfDay(NaiveTime),
}

impl FromStr for When {
    type Err = WhenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Ok(instant) = DateTime::parse_from_rfc3339(trimmed) {
            return Ok(When::Instant(instant));
        }
        NaiveTime::parse_from_str(trimmed, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(trimmed, "%H:%M"))
            .map(When::TimeOfDay)
            .map_err(|_| WhenError::Time(text.to_string()))
    }
}

impl When {
    /// Epoch milliseconds of this time; a time of day is taken on the day `now` falls on in `zone`.
    pub fn resolve(&self, zone: Zone, now: DateTime<Utc>) -> Result<i64, WhenError> {
        match self {
            When::Instant(instant) => Ok(instant.timestamp_millis()),
            When::TimeOfDay(time) => match zone {
                Zone::Utc => today_at(&Utc, now, *time),
                Zone::Local => today_at(&Local, now, *time),
                Zone::Fixed(offset) => today_at(&offset, now, *time),
            },
        }
    }
}

fn today_at<Z: TimeZone>(zone: &Z, now: DateTime<Utc>, time: NaiveTime) -> Result<i64, WhenError> {
    let date = now.with_timezone(zone).date_naive();
    zone.from_local_datetime(&date.and_time(time))
        .single()
        .map(|t| t.timestamp_millis())
        .ok_or(WhenError::Ambiguous { time, date })
}

/// `FROM..TO`, both ends as [`When`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, inclusive.
    pub from: When,
    /// End, inclusive.
    pub to: When,
}

impl FromStr for Span {
    type Err = WhenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (from, to) = text
            .split_once("..")
            .ok_or_else(|| WhenError::Window(text.to_string()))?;
        Ok(Span {
            from: from.parse()?,
            to: to.parse()?,
        })
    }
}

/// Milliseconds of a duration like `90s`, `15m`, `1h30m` or `2d`. A leading `-` is kept, so that
/// the offer check, not the parser, names a negative duration for what it is.
pub fn parse_duration_ms(text: &str) -> Result<i64, WhenError> {
    let trimmed = text.trim();
    let (sign, magnitude) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, trimmed),
    };
    let duration = humantime::parse_duration(magnitude).map_err(|e| WhenError::Duration {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    i64::try_from(duration.as_millis())
        .map(|ms| sign * ms)
        .map_err(|_| WhenError::DurationTooLong(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        // 2026-11-26T07:30:00Z: 15:30 in +08:00, still the 25th in -10:00.
        DateTime::parse_from_rfc3339("2026-11-26T07:30:00Z")
            .unwrap()
            .to_utc()
    }

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn rfc3339_times_keep_their_own_offset_whatever_the_zone() {
        let when: When = "2026-11-26T09:00:00+01:00".parse().unwrap();
        assert_eq!(
            when.resolve(Zone::Utc, now()).unwrap(),
            ms("2026-11-26T08:00:00Z")
        );
        let fixed = "+08:00".parse().unwrap();
        assert_eq!(
            when.resolve(fixed, now()).unwrap(),
            ms("2026-11-26T08:00:00Z")
        );
    }

    #[test]
    fn a_time_of_day_is_today_in_the_given_zone() {
        let nine: When = "09:00".parse().unwrap();
        assert_eq!(
            nine.resolve(Zone::Utc, now()).unwrap(),
            ms("2026-11-26T09:00:00Z")
        );
        let plus8: Zone = "+08:00".parse().unwrap();
        assert_eq!(
            nine.resolve(plus8, now()).unwrap(),
            ms("2026-11-26T01:00:00Z")
        );
        // In -10:00 it is still the 25th at `now`, so 09:00 there is on the 25th.
        let minus10: Zone = "-10:00".parse().unwrap();
        assert_eq!(
            nine.resolve(minus10, now()).unwrap(),
            ms("2026-11-25T19:00:00Z")
        );
        let seconds: When = "09:00:30".parse().unwrap();
        assert_eq!(
            seconds.resolve(Zone::Utc, now()).unwrap(),
            ms("2026-11-26T09:00:30Z")
        );
    }

    #[test]
    fn zones_are_utc_local_or_fixed_offsets() {
        assert_eq!("UTC".parse::<Zone>().unwrap(), Zone::Utc);
        assert_eq!("utc".parse::<Zone>().unwrap(), Zone::Utc);
        assert_eq!("local".parse::<Zone>().unwrap(), Zone::Local);
        assert_eq!(
            "-05:30".parse::<Zone>().unwrap(),
            Zone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
        );
        let err = "Europe/Paris".parse::<Zone>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`Europe/Paris` is not a zone: expected UTC, local, or an offset like +08:00 or -05:30"
        );
    }

    #[test]
    fn bad_times_name_what_was_typed() {
        for bad in ["9", "25:00", "tomorrow", "2026-11-26 09:00", ""] {
            let err = bad.parse::<When>().unwrap_err();
            assert_eq!(err, WhenError::Time(bad.to_string()), "{bad}");
        }
    }

    #[test]
    fn windows_split_on_two_dots() {
        let span: Span = "08:00..2026-11-26T09:00:00Z".parse().unwrap();
        assert_eq!(
            span.from.resolve(Zone::Utc, now()).unwrap(),
            ms("2026-11-26T08:00:00Z")
        );
        assert_eq!(
            span.to.resolve(Zone::Utc, now()).unwrap(),
            ms("2026-11-26T09:00:00Z")
        );
        assert_eq!(
            "08:00-09:00".parse::<Span>().unwrap_err(),
            WhenError::Window("08:00-09:00".into())
        );
        assert_eq!(
            "08:00..9".parse::<Span>().unwrap_err(),
            WhenError::Time("9".into())
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("15m").unwrap(), 900_000);
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("1h 30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("0s").unwrap(), 0);
        assert_eq!(parse_duration_ms("-5m").unwrap(), -300_000);
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        let err = parse_duration_ms("5x").unwrap_err().to_string();
        assert!(err.starts_with("`5x` is not a duration ("), "{err}");
        assert!(
            err.ends_with("expected e.g. 90s, 15m, 1h or 1h30m"),
            "{err}"
        );
        assert!(matches!(
            parse_duration_ms("soon"),
            Err(WhenError::Duration { .. })
        ));
        assert!(matches!(
            parse_duration_ms(""),
            Err(WhenError::Duration { .. })
        ));
    }
}
