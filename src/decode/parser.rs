//! The per-message JSON reader: a hand-written scanner that walks one JSON object and writes
//! each value straight into the schema slot it belongs to. It validates all of the JSON
//! (including skipped unknown keys), so every bad message is caught here, one at a time.

use super::convert::{self, DecimalError, TimeError};
use super::error::{excerpt, DecodeError, Segment};
use super::plan::{Kind, StructPlan};
use super::row::{ParsedRow, Slot};
use crate::schema::FieldSpec;

/// Default cap on one message: Kafka's default `message.max.bytes` is ~1 MiB; leave headroom.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Default cap on object/array nesting, counting the message object itself as level 1.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Decodes one JSON message at a time into a reused [`ParsedRow`].
///
/// Decisions, so producers and users know what to expect:
/// - Unknown keys are validated and skipped; with `strict` they are an `unknown_field` error.
/// - A key repeated in one object is a `duplicate_field` error: "last wins" would silently
///   pick one of two conflicting values.
/// - `string` takes JSON strings only; `bool` takes `true`/`false` only.
/// - `int32`/`int64` take JSON integers (no fraction or exponent: `1.5` and `1e3` are
///   `wrong_type`) and integer strings (`"123"`), as the protobuf JSON mapping does for int64.
/// - `float32`/`float64` take JSON numbers; one that overflows to infinity is `out_of_range`.
/// - `decimal(p,s)` takes numbers or numeric strings, parsed exactly from the text (see
///   `convert::parse_decimal`): excess non-zero fraction digits → `bad_decimal`, too many
///   integer digits → `out_of_range`.
/// - `date` takes `"YYYY-MM-DD"`; `timestamp` takes RFC 3339 with an offset (converted to
///   UTC, digits past microseconds truncated) or integer epoch milliseconds. Years outside
///   1…9999 are `out_of_range`.
/// - Any field may be null or absent unless `required`.
#[derive(Debug)]
pub struct RowParser {
    plan: StructPlan,
    strict: bool,
    max_bytes: usize,
    max_depth: usize,
    row: ParsedRow,
    /// Items of lists being read, before they move into the row's arena.
    stack: Vec<Slot>,
    /// Unescaped keys and typed strings that contained escapes.
    scratch: String,
}

impl RowParser {
    /// A parser for messages of `schema`; `strict` turns unknown keys into errors.
    pub fn new(schema: &[FieldSpec], strict: bool) -> RowParser {
        RowParser {
            plan: StructPlan::top_level(schema),
            strict,
            max_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            row: ParsedRow::default(),
            stack: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Overrides the size (`too_large`) and nesting (`too_deep`) limits.
    pub fn with_limits(mut self, max_bytes: usize, max_depth: usize) -> RowParser {
        // Slot offsets are u32; a bigger limit could not be honoured.
        self.max_bytes = max_bytes.min(u32::MAX as usize);
        self.max_depth = max_depth.max(1);
        self
    }

    /// Decodes one message. The returned row is valid until the next call.
    pub fn parse(&mut self, payload: &[u8]) -> Result<&ParsedRow, DecodeError> {
        if payload.len() > self.max_bytes {
            return Err(DecodeError::TooLarge { size: payload.len(), limit: self.max_bytes });
        }
        let input = std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })?;
        self.row.reset(self.plan.len());
        self.stack.clear();
        let mut cursor = Cursor {
            input,
            bytes: payload,
            pos: 0,
            row: &mut self.row,
            stack: &mut self.stack,
            scratch: &mut self.scratch,
            strict: self.strict,
            max_depth: self.max_depth,
        };
        match cursor.message(&self.plan) {
            Ok(()) => Ok(&self.row),
            Err(e @ (DecodeError::InvalidJson { .. } | DecodeError::TooDeep { .. })) => Err(e),
            // A type error may come before a syntax error further on (a truncated payload);
            // report the payload as invalid JSON then, it is the more fundamental problem.
            // Only the error path pays for this second, syntax-only pass.
            Err(e) => Err(self.syntax_error(input).unwrap_or(e)),
        }
    }

    fn syntax_error(&mut self, input: &str) -> Option<DecodeError> {
        let mut cursor = Cursor {
            input,
            bytes: input.as_bytes(),
            pos: 0,
            row: &mut self.row,
            stack: &mut self.stack,
            scratch: &mut self.scratch,
            strict: self.strict,
            max_depth: self.max_depth,
        };
        cursor.skip_ws();
        // Depth 0 for the message itself, as `message` counts it: its members are at depth 1.
        cursor.skip_value(0).and_then(|()| cursor.end_of_input()).err()
    }
}

/// Where a string's content ended up.
pub(super) enum Str {
    /// A slice of the input (no escapes): `input[start..end]`.
    Input(usize, usize),
    /// Unescaped into the scratch buffer.
    Scratch,
    /// Appended to the row's text buffer at `start`, `len` bytes.
    Text(u32, u32),
}

/// One message being read: the input, the read position, and where values go.
pub(super) struct Cursor<'a> {
    pub(super) input: &'a str,
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) row: &'a mut ParsedRow,
    pub(super) stack: &'a mut Vec<Slot>,
    pub(super) scratch: &'a mut String,
    pub(super) strict: bool,
    pub(super) max_depth: usize,
}

impl<'a> Cursor<'a> {
    fn message(&mut self, plan: &StructPlan) -> Result<(), DecodeError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.syntax("empty payload")),
            Some(b'{') => {
                self.pos += 1;
                self.object_body(plan, 0, 1)?;
                // Syntax first: a truncated or trailing-garbage payload is `invalid_json`
                // even if it also lacks a required field.
                self.end_of_input()?;
                self.close_object(plan, 0)
            }
            Some(first) => {
                // Only call it "not an object" if it is otherwise valid JSON (nested within
                // the same limit as an object message).
                self.skip_value(0)?;
                self.end_of_input()?;
                let found = match first {
                    b'[' => "an array",
                    b'"' => "a string",
                    b't' | b'f' => "a boolean",
                    b'n' => "null",
                    _ => "a number",
                };
                Err(DecodeError::NotAnObject { found: found.to_string() })
            }
        }
    }

    fn end_of_input(&mut self) -> Result<(), DecodeError> {
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.syntax("unexpected text after the JSON value"));
        }
        Ok(())
    }

    // ---- objects and lists -------------------------------------------------------------

    /// Reads the members of an object whose `{` was consumed into slots `base..base+n`.
    fn object_body(&mut self, plan: &StructPlan, base: usize, depth: usize) -> Result<(), DecodeError> {
        let mut hint = 0;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a key string"));
                }
                let key = self.string(false)?;
                let found = plan.lookup(self.str_bytes(&key), hint);
                self.skip_ws();
                self.expect(b':', "expected `:` after the key")?;
                self.skip_ws();
                match found {
                    Some(i) => {
                        hint = i + 1;
                        let name = &plan.names[i];
                        if !matches!(self.row.slots[base + i], Slot::Missing) {
                            return Err(DecodeError::DuplicateField { path: name.to_string() });
                        }
                        let value = self.value(&plan.kinds[i], depth).map_err(|e| e.within(Segment::Field(name)))?;
                        self.row.slots[base + i] = value;
                    }
                    None if self.strict => {
                        let key = String::from_utf8_lossy(self.str_bytes(&key)).into_owned();
                        return Err(DecodeError::UnknownField { path: key });
                    }
                    None => self.skip_value(depth)?,
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected `,` or `}` after a value")),
                }
            }
        }
        Ok(())
    }

    /// Turns absent fields into nulls, refusing absent or null required ones.
    fn close_object(&mut self, plan: &StructPlan, base: usize) -> Result<(), DecodeError> {
        for i in 0..plan.len() {
            match self.row.slots[base + i] {
                Slot::Missing if plan.required[i] => {
                    return Err(DecodeError::MissingRequired { path: plan.names[i].to_string() })
                }
                Slot::Null if plan.required[i] => {
                    return Err(DecodeError::NullRequired { path: plan.names[i].to_string() })
                }
                Slot::Missing => self.row.slots[base + i] = Slot::Null,
                _ => {}
            }
        }
        Ok(())
    }

    fn list(&mut self, item: &Kind, depth: usize) -> Result<Slot, DecodeError> {
        self.enter(depth)?;
        self.pos += 1;
        let mark = self.stack.len();
        let mut len = 0usize;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                let value = self.value(item, depth + 1).map_err(|e| e.within(Segment::Index(len)))?;
                self.stack.push(value);
                len += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected `,` or `]` after a list item")),
                }
            }
        }
        let start = self.row.slots.len() as u32;
        self.row.slots.extend_from_slice(&self.stack[mark..]);
        self.stack.truncate(mark);
        Ok(Slot::List { start, len: len as u32 })
    }

    pub(super) fn enter(&self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.max_depth {
            return Err(DecodeError::TooDeep { path: String::new(), limit: self.max_depth });
        }
        Ok(())
    }

    // ---- typed values -------------------------------------------------------------------

    /// Reads one value of `kind` (at nesting `depth` of its container).
    fn value(&mut self, kind: &Kind, depth: usize) -> Result<Slot, DecodeError> {
        let Some(c) = self.peek() else {
            return Err(self.syntax("expected a value"));
        };
        if c == b'n' {
            self.literal(b"null")?;
            return Ok(Slot::Null);
        }
        let start = self.pos;
        let is_number = c == b'-' || c.is_ascii_digit();
        match kind {
            Kind::String if c == b'"' => match self.string(true)? {
                Str::Text(start, len) => Ok(Slot::Str { start, len }),
                Str::Input(..) | Str::Scratch => {
                    unreachable!("string(true) always writes the text buffer")
                }
            },
            Kind::Bool if c == b't' => self.literal(b"true").map(|_| Slot::Bool(true)),
            Kind::Bool if c == b'f' => self.literal(b"false").map(|_| Slot::Bool(false)),
            Kind::Int32 | Kind::Int64 if is_number || c == b'"' => {
                let text = self.scalar_text(is_number)?;
                let v = match convert::parse_integer_text(text) {
                    Some(Ok(v)) => v,
                    Some(Err(())) => return Err(self.out_of_range(kind, start)),
                    None => return Err(self.wrong_type_at(kind, start)),
                };
                if matches!(kind, Kind::Int32) && i32::try_from(v).is_err() {
                    return Err(self.out_of_range(kind, start));
                }
                Ok(Slot::Int(v))
            }
            Kind::Float32 if is_number => {
                let v: f32 = self.number_text()?.parse().map_err(|_| self.syntax("malformed number"))?;
                if !v.is_finite() {
                    return Err(self.out_of_range(kind, start));
                }
                Ok(Slot::Float32(v))
            }
            Kind::Float64 if is_number => {
                let v: f64 = self.number_text()?.parse().map_err(|_| self.syntax("malformed number"))?;
                if !v.is_finite() {
                    return Err(self.out_of_range(kind, start));
                }
                Ok(Slot::Float64(v))
            }
            Kind::Decimal { precision, scale } if is_number || c == b'"' => {
                let text = self.scalar_text(is_number)?;
                match convert::parse_decimal(text, *precision, *scale) {
                    Ok(v) => Ok(Slot::Decimal(v, *scale)),
                    Err(DecimalError::Overflow) => Err(self.out_of_range(kind, start)),
                    Err(e) => Err(DecodeError::BadDecimal {
                        path: String::new(),
                        expected: kind.to_string(),
                        value: self.excerpt_from(start),
                        why: match e {
                            DecimalError::TooManyFractionDigits => {
                                "more fraction digits than the scale; rounding would change the amount"
                            }
                            _ => "not a decimal number",
                        },
                    }),
                }
            }
            Kind::Date if c == b'"' => {
                let text = self.scalar_text(false)?;
                convert::parse_date(text).map(Slot::Date).map_err(|e| match e {
                    TimeError::OutOfRange => self.out_of_range(kind, start),
                    TimeError::Malformed(why) => {
                        DecodeError::BadDate { path: String::new(), value: self.excerpt_from(start), why }
                    }
                })
            }
            Kind::Timestamp if c == b'"' || is_number => {
                let result = if is_number {
                    let text = self.number_text()?;
                    match convert::parse_integer_text(text) {
                        Some(Ok(millis)) => convert::epoch_millis_to_micros(millis),
                        Some(Err(())) => Err(TimeError::OutOfRange),
                        None => Err(TimeError::Malformed("epoch milliseconds must be an integer")),
                    }
                } else {
                    convert::parse_rfc3339(self.scalar_text(false)?)
                };
                result.map(Slot::Timestamp).map_err(|e| match e {
                    TimeError::OutOfRange => self.out_of_range(kind, start),
                    TimeError::Malformed(why) => {
                        DecodeError::BadTimestamp { path: String::new(), value: self.excerpt_from(start), why }
                    }
                })
            }
            Kind::List(item) if c == b'[' => self.list(item, depth),
            Kind::Struct(plan) if c == b'{' => {
                self.enter(depth)?;
                self.pos += 1;
                let base = self.row.slots.len();
                self.row.slots.resize(base + plan.len(), Slot::Missing);
                self.object_body(plan, base, depth + 1)?;
                self.close_object(plan, base)?;
                Ok(Slot::Struct { start: base as u32 })
            }
            _ => {
                self.skip_value(depth)?;
                Err(self.wrong_type_at(kind, start))
            }
        }
    }

    /// The text of a number (validated JSON grammar) or of a string (unescaped).
    fn scalar_text(&mut self, is_number: bool) -> Result<&str, DecodeError> {
        if is_number {
            return self.number_text();
        }
        let s = self.string(false)?;
        Ok(match s {
            Str::Input(a, b) => &self.input[a..b],
            Str::Scratch => self.scratch.as_str(),
            Str::Text(..) => unreachable!("string(false) never writes the text buffer"),
        })
    }

    fn number_text(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        self.number()?;
        Ok(&self.input[start..self.pos])
    }

    fn wrong_type_at(&self, kind: &Kind, start: usize) -> DecodeError {
        DecodeError::WrongType { path: String::new(), expected: kind.to_string(), value: self.excerpt_from(start) }
    }

    fn out_of_range(&self, kind: &Kind, start: usize) -> DecodeError {
        DecodeError::OutOfRange { path: String::new(), expected: kind.to_string(), value: self.excerpt_from(start) }
    }

    /// The JSON text from `start` to the cursor, shortened for a message.
    fn excerpt_from(&self, start: usize) -> String {
        excerpt(&self.input[start..self.pos.max(start)])
    }
}
