//! Hive-style partition paths (`dt=2026-11-25/hour=17`) from a template and a decoded row.
//!
//! A template mixes literal text with placeholders: `{field}` (the value of a scalar field,
//! `a.b` reaching into a struct), `{field:strftime}` (a timestamp or date field, formatted in
//! the pipeline's timezone) and `{_ingest:strftime}` (arrival time; `_ingest` is reserved and
//! shadows a schema field of that name). [`PartitionTemplate::parse`] reports every problem of
//! a template at once, so a config error is fixed in one round.
//!
//! Values are data from producers, so they are treated as hostile. What happens to a value:
//! - escaped like Hive's `FileUtils.escapePathName` (`"#%'*/:=?\{[]^` → `%XX`, uppercase hex),
//!   which Spark and Hive unescape back: `a/b` becomes `a%2Fb`, `k=v` becomes `k%3Dv`, so a
//!   value can never add a path segment;
//! - refused (`unsafe_partition_value`, the message goes to quarantine) when it is empty, starts
//!   with `.` (covers `.` and `..`), contains a control character (C0, DEL and C1: every
//!   `char::is_control`, NUL included), or would make a path segment that Spark hides (leading
//!   `_` without `=`) or HDFS refuses (over 255 bytes). The publish step checks paths with
//!   [`segment_problem`], the same rule, so a routed row can never fail at commit time;
//! - refused (`missing_partition_value`) when null or missing. Hive would write
//!   `__HIVE_DEFAULT_PARTITION__`; we quarantine instead, so no bogus directory appears.
//!
//! Formatting timestamps with chrono costs more than the rest of a row's path, and consecutive
//! events mostly share an hour, so each timestamp placeholder caches its last rendering together
//! with the UTC interval over which it stays the same (see [`time`]).

pub mod clock;
mod resolve;
mod time;

use std::fmt::{self, Write as _};
use std::sync::Mutex;

use chrono_tz::Tz;
use thiserror::Error;

use crate::decode::{ParsedRow, PartitionValue};
use crate::schema::{FieldSpec, FieldType};
use resolve::resolve;
use time::{DateFormat, TimeCache, TimeFormat};

/// Placeholder name for the time a message arrived.
pub const INGEST_TIME: &str = "_ingest";
/// HDFS' default `dfs.namenode.fs-limits.max-component-length`, also most filesystems' NAME_MAX.
const MAX_SEGMENT_BYTES: usize = 255;

/// Why a row has no partition path; the row goes to quarantine with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartitionError {
    #[error("partition field `{field}` is null or missing; the row cannot be placed in a partition")]
    Missing { field: String },

    #[error("partition field `{field}` has unsafe value {value:?}: {why}")]
    UnsafeValue { field: String, value: String, why: &'static str },

    #[error("partition path segment {segment:?} is unsafe: {why}")]
    UnsafeSegment { segment: String, why: &'static str },
}

impl PartitionError {
    /// Short, stable reason code for the quarantine record and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PartitionError::Missing { .. } => "missing_partition_value",
            PartitionError::UnsafeValue { .. } | PartitionError::UnsafeSegment { .. } => "unsafe_partition_value",
        }
    }
}

/// A parsed partition template, ready to render paths for rows of one schema.
pub struct PartitionTemplate {
    text: String,
    parts: Vec<Part>,
    /// One cache per part (used by time parts only). A `Mutex` keeps the template `Sync` and
    /// `render` on `&self`; it is taken with `try_lock`, so a contended render just formats.
    caches: Mutex<Vec<TimeCache>>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    /// A scalar field rendered as its value. `date` marks a date field (rendered `YYYY-MM-DD`),
    /// which completion's [`clock::Clock`] counts as a time placeholder.
    Value {
        field: String,
        path: Vec<usize>,
        date: bool,
    },
    /// A timestamp field (or arrival time when `path` is `None`) through a strftime format.
    Time {
        field: String,
        path: Option<Vec<usize>>,
        format: TimeFormat,
    },
    /// A date field through a strftime format.
    Date {
        field: String,
        path: Vec<usize>,
        format: DateFormat,
    },
}

impl PartitionTemplate {
    /// Parses `text` against `schema`; on failure returns every problem found, each a sentence
    /// naming the placeholder and what to change.
    pub fn parse(text: &str, schema: &[FieldSpec]) -> Result<PartitionTemplate, Vec<String>> {
        let mut problems = Vec::new();
        let mut parts = Vec::new();
        let mut literal = String::new();
        // The path with every placeholder replaced by `*`, to check its segments.
        let mut shape = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            shape.push_str(&rest[..i]);
            if rest.as_bytes()[i] == b'}' {
                problems.push(format!("unmatched `}}` at position {} of `{text}`", offset + i + 1));
                rest = &rest[i + 1..];
                offset += i + 1;
                continue;
            }
            let Some(len) = rest[i + 1..].find('}') else {
                problems.push(format!("unclosed `{{` at position {} of `{text}`", offset + i + 1));
                rest = "";
                break;
            };
            let content = &rest[i + 1..i + 1 + len];
            shape.push('*');
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            if content.contains('{') {
                problems.push(format!("nested `{{` inside `{{{content}}}`; placeholders cannot nest"));
            } else if let Some(part) = placeholder(content, schema, &mut problems) {
                parts.push(part);
            }
            rest = &rest[i + len + 2..];
            offset += i + len + 2;
        }
        literal.push_str(rest);
        shape.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        check_shape(text, &shape, &parts, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let caches = Mutex::new(parts.iter().map(|_| TimeCache::default()).collect());
        Ok(PartitionTemplate { text: text.to_string(), parts, caches })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Schema fields the template reads (dotted paths for struct members), in template order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value { field, .. } | Part::Date { field, .. } => Some(field.as_str()),
            Part::Time { field, path: Some(_), .. } => Some(field.as_str()),
            Part::Literal(_) | Part::Time { path: None, .. } => None,
        })
    }

    /// True when the template uses arrival time (`{_ingest:…}`).
    pub fn uses_ingest_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Time { path: None, .. }))
    }

    /// Appends the row's relative partition path (no leading or trailing `/`) to `out`.
    /// Timestamps are shown in `tz`; `ingest_micros` is the arrival time (UTC micros).
    /// On error `out` is left as it was.
    pub fn render(&self, row: &ParsedRow, ingest_micros: i64, tz: Tz, out: &mut String) -> Result<(), PartitionError> {
        let start = out.len();
        let result = self.render_parts(row, ingest_micros, tz, out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn render_parts(
        &self,
        row: &ParsedRow,
        ingest_micros: i64,
        tz: Tz,
        out: &mut String,
        start: usize,
    ) -> Result<(), PartitionError> {
        let mut guard = self.caches.try_lock().ok();
        let mut spare = TimeCache::default();
        for (i, part) in self.parts.iter().enumerate() {
            let cache = match guard.as_mut() {
                Some(caches) => &mut caches[i],
                None => &mut spare,
            };
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Value { field, path, .. } => match row.value_at(path) {
                    Some(value) => push_value(value, field, out)?,
                    None => return Err(PartitionError::Missing { field: field.clone() }),
                },
                Part::Time { field, path, format } => {
                    let micros = match path {
                        None => ingest_micros,
                        Some(path) => match row.value_at(path) {
                            Some(PartitionValue::TimestampMicros(t)) => t,
                            _ => return Err(PartitionError::Missing { field: field.clone() }),
                        },
                    };
                    format.render(micros, tz, cache, field, out)?;
                }
                Part::Date { field, path, format } => match row.value_at(path) {
                    Some(PartitionValue::Date(days)) => format.render(days, cache, field, out)?,
                    _ => return Err(PartitionError::Missing { field: field.clone() }),
                },
            }
        }
        check_rendered_segments(&out[start..])
    }
}

impl Clone for PartitionTemplate {
    fn clone(&self) -> Self {
        PartitionTemplate {
            text: self.text.clone(),
            parts: self.parts.clone(),
            caches: Mutex::new(self.parts.iter().map(|_| TimeCache::default()).collect()),
        }
    }
}

impl fmt::Debug for PartitionTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionTemplate").field("text", &self.text).field("parts", &self.parts).finish()
    }
}

impl fmt::Display for PartitionTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---- Hive partition keys ----------------------------------------------------------------------

/// The partition keys of a Hive-style template, in path order: `dt={ts:%Y-%m-%d}/hour={ts:%H}`
/// gives `["dt", "hour"]`. Every directory must be `key=…` with a literal key of lower-case
/// letters, digits and `_` (a metastore keeps keys in lower case and a Hive column name allows
/// nothing else), each key once. Used for `sink.hive`; errors are sentences naming the segment.
/// Only the text is read: placeholders are skipped whole, so a `/` or `=` inside one
/// (`{ts:%Y/%m}`) does not split a segment.
pub fn hive_keys(template: &str) -> Result<Vec<String>, Vec<String>> {
    let segments = template_segments(template);
    let mut keys: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for segment in &segments {
        let key = match (segment.find('='), segment.find('{')) {
            (Some(eq), brace) if brace.is_none_or(|b| eq < b) => &segment[..eq],
            _ => {
                problems.push(format!(
                    "segment `{segment}` is not `key=value`; a Hive table's partition directories name their column, \
                     e.g. `dt={{ts:%Y-%m-%d}}`"
                ));
                continue;
            }
        };
        if key.is_empty() || !key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')) {
            problems.push(format!(
                "partition key `{key}` in `{segment}` must be lower-case letters, digits and `_` (a Hive column name, \
                 as the metastore stores it)"
            ));
        } else if keys.iter().any(|k| k == key) {
            problems.push(format!("partition key `{key}` appears twice; each Hive partition column once"));
        } else {
            keys.push(key.to_string());
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

/// The template's path segments as written (`dt={ts:%Y-%m-%d}`, `hour={ts:%H}`): split at `/`
/// outside placeholders, so a `/` inside one (`{ts:%Y/%m}`) does not split a segment.
fn template_segments(template: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in template.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => {
                segments.push(&template[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    segments.push(&template[start..]);
    segments
}

/// The partition values of a published directory (`dt=2026-11-25/hour=17`, relative to the
/// table) for `keys`, unescaped: the inverse of [`escape_into`], as Hive's
/// `FileUtils.unescapePathName` reads them (`a%2Fb` → `a/b`). `None` when the directory does
/// not have exactly these keys in this order (then it is not a partition of the table).
pub fn hive_values(dir: &str, keys: &[String]) -> Option<Vec<String>> {
    let segments: Vec<&str> = dir.split('/').collect();
    if segments.len() != keys.len() {
        return None;
    }
    segments
        .iter()
        .zip(keys)
        .map(|(segment, key)| {
            let value = segment.strip_prefix(key.as_str())?.strip_prefix('=')?;
            Some(unescape(value))
        })
        .collect()
}

/// Undoes [`escape_into`]: `%XX` (two hex digits) becomes that byte; anything else, including a
/// `%` not followed by two hex digits, stays as it is (Hive's `unescapePathName` does the same).
pub fn unescape(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
            if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() {
                let digit = |d: u8| (d as char).to_digit(16).expect("a hex digit") as u8;
                out.push(digit(hi) << 4 | digit(lo));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// ---- parsing --------------------------------------------------------------------------------

/// Compiles one `{…}` placeholder; pushes problems and returns `None` if it is unusable.
fn placeholder(content: &str, schema: &[FieldSpec], problems: &mut Vec<String>) -> Option<Part> {
    let (name, format) = match content.split_once(':') {
        Some((name, format)) => (name, Some(format)),
        None => (content, None),
    };
    if name.is_empty() {
        problems.push(format!("empty field name in `{{{content}}}`"));
        return None;
    }
    if name == INGEST_TIME {
        let Some(format) = format else {
            problems.push(format!("`{{{INGEST_TIME}}}` needs a strftime format, e.g. `{{{INGEST_TIME}:%Y-%m-%d}}`"));
            return None;
        };
        let format =
            TimeFormat::compile(format).map_err(|why| problems.push(format!("`{{{content}}}`: {why}"))).ok()?;
        return Some(Part::Time { field: INGEST_TIME.to_string(), path: None, format });
    }
    let (path, field_type) = resolve(name, schema).map_err(|why| problems.push(why)).ok()?;
    let field = name.to_string();
    match (field_type, format) {
        (FieldType::Timestamp, Some(format)) => {
            let format =
                TimeFormat::compile(format).map_err(|why| problems.push(format!("`{{{content}}}`: {why}"))).ok()?;
            Some(Part::Time { field, path: Some(path), format })
        }
        (FieldType::Timestamp, None) => {
            problems
                .push(format!("`{{{name}}}` is a timestamp and needs a strftime format, e.g. `{{{name}:%Y-%m-%d}}`"));
            None
        }
        (FieldType::Date, Some(format)) => {
            let format = DateFormat::compile(format, name)
                .map_err(|why| problems.push(format!("`{{{content}}}`: {why}")))
                .ok()?;
            Some(Part::Date { field, path, format })
        }
        (FieldType::List(_) | FieldType::Struct(_), _) => {
            problems.push(format!(
                "`{{{content}}}`: field `{name}` is a {field_type}; partition values must be scalar fields"
            ));
            None
        }
        (other, Some(_)) => {
            problems.push(format!(
                "`{{{content}}}`: a strftime format only applies to timestamp and date fields, but `{name}` is {other}; write `{{{name}}}`"
            ));
            None
        }
        (FieldType::Date, None) => Some(Part::Value { field, path, date: true }),
        (_, None) => Some(Part::Value { field, path, date: false }),
    }
}

/// Checks the template's path shape: relative, no empty, `.`/`..` or hidden segments, and
/// literal text that needs no escaping (it is written as is).
fn check_shape(text: &str, shape: &str, parts: &[Part], problems: &mut Vec<String>) {
    if text.is_empty() {
        problems.push("partition template is empty; use e.g. `dt={ts:%Y-%m-%d}`".to_string());
        return;
    }
    if text.starts_with('/') {
        problems.push(format!("`{text}` is absolute; partition templates are relative to the table root"));
    }
    for part in parts {
        if let Part::Literal(literal) = part {
            if let Some(c) = literal.chars().find(|&c| c != '/' && c != '=' && c.is_ascii() && needs_escape(c as u8)) {
                problems.push(format!(
                    "literal {c:?} in `{text}` would have to be escaped in a path; use letters, digits, `-`, `_`, `.` or `=`"
                ));
            }
        }
    }
    let segments: Vec<&str> = shape.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            if !(i == 0 && text.starts_with('/')) {
                problems.push(format!("`{text}` has an empty path segment (`//` or a trailing `/`)"));
            }
        } else if *segment == "." || *segment == ".." {
            problems.push(format!("`{text}` has a `{segment}` segment; partitions must stay under the table root"));
        } else if segment.starts_with('.') || (segment.starts_with('_') && !segment.contains('=')) {
            problems.push(format!(
                "segment `{segment}` of `{text}` starts with `{}`; Spark ignores such directories, so the data would be invisible",
                &segment[..1]
            ));
        }
    }
}

// ---- rendering --------------------------------------------------------------------------------

/// Hive's `FileUtils.escapePathName` set (non-Windows): control characters and `"#%'*/:=?\{[]^`
/// plus DEL.
fn needs_escape(b: u8) -> bool {
    b < 0x20
        || b == 0x7f
        || matches!(
            b,
            b'"' | b'#' | b'%' | b'\'' | b'*' | b'/' | b':' | b'=' | b'?' | b'\\' | b'{' | b'[' | b']' | b'^'
        )
}

/// Appends `value` to `out` with Hive's `%XX` escaping. Non-ASCII text passes through, as in Hive.
pub(crate) fn escape_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if needs_escape(b) {
            out.push_str(&value[run..i]);
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
            run = i + 1;
        }
    }
    out.push_str(&value[run..]);
}

fn push_value(value: PartitionValue<'_>, field: &str, out: &mut String) -> Result<(), PartitionError> {
    match value {
        PartitionValue::Str(s) => {
            let why = if s.is_empty() {
                Some("empty")
            } else if s.starts_with('.') {
                Some("starts with `.` (hidden or `..` directory)")
            } else if s.chars().any(char::is_control) {
                Some("contains a control character")
            } else {
                None
            };
            if let Some(why) = why {
                let value = s.chars().take(64).collect();
                return Err(PartitionError::UnsafeValue { field: field.to_string(), value, why });
            }
            escape_into(s, out);
        }
        PartitionValue::Int(v) => write!(out, "{v}").expect("writing to a String cannot fail"),
        PartitionValue::Bool(v) => out.push_str(if v { "true" } else { "false" }),
        PartitionValue::Float(v) => write!(out, "{v}").expect("writing to a String cannot fail"),
        PartitionValue::Decimal(v, scale) => push_decimal(v, scale, out),
        PartitionValue::Date(days) => time::push_iso_date(days, out),
        // Parse only admits timestamps with a format; kept total for safety.
        PartitionValue::TimestampMicros(t) => write!(out, "{t}").expect("writing to a String cannot fail"),
    }
    Ok(())
}

/// Exact decimal text: `Decimal(-1234, 2)` → `-12.34`.
fn push_decimal(v: i128, scale: i8, out: &mut String) {
    if v < 0 {
        out.push('-');
    }
    let magnitude = v.unsigned_abs();
    if scale <= 0 {
        write!(out, "{magnitude}").expect("writing to a String cannot fail");
        for _ in 0..scale.unsigned_abs() {
            if magnitude != 0 {
                out.push('0');
            }
        }
        return;
    }
    let divisor = 10u128.pow(u32::from(scale.unsigned_abs()));
    write!(out, "{}.{:0width$}", magnitude / divisor, magnitude % divisor, width = scale as usize)
        .expect("writing to a String cannot fail");
}

/// Why `segment` cannot be a path component of a published file, or `None` if it can: empty,
/// `.` or `..`, a control character, or longer than HDFS' component limit. The publish step
/// (`commit::paths`) applies this rule; routing applies it and more (see
/// [`check_rendered_segments`]), so whatever routing accepts, publishing accepts.
pub(crate) fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("empty")
    } else if segment == "." || segment == ".." {
        Some("`.` or `..` would leave the directory")
    } else if segment.chars().any(char::is_control) {
        Some("contains a control character")
    } else if segment.len() > MAX_SEGMENT_BYTES {
        Some("longer than 255 bytes, HDFS' limit for a path component")
    } else {
        None
    }
}

/// Last line of defence on the whole rendered path: what publishing refuses, plus what Spark
/// would hide.
fn check_rendered_segments(path: &str) -> Result<(), PartitionError> {
    for segment in path.split('/') {
        let why = if let Some(why) = segment_problem(segment) {
            why
        } else if segment.starts_with('.') {
            "starts with `.`"
        } else if segment.starts_with('_') && !segment.contains('=') {
            "starts with `_`; Spark would ignore the directory"
        } else {
            continue;
        };
        let segment = segment.chars().take(64).collect();
        return Err(PartitionError::UnsafeSegment { segment, why });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
