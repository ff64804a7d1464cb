//! strftime placeholders for timestamps and dates, with a per-placeholder cache.
//!
//! The cache keeps the last rendered text and the UTC interval `[from, until)` over which that
//! text cannot change: the local-time unit (hour, minute or second, whichever is the finest the
//! format shows, capped at an hour) that contains the instant. The interval is computed in local
//! time and accepted only if the zone's UTC offset is the same at both ends; no zone changes
//! its offset twice within an hour, so a DST switch inside the interval is always caught.

use std::fmt::Write as _;

use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
use chrono::{DateTime, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

use super::{escape_into, PartitionError};

const MICROS_PER_SECOND: i64 = 1_000_000;
const HOUR: i64 = 3_600 * MICROS_PER_SECOND;
/// Days from 0001-01-01 (chrono's day 1 of the common era is day 0 here) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The last rendering of one placeholder; reused buffers, so cache misses do not allocate.
#[derive(Debug, Default)]
pub(crate) struct TimeCache {
    tz: Option<Tz>,
    from: i64,
    until: i64,
    /// Escaped text, ready to append.
    text: String,
    /// chrono's raw output before escaping.
    raw: String,
}

/// How fine a format's output is, which bounds how long a rendering stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Resolution {
    Day,
    Hour,
    Minute,
    Second,
    SubSecond,
}

/// What a single strftime item needs of the instant.
fn resolution(item: &Item<'_>) -> Resolution {
    match item {
        Item::Literal(_) | Item::OwnedLiteral(_) | Item::Space(_) | Item::OwnedSpace(_) => Resolution::Day,
        Item::Numeric(numeric, _) => match numeric {
            Numeric::Year
            | Numeric::YearDiv100
            | Numeric::YearMod100
            | Numeric::IsoYear
            | Numeric::IsoYearDiv100
            | Numeric::IsoYearMod100
            | Numeric::Quarter
            | Numeric::Month
            | Numeric::Day
            | Numeric::WeekFromSun
            | Numeric::WeekFromMon
            | Numeric::IsoWeek
            | Numeric::NumDaysFromSun
            | Numeric::WeekdayFromMon
            | Numeric::Ordinal => Resolution::Day,
            Numeric::Hour | Numeric::Hour12 => Resolution::Hour,
            Numeric::Minute => Resolution::Minute,
            Numeric::Second | Numeric::Timestamp => Resolution::Second,
            _ => Resolution::SubSecond,
        },
        Item::Fixed(fixed) => match fixed {
            Fixed::ShortMonthName | Fixed::LongMonthName | Fixed::ShortWeekdayName | Fixed::LongWeekdayName => {
                Resolution::Day
            }
            // Offsets and zone names change only at transitions, which the cache checks.
            Fixed::LowerAmPm
            | Fixed::UpperAmPm
            | Fixed::TimezoneName
            | Fixed::TimezoneOffsetColon
            | Fixed::TimezoneOffsetDoubleColon
            | Fixed::TimezoneOffsetTripleColon
            | Fixed::TimezoneOffsetColonZ
            | Fixed::TimezoneOffset
            | Fixed::TimezoneOffsetZ => Resolution::Hour,
            _ => Resolution::SubSecond,
        },
        Item::Error => Resolution::SubSecond,
    }
}

/// Parses a strftime format with chrono, refusing what chrono does not know and `/` (one
/// placeholder must stay within one path segment).
fn compile(format: &str) -> Result<(Vec<Item<'static>>, Resolution), String> {
    if format.is_empty() {
        return Err("empty strftime format after `:`".to_string());
    }
    if format.contains('/') {
        return Err(format!(
            "format `{format}` contains `/`; use one placeholder per path segment, e.g. `{{ts:%Y}}/{{ts:%m}}`"
        ));
    }
    let items = StrftimeItems::new(format).parse_to_owned().map_err(|_| {
        format!("invalid strftime format `{format}`: a `%` sequence is unknown to chrono (see chrono's strftime docs; write `%%` for a literal `%`)")
    })?;
    let slash = |i: &Item<'_>| {
        matches!(i, Item::Literal(s) | Item::Space(s) if s.contains('/'))
            || matches!(i, Item::OwnedLiteral(s) | Item::OwnedSpace(s) if s.contains('/'))
    };
    if items.iter().any(slash) {
        return Err(format!(
            "format `{format}` expands to text with `/` (like %D); spell out the fields, e.g. %m-%d-%y"
        ));
    }
    let finest = items.iter().map(resolution).max().unwrap_or(Resolution::Day);
    Ok((items, finest))
}

/// A compiled format for a timestamp (or arrival time) placeholder.
#[derive(Debug, Clone)]
pub(crate) struct TimeFormat {
    items: Vec<Item<'static>>,
    /// Length of the local-time unit a rendering is cached for; `None` for sub-second formats.
    window: Option<i64>,
}

impl TimeFormat {
    pub(crate) fn compile(format: &str) -> Result<TimeFormat, String> {
        let (items, finest) = compile(format)?;
        let window = match finest {
            Resolution::Day | Resolution::Hour => Some(HOUR),
            Resolution::Minute => Some(60 * MICROS_PER_SECOND),
            Resolution::Second => Some(MICROS_PER_SECOND),
            Resolution::SubSecond => None,
        };
        Ok(TimeFormat { items, window })
    }

    /// The compiled strftime items, for completion's clock (which renders and parses them).
    pub(super) fn items(&self) -> &[Item<'static>] {
        &self.items
    }

    /// Appends `micros` (UTC) formatted in `tz`, escaped, to `out`.
    pub(crate) fn render(
        &self,
        micros: i64,
        tz: Tz,
        cache: &mut TimeCache,
        field: &str,
        out: &mut String,
    ) -> Result<(), PartitionError> {
        if cache.tz == Some(tz) && cache.from <= micros && micros < cache.until {
            out.push_str(&cache.text);
            return Ok(());
        }
        let unformattable = || PartitionError::UnsafeValue {
            field: field.to_string(),
            value: micros.to_string(),
            why: "timestamp cannot be formatted",
        };
        let local = DateTime::from_timestamp_micros(micros).ok_or_else(unformattable)?.with_timezone(&tz);
        cache.raw.clear();
        write!(cache.raw, "{}", local.format_with_items(self.items.iter())).map_err(|_| unformattable())?;
        cache.text.clear();
        escape_into(&cache.raw, &mut cache.text);
        out.push_str(&cache.text);
        cache.tz = None;
        if let Some(window) = self.window {
            let offset = i64::from(local.offset().fix().local_minus_utc());
            let from = micros - (micros + offset * MICROS_PER_SECOND).rem_euclid(window);
            let until = from + window;
            if offset_at(tz, from) == Some(offset) && offset_at(tz, until - 1) == Some(offset) {
                (cache.tz, cache.from, cache.until) = (Some(tz), from, until);
            }
        }
        Ok(())
    }
}

fn offset_at(tz: Tz, micros: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp_micros(micros)?.naive_utc();
    Some(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()))
}

/// A compiled format for a date placeholder (no time-of-day or zone specifiers).
#[derive(Debug, Clone)]
pub(crate) struct DateFormat {
    items: Vec<Item<'static>>,
}

impl DateFormat {
    pub(crate) fn compile(format: &str, field: &str) -> Result<DateFormat, String> {
        let (items, finest) = compile(format)?;
        if finest > Resolution::Day
            || items.iter().any(|i| matches!(i, Item::Fixed(Fixed::LowerAmPm | Fixed::UpperAmPm)))
        {
            return Err(format!("format `{format}` uses time-of-day or timezone specifiers, but `{field}` is a date"));
        }
        Ok(DateFormat { items })
    }

    /// The compiled strftime items, for completion's clock (which renders and parses them).
    pub(super) fn items(&self) -> &[Item<'static>] {
        &self.items
    }

    /// Appends the date `days` (since 1970-01-01) formatted and escaped to `out`.
    pub(crate) fn render(
        &self,
        days: i32,
        cache: &mut TimeCache,
        field: &str,
        out: &mut String,
    ) -> Result<(), PartitionError> {
        let key = i64::from(days);
        if cache.from == key && cache.until == key + 1 {
            out.push_str(&cache.text);
            return Ok(());
        }
        let unformattable = || PartitionError::UnsafeValue {
            field: field.to_string(),
            value: days.to_string(),
            why: "date cannot be formatted",
        };
        let date = date_from_days(days).ok_or_else(unformattable)?;
        cache.raw.clear();
        write!(cache.raw, "{}", date.format_with_items(self.items.iter())).map_err(|_| unformattable())?;
        cache.text.clear();
        escape_into(&cache.raw, &mut cache.text);
        out.push_str(&cache.text);
        (cache.from, cache.until) = (key, key + 1);
        Ok(())
    }
}

fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// `YYYY-MM-DD` of a date given as days since 1970-01-01 (the default for `{date_field}`).
pub(crate) fn push_iso_date(days: i32, out: &mut String) {
    match date_from_days(days) {
        Some(date) => write!(out, "{}", date.format("%Y-%m-%d")),
        None => write!(out, "{days}"),
    }
    .expect("writing to a String cannot fail");
}
