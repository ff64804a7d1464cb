//! Completion's clock: the one time field a partition template formats, and the time bucket each
//! directory names (`dt=2026-11-25/hour=17` is the hour 17:00–18:00 in `partition.timezone`).
//! Design: `docs/design/partition-completion.md`, section 1.
//!
//! [`Clock::resolve`] runs once, at load. It refuses a template whose directories do not each
//! name one interval by a round trip rather than a rule per strftime specifier: sample instants
//! (both DST switches of 2026 in the zone among them) are rendered, parsed back with chrono and
//! compared with their bucket. That catches `%H` alone (every day's 17:00 in one directory), `%m`
//! without a year, `%y` (2099 reads back as 1999) and `%a`, and any combination nobody listed.
//!
//! Buckets are computed on local labels: truncate the local time to the unit, add one unit
//! (calendar months for months), and map both labels back to instants. A label that occurs twice
//! (DST fall-back) maps to the earlier instant, so that night's `hour=02` holds both 02 hours; a
//! label that does not occur (spring-forward gap) maps to the switch.

use std::fmt::{self, Write as _};

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono::{SecondsFormat, Timelike};
use chrono_tz::Tz;

use super::{escape_into, template_segments, unescape, Part, PartitionTemplate};
use crate::decode::{ParsedRow, PartitionValue};

const MICROS_PER_SECOND: i64 = 1_000_000;

/// How long a bucket is: the finest unit any clock format prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Year => "year",
            Unit::Month => "month",
            Unit::Day => "day",
            Unit::Hour => "hour",
            Unit::Minute => "minute",
        })
    }
}

/// One value of the template's time segments: `[start, end)`, µs since the epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: i64,
    pub end: i64,
}

/// Where a row's clock value comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Arrival time (`{_ingest:…}`).
    Ingest,
    Timestamp(Vec<usize>),
    /// A date field: its value is the start of the date in the pipeline's zone.
    Date(Vec<usize>),
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    /// A clock placeholder's strftime items.
    Clock(Vec<Item<'static>>),
    /// Any other field's value.
    Value,
}

/// One path segment of the template.
#[derive(Debug, Clone)]
enum Segment {
    /// Literals and clock placeholders: rendered from a bucket and parsed back to one. `items`
    /// is the whole segment as chrono items (literals included), for parsing.
    Time { pieces: Vec<Piece>, items: Vec<Item<'static>> },
    /// Literals and other fields' values; no clock placeholder.
    Field(Vec<Piece>),
}

/// The template's clock, resolved once when `partition.completion` is set.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The field as written in the template (`ts`, `geo.at`, `_ingest`).
    field: String,
    source: Source,
    tz: Tz,
    unit: Unit,
    segments: Vec<Segment>,
}

impl Clock {
    /// The clock of `template` in `tz`; on failure every problem, each a sentence naming the
    /// template and what to change (the caller reports them at `partition.path`).
    pub fn resolve(template: &PartitionTemplate, tz: Tz) -> Result<Clock, Vec<String>> {
        let text = template.as_str();
        let written = template_segments(text);
        let mut problems = Vec::new();
        let mut clock: Option<(String, Source)> = None;
        let mut other_clocks: Vec<&str> = Vec::new();
        let mut unit = None;
        let mut segments: Vec<Vec<Piece>> = vec![Vec::new()];
        for part in &template.parts {
            let (field, source, items) = match part {
                Part::Literal(literal) => {
                    for (i, chunk) in literal.split('/').enumerate() {
                        if i > 0 {
                            segments.push(Vec::new());
                        }
                        if !chunk.is_empty() {
                            segments.last_mut().expect("never empty").push(Piece::Literal(chunk.to_string()));
                        }
                    }
                    continue;
                }
                Part::Value { date: false, .. } => {
                    segments.last_mut().expect("never empty").push(Piece::Value);
                    continue;
                }
                Part::Value { field, path, date: true } => {
                    let items = StrftimeItems::new("%Y-%m-%d").parse_to_owned().expect("a valid format");
                    (field, Source::Date(path.clone()), items)
                }
                Part::Time { field, path: None, format } => (field, Source::Ingest, format.items().to_vec()),
                Part::Time { field, path: Some(path), format } => {
                    (field, Source::Timestamp(path.clone()), format.items().to_vec())
                }
                Part::Date { field, path, format } => (field, Source::Date(path.clone()), format.items().to_vec()),
            };
            match &clock {
                None => clock = Some((field.clone(), source)),
                Some((first, _)) if first != field && !other_clocks.contains(&field.as_str()) => {
                    other_clocks.push(field)
                }
                Some(_) => {}
            }
            let segment = written.get(segments.len() - 1).copied().unwrap_or(text);
            for item in &items {
                match unit_of(item) {
                    Ok(u) => unit = unit.max(u),
                    Err(why) => problems.push(format!("`{segment}` {why}")),
                }
            }
            segments.last_mut().expect("never empty").push(Piece::Clock(items));
        }
        let Some((field, source)) = clock else {
            return Err(vec![format!(
                "completion needs a time field in partition.path, e.g. `dt={{ts:%Y-%m-%d}}`; `{text}` has none \
                 (a directory is complete when its time bucket is over)"
            )]);
        };
        for other in other_clocks {
            problems.push(format!(
                "completion needs one clock, but `{text}` formats both `{field}` and `{other}`: use one time field \
                 for every time placeholder"
            ));
        }
        let mut resolved = Vec::new();
        for (pieces, segment) in segments.into_iter().zip(&written) {
            let clocks = pieces.iter().any(|p| matches!(p, Piece::Clock(_)));
            let values = pieces.iter().any(|p| matches!(p, Piece::Value));
            if clocks && values {
                problems.push(format!(
                    "segment `{segment}` mixes the time field `{field}` with another field: with completion a \
                     segment holds either time placeholders or other fields, e.g. `dt={{ts:%Y-%m-%d}}/country={{country}}`"
                ));
            }
            resolved.push(if clocks {
                let items = pieces
                    .iter()
                    .flat_map(|p| match p {
                        Piece::Literal(text) => vec![Item::OwnedLiteral(text.clone().into_boxed_str())],
                        Piece::Clock(items) => items.clone(),
                        Piece::Value => Vec::new(),
                    })
                    .collect();
                Segment::Time { pieces, items }
            } else {
                Segment::Field(pieces)
            });
        }
        problems.dedup();
        if !problems.is_empty() {
            return Err(problems);
        }
        let Some(unit) = unit else {
            return Err(vec![format!(
                "`{text}` prints no date or time of `{field}`: completion needs the year and every unit down to the \
                 bucket's, e.g. `dt={{{field}:%Y-%m-%d}}`"
            )]);
        };
        let clock = Clock { field, source, tz, unit, segments: resolved };
        clock.check_round_trip(text)?;
        Ok(clock)
    }

    /// The clock field as written in the template; `_ingest` for arrival time.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// A date field: every value is the start of a day, so nothing can follow it within the day.
    pub fn is_date(&self) -> bool {
        matches!(self.source, Source::Date(_))
    }

    /// The bucket length.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// Number of path segments of the template (time and field segments).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// A row's clock value (µs since the epoch, UTC): the timestamp field, the start of the date
    /// field's date in the pipeline's zone, or `ingest_micros` for arrival time. `None` when the
    /// field is null or missing (such a row is quarantined by the render anyway).
    pub fn micros(&self, row: &ParsedRow, ingest_micros: i64) -> Option<i64> {
        match &self.source {
            Source::Ingest => Some(ingest_micros),
            Source::Timestamp(path) => match row.value_at(path)? {
                PartitionValue::TimestampMicros(t) => Some(t),
                _ => None,
            },
            Source::Date(path) => match row.value_at(path)? {
                PartitionValue::Date(days) => self.date_micros(days),
                _ => None,
            },
        }
    }

    /// The start of the date `days` (since 1970-01-01) in the pipeline's zone: a date clock's
    /// value, so that [`Clock::bucket_at`] of it is the bucket its directory names.
    fn date_micros(&self, days: i32) -> Option<i64> {
        let date = NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(TimeDelta::try_days(i64::from(days))?)?;
        instant(self.tz, date.and_hms_opt(0, 0, 0)?)
    }

    /// The bucket holding `micros`; `None` outside chrono's range (about ±262,000 years).
    pub fn bucket_at(&self, micros: i64) -> Option<Bucket> {
        let local = DateTime::from_timestamp_micros(micros)?.with_timezone(&self.tz).naive_local();
        self.bucket_of_label(self.truncate(local)?)
    }

    /// The bucket a directory (relative to the table, as published: `dt=2026-11-25/hour=17`,
    /// still escaped) names; `None` for a directory this template cannot have rendered: another
    /// depth, a hidden name (`_rejected/…`, `.x`), literals that differ, or time segments that
    /// do not parse back to a bucket whose rendering they are.
    pub fn bucket_of_dir(&self, dir: &str) -> Option<Bucket> {
        let names: Vec<&str> = dir.split('/').collect();
        if names.len() != self.segments.len() {
            return None;
        }
        let mut parsed = Parsed::new();
        for (segment, name) in self.segments.iter().zip(names) {
            // Rendering refuses these (Spark hides them), so they are never a partition.
            if name.starts_with('.') || (name.starts_with('_') && !name.contains('=')) {
                return None;
            }
            match segment {
                Segment::Time { items, .. } => {
                    chrono::format::parse(&mut parsed, &unescape(name), items.iter()).ok()?
                }
                Segment::Field(pieces) => {
                    if !matches_shape(pieces, name) {
                        return None;
                    }
                }
            }
        }
        // The units below the bucket's are not printed: the label starts the bucket.
        if self.unit < Unit::Minute {
            parsed.set_minute(0).ok()?;
        }
        if self.unit < Unit::Hour {
            parsed.set_hour(0).ok()?;
        }
        if self.unit < Unit::Day {
            parsed.set_day(1).ok()?;
        }
        if self.unit < Unit::Month {
            parsed.set_month(1).ok()?;
        }
        let label = parsed.to_naive_date().ok()?.and_time(parsed.to_naive_time().ok()?);
        let bucket = self.bucket_of_label(label)?;
        // Only what rendering produces: `hour=7` parses, but Landfall writes `hour=07`, and a
        // label in a spring-forward gap renders as the hour after it.
        let rendered = |(i, name): (usize, &str)| self.time_segment(bucket, i).is_none_or(|text| text == name);
        dir.split('/').enumerate().all(rendered).then_some(bucket)
    }

    /// Path segment `i` rendered at the bucket's start, escaped as in a published path
    /// (`hour=17`); `None` for a field segment or an index past the template.
    pub fn time_segment(&self, bucket: Bucket, i: usize) -> Option<String> {
        let Segment::Time { pieces, .. } = self.segments.get(i)? else {
            return None;
        };
        render(pieces, &DateTime::from_timestamp_micros(bucket.start)?.with_timezone(&self.tz))
    }

    /// The local label truncated to the unit.
    fn truncate(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let date = local.date();
        let (hour, minute) = (local.hour(), local.minute());
        match self.unit {
            Unit::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?.and_hms_opt(0, 0, 0),
            Unit::Month => date.with_day(1)?.and_hms_opt(0, 0, 0),
            Unit::Day => date.and_hms_opt(0, 0, 0),
            Unit::Hour => date.and_hms_opt(hour, 0, 0),
            Unit::Minute => date.and_hms_opt(hour, minute, 0),
        }
    }

    /// The bucket starting at the local label `start`.
    fn bucket_of_label(&self, start: NaiveDateTime) -> Option<Bucket> {
        let end = match self.unit {
            Unit::Year => start.checked_add_months(Months::new(12))?,
            Unit::Month => start.checked_add_months(Months::new(1))?,
            Unit::Day => start.checked_add_days(Days::new(1))?,
            Unit::Hour => start.checked_add_signed(TimeDelta::hours(1))?,
            Unit::Minute => start.checked_add_signed(TimeDelta::minutes(1))?,
        };
        Some(Bucket { start: instant(self.tz, start)?, end: instant(self.tz, end)? })
    }

    /// Renders sample instants and parses them back; a directory that does not read back as the
    /// sample's bucket means the template's directories do not name one interval each.
    fn check_round_trip(&self, text: &str) -> Result<(), Vec<String>> {
        for sample in samples(self.tz) {
            let Some(expected) = self.bucket_at(sample) else { continue };
            let Some(local) = DateTime::from_timestamp_micros(sample).map(|t| t.with_timezone(&self.tz)) else {
                continue;
            };
            let names: Option<Vec<String>> = self
                .segments
                .iter()
                .map(|segment| match segment {
                    Segment::Time { pieces, .. } | Segment::Field(pieces) => render(pieces, &local),
                })
                .collect();
            let Some(dir) = names.map(|names| names.join("/")) else { continue };
            let found = self.bucket_of_dir(&dir);
            if found == Some(expected) {
                continue;
            }
            let unit = self.unit;
            let read = match found {
                Some(bucket) => format!("the {unit} {}", show(bucket)),
                None => format!("no single {unit}"),
            };
            return Err(vec![format!(
                "`{text}` does not name one {unit} per directory, which completion needs: {} lands in `{dir}`, \
                 which reads back as {read}, not {}; print the year and every unit down to the {unit} \
                 (not `%y`, a weekday or `%I` without `%p`), e.g. `dt={{{}:%Y-%m-%d}}/hour={{{}:%H}}`",
                utc(sample),
                show(expected),
                self.field,
                self.field
            )]);
        }
        Ok(())
    }
}

/// The unit an item prints (`None`: literals, AM/PM, zones), or why a clock cannot use it.
fn unit_of(item: &Item<'_>) -> Result<Option<Unit>, &'static str> {
    const SECONDS: &str = "prints seconds or finer: completion's finest bucket is the minute";
    const WEEKS: &str = "prints a week or week-based year: completion does not support week buckets; use days";
    let unit = match item {
        Item::Numeric(numeric, _) => match numeric {
            Numeric::Year | Numeric::YearDiv100 | Numeric::YearMod100 => Unit::Year,
            Numeric::Quarter | Numeric::Month => Unit::Month,
            Numeric::Day | Numeric::Ordinal | Numeric::NumDaysFromSun | Numeric::WeekdayFromMon => Unit::Day,
            Numeric::Hour | Numeric::Hour12 => Unit::Hour,
            Numeric::Minute => Unit::Minute,
            Numeric::IsoYear
            | Numeric::IsoYearDiv100
            | Numeric::IsoYearMod100
            | Numeric::WeekFromSun
            | Numeric::WeekFromMon
            | Numeric::IsoWeek => return Err(WEEKS),
            _ => return Err(SECONDS),
        },
        Item::Fixed(fixed) => match fixed {
            Fixed::ShortMonthName | Fixed::LongMonthName => Unit::Month,
            Fixed::ShortWeekdayName | Fixed::LongWeekdayName => Unit::Day,
            Fixed::LowerAmPm
            | Fixed::UpperAmPm
            | Fixed::TimezoneName
            | Fixed::TimezoneOffsetColon
            | Fixed::TimezoneOffsetDoubleColon
            | Fixed::TimezoneOffsetTripleColon
            | Fixed::TimezoneOffsetColonZ
            | Fixed::TimezoneOffset
            | Fixed::TimezoneOffsetZ => return Ok(None),
            _ => return Err(SECONDS),
        },
        _ => return Ok(None),
    };
    Ok(Some(unit))
}

/// Renders a segment's pieces at `local` as `PartitionTemplate::render` does: literals as
/// written, formatted values escaped. A field's value renders as `v` (only the round trip
/// renders field segments).
fn render(pieces: &[Piece], local: &DateTime<Tz>) -> Option<String> {
    let (mut out, mut raw) = (String::new(), String::new());
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Clock(items) => {
                raw.clear();
                write!(raw, "{}", local.format_with_items(items.iter())).ok()?;
                escape_into(&raw, &mut out);
            }
            Piece::Value => out.push('v'),
        }
    }
    Some(out)
}

/// Whether `name` fits a field segment's shape: literals as written, each value non-empty.
fn matches_shape(pieces: &[Piece], name: &str) -> bool {
    match pieces.split_first() {
        None => name.is_empty(),
        Some((Piece::Literal(text), rest)) => name.strip_prefix(text.as_str()).is_some_and(|n| matches_shape(rest, n)),
        Some((_, rest)) => (1..=name.len()).any(|i| name.is_char_boundary(i) && matches_shape(rest, &name[i..])),
    }
}

/// The instant of a local label: the earlier of two (fall-back), the switch for none (a
/// spring-forward gap).
fn instant(tz: Tz, label: NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(&label) {
        LocalResult::Single(t) => Some(t.timestamp_micros()),
        LocalResult::Ambiguous(a, b) => Some(a.timestamp_micros().min(b.timestamp_micros())),
        LocalResult::None => {
            // The first second whose local time is at or past the label. Offsets lie within
            // ±15 h, so the switch is within 15 h of the label read as UTC; zone data is in
            // whole seconds.
            let guess = label.and_utc().timestamp();
            let local = |s: i64| DateTime::from_timestamp(s, 0).map(|t| t.with_timezone(&tz).naive_local());
            let (mut before, mut after) = (guess - 15 * 3600, guess + 15 * 3600);
            while after - before > 1 {
                let mid = before + (after - before) / 2;
                if local(mid)? >= label {
                    after = mid;
                } else {
                    before = mid;
                }
            }
            after.checked_mul(MICROS_PER_SECOND)
        }
    }
}

/// The round trip's instants: the epoch, each DST switch of 2026 in `tz` and the microsecond
/// before it, 2038-01-19 (32-bit seconds end), and 2099-12-31 23:59 local (a year `%y` gets
/// wrong, and an hour past noon for `%I` without `%p`).
fn samples(tz: Tz) -> Vec<i64> {
    let mut out = vec![0, 2_147_483_648 * MICROS_PER_SECOND];
    let offset = |s: i64| DateTime::from_timestamp(s, 0).map(|t| tz.offset_from_utc_datetime(&t.naive_utc()).fix());
    let year = NaiveDate::from_ymd_opt(2026, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let start = year.map_or(0, |t| t.and_utc().timestamp());
    for hour in 0..365 * 24 {
        let (mut before, mut after) = (start + hour * 3600, start + (hour + 1) * 3600);
        if offset(before) == offset(after) {
            continue;
        }
        while after - before > 1 {
            let mid = before + (after - before) / 2;
            if offset(mid) == offset(before) {
                before = mid;
            } else {
                after = mid;
            }
        }
        out.extend([after * MICROS_PER_SECOND - 1, after * MICROS_PER_SECOND]);
    }
    if let Some(t) = NaiveDate::from_ymd_opt(2099, 12, 31).and_then(|d| d.and_hms_opt(23, 59, 0)) {
        out.extend(instant(tz, t));
    }
    out
}

fn utc(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map_or_else(|| micros.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn show(bucket: Bucket) -> String {
    format!("{}–{}", utc(bucket.start), utc(bucket.end))
}

#[cfg(test)]
mod tests;
