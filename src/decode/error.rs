//! Why one message could not be decoded. Every variant maps to a short, stable reason code
//! (`reason()`) that the quarantine records and metrics group by; the `Display` text is for the
//! human reading the quarantine: which field, which value, what to check.

use thiserror::Error;

/// Longest value excerpt (in characters) copied into an error message.
const MAX_EXCERPT_CHARS: usize = 64;

/// One message failed to decode; the message goes to quarantine, its neighbours are unaffected.
///
/// `path` is the field path inside the message (`geo.lat`, `tags[2]`); empty means the whole
/// message. `value` is an excerpt of the offending JSON text, truncated to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("payload is not valid UTF-8 (first bad byte at offset {offset}); check the producer's encoding")]
    InvalidUtf8 { offset: usize },

    #[error("payload is {size} bytes, over the {limit}-byte limit; raise the pipeline's max message size or fix the producer")]
    TooLarge { size: usize, limit: usize },

    #[error("invalid JSON at byte {offset}: {what}")]
    InvalidJson { offset: usize, what: &'static str },

    #[error("payload is JSON but not an object (found {found}); each message must be one JSON object")]
    NotAnObject { found: String },

    #[error("JSON nested deeper than {limit} levels at `{path}`; absurd nesting is refused")]
    TooDeep { path: String, limit: usize },

    #[error("field `{path}`: expected {expected}, found {value}")]
    WrongType { path: String, expected: String, value: String },

    #[error("field `{path}`: value {value} is out of range for {expected}")]
    OutOfRange { path: String, expected: String, value: String },

    #[error("required field `{path}` is missing")]
    MissingRequired { path: String },

    #[error("required field `{path}` is null")]
    NullRequired { path: String },

    #[error("field `{path}`: {value} is not a timestamp ({why}); expected RFC 3339 with an offset, e.g. \"2026-11-25T17:03:12.345Z\", or integer epoch milliseconds")]
    BadTimestamp { path: String, value: String, why: &'static str },

    #[error("field `{path}`: {value} is not a date ({why}); expected \"YYYY-MM-DD\"")]
    BadDate { path: String, value: String, why: &'static str },

    #[error("field `{path}`: {value} is not a valid {expected} ({why})")]
    BadDecimal { path: String, expected: String, value: String, why: &'static str },

    #[error("unknown field `{path}` (strict mode); add it to the schema or turn strict off")]
    UnknownField { path: String },

    #[error("field `{path}` appears more than once in the object; duplicate keys are ambiguous")]
    DuplicateField { path: String },
}

impl DecodeError {
    /// Short, stable reason code for the quarantine record and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidJson { .. } => "invalid_json",
            DecodeError::NotAnObject { .. } => "not_an_object",
            DecodeError::TooDeep { .. } => "too_deep",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::MissingRequired { .. } => "missing_required",
            DecodeError::NullRequired { .. } => "null_required",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::BadDate { .. } => "bad_date",
            DecodeError::BadDecimal { .. } => "bad_decimal",
            DecodeError::UnknownField { .. } => "unknown_field",
            DecodeError::DuplicateField { .. } => "duplicate_field",
        }
    }

    /// The field path the error is about (empty for whole-message errors).
    pub fn path(&self) -> &str {
        match self {
            DecodeError::TooDeep { path, .. }
            | DecodeError::WrongType { path, .. }
            | DecodeError::OutOfRange { path, .. }
            | DecodeError::MissingRequired { path }
            | DecodeError::NullRequired { path }
            | DecodeError::BadTimestamp { path, .. }
            | DecodeError::BadDate { path, .. }
            | DecodeError::BadDecimal { path, .. }
            | DecodeError::UnknownField { path }
            | DecodeError::DuplicateField { path } => path,
            DecodeError::InvalidUtf8 { .. }
            | DecodeError::TooLarge { .. }
            | DecodeError::InvalidJson { .. }
            | DecodeError::NotAnObject { .. } => "",
        }
    }

    /// Prepends one path segment while the error travels up: a field name (`geo` + `lat` →
    /// `geo.lat`) or a list index (`tags` + `[2]`). Only runs on the error path, so the happy
    /// path never builds strings.
    pub(crate) fn within(mut self, segment: Segment<'_>) -> Self {
        let path = match &mut self {
            DecodeError::TooDeep { path, .. }
            | DecodeError::WrongType { path, .. }
            | DecodeError::OutOfRange { path, .. }
            | DecodeError::MissingRequired { path }
            | DecodeError::NullRequired { path }
            | DecodeError::BadTimestamp { path, .. }
            | DecodeError::BadDate { path, .. }
            | DecodeError::BadDecimal { path, .. }
            | DecodeError::UnknownField { path }
            | DecodeError::DuplicateField { path } => path,
            _ => return self,
        };
        let mut joined = match segment {
            Segment::Field(name) => name.to_string(),
            Segment::Index(i) => format!("[{i}]"),
        };
        if !path.is_empty() {
            if !path.starts_with('[') {
                joined.push('.');
            }
            joined.push_str(path);
        }
        *path = joined;
        self
    }
}

/// One step of a field path, see [`DecodeError::within`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

/// A JSON excerpt for an error message: at most 64 characters, marked with `…` when cut.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_the_inside_out() {
        let e = DecodeError::MissingRequired { path: String::new() }
            .within(Segment::Field("lat"))
            .within(Segment::Index(3))
            .within(Segment::Field("points"));
        assert_eq!(e.path(), "points[3].lat");
        assert_eq!(e.to_string(), "required field `points[3].lat` is missing");
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "x".repeat(100);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), 65);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("\"short\""), "\"short\"");
    }
}
